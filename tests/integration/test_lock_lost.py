"""The lock's session lost mid-revision: the runner stops, and no two runners ever overlap."""

from __future__ import annotations

from pathlib import Path

import pytest

from migration_job.engines.locking import derive_lock_key
from tests.integration.conftest import Database
from tests.support.job import RunningJob, job_env, wait_until
from tests.support.projects import ALONE_BEHIND_A_GATE, ALONE_GUARD, make_project, revision

# Each revision body proves it runs alone: it takes a second advisory lock (777) that a
# concurrent run of the same revision could not get, and fails loudly if it cannot.
ALONE = ("DO $$ BEGIN IF NOT pg_try_advisory_{kind}lock(777) THEN "
         "RAISE EXCEPTION 'two runners at once'; END IF; END $$")
SLEEP = ("SELECT pg_sleep(coalesce(nullif(current_setting('migration_test.sleep', true), ''), "
         "'0')::float)")
DATA_ONLY = revision("0006", "0005", f'''
op.execute("{ALONE.format(kind="xact_")}")
op.execute("INSERT INTO migration_audit (revision, direction) VALUES ('0006', 'upgrade')")
op.execute("{SLEEP}")
''')
AUTOCOMMIT = revision("0006", "0005", f'''
with op.get_context().autocommit_block():
    op.execute("{ALONE.format(kind="")}")
    op.execute("{SLEEP}")
    op.execute("CREATE INDEX CONCURRENTLY IF NOT EXISTS ix_lock_lost ON migration_audit (revision)")
    op.execute("SELECT pg_advisory_unlock(777)")
op.execute("INSERT INTO migration_audit (revision, direction) VALUES ('0006', 'upgrade')")
''')
# Waits for advisory lock 555, which the test holds until it lets the revision go on.
GATED = revision("0006", "0005", f'''
op.execute("{ALONE_BEHIND_A_GATE}")
op.execute("INSERT INTO migration_audit (revision, direction) VALUES ('0006', 'upgrade')")
op.execute("SELECT pg_advisory_xact_lock(555)")
''')
# An env.py the job cannot hand its session to: its engine has connect arguments of its own.
OWN_CONNECTION_ENV = '''
from alembic import context
from sqlalchemy import create_engine, pool

config = context.config
engine = create_engine(config.get_main_option("sqlalchemy.url"), poolclass=pool.NullPool,
                       connect_args={"options": "-c work_mem=8MB"})
with engine.connect() as connection:
    context.configure(connection=connection, transaction_per_migration=True)
    with context.begin_transaction():
        context.run_migrations()
'''


def lock_holder_pid(database: Database) -> int | None:
    """The backend holding the migration lock (the default key), if any."""
    key = derive_lock_key(database.name, "public", "alembic_version")
    rows = database.query(
        "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted AND objsubid = 1 "
        "AND classid::bigint = (%s::bigint >> 32) & 4294967295 "
        "AND objid::bigint = %s::bigint & 4294967295", key, key)
    return int(rows[0][0]) if rows else None


def start(database: Database, config: Path, sleep: int, **env: str) -> RunningJob:
    """An upgrade whose revision 0006 sleeps `sleep` seconds."""
    return RunningJob(env=job_env(DATABASE_URL=database.url, ALEMBIC_CONFIG=str(config),
                                  PGOPTIONS=f"-c migration_test.sleep={sleep}", **env))


@pytest.mark.parametrize("generic_env", [False, True], ids=["job-env", "generic-env"])
@pytest.mark.parametrize("body", [DATA_ONLY, AUTOCOMMIT], ids=["data-only", "autocommit-block"])
class TestLockSessionTerminated:
    """pg_terminate_backend on the lock's session mid-revision: exit 3, rolled back, and the
    runner waiting behind it takes over without ever running alongside it."""

    def test_loser_stops_and_the_next_runner_completes(
            self, database: Database, tmp_path: Path, generic_env: bool, body: str) -> None:
        config = make_project(tmp_path, generic_env=generic_env, extra={"0006_body": body})
        first = start(database, config, sleep=600)
        first.wait_for_event("revision_started", revision="0006")
        assert wait_until(lambda: database.running_statements("%pg_sleep%") == 1)
        second = start(database, config, sleep=0, MIGRATE_LOCK_TIMEOUT="120")
        second.wait_for_event("waiting_for_lock")

        holder = lock_holder_pid(database)
        assert holder is not None
        database.query("SELECT pg_terminate_backend(%s)", holder)

        lost = first.finish()
        assert lost.code == 3, lost.stderr
        assert lost.events[-1]["event"] == "lock_lost"
        assert "lost the migration lock" in lost.events[-1]["message"]
        took_over = second.finish()
        assert took_over.code == 0, took_over.stderr
        assert "two runners at once" not in took_over.stderr
        assert database.revisions() == ["0006"]
        assert database.applications()["0006"] == 1
        assert database.advisory_locks() == 0


def waiting_for_a_lock(database: Database) -> int:
    """Sessions of this database waiting for an advisory lock."""
    return int(database.query(
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted "
        "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())")[0][0])


class TestLockSessionLostUnderAForeignConnection:
    """An env.py on a connection of its own runs on after the lock's session is lost: the next
    runner's revision waits at the revision gate until it ends, and it rolls back at its check
    before commit (exit 3)."""

    def test_next_runner_waits_then_completes(self, database: Database, tmp_path: Path) -> None:
        config = make_project(tmp_path, extra={"0006_gated": GATED})
        (tmp_path / "migrations" / "env.py").write_text(OWN_CONNECTION_ENV)
        database.query(ALONE_GUARD)
        gate = database.server.connect(database.name)
        with gate.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_lock(555)")
        # No DDL lock timeout: the revision's wait for 555 must last as long as the test says.
        first = start(database, config, sleep=0, MIGRATE_DDL_LOCK_TIMEOUT="0")
        first.wait_for_event("revision_started", revision="0006")
        assert wait_until(lambda: database.running_statements("%555%") == 1)
        holder = lock_holder_pid(database)
        assert holder is not None
        database.query("SELECT pg_terminate_backend(%s)", holder)

        second = start(database, config, sleep=0, MIGRATE_LOCK_TIMEOUT="120",
                       MIGRATE_DDL_LOCK_TIMEOUT="0")
        second.wait_for_event("revision_started", revision="0006")
        # The second runner's revision waits for the first one's transaction to end.
        assert wait_until(lambda: waiting_for_a_lock(database) == 2)
        gate.close()  # the first revision goes on, and reaches its check before commit

        lost = first.finish()
        assert lost.code == 3, lost.stderr
        assert lost.events[-1]["event"] == "lock_lost"
        took_over = second.finish()
        assert took_over.code == 0, took_over.stderr
        assert "two runners at once" not in took_over.stderr + lost.stderr
        assert database.revisions() == ["0006"]
        assert database.applications()["0006"] == 1


# Waits for a row lock that the test holds past the DDL lock timeout.
ROW_LOCKED = revision("0006", "0005", '''
op.execute("INSERT INTO migration_audit (revision, direction) VALUES ('0006', 'upgrade')")
op.execute("UPDATE migration_blocker SET n = n + 1")
''')


class TestLockLostBeforeARetry:
    """The lock's session ends while a revision on env.py's own connection waits past the DDL
    lock timeout: the job stops (exit 3) instead of retrying a revision it no longer holds the
    lock for."""

    def test_no_retry_without_the_lock(self, database: Database, tmp_path: Path) -> None:
        config = make_project(tmp_path, extra={"0006_row_locked": ROW_LOCKED})
        (tmp_path / "migrations" / "env.py").write_text(OWN_CONNECTION_ENV)
        database.query("CREATE TABLE migration_blocker (n int)")
        database.query("INSERT INTO migration_blocker VALUES (0)")
        blocker = database.server.connect(database.name)
        blocker.autocommit = False
        with blocker.cursor() as cursor:
            cursor.execute("UPDATE migration_blocker SET n = n + 1")
        job = start(database, config, sleep=0, MIGRATE_DDL_LOCK_TIMEOUT="5s")
        job.wait_for_event("revision_started", revision="0006")
        assert wait_until(lambda: database.running_statements("UPDATE migration_blocker%") == 1)
        holder = lock_holder_pid(database)
        assert holder is not None
        database.query("SELECT pg_terminate_backend(%s)", holder)

        lost = job.finish()
        blocker.rollback()
        blocker.close()
        assert lost.code == 3, lost.stderr
        assert lost.events[-1]["event"] == "lock_lost", lost.stderr
        assert [e.get("revision") for e in lost.events
                if e["event"] == "revision_started"].count("0006") == 1, lost.stderr
        assert database.revisions() == ["0005"]
        assert database.advisory_locks() == 0
        again = start(database, config, sleep=0).finish()
        assert again.code == 0, again.stderr
        assert database.applications()["0006"] == 1


# Lets go of every advisory lock of its session: the migration lock too, the session alive.
UNLOCKS_ALL = revision("0006", "0005", '''
op.execute("CREATE TABLE unlocked_marker (id int)")
op.execute("SELECT pg_advisory_unlock_all()")
''')


@pytest.mark.parametrize("history", ["on", "off"])
class TestLockLetGoWithinTheSession:
    """A revision whose own SQL lets go of the migration lock, its session alive: the check
    before its commit (with the history on, asked by the statement that writes its history
    row, in the same round trip) stops it, rolled back (exit 3)."""

    def test_rolled_back(self, database: Database, tmp_path: Path, history: str) -> None:
        config = make_project(tmp_path, extra={"0006_unlocks": UNLOCKS_ALL})
        lost = RunningJob(env=job_env(DATABASE_URL=database.url, ALEMBIC_CONFIG=str(config),
                                      MIGRATE_HISTORY=history)).finish()
        assert lost.code == 3, lost.stderr
        assert lost.events[-1]["event"] == "lock_lost"
        assert database.revisions() == ["0005"]
        assert not database.exists("unlocked_marker")
        if history == "on":
            rows = database.query("SELECT revision, outcome FROM alembic_version_history "
                                  "WHERE revision = '0006'")
            assert [tuple(r) for r in rows] == [("0006", "failed")]
