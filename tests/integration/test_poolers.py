"""Through PgBouncer: session pooling with stock settings works like a direct connection;
transaction and statement pooling are refused before any lock (exit 2), because a
session-level advisory lock needs a server session that stays the job's own."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.integration.conftest import Database, database_in
from tests.support.job import Result, RunningJob, job_env, run_job
from tests.support.pgbouncer import PgBouncer, running_pgbouncer
from tests.support.pgserver import PostgresServer, running_server

ALL = ["0001", "0002", "0003", "0004", "0005"]
REFUSAL_EVENTS = {"pooler_not_supported", "configuration_error"}
# PgBouncer is up before the job starts: a short wait keeps a wrong retry from costing a minute.
WAIT = "20"


@pytest.fixture(scope="module")
def server() -> Iterator[PostgresServer]:
    """This module's own server, so that a lock counted server-wide can only be this test's."""
    with running_server() as started:
        yield started


@pytest.fixture
def db(server: PostgresServer, request: pytest.FixtureRequest) -> Database:
    """A fresh database on this module's server (the harness connects to it directly)."""
    return database_in(server, request)


def server_advisory_locks(server: PostgresServer) -> int:
    """Advisory locks held by any session of the server, queried directly (not pooled)."""
    return int(server.scalar("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'"))


def through(bouncer: PgBouncer, db: Database, **overrides: str) -> dict[str, str]:
    """The job's environment with its URL aimed at PgBouncer."""
    return job_env(DATABASE_URL=bouncer.url(db.name), MIGRATE_WAIT_TIMEOUT=WAIT, **overrides)


def assert_refused(result: Result, mode: str, *, advice: bool = True) -> None:
    """Exit 2 before any lock, naming the pooling mode (and, with `advice`, what to do)."""
    assert result.code == 2, result.stderr
    last = result.events[-1]
    assert last["event"] in REFUSAL_EVENTS, result.stderr
    message = str(last["message"]).lower()
    assert f"{mode} pooling" in message, message
    if advice:
        assert "direct" in message, message
        assert "session pooling" in message or "session mode" in message, message
    assert "lock_acquired" not in result.names()
    assert "waiting_for_lock" not in result.names()
    assert "Traceback" not in result.stderr


class TestSessionPooling:
    """Through PgBouncer in session pooling mode with stock settings, the job upgrades as it
    does on a direct connection and leaves no lock on the pooled server session."""

    def test_upgrades_an_empty_database(self, server: PostgresServer, db: Database) -> None:
        with running_pgbouncer(server, "session") as bouncer:
            result = run_job(env=through(bouncer, db))
            assert result.code == 0, result.stderr
            assert db.revisions() == ["0005"]
            assert db.applications() == dict.fromkeys(ALL, 1)
            # PgBouncer still holds the server session the job used: the lock must be gone.
            assert db.advisory_locks() == 0
            assert server_advisory_locks(server) == 0

            again = run_job(env=through(bouncer, db))
            assert again.code == 0, again.stderr
            assert "already_at_target" in again.names()
            assert db.applications() == dict.fromkeys(ALL, 1)

    def test_concurrent_runners(self, server: PostgresServer, db: Database) -> None:
        with running_pgbouncer(server, "session") as bouncer:
            jobs = [RunningJob(env=through(bouncer, db)) for _ in range(5)]
            results = [job.finish() for job in jobs]
            assert [r.code for r in results] == [0] * 5, "\n".join(r.stderr for r in results)
            assert db.applications() == dict.fromkeys(ALL, 1)
            assert server_advisory_locks(server) == 0


class TestTransactionPooling:
    """Through transaction pooling the job exits 2 before taking any lock, saying to connect
    directly or through session pooling, and leaves no lock on any pooled server session."""

    def test_refused_before_the_lock(self, server: PostgresServer, db: Database) -> None:
        with running_pgbouncer(server, "transaction") as bouncer:
            result = run_job(env=through(bouncer, db))
            assert_refused(result, "transaction")
            assert db.revisions() == []
            # A session lock taken through transaction pooling would stay on a server
            # session that PgBouncer keeps open and hands to other clients.
            assert server_advisory_locks(server) == 0

    def test_five_runners_at_once(self, server: PostgresServer, db: Database) -> None:
        with running_pgbouncer(server, "transaction") as bouncer:
            jobs = [RunningJob(env=through(bouncer, db)) for _ in range(5)]
            results = [job.finish() for job in jobs]
            for result in results:
                assert_refused(result, "transaction")
            assert db.revisions() == []
            assert server_advisory_locks(server) == 0


class TestStatementPooling:
    """Through statement pooling the job exits 2 before taking any lock, naming statement
    pooling."""

    def test_refused_before_the_lock(self, server: PostgresServer, db: Database) -> None:
        with running_pgbouncer(server, "statement") as bouncer:
            result = run_job(env=through(bouncer, db))
            assert_refused(result, "statement", advice=False)
            assert db.revisions() == []
            assert server_advisory_locks(server) == 0
