"""Waiting for the database: late servers, timeouts, and errors that no wait can fix."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.integration.conftest import Database
from tests.support.job import RunningJob, job_env, run_job
from tests.support.pgserver import PostgresServer, free_port


@pytest.fixture
def stopped_server() -> Iterator[PostgresServer]:
    """A server of the test's own, initialised but not running yet."""
    server = PostgresServer()
    try:
        yield server
    finally:
        server.destroy()


class TestDatabaseComesUpLate:
    """The job started before its database keeps retrying and then migrates."""

    def test_waits_then_migrates(self, stopped_server: PostgresServer) -> None:
        job = RunningJob(env=job_env(DATABASE_URL=stopped_server.url(),
                                     MIGRATE_WAIT_TIMEOUT="120"))
        first = job.wait_for_event("waiting_for_database")
        assert first["attempt"] == 1
        assert first["next_try_in_s"] <= 1.0
        stopped_server.start()
        result = job.finish()
        assert result.code == 0, result.stderr
        attempts = [e["attempt"] for e in result.events if e["event"] == "waiting_for_database"]
        assert attempts == list(range(1, len(attempts) + 1))
        assert all(e["next_try_in_s"] <= 1.0 for e in result.events
                   if e["event"] == "waiting_for_database")
        conn = stopped_server.connect()
        with conn.cursor() as cur:
            cur.execute("SELECT version_num FROM alembic_version")
            assert cur.fetchone() == ("0005",)
        conn.close()


class TestWaitTimeout:
    """Nothing listening: exit 3 after the wait timeout, with one clear last line."""

    def test_unreachable_exits_3(self) -> None:
        url = f"postgresql://postgres:secret@127.0.0.1:{free_port()}/postgres"
        result = run_job(env=job_env(DATABASE_URL=url, MIGRATE_WAIT_TIMEOUT="2"))
        assert result.code == 3, result.stderr
        last = result.events[-1]
        assert last["event"] == "database_unreachable"
        assert "MIGRATE_WAIT_TIMEOUT" in last["message"]
        assert result.names().count("waiting_for_database") >= 2

    def test_zero_timeout_tries_once(self) -> None:
        url = f"postgresql://postgres@127.0.0.1:{free_port()}/postgres"
        result = run_job(env=job_env(DATABASE_URL=url, MIGRATE_WAIT_TIMEOUT="0"))
        assert result.code == 3
        assert "waiting_for_database" not in result.names()
        assert "(1 attempt;" in result.events[-1]["message"]


class TestPermanentRejections:
    """Authentication and missing databases fail at once with exit 4: no retries."""

    def test_wrong_password(self, database: Database) -> None:
        url = database.server.url(database.name, password="wrong-password")
        result = run_job(env=job_env(DATABASE_URL=url, MIGRATE_WAIT_TIMEOUT="60"))
        assert result.code == 4, result.stderr
        assert "waiting_for_database" not in result.names()
        last = result.events[-1]
        assert last["event"] == "connection_rejected"
        assert "password authentication failed" in last["message"]
        assert "wrong-password" not in result.stderr

    def test_missing_database(self, database: Database) -> None:
        url = database.server.url("no_such_database")
        result = run_job(env=job_env(DATABASE_URL=url, MIGRATE_WAIT_TIMEOUT="60"))
        assert result.code == 4, result.stderr
        assert "waiting_for_database" not in result.names()
        assert "no_such_database" in result.events[-1]["message"]

    def test_missing_role(self, database: Database) -> None:
        url = database.url.replace("//postgres:", "//nobody:", 1)
        result = run_job(env=job_env(DATABASE_URL=url, MIGRATE_WAIT_TIMEOUT="60"))
        assert result.code == 4, result.stderr
        assert "waiting_for_database" not in result.names()
