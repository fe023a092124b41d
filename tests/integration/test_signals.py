"""SIGTERM and SIGKILL during a slow revision, with the job's env.py and a generic one."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from tests.integration.conftest import Database
from tests.support.job import RunningJob, job_env, run_job, wait_until
from tests.support.pgserver import free_port
from tests.support.projects import SLOW, make_project

SLOW_SESSION = "-c migration_test.sleep=600"
SLEEP_QUERY = "%pg_sleep%"


def start_slow_job(database: Database, config: Path) -> RunningJob:
    """Start an upgrade and return once revision 0006 is sleeping on the server."""
    job = RunningJob(env=job_env(DATABASE_URL=database.url, ALEMBIC_CONFIG=str(config),
                                 PGOPTIONS=SLOW_SESSION))
    job.wait_for_event("revision_started", revision="0006")
    assert wait_until(lambda: database.running_statements(SLEEP_QUERY) == 1), \
        "the slow statement never showed up on the server"
    return job


@pytest.mark.parametrize("generic_env", [False, True], ids=["job-env", "generic-env"])
class TestSigterm:
    """SIGTERM mid-revision: exit 143 promptly, statement cancelled, rolled back, unlocked."""

    def test_sigterm_rolls_back_and_unlocks(self, database: Database, tmp_path: Path,
                                            generic_env: bool) -> None:
        config = make_project(tmp_path, generic_env=generic_env, extra={"0006_slow": SLOW})
        job = start_slow_job(database, config)
        job.process.send_signal(signal.SIGTERM)
        # Only a hang fails here: promptness is the design (the canceller, a bounded grace
        # period), and exit 143 rather than a kill shows the job stopped by itself.
        result = job.finish(timeout=60)
        assert result.code == 143, result.stderr
        assert result.events[-1]["event"] == "interrupted"
        assert "statement_cancelled" in result.names()
        assert database.running_statements(SLEEP_QUERY) == 0
        assert database.advisory_locks() == 0
        assert database.revisions() == ["0005"]
        assert not database.exists("slow_marker")
        assert "0006" not in database.applications()

    def test_sigint_exits_130(self, database: Database, tmp_path: Path,
                              generic_env: bool) -> None:
        config = make_project(tmp_path, generic_env=generic_env, extra={"0006_slow": SLOW})
        job = start_slow_job(database, config)
        job.process.send_signal(signal.SIGINT)
        result = job.finish(timeout=60)
        assert result.code == 130, result.stderr
        assert database.revisions() == ["0005"]
        assert database.advisory_locks() == 0


class TestSigtermWhileWaitingForTheLock:
    """SIGTERM to a runner waiting for the lock stops it, and then the holder too."""

    def test_waiting_runner_stops_on_sigterm(self, database: Database, tmp_path: Path) -> None:
        config = make_project(tmp_path, extra={"0006_slow": SLOW})
        holder = start_slow_job(database, config)
        waiter = RunningJob(env=job_env(DATABASE_URL=database.url, ALEMBIC_CONFIG=str(config),
                                        MIGRATE_LOCK_TIMEOUT="600"))
        waiter.wait_for_event("waiting_for_lock")
        waiter.process.send_signal(signal.SIGTERM)
        stopped = waiter.finish(timeout=60)
        assert stopped.code == 143, stopped.stderr
        # It never held the lock and ran nothing: the last line claims neither.
        message = stopped.events[-1]["message"]
        assert "released the lock" not in message, message
        assert "rolled back" not in message, message
        holder.process.send_signal(signal.SIGTERM)
        assert holder.finish(timeout=60).code == 143
        assert database.advisory_locks() == 0


class TestSigkill:
    """SIGKILL mid-revision: nothing half-applied, and the next run reaches head."""

    @pytest.mark.parametrize("generic_env", [False, True], ids=["job-env", "generic-env"])
    def test_sigkill_then_next_run(self, database: Database, tmp_path: Path,
                                   generic_env: bool) -> None:
        config = make_project(tmp_path, generic_env=generic_env, extra={"0006_slow": SLOW})
        job = start_slow_job(database, config)
        job.process.send_signal(signal.SIGKILL)
        assert job.finish(timeout=10).code == -signal.SIGKILL
        assert database.revisions() == ["0005"]
        assert not database.exists("slow_marker")
        # client_connection_check_interval makes the server drop the orphaned statement.
        assert wait_until(lambda: database.running_statements(SLEEP_QUERY) == 0, timeout=60)
        result = run_job(env=job_env(DATABASE_URL=database.url, ALEMBIC_CONFIG=str(config)))
        assert result.code == 0, result.stderr
        assert database.revisions() == ["0006"]
        assert database.applications()["0006"] == 1
        assert database.advisory_locks() == 0


class TestSigtermWhileWaitingForDatabase:
    """SIGTERM while the database is not up yet: the wait stops at once with 143."""

    def test_sigterm_during_wait(self) -> None:
        url = f"postgresql://postgres:x@127.0.0.1:{free_port()}/postgres"
        job = RunningJob(env=job_env(DATABASE_URL=url, MIGRATE_WAIT_TIMEOUT="600"))
        job.wait_for_event("waiting_for_database")
        job.process.send_signal(signal.SIGTERM)
        result = job.finish(timeout=60)
        assert result.code == 143, result.stderr
        assert result.events[-1]["event"] == "interrupted"
