"""The advisory lock: waits by polling, names its holder, times out with exit 5."""

from __future__ import annotations

from migration_job.locks import derive_lock_key
from tests.integration.conftest import Database
from tests.support.job import RunningJob, job_env, run_job


def hold_lock(database: Database, key: int, name: str = "other-deployer") -> object:
    """Hold the key from a session the test controls; returns the connection."""
    conn = database.server.connect(database.name)
    with conn.cursor() as cur:
        cur.execute("SET application_name = %s", (name,))
        cur.execute("SELECT pg_advisory_lock(%s)", (key,))
    return conn


class TestLockHeldElsewhere:
    """Another session holds the default key: the job waits, names it, gives up with 5."""

    def test_timeout_names_the_holder(self, database: Database) -> None:
        key = derive_lock_key(database.name, "public", "alembic_version")
        holder = hold_lock(database, key)
        try:
            result = run_job(env=job_env(DATABASE_URL=database.url, MIGRATE_LOCK_TIMEOUT="1"))
        finally:
            holder.close()  # type: ignore[attr-defined]
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
        holder = hold_lock(database, 4242)
        job = RunningJob(env=job_env(DATABASE_URL=database.url, MIGRATE_LOCK_KEY="4242",
                                     MIGRATE_LOCK_TIMEOUT="120"))
        waiting = job.wait_for_event("waiting_for_lock")
        assert waiting["lock_key"] == 4242
        holder.close()  # type: ignore[attr-defined]
        result = job.finish()
        assert result.code == 0, result.stderr
        assert database.revisions() == ["0005"]
        assert database.advisory_locks() == 0

    def test_fast_path_ignores_a_held_lock(self, database: Database) -> None:
        assert run_job(env=job_env(DATABASE_URL=database.url)).code == 0
        key = derive_lock_key(database.name, "public", "alembic_version")
        holder = hold_lock(database, key)
        try:
            result = run_job(env=job_env(DATABASE_URL=database.url, MIGRATE_LOCK_TIMEOUT="0"))
        finally:
            holder.close()  # type: ignore[attr-defined]
        assert result.code == 0, result.stderr
        assert "already_at_target" in result.names()
