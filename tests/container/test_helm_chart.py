"""The Helm chart (deploy/helm/migration-job), through Helm v4's own Go SDK (helm-python-sdk):
lint, schema, each mode's manifests validated against Kubernetes' schemas, and the hook Job's
container run as the image against a real database."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import helm_python
import pytest
import yaml

from migration_job import __version__
from tests.container.conftest import HEAD, Database
from tests.container.engine import docker, job_result
from tests.support.job import Result
from tests.support.kubernetes import (
    CHART,
    MODES,
    assert_restricted,
    ci_values,
    env_values,
    migrate_container,
    only_job,
    render_chart,
    validate,
)

pytestmark = pytest.mark.container
CI_VALUES = sorted((CHART / "ci").glob("*-values.yaml"))
WARNING = 2  # helm lint's severities: 1 info, 2 warning, 3 error
KEY = re.compile(r"^(\s*)([A-Za-z][A-Za-z0-9]*):")
KUBERNETES_OBJECTS = {"podSecurityContext", "securityContext", "resources"}


def schema_error(values: dict[str, Any]) -> str:
    """Helm's message for values the chart's schema rejects."""
    with pytest.raises(helm_python.HelmValuesError) as rejected:
        helm_python.Chart.load(CHART).validate_schema(values)
    return str(rejected.value)


class TestLint:
    """`helm lint --strict` finds nothing to warn about, in every mode."""

    @pytest.mark.parametrize("values_file", CI_VALUES, ids=lambda p: p.stem)
    def test_lint_is_clean(self, values_file: Path) -> None:
        report = helm_python.lint(CHART, yaml.safe_load(values_file.read_text()), strict=True,
                                  kube_version="v1.33.0")
        assert report["errors"] == []
        warnings = [m for m in report["messages"] if m["severity"] >= WARNING]
        assert warnings == []

    def test_chart_app_version_is_the_job_s(self) -> None:
        chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
        assert chart["appVersion"] == __version__
        assert chart["version"]

    def test_every_value_has_a_comment(self) -> None:
        """Each value's line follows a comment line; a block's keys carry the comments (inside
        a Kubernetes object, such as a securityContext, the block's comment covers them)."""
        previous = ""
        top = ""
        for line in (CHART / "values.yaml").read_text().splitlines():
            key = KEY.match(line)
            if key:
                top = key[2] if not key[1] else top
                opens_a_block = line.rstrip().endswith(":")
                inside_an_object = bool(key[1]) and top in KUBERNETES_OBJECTS
                if not opens_a_block and not inside_an_object:
                    assert previous.lstrip().startswith("#"), f"values.yaml: {line.strip()!r}"
            previous = line


class TestSchema:
    """values.schema.json rejects what cannot work, saying where."""

    def test_every_mode_s_values_pass(self) -> None:
        for mode in MODES:
            helm_python.Chart.load(CHART).validate_schema(ci_values(mode))

    def test_unknown_mode(self) -> None:
        message = schema_error({**ci_values("job"), "mode": "cronjob"})
        assert "/mode" in message
        assert "'hook', 'argocd', 'job', 'fleet'" in message

    def test_shards_below_one(self) -> None:
        values = ci_values("fleet")
        values["fleet"]["shards"] = 0
        assert "/fleet/shards': minimum: got 0, want 1" in schema_error(values)

    @pytest.mark.parametrize("mode", ["hook", "argocd", "job"])
    def test_missing_database_secret(self, mode: str) -> None:
        message = schema_error({"mode": mode})
        assert "/database/existingSecret': minLength: got 0, want 1" in message

    def test_missing_targets_secret(self) -> None:
        message = schema_error({"mode": "fleet"})
        assert "/fleet/targets/existingSecret': minLength: got 0, want 1" in message

    def test_created_secret_without_a_url(self) -> None:
        message = schema_error({"database": {"createSecret": {"enabled": True}}})
        assert "/database/createSecret/url': minLength: got 0, want 1" in message

    def test_a_misspelt_value(self) -> None:
        message = schema_error({**ci_values("hook"), "migrate": {"lockTimout": "60"}})
        assert "lockTimout" in message

    def test_a_duration_the_job_would_refuse(self) -> None:
        message = schema_error({**ci_values("hook"), "migrate": {"lockTimeout": "10 minutes"}})
        assert "/migrate/lockTimeout" in message


class TestRenderedManifests:
    """Each mode renders manifests that Kubernetes' own schemas accept, strictly."""

    @pytest.mark.parametrize("values_file", CI_VALUES, ids=lambda p: p.stem)
    def test_validates_against_kubernetes_schemas(self, values_file: Path) -> None:
        docs = render_chart(yaml.safe_load(values_file.read_text()))
        assert docs
        for doc in docs:
            validate(doc)

    @pytest.mark.parametrize("mode", MODES)
    def test_restricted_and_the_url_only_in_a_mounted_secret(self, mode: str) -> None:
        job = only_job(render_chart(ci_values(mode)))
        pod = job["spec"]["template"]["spec"]
        container = migrate_container(job)
        assert_restricted(pod, container, mode)
        assert pod["automountServiceAccountToken"] is False
        env = {e["name"] for e in container["env"]}
        assert "DATABASE_URL" not in env
        assert not [name for name in env if "PASSWORD" in name]
        path = Path(env_values(container)[
            "MIGRATE_TARGETS_FILE" if mode == "fleet" else "DATABASE_URL_FILE"])
        mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
        volumes = {v["name"]: v for v in pod["volumes"]}
        secret = volumes[mounts[str(path.parent)]]["secret"]
        assert secret["items"] == [{"key": path.name, "path": path.name}]
        assert "emptyDir" in volumes[mounts["/tmp"]]  # noqa: S108 (a mount path)

    def test_hook_mode_is_a_helm_hook_that_fails_the_release(self) -> None:
        job = only_job(render_chart(ci_values("hook")))
        annotations = job["metadata"]["annotations"]
        assert annotations["helm.sh/hook"] == "pre-install,pre-upgrade"
        assert "before-hook-creation" in annotations["helm.sh/hook-delete-policy"]
        assert "hook-failed" not in annotations["helm.sh/hook-delete-policy"]
        assert migrate_container(job)["args"] == ["upgrade"]

    def test_argocd_mode_is_a_presync_hook_replaced_at_every_sync(self) -> None:
        job = only_job(render_chart(ci_values("argocd")))
        annotations = job["metadata"]["annotations"]
        assert annotations["argocd.argoproj.io/hook"] == "PreSync"
        assert annotations["argocd.argoproj.io/hook-delete-policy"] == "BeforeHookCreation"
        assert job["metadata"]["name"] == "shop-migration-job"
        assert not [k for k in annotations if k.startswith("helm.sh/")]

    def test_job_mode_is_a_new_job_per_release_revision(self) -> None:
        """A Job's pod template is immutable: an upgrade gets a Job of its own."""
        first = only_job(render_chart(ci_values("job"), revision=1))
        second = only_job(render_chart(ci_values("job"), revision=2))
        assert (first["metadata"]["name"], second["metadata"]["name"]) == (
            "shop-migration-job-r1", "shop-migration-job-r2")
        assert "annotations" not in first["metadata"]

    def test_fleet_mode_is_an_indexed_job_with_one_shard_per_completion(self) -> None:
        job = only_job(render_chart(ci_values("fleet")))
        spec = job["spec"]
        assert spec["completionMode"] == "Indexed"
        assert spec["completions"] == spec["parallelism"] == 4
        assert "backoffLimit" not in spec
        assert 0 < spec["backoffLimitPerIndex"] <= 6
        container = migrate_container(job)
        assert container["args"] == ["fleet"]
        assert env_values(container)["MIGRATE_SHARDS"] == "4"
        volumes = {v["name"]: v for v in spec["template"]["spec"]["volumes"]}
        assert volumes["secret"]["secret"]["secretName"] == "migration-fleet-targets"

    def test_the_job_s_settings_become_its_variables(self) -> None:
        values = {**ci_values("hook"), "migrate": {
            "lockTimeout": "5m", "waitTimeout": 30, "ddlLockTimeout": "500ms",
            "ddlLockRetries": 2, "historyTable": "schema_history", "verify": "fail",
            "logFormat": "text"}, "extraEnv": [{"name": "MIGRATE_LINT_EXCLUDE",
                                               "value": "require-lock-timeout"}]}
        env = env_values(migrate_container(only_job(render_chart(values))))
        assert {k: env[k] for k in ("MIGRATE_LOCK_TIMEOUT", "MIGRATE_WAIT_TIMEOUT",
                                    "MIGRATE_DDL_LOCK_TIMEOUT", "MIGRATE_DDL_LOCK_RETRIES",
                                    "MIGRATE_HISTORY_TABLE", "MIGRATE_VERIFY",
                                    "MIGRATE_LOG_FORMAT", "MIGRATE_LINT_EXCLUDE")} == {
            "MIGRATE_LOCK_TIMEOUT": "5m", "MIGRATE_WAIT_TIMEOUT": "30",
            "MIGRATE_DDL_LOCK_TIMEOUT": "500ms", "MIGRATE_DDL_LOCK_RETRIES": "2",
            "MIGRATE_HISTORY_TABLE": "schema_history", "MIGRATE_VERIFY": "fail",
            "MIGRATE_LOG_FORMAT": "text", "MIGRATE_LINT_EXCLUDE": "require-lock-timeout"}
        assert env["MIGRATE_DEPLOY_REF"] == f"migration-job:{__version__}"

    def test_scheduling_and_pod_metadata_pass_through(self) -> None:
        values = {**ci_values("job"), "nodeSelector": {"pool": "batch"},
                  "tolerations": [{"key": "batch", "operator": "Exists"}],
                  "podAnnotations": {"sidecar.istio.io/inject": "false"},
                  "podLabels": {"team": "data"}, "ttlSecondsAfterFinished": None,
                  "imagePullSecrets": [{"name": "registry"}],
                  "image": {"repository": "registry.example.com/app-migrations",
                            "tag": "1.4.2"}}
        job = only_job(render_chart(values))
        pod = job["spec"]["template"]
        assert pod["spec"]["nodeSelector"] == {"pool": "batch"}
        assert pod["spec"]["tolerations"] == [{"key": "batch", "operator": "Exists"}]
        assert pod["metadata"]["annotations"] == {"sidecar.istio.io/inject": "false"}
        assert pod["metadata"]["labels"]["team"] == "data"
        assert pod["spec"]["imagePullSecrets"] == [{"name": "registry"}]
        assert "ttlSecondsAfterFinished" not in job["spec"]
        assert migrate_container(job)["image"] == "registry.example.com/app-migrations:1.4.2"
        validate(job)

    def test_quick_start_secret_and_service_account_are_hooks_before_the_job(self) -> None:
        docs = render_chart(ci_values("quickstart"))
        by_kind = {d["kind"]: d for d in docs}
        job, secret, account = by_kind["Job"], by_kind["Secret"], by_kind["ServiceAccount"]
        weight = int(job["metadata"]["annotations"]["helm.sh/hook-weight"])
        for prerequisite in (secret, account):
            annotations = prerequisite["metadata"]["annotations"]
            assert annotations["helm.sh/hook"] == "pre-install,pre-upgrade"
            assert int(annotations["helm.sh/hook-weight"]) < weight
            # Gone once the hooks succeeded: no URL left behind (hooks outlive `helm uninstall`).
            assert annotations["helm.sh/hook-delete-policy"] == (
                "before-hook-creation,hook-succeeded")
        pod = job["spec"]["template"]["spec"]
        assert pod["serviceAccountName"] == account["metadata"]["name"]
        assert pod["volumes"][0]["secret"]["secretName"] == secret["metadata"]["name"]
        assert list(secret["stringData"]) == ["database-url"]

    def test_notes_tell_how_to_follow_the_job(self) -> None:
        files = helm_python.Chart.load(CHART).render(ci_values("job"), name="shop",
                                                     namespace="prod", revision=3)
        notes = files["migration-job/templates/NOTES.txt"]
        assert "kubectl wait -n prod --for=condition=complete" in notes
        assert "job/shop-migration-job-r3" in notes


def run_rendered_container(job: dict[str, Any], database: Database, image: str) -> Result:
    """`docker run` the Job's pod as the kubelet would: its image, args, env, user and
    security context; its Secret volume is the test database's URL file, emptyDirs tmpfs."""
    pod = job["spec"]["template"]["spec"]
    container = migrate_container(job)
    security = {**pod["securityContext"], **container["securityContext"]}
    options = ["--network", database.pg.network,
               "--user", f"{security['runAsUser']}:{security['runAsGroup']}",
               "--group-add", str(security["fsGroup"]), "--cap-drop", "ALL"]
    assert security["capabilities"] == {"drop": ["ALL"]}
    if security["readOnlyRootFilesystem"]:
        options.append("--read-only")
    if not security["allowPrivilegeEscalation"]:
        options += ["--security-opt", "no-new-privileges"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    for mount in container["volumeMounts"]:
        volume = volumes[mount["name"]]
        if "secret" in volume:
            (item,) = volume["secret"]["items"]
            options += ["-v", f"{database.url_file}:{mount['mountPath']}/{item['path']}:ro"]
        else:
            options += ["--tmpfs", mount["mountPath"]]
    for name, value in env_values(container).items():
        options += ["-e", f"{name}={value}"]
    assert container["image"] == image
    done = docker("run", "--rm", *options, container["image"], *container["args"], check=False)
    return job_result(done.returncode, done.stdout, done.stderr)


def test_hook_job_migrates_a_real_database(image: str, database: Database) -> None:
    """The rendered hook Job's container, run as the image, migrates; run again (the next
    upgrade's hook) it finds the database at head."""
    repository, tag = image.rsplit(":", 1)
    values = {**ci_values("hook"), "image": {"repository": repository, "tag": tag}}
    job = only_job(render_chart(values))
    first = run_rendered_container(job, database, image)
    assert first.code == 0, first.stderr
    assert first.events[0]["job_version"] == __version__
    assert first.event("upgrade_finished")
    assert database.revisions() == [HEAD]
    assert database.query("SELECT DISTINCT deploy_ref FROM alembic_version_history") == image
    again = run_rendered_container(job, database, image)
    assert again.code == 0, again.stderr
    assert again.event("already_at_target")
    assert "lock_acquired" not in again.names()
