"""The Kustomize base and overlays (deploy/kustomize), built by `kubectl kustomize` (Kustomize
built into kubectl) and validated like the raw manifests."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from migration_job import __version__
from tests.container.test_static import YAMLLINT_CONFIG, tool
from tests.support.kubernetes import (
    CHART,
    KUSTOMIZE,
    assert_restricted,
    env_values,
    kustomize,
    migrate_container,
    only_job,
    validate,
)

pytestmark = pytest.mark.container
KUSTOMIZATIONS = [KUSTOMIZE / "base", *sorted((KUSTOMIZE / "overlays").iterdir())]
# The README's recipe (deploy/kustomize/README.md): an overlay of the user's own.
USER_OVERLAY = """\
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
namespace: shop
resources:
  - {base}
images:
  - name: migration-job
    newName: registry.example.com/shop-migrations
    newTag: 1.4.2
"""


@pytest.mark.parametrize("directory", KUSTOMIZATIONS, ids=lambda p: p.name)
def test_builds_and_validates_against_kubernetes_schemas(directory: Path) -> None:
    docs = kustomize(directory)
    assert [d["kind"] for d in docs] == ["Job"]
    for doc in docs:
        validate(doc)


@pytest.mark.parametrize("directory", KUSTOMIZATIONS, ids=lambda p: p.name)
def test_restricted_and_the_url_only_in_a_mounted_secret(directory: Path) -> None:
    job = only_job(kustomize(directory))
    pod = job["spec"]["template"]["spec"]
    container = migrate_container(job)
    assert_restricted(pod, container, directory.name)
    env = env_values(container)
    assert "DATABASE_URL" not in env
    assert not [name for name in env if "PASSWORD" in name]
    path = Path(env.get("DATABASE_URL_FILE") or env["MIGRATE_TARGETS_FILE"])
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert "secret" in volumes[mounts[str(path.parent)]]
    assert job["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/name"] == (
        "migration-job")


def test_base_is_a_plain_job_on_the_job_s_version() -> None:
    job = only_job(kustomize(KUSTOMIZE / "base"))
    assert "annotations" not in job["metadata"]
    assert migrate_container(job)["image"] == f"migration-job:{__version__}"
    assert job["spec"]["template"]["spec"]["volumes"][0]["secret"]["secretName"] == (
        "migration-job-db")


def test_argocd_overlay_is_a_presync_hook() -> None:
    annotations = only_job(kustomize(KUSTOMIZE / "overlays" / "argocd"))["metadata"][
        "annotations"]
    assert annotations == {"argocd.argoproj.io/hook": "PreSync",
                           "argocd.argoproj.io/hook-delete-policy": "BeforeHookCreation"}


def test_fleet_overlay_is_an_indexed_job_with_one_shard_per_completion() -> None:
    job = only_job(kustomize(KUSTOMIZE / "overlays" / "fleet"))
    spec = job["spec"]
    assert spec["completionMode"] == "Indexed"
    assert "backoffLimit" not in spec
    assert 0 < spec["backoffLimitPerIndex"] <= 6
    container = migrate_container(job)
    env = env_values(container)
    assert env["MIGRATE_SHARDS"] == str(spec["completions"]) == str(spec["parallelism"])
    assert "DATABASE_URL_FILE" not in env
    assert container["args"] == ["fleet"]
    assert spec["template"]["spec"]["volumes"][0]["secret"]["secretName"] == (
        "migration-fleet-targets")


def test_a_user_overlay_sets_image_and_namespace(tmp_path: Path) -> None:
    base = os.path.relpath(KUSTOMIZE / "base", tmp_path)  # Kustomize takes no absolute root
    (tmp_path / "kustomization.yaml").write_text(USER_OVERLAY.format(base=base))
    job = only_job(kustomize(tmp_path))
    assert job["metadata"]["namespace"] == "shop"
    assert migrate_container(job)["image"] == "registry.example.com/shop-migrations:1.4.2"
    validate(job)


def test_yamllint_is_clean() -> None:
    files = [*KUSTOMIZE.rglob("*.yaml"), CHART / "Chart.yaml", CHART / "values.yaml",
             *(CHART / "ci").glob("*.yaml")]
    done = subprocess.run([tool("yamllint"), "-f", "parsable", "-d", YAMLLINT_CONFIG,
                           *map(str, files)], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
