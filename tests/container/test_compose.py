"""docker-compose.yml as users run it: build, wait for a healthy db, migrate, then the app."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator

import pytest

from tests.container.conftest import HEAD, REPO, REVISIONS, RUN_ID
from tests.container.engine import docker, job_result
from tests.support.job import Result

pytestmark = pytest.mark.container


class Compose:
    """`docker compose` on the repository's file, as a project of the test's own."""

    def __init__(self, base_images: dict[str, str], suffix: str = "") -> None:
        self.project = f"mjtest-{RUN_ID}{suffix}"
        self.image = f"migration-job:compose-{RUN_ID}"
        self.env = {**os.environ, **base_images, "MIGRATION_JOB_IMAGE": self.image,
                    "MIGRATE_LOG_FORMAT": "json"}

    def __call__(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(["docker", "compose", "-p", self.project, *args], cwd=REPO,
                              env=self.env, capture_output=True, text=True, timeout=600,
                              check=False)
        if check and done.returncode != 0:
            raise AssertionError(f"docker compose {' '.join(args)} exited {done.returncode}:\n"
                                 f"{done.stdout}\n{done.stderr}")
        return done

    def up(self, service: str) -> Result:
        """`up --exit-code-from SERVICE SERVICE`: the service's exit code and its output."""
        done = self("up", "--exit-code-from", service, "--no-log-prefix", service, check=False)
        return job_result(done.returncode, done.stdout, done.stderr)

    def psql(self, sql: str) -> str:
        """SQL in the Compose database, as its superuser over the local socket."""
        return self("exec", "-T", "db", "psql", "-U", "app", "-d", "app", "-Atc",
                    sql).stdout.strip()


@pytest.fixture(scope="module")
def compose(base_images: dict[str, str]) -> Iterator[Compose]:
    project = Compose(base_images)
    if project("version", check=False).returncode != 0:
        pytest.fail("`docker compose` is missing: scripts/docker-engine installs it")
    try:
        yield project
    finally:
        project("down", "--volumes", "--remove-orphans", check=False)
        docker("rmi", "-f", project.image, check=False)


@pytest.fixture
def fresh_compose(compose: Compose, base_images: dict[str, str]) -> Iterator[Compose]:
    """Another project on the same image, so its database is new whatever ran before."""
    project = Compose(base_images, "-fresh")
    try:
        yield project
    finally:
        project("down", "--volumes", "--remove-orphans", check=False)


def names(result: Result) -> list[str]:
    return [e["event"] for e in result.events if e.get("event")]


def test_compose_up_migrate_migrates_once_then_is_a_no_op(compose: Compose) -> None:
    first = compose.up("migrate")
    assert first.code == 0, first.stderr
    assert sorted(e["revision"] for e in first.events
                  if e.get("event") == "revision_applied") == REVISIONS
    assert "upgrade_finished" in names(first)
    assert compose.psql("SELECT version_num FROM alembic_version") == HEAD

    again = compose.up("migrate")
    assert again.code == 0, again.stderr
    assert "already_at_target" in names(again)
    # The image's build-time manifest is fresh: the no-op run never loaded Alembic.
    assert next(e for e in again.events if e.get("event") == "already_at_target")["via"] == \
        "manifest"
    assert "lock_acquired" not in names(again)
    assert "revision_applied" not in names(again)
    assert compose.psql("SELECT count(*) FROM migration_audit") == str(len(REVISIONS))


def test_app_starts_after_the_migrations_completed(compose: Compose) -> None:
    app = compose.up("app")
    assert app.code == 0, app.stdout + app.stderr


class TestComposeSql:
    """`docker compose run --rm migrate sql` prints every pending revision's SQL, runs none."""

    def test_prints_the_example_s_statements_and_changes_nothing(
            self, fresh_compose: Compose) -> None:
        done = fresh_compose("run", "--rm", "migrate", "sql", check=False)
        result = job_result(done.returncode, done.stdout, done.stderr)
        assert result.code == 0, result.stderr
        for revision in REVISIONS:
            assert f"-> {revision}\n" in result.stdout
        for statement in ("CREATE TABLE alembic_version", "CREATE SCHEMA hr",
                          "CREATE TABLE hr.employee", "CREATE TABLE migration_audit",
                          "CREATE INDEX CONCURRENTLY ix_employee_email"):
            assert statement in result.stdout
        assert fresh_compose.psql("SELECT to_regclass('alembic_version')") == ""
