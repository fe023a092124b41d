"""The GitHub Action (action.yml) run as the runner runs it: its step with the real image, the
real Docker engine and a real PostgreSQL; its outputs, job summary and log, never the password."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit

import pytest

from tests.container.conftest import HEAD, REPO, SLOW, Database
from tests.container.engine import wait_for
from tests.support.actions import ActionRun, run_action
from tests.support.pgserver import PASSWORD
from tests.support.projects import revision

pytestmark = pytest.mark.container

PENDING_FROM_0002 = ["0003", "0004", "0005"]
COMMIT = "8d3c1f0e5b7a9c2d4e6f8a0b1c3d5e7f9a1b3c5d"
# Blocks every write to hr.employee while the index builds: squawk's
# require-concurrent-index-creation.
DANGEROUS = revision("0004", "0003",
                     'op.execute("CREATE INDEX ix_employee_name ON hr.employee (name)")')


class Action:
    """The action aimed at one test's database."""

    def __init__(self, image: str, database: Database, scratch: Path) -> None:
        self.image, self.database, self.scratch = image, database, scratch
        self.url = database.url_file.read_text().strip()
        self.runs = 0

    def __call__(self, workspace: Path | None = None,
                 while_running: Callable[[subprocess.Popen[str]], None] | None = None,
                 runner_env: dict[str, str] | None = None, **inputs: str) -> ActionRun:
        """Run the action with these inputs (`_` for `-` in their names)."""
        self.runs += 1
        given = {"image": self.image, "database-url": self.url,
                 "network": self.database.pg.network}
        given.update({name.replace("_", "-"): value for name, value in inputs.items()})
        run = run_action(given, self.scratch / f"run-{self.runs}", workspace, while_running,
                         runner_env)
        assert_no_password(run, unquote(urlsplit(self.url).password or ""))
        return run


def assert_no_password(run: ActionRun, password: str) -> None:
    """The password is masked, and absent from the log, the outputs and the job summary."""
    assert password in run.masked()
    assert quote(password, safe="") in run.masked()
    for text in run.everything():
        assert password not in text
        assert quote(password, safe="") not in text


@pytest.fixture
def action(image: str, database: Database, tmp_path: Path) -> Action:
    """The action against a fresh database of the PostgreSQL container."""
    return Action(image, database, tmp_path)


@pytest.fixture
def workspace() -> Iterator[Path]:
    """A checkout whose own project stops at 0003 (the image's goes to 0005), readable by the
    image's user (pytest's tmp_path is not)."""
    root = Path(tempfile.mkdtemp(prefix="mj-workspace-"))
    try:
        for name in ("alembic.ini", "app", "migrations"):
            source = REPO / name
            if source.is_dir():
                shutil.copytree(source, root / name,
                                ignore=shutil.ignore_patterns("__pycache__", "*.json"))
            else:
                shutil.copy(source, root / name)
        for late in ("0004", "0005"):
            for path in (root / "migrations" / "versions").glob(f"{late}_*.py"):
                path.unlink()
        for path in [root, *root.rglob("*")]:
            path.chmod(0o755 if path.is_dir() else 0o644)
        yield root
    finally:
        shutil.rmtree(root)


class TestPending:
    """A database behind its head: check reports pending (also for the checkout's project named
    by `config`), plan shows it, upgrade applies it."""

    def test_check_plan_and_upgrade(self, action: Action, database: Database,
                                     workspace: Path) -> None:
        run = action(command="upgrade", target="0002")
        assert (run.code, run.outputs["exit-code"], run.outputs["meaning"]) == (
            0, "0", "done, or nothing to do")
        assert run.outputs["pending"] == ""
        assert database.revisions() == ["0002"]

        gate = action(command="check", accept_exit_codes="8")
        assert gate.code == 0, gate.log()
        assert gate.outputs["exit-code"] == "8"
        assert gate.outputs["meaning"] == "migrations are pending"
        assert gate.outputs["retry"] == ""
        assert json.loads(gate.outputs["pending"]) == PENDING_FROM_0002
        assert gate.outputs["summary"] == (
            "3 revision(s) pending: 0003, 0004, 0005; run the upgrade")
        assert "**migration-job check**: exit 8 (migrations are pending)" in gate.summary
        # `config`: the checkout's own project, whose head is 0003.
        ours = action(workspace, command="check", config="alembic.ini", accept_exit_codes="8")
        assert ours.code == 0, ours.log()
        assert json.loads(ours.outputs["pending"]) == ["0003"]

        plan = action(command="plan")
        assert plan.code == 0, plan.log()
        assert json.loads(plan.outputs["pending"]) == PENDING_FROM_0002
        assert plan.outputs["plan"].startswith("## Migration plan: 3 pending revision(s)")
        assert "**Runs outside a transaction** (`autocommit_block`): `0004`." in (
            plan.outputs["plan"])
        assert plan.outputs["plan"] in plan.summary
        assert database.revisions() == ["0002"]

        deploy = action(command="upgrade", runner_env={"GITHUB_SHA": COMMIT})
        assert (deploy.code, deploy.outputs["exit-code"]) == (0, "0")
        assert database.revisions() == ["0005"]
        # The workflow's commit is the deploy ref of the revisions this run applied.
        assert database.query("SELECT revision || ' ' || deploy_ref FROM "
                              "alembic_version_history WHERE revision >= '0003' "
                              "ORDER BY revision").splitlines() == [
            f"{revision} {COMMIT}" for revision in PENDING_FROM_0002]


class TestAtHead:
    """At head: check passes with nothing pending, the plan says there is nothing to do."""

    def test_check_and_plan(self, action: Action) -> None:
        assert action(command="upgrade").code == 0
        gate = action(command="check")
        assert (gate.code, gate.outputs["exit-code"], gate.outputs["pending"]) == (0, "0", "[]")
        assert "already at head" in gate.outputs["summary"]
        plan = action(command="plan")
        assert plan.code == 0, plan.log()
        assert plan.outputs["pending"] == "[]"
        assert plan.outputs["plan"].startswith("## Migration plan\n\nNo pending revisions")


class TestFailingDatabase:
    """The job's failure is the step's: its code, the contract's meaning, whether to retry."""

    def test_unreachable_is_3_and_retryable(self, action: Action, database: Database) -> None:
        # A port of the database's container where nothing listens: refused, retried, given up.
        action.url = action.url.replace(":5432/", ":5433/")
        run = action(command="upgrade", env="MIGRATE_WAIT_TIMEOUT=1")
        assert run.code == 3, run.log()
        assert (run.outputs["exit-code"], run.outputs["retry"]) == ("3", "yes")
        assert run.outputs["meaning"] == "database not reachable within the wait timeout"
        assert "not reachable" in run.outputs["summary"]
        assert run.outputs["pending"] == ""
        assert "port 5433 failed: Connection refused" in run.stderr  # the job's log

    def test_wrong_password_is_4_and_final(self, action: Action) -> None:
        wrong = "wr0ng:p@ss"
        action.url = action.url.replace(quote(PASSWORD, safe=""), quote(wrong, safe=""))
        run = action(command="check", accept_exit_codes="8")
        assert run.code == 4, run.log()
        assert (run.outputs["exit-code"], run.outputs["retry"]) == ("4", "no")
        assert run.outputs["meaning"] == "connection refused for good"
        assert run.outputs["pending"] == ""
        assert "::error title=migration-job check::exit 4 (connection refused for good)" in (
            run.stdout)
        assert wrong in run.masked()  # and nowhere else: every run is checked so


class TestLint:
    """lint through the action: a dangerous revision is exit 12, final, and fails the step."""

    def test_dangerous_revision_is_12(self, action: Action, workspace: Path) -> None:
        added = workspace / "migrations" / "versions" / "0004_dangerous.py"
        added.write_text(DANGEROUS)
        added.chmod(0o644)
        shutil.copy(REPO / ".squawk.toml", workspace / ".squawk.toml")
        run = action(workspace, command="lint", config="alembic.ini", args="--from 0003",
                     accept_exit_codes="8")
        assert run.code == 12, run.log()
        assert (run.outputs["exit-code"], run.outputs["retry"]) == ("12", "no")
        assert run.outputs["meaning"] == "squawk found a violation in a pending revision's SQL"
        assert "0004" in run.outputs["summary"]
        assert "require-concurrent-index-creation" in run.log()


class TestCancel:
    """A cancelled workflow's SIGINT reaches the job: it rolls back, unlocks and exits 130."""

    def test_sigint_mid_revision(self, slow_image: str, database: Database,
                                 tmp_path: Path) -> None:
        def cancel(step: subprocess.Popen[str]) -> None:
            wait_for("the slow revision to start", lambda: "pg_sleep" in database.query(
                "SELECT string_agg(query, ' ') FROM pg_stat_activity WHERE state = 'active'"))
            step.send_signal(signal.SIGINT)

        run = Action(slow_image, database, tmp_path)(command="upgrade", while_running=cancel)
        assert run.code == 130, run.log()
        assert (run.outputs["exit-code"], run.outputs["retry"]) == ("130", "yes")
        assert run.outputs["meaning"] == "interrupted by SIGINT / SIGTERM"
        assert database.revisions() == [HEAD]
        assert SLOW not in database.applications()
        wait_for("no advisory lock left", lambda: database.advisory_locks() == 0)
