"""The advisory lock: waits by polling, names its holder, times out with exit 5."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from migration_job.engines.locking import derive_lock_key
from tests.integration.conftest import Database
from tests.support.job import RunningJob, job_env, run_job
from tests.support.projects import make_project, revision


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
        # How to end a holder that is gone (a runner lost in a partition).
        assert f"SELECT pg_terminate_backend({waiting['holder']['pid']})" in last["message"]
        assert database.revisions() == []

    def test_small_explicit_key_names_the_holder(self, database: Database) -> None:
        with held_lock(database, 424242):
            result = run_job(env=job_env(DATABASE_URL=database.url, MIGRATE_LOCK_KEY="424242",
                                         MIGRATE_LOCK_TIMEOUT="1"))
        assert result.code == 5, result.stderr
        assert result.event("waiting_for_lock")["holder"]["application_name"] == "other-deployer"
        assert "other-deployer" in result.events[-1]["message"]

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


class TestConnectionLostWhileWaiting:
    """The session waiting for the lock is terminated: exit 3 with one line, no traceback."""

    def test_terminated_waiter_exits_3(self, database: Database) -> None:
        with held_lock(database, 4242):
            job = RunningJob(env=job_env(DATABASE_URL=database.url, MIGRATE_LOCK_KEY="4242",
                                         MIGRATE_LOCK_TIMEOUT="120"))
            job.wait_for_event("waiting_for_lock")
            database.query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                           "WHERE application_name LIKE 'migration-job:%%'")
            result = job.finish()
        assert result.code == 3, result.stderr
        assert result.events[-1]["event"] == "database_unreachable"
        assert "Traceback" not in result.stderr
        assert database.revisions() == []


# Idles in its transaction, on the client side, far longer than the server's idle timeouts.
IDLE_IN_REVISION = revision("0006", "0005", '''
import time
op.execute("CREATE TABLE idle_marker (id int)")
time.sleep(2.5)
op.execute("INSERT INTO migration_audit (revision, direction) VALUES ('0006', 'upgrade')")
''')


class TestLockSessionSurvivesIdleTimeouts:
    """A server that ends idle sessions must not end the session holding the lock: it idles
    while Alembic loads, between revisions and inside a revision's client-side work."""

    def test_lock_held_through_idle_periods(self, database: Database, tmp_path: Path) -> None:
        for setting in ("idle_session_timeout", "idle_in_transaction_session_timeout"):
            database.query(f'ALTER DATABASE "{database.name}" SET {setting} = \'1s\'')
        config = make_project(tmp_path, extra={"0006_idle": IDLE_IN_REVISION})
        result = run_job(env=job_env(DATABASE_URL=database.url, ALEMBIC_CONFIG=str(config)))
        assert result.code == 0, result.stderr
        assert "lock_release_failed" not in result.names()
        assert database.revisions() == ["0006"]
        assert database.applications()["0006"] == 1
        assert database.advisory_locks() == 0
