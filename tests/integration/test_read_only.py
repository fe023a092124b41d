"""Read-only targets: a hot standby, or a database whose transactions default to read-only,
is refused for changes (exit 4) before any lock, while status, check and wait still work."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.integration.conftest import Database, database_in
from tests.support.job import Result, RunningJob, job_env, run_job, wait_until
from tests.support.pgserver import PostgresServer, StandbyServer, running_server, running_standby
from tests.support.projects import make_project, revision

ALL = ["0001", "0002", "0003", "0004", "0005"]
REFUSAL_EVENTS = {"connection_rejected", "read_only_database"}
HELD_KEY = 4711
GATE_KEY = 4712
# Waits for the test's advisory lock (the test decides when it ends), then writes; 0007 after
# it is the revision a server turned read-only meanwhile refuses.
GATED = revision("0006", "0005", f'''
op.execute("SELECT pg_advisory_xact_lock({GATE_KEY})")
op.execute("INSERT INTO migration_audit (revision, direction) VALUES ('0006', 'upgrade')")
''')
AFTER_THE_GATE = revision("0007", "0006", '''
op.execute("INSERT INTO migration_audit (revision, direction) VALUES ('0007', 'upgrade')")
''')


@pytest.fixture(scope="module")
def primary() -> Iterator[PostgresServer]:
    """This module's own primary."""
    with running_server() as started:
        yield started


@pytest.fixture(scope="module")
def standby(primary: PostgresServer) -> Iterator[StandbyServer]:
    """A hot standby streaming from the module's primary."""
    with running_standby(primary) as started:
        yield started


@pytest.fixture
def on_primary(primary: PostgresServer, request: pytest.FixtureRequest) -> Database:
    """A fresh database, created on the primary."""
    return database_in(primary, request)


def replica_of(database: Database, standby: StandbyServer) -> Database:
    """The same database as the standby sees it, once it has replayed everything so far."""
    standby.catch_up()
    return Database(standby, database.name, standby.url(database.name))


@contextmanager
def held_lock(database: Database, key: int) -> Iterator[int]:
    """Hold an advisory lock from a harness session (allowed on a standby); yields its pid."""
    conn = database.server.connect(database.name)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT pg_advisory_lock(%s), pg_backend_pid()", (key,))
            row = cur.fetchone()
        assert row is not None
        yield int(row[1])
    finally:
        conn.close()


def says_read_only(message: str) -> bool:
    """Whether a (lower-cased) message says read-only."""
    return "read-only" in message or "read only" in message


def assert_refused_before_the_lock(result: Result) -> str:
    """Exit 4 without trying for the lock; returns the final message (lower case)."""
    assert result.code == 4, result.stderr
    last = result.events[-1]
    assert last["event"] in REFUSAL_EVENTS, result.stderr
    assert "lock_acquired" not in result.names()
    assert "waiting_for_lock" not in result.names()
    assert "Traceback" not in result.stderr
    return str(last["message"]).lower()


class TestHotStandby:
    """Upgrading a hot standby fails with exit 4 before any lock, saying it is a standby and to
    point the job at the primary."""

    def test_upgrade_refused(self, on_primary: Database, standby: StandbyServer) -> None:
        replica = replica_of(on_primary, standby)
        result = run_job(env=job_env(DATABASE_URL=replica.url, MIGRATE_WAIT_TIMEOUT="20"))
        message = assert_refused_before_the_lock(result)
        assert "standby" in message or says_read_only(message), message
        assert "primary" in message, message
        assert replica.advisory_locks() == 0
        assert on_primary.revisions() == []

    def test_refused_before_the_lock(self, on_primary: Database,
                                     standby: StandbyServer) -> None:
        replica = replica_of(on_primary, standby)
        # If the job tried for the lock first it would find it held, wait and time out (5).
        with held_lock(replica, HELD_KEY) as harness_pid:
            result = run_job(env=job_env(DATABASE_URL=replica.url, MIGRATE_WAIT_TIMEOUT="20",
                                         MIGRATE_LOCK_KEY=str(HELD_KEY),
                                         MIGRATE_LOCK_TIMEOUT="1"))
            others = replica.query("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
                                   "AND pid <> %s", harness_pid)[0][0]
        assert_refused_before_the_lock(result)
        assert others == 0


class TestReadOnlyDatabase:
    """Upgrading a database whose default_transaction_read_only is on fails with exit 4 before
    any lock, naming that setting."""

    def test_upgrade_refused(self, database: Database) -> None:
        database.query(f'ALTER DATABASE "{database.name}" SET default_transaction_read_only = on')
        result = run_job(env=job_env(DATABASE_URL=database.url, MIGRATE_WAIT_TIMEOUT="20"))
        message = assert_refused_before_the_lock(result)
        assert says_read_only(message), message
        assert "default_transaction_read_only" in message, message
        assert database.revisions() == []
        assert not database.exists("migration_audit")
        assert database.advisory_locks() == 0


class TestReadOnlyCommandsOnAStandby:
    """status, check and wait change nothing, so they work against a hot standby and answer
    from its data."""

    def test_at_head(self, on_primary: Database, standby: StandbyServer) -> None:
        migrated = run_job(env=job_env(DATABASE_URL=on_primary.url))
        assert migrated.code == 0, migrated.stderr
        replica = replica_of(on_primary, standby)
        env = job_env(DATABASE_URL=replica.url, MIGRATE_WAIT_TIMEOUT="20")

        assert (waited := run_job("wait", env=env)).code == 0, waited.stderr
        assert (checked := run_job("check", env=env)).code == 0, checked.stderr
        status = run_job("status", "--json", env=env)
        assert status.code == 0, status.stderr
        report = json.loads(status.stdout)
        assert report["current"] == ["0005"]
        assert report["pending"] == []
        assert report["at_target"] is True

    def test_pending(self, on_primary: Database, standby: StandbyServer) -> None:
        replica = replica_of(on_primary, standby)
        env = job_env(DATABASE_URL=replica.url, MIGRATE_WAIT_TIMEOUT="20")

        assert (waited := run_job("wait", env=env)).code == 0, waited.stderr
        checked = run_job("check", env=env)
        assert checked.code == 8, checked.stderr
        assert checked.events[-1]["event"] == "migrations_pending"
        status = run_job("status", "--json", env=env)
        assert status.code == 0, status.stderr
        report = json.loads(status.stdout)
        assert report["current"] == []
        assert sorted(report["pending"]) == ALL
        assert report["at_target"] is False
        assert replica.advisory_locks() == 0


class TestMadeReadOnlyMidRun:
    """A server made read-only between two revisions (a primary demoted, a maintenance switch)
    is reported as a fresh run reports it: exit 4, read_only_database, "point the job at the
    primary", and what stays applied; never "fix the migration"."""

    def test_read_only_between_revisions(self, tmp_path: Path,
                                         request: pytest.FixtureRequest) -> None:
        with running_server() as server:  # its own: ALTER SYSTEM changes the whole server
            database = database_in(server, request)
            config = make_project(tmp_path, extra={"0006_gated": GATED,
                                                   "0007_after": AFTER_THE_GATE})
            gate = server.connect(database.name)
            try:
                with gate.cursor() as cursor:
                    cursor.execute("SELECT pg_advisory_lock(%s)", (GATE_KEY,))
                job = RunningJob(env=job_env(DATABASE_URL=database.url,
                                             ALEMBIC_CONFIG=str(config)))
                job.wait_for_event("revision_started", revision="0006")
                assert wait_until(lambda: database.query(
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = %s "
                    "AND NOT granted", GATE_KEY)[0][0] == 1, timeout=60), \
                    "revision 0006 never waited at the gate"
                server.scalar("ALTER SYSTEM SET default_transaction_read_only = on")
                server.scalar("SELECT pg_reload_conf()")
                # A new session sees the setting only once the server reloaded, and signalled
                # every session (the job's included) to reload before its next statement.
                assert wait_until(lambda: server.scalar(
                    "SHOW default_transaction_read_only") == "on", timeout=60)
                with gate.cursor() as cursor:
                    cursor.execute("SELECT pg_advisory_unlock(%s)", (GATE_KEY,))
            finally:
                gate.close()
            result = job.finish()
            message = assert_failed_cleanly_with(result, 4, "read_only_database")
            assert "primary" in message, message
            assert "6 earlier revision(s) stay applied" in message, message
            assert "fix the migration" not in message, message
            assert database.revisions() == ["0006"]
            assert database.applications() == {r: 1 for r in [*ALL, "0006"]}
            assert database.advisory_locks() == 0


def assert_failed_cleanly_with(result: Result, code: int, event: str) -> str:
    """Exit `code` with `event` as the last line and no traceback; the message, lower case."""
    assert result.code == code, result.stderr
    assert result.events[-1]["event"] == event, result.stderr
    assert "Traceback" not in result.stderr
    return str(result.events[-1]["message"]).lower()
