"""Linting and validation that needs no engine: Dockerfile, Compose file, Kubernetes manifests."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.kubernetes import (
    assert_fails_fast_as_the_readme_says,
    assert_restricted,
    exit_codes_by_retry,
    validate,
)

pytestmark = pytest.mark.container

REPO = Path(__file__).resolve().parents[2]
MANIFESTS = sorted((REPO / "deploy" / "kubernetes").glob("*.yaml"))
# The job's image, the example of an application's image built on it, and the stand-in base
# images of machines without a registry.
DOCKERFILES = [REPO / "Dockerfile", REPO / "examples" / "your-project" / "Dockerfile",
               *sorted((REPO / "tests" / "container" / "standin").glob("*.Dockerfile"))]
COMPOSE_FILES = [REPO / "docker-compose.yml", REPO / "docker-compose.mariadb.yml"]
YAMLLINT_CONFIG = "{extends: default, rules: {line-length: {max: 100}, document-start: disable}}"


def tool(name: str) -> str:
    """A linter from the `test` extra, beside this Python or on PATH."""
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.exists() else shutil.which(name)
    assert found, f"{name} is missing: pip install -e '.[test]'"
    return found


class ComposeLoader(yaml.SafeLoader):
    """YAML as Compose reads it: `!override` and `!reset` mark how a file merges."""


def _merge_tag(loader: ComposeLoader, suffix: str, node: yaml.Node) -> Any:
    if isinstance(node, yaml.MappingNode):
        return loader.construct_mapping(node, deep=True)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node, deep=True)
    assert isinstance(node, yaml.ScalarNode)
    return loader.construct_scalar(node)


for _tag in ("!override", "!reset"):
    ComposeLoader.add_multi_constructor(_tag, _merge_tag)


def documents(path: Path) -> list[dict[str, Any]]:
    """The YAML documents of a file."""
    return [d for d in yaml.load_all(path.read_text(), ComposeLoader) if d]


def migrate_pods() -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    """(file, pod spec, migrate container) for every manifest that runs the job."""
    found = []
    for path in MANIFESTS:
        for doc in documents(path):
            spec = doc.get("spec", {}).get("template", {}).get("spec")
            if spec:
                for c in spec.get("initContainers", []) + spec["containers"]:
                    if c["name"] == "migrate":
                        found.append((path.name, spec, c))
    return found


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: str(p.relative_to(REPO)))
def test_hadolint_is_clean(dockerfile: Path) -> None:
    done = subprocess.run([tool("hadolint"), str(dockerfile)], capture_output=True,
                          text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout == ""


def test_dockerfile_builds_offline_and_runs_as_numeric_non_root() -> None:
    text = (REPO / "Dockerfile").read_text()
    assert "# syntax=" not in text  # BuildKit would pull a frontend image from a registry
    assert "ARG PYTHON_IMAGE=python:3.12-slim" in text
    assert "\nUSER 10001:0\n" in text
    assert 'ENTRYPOINT ["python3", "/app/entrypoint.py"]' in text


def test_yamllint_is_clean() -> None:
    files = [str(p) for p in [*MANIFESTS, *COMPOSE_FILES, REPO / "environment.yml"]]
    done = subprocess.run([tool("yamllint"), "-f", "parsable", "-d", YAMLLINT_CONFIG, *files],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


def test_compose_keeps_the_password_out_of_the_job_environment() -> None:
    services = documents(REPO / "docker-compose.yml")[0]["services"]
    for name in ("migrate", "app"):
        env = services[name]["environment"]
        assert env["DATABASE_URL_FILE"] == "/run/secrets/database_url"
        assert not [k for k in env if "PASSWORD" in k or k == "DATABASE_URL"]
    assert services["migrate"]["depends_on"]["db"]["condition"] == "service_healthy"
    assert services["app"]["depends_on"]["migrate"]["condition"] == (
        "service_completed_successfully")


def test_compose_mariadb_variant_adds_no_password_and_weakens_nothing() -> None:
    """The override only points the job at its project (read-only) and gives the db its
    passwords as files; everything else (hardening, the URL secret) comes from the main file."""
    services = documents(REPO / "docker-compose.mariadb.yml")[0]["services"]
    for name in ("migrate", "app"):
        assert sorted(services[name]) == ["environment", "volumes"], name
        assert services[name]["environment"] == {"ALEMBIC_CONFIG": "/project/alembic.ini"}
        assert all(v.endswith(":ro") for v in services[name]["volumes"]), name
    db_env = services["db"]["environment"]
    assert not [k for k in db_env if "PASSWORD" in k and not k.endswith("_FILE")]


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.name)
def test_manifest_validates_against_kubernetes_schemas(path: Path) -> None:
    for doc in documents(path):
        validate(doc)


def test_every_job_fails_fast_on_codes_a_retry_cannot_fix() -> None:
    """Each Job's podFailurePolicy follows the README's table: FailJob on every code that a
    retry cannot fix, Count on every code that a retry may fix."""
    non_retryable, retryable = exit_codes_by_retry()
    assert {1, 2, 4, 6, 7, 10} <= set(non_retryable)
    assert {3, 5, 130, 143} <= set(retryable)
    jobs = [d for p in MANIFESTS for d in documents(p) if d["kind"] == "Job"]
    assert len(jobs) == 4
    for job in jobs:
        spec = job["spec"]
        assert spec.get("backoffLimitPerIndex", spec.get("backoffLimit", 7)) <= 6
        assert spec["activeDeadlineSeconds"] > 0
        assert_fails_fast_as_the_readme_says(job)


def test_the_fleet_job_is_indexed_with_one_shard_per_completion() -> None:
    """Each pod's JOB_COMPLETION_INDEX picks its share: MIGRATE_SHARDS must be the completion
    count, and a failed index is retried on its own."""
    job = documents(REPO / "deploy" / "kubernetes" / "fleet-indexed-job.yaml")[0]
    spec = job["spec"]
    assert spec["completionMode"] == "Indexed"
    assert "backoffLimit" not in spec
    assert 0 < spec["backoffLimitPerIndex"] <= 6
    env = {e["name"]: e["value"] for e in spec["template"]["spec"]["containers"][0]["env"]}
    assert env["MIGRATE_SHARDS"] == str(spec["completions"])
    assert spec["template"]["spec"]["containers"][0]["args"] == ["fleet"]


def test_every_migrate_container_meets_the_restricted_pod_security_standard() -> None:
    pods = migrate_pods()
    assert len(pods) == 5
    for name, pod, container in pods:
        assert_restricted(pod, container, name)


def test_every_migrate_container_reads_the_url_from_a_mounted_secret() -> None:
    for name, pod, container in migrate_pods():
        env = {e["name"]: e for e in container["env"]}
        assert "DATABASE_URL" not in env, name
        assert not [k for k in env if "PASSWORD" in k], name
        # The fleet's URLs are its targets file.
        url_file = Path(env["DATABASE_URL_FILE" if "DATABASE_URL_FILE" in env
                            else "MIGRATE_TARGETS_FILE"]["value"])
        mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
        volumes = {v["name"]: v for v in pod["volumes"]}
        assert "secret" in volumes[mounts[str(url_file.parent)]], name
        assert "emptyDir" in volumes[mounts["/tmp"]], name  # noqa: S108 (a mount path)


def test_hooks_are_annotated_for_helm_and_argo_cd() -> None:
    kube = REPO / "deploy" / "kubernetes"
    helm = documents(kube / "helm-hook-job.yaml")[0]["metadata"]["annotations"]
    assert helm["helm.sh/hook"] == "pre-install,pre-upgrade"
    assert "before-hook-creation" in helm["helm.sh/hook-delete-policy"]
    argo = documents(kube / "argocd-presync-job.yaml")[0]["metadata"]
    assert argo["annotations"]["argocd.argoproj.io/hook"] == "PreSync"
    assert argo["generateName"].endswith("-")
    assert "name" not in argo
