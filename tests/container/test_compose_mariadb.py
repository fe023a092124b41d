"""docker-compose.mariadb.yml as users run it, on top of docker-compose.yml: build, wait for a
healthy MariaDB (MARIADB_IMAGE: mariadb:11 or the stand-in), migrate the MariaDB example
project (mounted read-only), then the app."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from urllib.parse import quote

import pytest
from alembic.config import Config
from alembic.script import ScriptDirectory

from tests.container.conftest import REPO, RUN_ID
from tests.container.engine import docker
from tests.container.test_compose import Compose, names
from tests.support.job import Result

pytestmark = pytest.mark.container

FILES = ("-f", "docker-compose.yml", "-f", "docker-compose.mariadb.yml")
EXAMPLE = REPO / "examples" / "mariadb"
_SCRIPTS = ScriptDirectory.from_config(Config(str(EXAMPLE / "alembic.ini")))
REVISIONS = sorted(s.revision for s in _SCRIPTS.walk_revisions())
HEAD = _SCRIPTS.get_current_head()
# The variant's example credentials: none may appear in any output.
SECRETS = [(REPO / "deploy" / "compose" / name).read_text().strip()
           for name in ("mariadb-password.example", "mariadb-root-password.example")]
# Run in the db container: the root password is read there from its secret file, so it is
# never part of the test's command lines.
ROOT_SQL = ('mariadb -uroot -p"$(cat /run/secrets/db_root_password)" '
            '--batch --skip-column-names -D app -e "$1"')


class MariaDBCompose(Compose):
    """`docker compose` on both files, as a project (and job image tag) of the test's own."""

    def __init__(self, base_images: dict[str, str]) -> None:
        super().__init__(base_images, "-mariadb")
        self.image = f"migration-job:compose-mariadb-{RUN_ID}"
        self.env["MIGRATION_JOB_IMAGE"] = self.image

    def __call__(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return super().__call__(*FILES, *args, check=check)

    def sql(self, statement: str) -> str:
        """SQL in the Compose database `app`, as MariaDB's root over the local socket."""
        return self("exec", "-T", "db", "sh", "-c", ROOT_SQL, "sh", statement).stdout.strip()


def assert_no_secret_in(result: Result) -> None:
    for secret in SECRETS:
        for form in {secret, quote(secret, safe="")}:
            assert form not in result.stdout + result.stderr


@pytest.fixture(scope="module")
def compose(base_images: dict[str, str]) -> Iterator[MariaDBCompose]:
    project = MariaDBCompose(base_images)
    if project("version", check=False).returncode != 0:
        pytest.fail("`docker compose` is missing: scripts/docker-engine installs it")
    try:
        yield project
    finally:
        project("down", "--volumes", "--remove-orphans", check=False)
        docker("rmi", "-f", project.image, check=False)


def test_the_variant_replaces_postgresql_and_keeps_the_hardening(
        compose: MariaDBCompose, base_images: dict[str, str]) -> None:
    services = json.loads(compose("config", "--format", "json").stdout)["services"]
    db = services["db"]
    assert db["image"] == base_images["MARIADB_IMAGE"]
    assert sorted(db["environment"]) == ["MARIADB_DATABASE", "MARIADB_PASSWORD_FILE",
                                         "MARIADB_ROOT_PASSWORD_FILE", "MARIADB_USER"]
    assert [v["target"] for v in db["volumes"]] == ["/var/lib/mysql"]
    for name in ("migrate", "app"):
        service = services[name]
        assert service["environment"] == {"ALEMBIC_CONFIG": "/project/alembic.ini",
                                          "DATABASE_URL_FILE": "/run/secrets/database_url",
                                          **({"MIGRATE_LOG_FORMAT": "json"}
                                             if name == "migrate" else {})}
        assert service["read_only"] is True
        assert service["cap_drop"] == ["ALL"]
        assert service["security_opt"] == ["no-new-privileges:true"]
        assert [(v["target"], v.get("read_only")) for v in service["volumes"]] == [
            ("/project", True)]


def test_compose_up_migrate_migrates_once_then_is_a_no_op(compose: MariaDBCompose) -> None:
    first = compose.up("migrate")
    assert_no_secret_in(first)
    assert first.code == 0, first.stderr
    assert sorted(e["revision"] for e in first.events
                  if e.get("event") == "revision_applied") == REVISIONS
    assert "upgrade_finished" in names(first)
    assert compose.sql("SELECT version_num FROM alembic_version") == HEAD
    # The example's tables (beside them: alembic_version and the job's own bookkeeping).
    assert {"account", "note"} <= set(compose.sql(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'app'").split())
    assert compose.sql("SELECT non_unique FROM information_schema.statistics "
                       "WHERE table_schema = 'app' AND table_name = 'account' "
                       "AND index_name = 'uq_account_email'") == "0"

    again = compose.up("migrate")
    assert_no_secret_in(again)
    assert again.code == 0, again.stderr
    assert "already_at_target" in names(again)
    assert "lock_acquired" not in names(again)
    assert "revision_applied" not in names(again)
    assert compose.sql("SELECT version_num FROM alembic_version") == HEAD


def test_app_starts_after_the_migrations_completed(compose: MariaDBCompose) -> None:
    app = compose.up("app")
    assert_no_secret_in(app)
    assert app.code == 0, app.stdout + app.stderr
