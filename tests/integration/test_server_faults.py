"""The server itself fails mid-run: the job says so (exit 3, retryable) and loses nothing."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.conftest import Database
from tests.support.job import RunningJob, job_env, run_job
from tests.support.pgserver import PostgresServer, running_server
from tests.support.projects import SLOW, make_project


@pytest.fixture
def own_server() -> Iterator[PostgresServer]:
    """A server this test may crash."""
    with running_server() as server:
        yield server


class TestServerCrashDuringRevision:
    """The postmaster is killed mid-revision: exit 3; after restart the next run reaches head."""

    def test_crash_then_retry(self, own_server: PostgresServer, tmp_path: Path) -> None:
        database = Database(own_server, "postgres", own_server.url())
        config = make_project(tmp_path, extra={"0006_slow": SLOW})
        job = RunningJob(env=job_env(DATABASE_URL=database.url, ALEMBIC_CONFIG=str(config),
                                     PGOPTIONS="-c migration_test.sleep=600"))
        job.wait_for_event("revision_started", revision="0006")
        own_server.kill()
        result = job.finish(timeout=60)
        assert result.code == 3, result.stderr
        last = result.events[-1]
        # The revision ran on the session that held the lock: both went with the server.
        assert last["event"] == "lock_lost"
        assert "0006" in last["message"]
        assert "rolls that revision back" in last["message"]
        assert "Traceback" not in result.stderr

        own_server.start()
        assert database.revisions() == ["0005"]
        assert not database.exists("slow_marker")
        again = run_job(env=job_env(DATABASE_URL=database.url, ALEMBIC_CONFIG=str(config)))
        assert again.code == 0, again.stderr
        assert database.revisions() == ["0006"]
        assert database.applications()["0006"] == 1
