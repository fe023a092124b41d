"""Failures that must end at once with the contract's exit code and one readable last line."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import Database
from tests.support.job import Result, RunningJob, job_env, run_job
from tests.support.pgserver import PostgresServer
from tests.support.projects import NAME_ERROR_ON_IMPORT, SYNTAX_ERROR, make_project

_roles = itertools.count()


def assert_failed_cleanly(result: Result, code: int, event: str, *fragments: str) -> str:
    """Exit `code`; every line a JSON event; the last one `event`, naming `fragments`.

    Returns the last line's message.
    """
    assert result.code == code, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert all(e["event"] is not None for e in result.events), result.stderr
    last = result.events[-1]
    assert last["event"] == event, result.stderr
    for fragment in fragments:
        assert fragment in last["message"], last["message"]
    return str(last["message"])


def upgrade_to(database: Database, target: str) -> None:
    """Bring the test's database to `target` with the job itself."""
    result = run_job("--target", target, env=job_env(DATABASE_URL=database.url))
    assert result.code == 0, result.stderr
    assert database.revisions() == ([] if target == "base" else [target])


class TestRejectedAtOnce:
    """A server that can never accept this connection: exit 4 without waiting."""

    def test_ssl_required_by_a_server_without_ssl(self, database: Database) -> None:
        url = f"{database.url}?sslmode=require"
        result = run_job(env=job_env(DATABASE_URL=url, MIGRATE_WAIT_TIMEOUT="60"))
        assert_failed_cleanly(result, 4, "connection_rejected",
                              "server does not support SSL", "sslmode")
        assert "waiting_for_database" not in result.names()

    def test_database_not_accepting_connections(self, database: Database) -> None:
        # From another database: PostgreSQL will not close the one a session is in.
        server = Database(database.server, "postgres", database.server.url())
        server.query(f'ALTER DATABASE "{database.name}" ALLOW_CONNECTIONS false')
        result = run_job(env=job_env(DATABASE_URL=database.url, MIGRATE_WAIT_TIMEOUT="60"))
        assert_failed_cleanly(result, 4, "connection_rejected",
                              "is not currently accepting connections", "ALLOW_CONNECTIONS")
        assert "waiting_for_database" not in result.names()
        server.query(f'ALTER DATABASE "{database.name}" ALLOW_CONNECTIONS true')
        assert database.revisions() == []


@pytest.fixture
def crowded_server() -> Iterator[PostgresServer]:
    """A server of the test's own with room for five sessions only.

    pytest resumes the fixture after the test whatever its outcome: no try/finally needed.
    """
    server = PostgresServer(max_connections=5)
    yield server.start()
    server.destroy()


class TestBusyServerStillRetried:
    """'too many clients' is transient: the job waits for a free slot, then migrates."""

    def test_too_many_clients_then_a_slot_frees(self, crowded_server: PostgresServer) -> None:
        hogs = [crowded_server.connect() for _ in range(crowded_server.max_connections)]
        job = RunningJob(env=job_env(DATABASE_URL=crowded_server.url(),
                                     MIGRATE_WAIT_TIMEOUT="120"))
        try:
            waiting = job.wait_for_event("waiting_for_database")
            assert "too many clients" in waiting["error"]
        finally:
            for hog in hogs:
                hog.close()
        result = job.finish()
        assert result.code == 0, result.stderr
        assert Database(crowded_server, "postgres", crowded_server.url()).revisions() == ["0005"]


class TestRelativeTarget:
    """A target relative to the database moves with it: a configuration error, exit 2."""

    @pytest.mark.parametrize("target", ["-1", "+1", "0003+1", "head-1"])
    def test_refused(self, database: Database, target: str) -> None:
        upgrade_to(database, "0003")
        result = run_job(env=job_env(DATABASE_URL=database.url, MIGRATE_TARGET=target))
        assert_failed_cleanly(result, 2, "configuration_error", repr(target), "relative")
        assert "lock_acquired" not in result.names()
        assert database.revisions() == ["0003"]


class TestBrokenRevisionFile:
    """A revision file that cannot be imported: exit 7 naming file and line, nothing applied."""

    @pytest.mark.parametrize(("source", "bad_line", "error"), [
        (SYNTAX_ERROR, 'op.execute("CREATE TABLE never_created', "SyntaxError"),
        (NAME_ERROR_ON_IMPORT, "UNDEFINED_SETTING", "NameError"),
    ], ids=["syntax_error", "name_error_on_import"])
    def test_exit_7_before_any_change(self, database: Database, tmp_path: Path, source: str,
                                      bad_line: str, error: str) -> None:
        config = make_project(tmp_path, extra={"0006_broken": source})
        line = next(n for n, text in enumerate(source.splitlines(), 1) if bad_line in text)
        result = run_job(env=job_env(DATABASE_URL=database.url, ALEMBIC_CONFIG=str(config)))
        assert_failed_cleanly(result, 7, "history_error", "0006_broken.py", f"line {line}",
                              error)
        # The lock may be taken first: when the revision files name the head (the NameError
        # file parses), runners behind wait for the lock before loading Alembic.
        assert database.revisions() == []
        assert not database.exists("migration_audit")


class TestTargetBehindDatabase:
    """Upgrade never goes down: a target behind the database is refused before the lock."""

    def test_upgrade_refused(self, database: Database) -> None:
        upgrade_to(database, "0005")
        result = run_job(env=job_env(DATABASE_URL=database.url, MIGRATE_TARGET="0003"))
        assert_failed_cleanly(result, 7, "history_error", "ahead", "downgrade 0003")
        assert "lock_acquired" not in result.names()
        assert database.revisions() == ["0005"]
        assert database.applications() == {r: 1 for r in ("0001", "0002", "0003", "0004",
                                                          "0005")}


def status_and_check(env: dict[str, str], target: str) -> tuple[dict[str, Any], Result]:
    """`status --json` and `check` against the same target."""
    status = run_job("status", "--json", "--target", target, env=env)
    assert status.code == 0, status.stderr
    return json.loads(status.stdout), run_job("check", "--target", target, env=env)


def assert_check_agrees(status: dict[str, Any], check: Result) -> None:
    """check: 0 exactly when status says at_target, 8 when pending, 7 for a problem."""
    if status["problem"]:
        assert_failed_cleanly(check, 7, "history_error")
        assert check.events[-1]["message"] == status["problem"]
    elif status["at_target"]:
        assert check.code == 0, check.stderr
        assert status["pending"] == []
    else:
        message = assert_failed_cleanly(check, 8, "migrations_pending")
        assert status["pending"]
        assert ", ".join(status["pending"]) in message


class TestCheckAgreesWithStatus:
    """check and status derive from one plan, so they agree on every case."""

    @pytest.mark.parametrize(("database_at", "target", "expected"), [
        ("base", "base", "at_target"),
        ("base", "head", "pending"),
        ("0003", "0003", "at_target"),
        ("0003", "head", "pending"),
        ("0003", "0005", "pending"),
        ("0005", "head", "at_target"),
        ("0005", "heads", "at_target"),
        ("0005", "0003", "problem"),
        ("0005", "base", "problem"),
        ("0003", "nope", "problem"),
    ])
    def test_matrix(self, database: Database, database_at: str, target: str,
                    expected: str) -> None:
        if database_at != "base":
            upgrade_to(database, database_at)
        status, check = status_and_check(job_env(DATABASE_URL=database.url), target)
        outcome = ("problem" if status["problem"] else
                   "at_target" if status["at_target"] else "pending")
        assert outcome == expected, status
        assert_check_agrees(status, check)

    def test_unknown_database_revision(self, database: Database) -> None:
        upgrade_to(database, "0005")
        database.query("UPDATE alembic_version SET version_num = 'cafe0001'")
        status, check = status_and_check(job_env(DATABASE_URL=database.url), "head")
        assert "cafe0001" in status["problem"]
        assert_check_agrees(status, check)

    def test_broken_revision_file(self, database: Database, tmp_path: Path) -> None:
        config = make_project(tmp_path, extra={"0006_broken": SYNTAX_ERROR})
        env = job_env(DATABASE_URL=database.url, ALEMBIC_CONFIG=str(config))
        status, check = status_and_check(env, "head")
        assert "0006_broken.py" in status["problem"]
        assert_check_agrees(status, check)

    def test_relative_target_is_a_configuration_error_for_both(self, database: Database) -> None:
        env = job_env(DATABASE_URL=database.url)
        for command in ("status", "check"):
            result = run_job(command, "--target", "-1", env=env)
            assert_failed_cleanly(result, 2, "configuration_error", "relative")


@pytest.fixture
def limited_role(database: Database) -> Iterator[str]:
    """A login role (the session's password) that may connect but create nothing.

    PostgreSQL 15 no longer lets PUBLIC create in schema public; the REVOKE says so on older
    servers too. Roles are cluster-wide, hence a name of its own and the cleanup.
    """
    role = f"limited_{next(_roles)}"
    database.query(f"CREATE ROLE {role} LOGIN PASSWORD %s", database.server.password)
    database.query("REVOKE CREATE ON SCHEMA public FROM PUBLIC")
    try:
        yield role
    finally:
        database.query(f"DROP OWNED BY {role}")
        database.query(f"DROP ROLE {role}")


def as_role(database: Database, role: str) -> str:
    """The database's URL, logging in as `role` with the same (URL-encoded) password."""
    return database.url.replace("//postgres:", f"//{role}:", 1)


class TestMissingPrivileges:
    """A role that lacks what a revision needs: exit 4, nothing applied."""

    def assert_permission_denied(self, result: Result, database: Database) -> None:
        """Exit 4 with a permission_denied line that says to grant privileges."""
        message = assert_failed_cleanly(result, 4, "permission_denied", "permission denied")
        assert "grant" in message.lower(), message
        assert not database.exists("hr.employee")
        assert not database.exists("migration_audit")

    def test_no_create_on_schema_public(self, database: Database, limited_role: str) -> None:
        result = run_job(env=job_env(DATABASE_URL=as_role(database, limited_role)))
        self.assert_permission_denied(result, database)
        assert database.revisions() == []

    def test_version_table_read_only(self, database: Database, limited_role: str) -> None:
        # Everything a revision creates is allowed; only recording it in alembic_version is not.
        database.query(f'GRANT CREATE ON DATABASE "{database.name}" TO {limited_role}')
        database.query(f"GRANT CREATE ON SCHEMA public TO {limited_role}")
        database.query("CREATE TABLE alembic_version (version_num varchar(32) PRIMARY KEY)")
        database.query(f"GRANT SELECT ON alembic_version TO {limited_role}")
        result = run_job(env=job_env(DATABASE_URL=as_role(database, limited_role)))
        self.assert_permission_denied(result, database)
        assert database.revisions() == []
