"""The pipeline files, linted and validated offline: the action, the example workflow (with
actionlint reading the action's inputs and outputs) and the GitLab CI template."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.container.test_static import YAMLLINT_CONFIG, tool
from tests.support.kubernetes import exit_codes_by_retry

pytestmark = pytest.mark.container

REPO = Path(__file__).resolve().parents[2]
ACTION = REPO / "action.yml"
WORKFLOW = REPO / "examples" / "pipelines" / "github-workflow.yml"
GITLAB = REPO / "examples" / "pipelines" / "gitlab" / "migration-job.gitlab-ci.yml"
# How the example workflow names the action; actionlint checks `uses: ./` against action.yml.
PUBLISHED = "OWNER/migration-job@v0.1.0"


def load(path: Path) -> dict[str, Any]:
    """A YAML file (`on:` stays a string key)."""
    loaded: dict[str, Any] = yaml.load(path.read_text(), yaml.BaseLoader)  # noqa: S506
    return loaded


def action_steps(job: dict[str, Any]) -> list[dict[str, Any]]:
    """The steps of a workflow job that use the action."""
    return [step for step in job["steps"] if step.get("uses") == PUBLISHED]


@pytest.mark.parametrize(("path", "schema"), [
    (ACTION, "vendor.github-actions"), (WORKFLOW, "vendor.github-workflows"),
    (GITLAB, "vendor.gitlab-ci")], ids=["action", "workflow", "gitlab"])
def test_validates_against_its_schema(path: Path, schema: str) -> None:
    done = subprocess.run([tool("check-jsonschema"), "--builtin-schema", schema, str(path)],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


def test_yamllint_is_clean() -> None:
    done = subprocess.run([tool("yamllint"), "-f", "parsable", "-d", YAMLLINT_CONFIG,
                           str(ACTION), str(WORKFLOW), str(GITLAB)],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


def test_actionlint_checks_the_workflow_against_the_action(tmp_path: Path) -> None:
    """The workflow's inputs and outputs must be the action's: actionlint reads a local action."""
    workflows = tmp_path / ".github" / "workflows"
    workflows.mkdir(parents=True)
    (tmp_path / ".git").mkdir()  # actionlint's mark of a project's root
    shutil.copy(ACTION, tmp_path / "action.yml")
    text = WORKFLOW.read_text()
    assert text.count(f"uses: {PUBLISHED}") == 4
    (workflows / "migrations.yml").write_text(text.replace(PUBLISHED, "./"))
    done = subprocess.run([tool("actionlint"), "-no-color"], cwd=tmp_path,
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


class TestWorkflow:
    """plan on pull requests, check as the gate, upgrade in a deploy job that never overlaps."""

    jobs = load(WORKFLOW)["jobs"]

    def test_plan_on_pull_requests_is_posted_then_linted(self) -> None:
        job = self.jobs["plan"]
        assert job["if"] == "github.event_name == 'pull_request'"
        assert [s["with"]["command"] for s in action_steps(job)] == ["plan", "lint"]
        assert job["permissions"]["pull-requests"] == "write"
        assert "steps.plan.outputs.plan" in str(job["steps"])

    def test_check_gates_the_deploy_and_reports_pending(self) -> None:
        gate = self.jobs["gate"]
        [step] = action_steps(gate)
        assert (step["with"]["command"], step["with"]["accept-exit-codes"]) == ("check", "8")
        assert self.jobs["deploy"]["needs"] == "gate"

    def test_upgrade_runs_in_the_deploy_one_at_a_time(self) -> None:
        deploy = self.jobs["deploy"]
        assert [s["with"]["command"] for s in action_steps(deploy)] == ["upgrade"]
        assert deploy["concurrency"]["cancel-in-progress"] == "false"
        assert deploy["concurrency"]["group"]

    def test_the_url_comes_from_secrets_only(self) -> None:
        for job in self.jobs.values():
            for step in action_steps(job):
                assert step["with"]["database-url"].startswith("${{ secrets."), step


class TestGitLabTemplate:
    """The same three jobs; the deploy one under a resource_group, retried on what may pass."""

    jobs = load(GITLAB)

    def test_plan_on_merge_requests_as_an_artifact(self) -> None:
        job = self.jobs["migration-plan"]
        assert "merge_request_event" in job["rules"][0]["if"]
        assert job["script"][0] == "python3 /app/entrypoint.py plan > migration-plan.md"
        assert job["artifacts"]["paths"] == ["migration-plan.md"]

    def test_lint_on_merge_requests(self) -> None:
        job = self.jobs["migration-lint"]
        assert "merge_request_event" in job["rules"][0]["if"]
        assert job["script"] == ["python3 /app/entrypoint.py lint"]

    def test_check_gate_lets_pending_pass_as_a_warning(self) -> None:
        job = self.jobs["migration-check"]
        assert job["script"] == ["python3 /app/entrypoint.py check"]
        assert job["allow_failure"] == {"exit_codes": ["8"]}

    def test_upgrade_one_at_a_time_retried_only_where_a_retry_helps(self) -> None:
        job = self.jobs["migration-upgrade"]
        assert job["script"] == ["python3 /app/entrypoint.py upgrade"]
        assert job["resource_group"]
        assert job["needs"] == ["migration-check"]
        _, retryable = exit_codes_by_retry()
        assert [int(code) for code in job["retry"]["exit_codes"]] == retryable

    def test_jobs_run_the_image_without_its_entrypoint(self) -> None:
        base = self.jobs[".migration-job"]
        assert base["image"] == {"name": "$MIGRATION_JOB_IMAGE", "entrypoint": [""]}
        for name in ("migration-plan", "migration-lint", "migration-check", "migration-upgrade"):
            assert self.jobs[name]["extends"] == ".migration-job"
