"""The advisory lock: waits by polling, names its holder, times out with exit 5."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from migration_job.locks import derive_lock_key
from tests.integration.conftest import Database
from tests.support.job import RunningJob, job_env, run_job, wait_until
from tests.support.projects import SLOW, make_project


@contextmanager
def held_lock(database: Database, key: int, name: str = "other-deployer") -> Iterator[None]:
    """Hold the key from a session the test controls, for the duration of the block."""
    conn = database.server.connect(database.name)
    try:
        with conn.cursor() as cur:
            cur.execute("SET application_name = %s", (name,))
            cur.execute("SELECT pg_advisory_lock(%s)", (key,))
        yield
    finally:
        conn.close()


class TestLockHeldElsewhere:
    """Another session holds the default key: the job waits, names it, gives up with 5."""

    def test_timeout_names_the_holder(self, database: Database) -> None:
        key = derive_lock_key(database.name, "public", "alembic_version")
        with held_lock(database, key):
            result = run_job(env=job_env(DATABASE_URL=database.url, MIGRATE_LOCK_TIMEOUT="1"))
        assert result.code == 5, result.stderr
        waiting = result.event("waiting_for_lock")
        assert waiting["holder"]["application_name"] == "other-deployer"
        assert waiting["holder"]["client_addr"] == "127.0.0.1"
        last = result.events[-1]
        assert last["event"] == "lock_timeout"
        assert "other-deployer" in last["message"]
        assert "pid " in last["message"]
        assert database.revisions() == []

    def test_waits_and_proceeds_when_released(self, database: Database) -> None:
        with held_lock(database, 4242):
            job = RunningJob(env=job_env(DATABASE_URL=database.url, MIGRATE_LOCK_KEY="4242",
                                         MIGRATE_LOCK_TIMEOUT="120"))
            waiting = job.wait_for_event("waiting_for_lock")
            assert waiting["lock_key"] == 4242
        result = job.finish()
        assert result.code == 0, result.stderr
        assert database.revisions() == ["0005"]
        assert database.advisory_locks() == 0

    def test_fast_path_ignores_a_held_lock(self, database: Database) -> None:
        assert run_job(env=job_env(DATABASE_URL=database.url)).code == 0
        key = derive_lock_key(database.name, "public", "alembic_version")
        with held_lock(database, key):
            result = run_job(env=job_env(DATABASE_URL=database.url, MIGRATE_LOCK_TIMEOUT="0"))
        assert result.code == 0, result.stderr
        assert "already_at_target" in result.names()


class TestLockSessionSurvivesIdleTimeouts:
    """A server that ends idle sessions must not end the idle session holding the lock."""

    def test_lock_held_through_a_long_revision(self, database: Database, tmp_path: Path) -> None:
        database.query(f'ALTER DATABASE "{database.name}" SET idle_session_timeout = \'300ms\'')
        config = make_project(tmp_path, extra={"0006_slow": SLOW})
        job = RunningJob(env=job_env(DATABASE_URL=database.url, ALEMBIC_CONFIG=str(config),
                                     PGOPTIONS="-c migration_test.sleep=2"))
        job.wait_for_event("revision_started", revision="0006")
        # Well past the idle timeout, the lock's session (idle since it took the lock) lives.
        assert wait_until(lambda: database.running_statements("%pg_sleep%") == 1)
        time.sleep(1)
        assert database.advisory_locks() == 1
        result = job.finish()
        assert result.code == 0, result.stderr
        assert "lock_release_failed" not in result.names()
        assert database.revisions() == ["0006"]
