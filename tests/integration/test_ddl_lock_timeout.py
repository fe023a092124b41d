"""The DDL lock timeout on PostgreSQL: a revision blocked by another session's lock gives
way to the application's queries, is retried naming its blocker, and exits 9 when it never
gets the lock; the statement timeout exits 6."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg2
import pytest

from tests.integration.conftest import Database
from tests.support.job import RunningJob, job_env, run_job, wait_until
from tests.support.projects import make_project, revision

BLOCKER_NAME = "blocking-test-transaction"
# Alters a table that no earlier revision touches, which the test's transaction holds.
ALTER_BUSY = revision("0006", "0005", '''
op.execute("ALTER TABLE busy ADD COLUMN note text")
op.execute("INSERT INTO migration_audit (revision, direction) VALUES ('0006', 'upgrade')")
''')
# Each writes its audit row where it is committed before the ALTER waits: a retry would
# write it again. Outside its transaction (an INSERT, or a SELECT of a function that writes),
# or in its transaction before an autocommit_block, which Alembic commits on entering it.
COMMITTED_BEFORE_THE_ALTER = {
    "insert-in-block": revision("0006", "0005", '''
with op.get_context().autocommit_block():
    op.execute("INSERT INTO migration_audit (revision, direction) VALUES ('0006', 'upgrade')")
op.execute("ALTER TABLE busy ADD COLUMN note text")
'''),
    "select-of-a-writing-function-in-block": revision("0006", "0005", '''
with op.get_context().autocommit_block():
    op.execute("SELECT backfill()")
op.execute("ALTER TABLE busy ADD COLUMN note text")
'''),
    "insert-before-block": revision("0006", "0005", '''
op.execute("INSERT INTO migration_audit (revision, direction) VALUES ('0006', 'upgrade')")
with op.get_context().autocommit_block():
    pass
op.execute("ALTER TABLE busy ADD COLUMN note text")
'''),
}
BACKFILL = ("CREATE FUNCTION backfill() RETURNS void LANGUAGE plpgsql AS $$ BEGIN "
            "INSERT INTO migration_audit (revision, direction) VALUES ('0006', 'upgrade'); "
            "END $$")
SLEEPY = revision("0006", "0005", '''
op.execute("CREATE TABLE sleepy_marker (id int)")
op.execute("SELECT pg_sleep(600)")
''')
DDL_LOCK_TIMEOUT_S = 1.0
# A reader queued behind the ALTER waits at most the DDL lock timeout; the margin is generous
# (a loaded machine), and still far below the forever a reader waits without the timeout.
READER_LOCK_TIMEOUT = f"{int((DDL_LOCK_TIMEOUT_S + 5) * 1000)}ms"


@pytest.fixture
def busy(database: Database) -> Database:
    """The test's database with the table `busy` (the test creates it: no revision does)."""
    database.query("CREATE TABLE busy (id int)")
    return database


@pytest.fixture
def blocker(busy: Database) -> Iterator[Any]:
    """A transaction holding a lock on `busy` (as an application's long transaction would)."""
    connection = psycopg2.connect(busy.url.replace("+psycopg2", ""),
                                  application_name=BLOCKER_NAME)
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM busy")
    yield connection
    connection.close()


def job(database: Database, tmp_path: Path, **variables: str) -> dict[str, str]:
    """The job's environment for the project whose revision 0006 alters `busy`."""
    config = make_project(tmp_path, extra={"0006_alter_busy": ALTER_BUSY})
    return job_env(**{"DATABASE_URL": database.url, "ALEMBIC_CONFIG": str(config),
                      "MIGRATE_DDL_LOCK_TIMEOUT": f"{DDL_LOCK_TIMEOUT_S}s", **variables})


def names_blocker(event: dict[str, Any], pid: int) -> bool:
    """Whether a retry event names the test's transaction, by pid and application_name."""
    return any(b["pid"] == pid and b["application_name"] == BLOCKER_NAME
               for b in event.get("blockers", []))


class Readers:
    """Sessions reading `busy` over and over, each waiting for a lock at most its own
    lock_timeout: a reader queued behind the ALTER for longer fails the test."""

    def __init__(self, database: Database, count: int = 3) -> None:
        self.url = database.url.replace("+psycopg2", "")
        self.errors: list[str] = []
        self.reads = 0
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._read, daemon=True) for _ in range(count)]

    def __enter__(self) -> Readers:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(30)

    def _read(self) -> None:
        connection = psycopg2.connect(self.url, application_name="reader",
                                      options=f"-c lock_timeout={READER_LOCK_TIMEOUT}")
        connection.autocommit = True
        try:
            with connection.cursor() as cursor:
                while not self.stop.is_set():
                    cursor.execute("SELECT count(*) FROM busy")
                    self.reads += 1
        except psycopg2.Error as error:
            self.errors.append(str(error).strip())
        finally:
            connection.close()


class TestRetries:
    """A blocked revision gives way to readers, is retried naming its blocker, and runs once
    the blocker commits."""

    def test_readers_never_wait_and_the_revision_runs_once_the_blocker_commits(
            self, busy: Database, blocker: Any, tmp_path: Path) -> None:
        with Readers(busy) as readers:
            running = RunningJob(env=job(busy, tmp_path, MIGRATE_DDL_LOCK_RETRIES="10"))
            for attempt in (1, 2):
                event = running.wait_for_event("ddl_lock_timeout", attempt=attempt)
                assert names_blocker(event, blocker.get_backend_pid()), event
            blocker.commit()
            result = running.finish()
            assert not readers.errors, readers.errors
        assert result.code == 0, result.stderr
        assert busy.applications() == {r: 1 for r in ("0001", "0002", "0003", "0004", "0005",
                                                        "0006")}
        assert busy.revisions() == ["0006"]
        assert readers.reads > 0

    def test_exit_9_after_the_last_try_keeps_earlier_revisions(
            self, busy: Database, blocker: Any, tmp_path: Path) -> None:
        result = run_job(env=job(busy, tmp_path, MIGRATE_DDL_LOCK_RETRIES="1"))
        assert result.code == 9, result.stderr
        assert result.names().count("ddl_lock_timeout") == 1
        last = result.events[-1]
        assert last["event"] == "ddl_blocked"
        assert "0006" in last["message"]
        assert str(blocker.get_backend_pid()) in last["message"]
        assert BLOCKER_NAME in last["message"]
        assert busy.revisions() == ["0005"]
        assert "0006" not in busy.applications()
        assert busy.query("SELECT count(*) FROM information_schema.columns "
                          "WHERE table_name = 'busy' AND column_name = 'note'")[0][0] == 0
        assert busy.advisory_locks() == 0

    @pytest.mark.parametrize("body", list(COMMITTED_BEFORE_THE_ALTER))
    def test_no_retry_once_part_of_the_revision_committed(
            self, busy: Database, blocker: Any, tmp_path: Path, body: str) -> None:
        """What a revision ran in an autocommit_block, or before one (Alembic commits on
        entering it), stays: a retry would run it twice, so the lock timeout fails the
        revision (exit 6) saying what stays committed."""
        busy.query(BACKFILL)
        config = make_project(tmp_path, extra={"0006_alter_busy": COMMITTED_BEFORE_THE_ALTER[body]})
        result = run_job(env=job_env(DATABASE_URL=busy.url, ALEMBIC_CONFIG=str(config),
                                     MIGRATE_DDL_LOCK_TIMEOUT=f"{DDL_LOCK_TIMEOUT_S}s",
                                     MIGRATE_DDL_LOCK_RETRIES="3"))
        assert result.code == 6, result.stderr
        assert "ddl_lock_timeout" not in result.names()
        message = result.events[-1]["message"]
        assert "may stay committed" in message, message
        assert "Traceback" not in result.stderr
        assert busy.applications()["0006"] == 1
        assert busy.revisions() == ["0005"]
        assert busy.advisory_locks() == 0

    def test_sigterm_during_the_retry_sleep_exits_143(
            self, busy: Database, blocker: Any, tmp_path: Path) -> None:
        running = RunningJob(env=job(busy, tmp_path, MIGRATE_DDL_LOCK_RETRIES="10"))
        running.wait_for_event("ddl_lock_timeout", attempt=1)
        running.process.send_signal(signal.SIGTERM)
        result = running.finish(timeout=60)
        assert result.code == 143, result.stderr
        assert result.events[-1]["event"] == "interrupted"
        assert "ddl_blocked" not in result.names()
        assert busy.revisions() == ["0005"]
        assert busy.advisory_locks() == 0

    def test_zero_turns_it_off_and_the_job_waits_for_the_blocker(
            self, busy: Database, blocker: Any, tmp_path: Path) -> None:
        running = RunningJob(env=job(busy, tmp_path, MIGRATE_DDL_LOCK_TIMEOUT="0"))
        assert wait_until(lambda: busy.query(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE "
            "'migration-job:%%' AND wait_event_type = 'Lock' AND query LIKE '%%busy%%'")[0][0]
            == 1, timeout=60), "the job's ALTER never waited for the lock"
        blocker.commit()
        result = running.finish()
        assert result.code == 0, result.stderr
        assert "ddl_lock_timeout" not in result.names()
        assert busy.revisions() == ["0006"]


class TestStatementTimeout:
    """A revision that runs longer than the statement timeout exits 6, saying so."""

    def test_statement_timeout_exits_6(self, database: Database, tmp_path: Path) -> None:
        config = make_project(tmp_path, extra={"0006_sleepy": SLEEPY})
        result = run_job(env=job_env(DATABASE_URL=database.url, ALEMBIC_CONFIG=str(config),
                                     MIGRATE_STATEMENT_TIMEOUT="1s"))
        assert result.code == 6, result.stderr
        last = result.events[-1]
        assert "statement timeout" in last["message"]
        assert "0006" in last["message"]
        assert "interrupted" not in result.names()
        assert database.revisions() == ["0005"]
        assert not database.exists("sleepy_marker")


def role_setting(database: Database, name: str, value: str) -> None:
    """Set `name` for the test's role in the test's database only (pg_db_role_setting)."""
    database.query(f'ALTER ROLE CURRENT_USER IN DATABASE "{database.name}" SET {name} = '
                   f"'{value}'")


class TestTheDatabasesOwnTimeouts:
    """With the job's timeouts off (0), a role's lock_timeout or statement_timeout still
    limits the revisions: the message names that setting, never 'the DDL lock timeout (0 s)'."""

    def test_a_roles_lock_timeout(self, busy: Database, blocker: Any, tmp_path: Path) -> None:
        role_setting(busy, "lock_timeout", "500ms")
        result = run_job(env=job(busy, tmp_path, MIGRATE_DDL_LOCK_TIMEOUT="0"))
        assert result.code == 9, result.stderr
        message = result.events[-1]["message"]
        assert "0 s" not in message, message
        assert "lock_timeout" in message, message
        assert "role" in message, message
        assert "MIGRATE_DDL_LOCK_TIMEOUT" in message, message
        assert "Traceback" not in result.stderr
        assert busy.revisions() == ["0005"]
        assert "0006" not in busy.applications()

    def test_a_roles_statement_timeout(self, database: Database, tmp_path: Path) -> None:
        role_setting(database, "statement_timeout", "1s")
        config = make_project(tmp_path, extra={"0006_sleepy": SLEEPY})
        result = run_job(env=job_env(DATABASE_URL=database.url, ALEMBIC_CONFIG=str(config)))
        assert result.code == 6, result.stderr
        message = result.events[-1]["message"]
        assert "0 s" not in message, message
        assert "statement_timeout" in message, message
        assert "role" in message, message
        assert "Traceback" not in result.stderr
        assert database.revisions() == ["0005"]
        assert not database.exists("sleepy_marker")


CONCURRENT_INDEX = revision("0006", "0005", '''
with op.get_context().autocommit_block():
    op.execute("CREATE INDEX CONCURRENTLY ix_employee_name ON hr.employee (name)")
op.execute("INSERT INTO migration_audit (revision, direction) VALUES ('0006', 'upgrade')")
''')
OLD_TRANSACTION = "old-repeatable-read"


@contextmanager
def old_transaction(database: Database) -> Iterator[Any]:
    """A REPEATABLE READ transaction on a table no revision touches, holding its snapshot:
    CREATE INDEX CONCURRENTLY waits for it to end, though it locks nothing the build needs."""
    database.query("CREATE TABLE IF NOT EXISTS unrelated (id int)")
    connection = psycopg2.connect(database.url.replace("+psycopg2", ""),
                                  application_name=OLD_TRANSACTION)
    try:
        connection.set_session(isolation_level="REPEATABLE READ")
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM unrelated")
        yield connection
    finally:
        connection.close()


def index_state(database: Database, name: str) -> list[bool]:
    """indisvalid of each index of that name (none: [])."""
    return [row[0] for row in database.query(
        "SELECT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
        "WHERE c.relname = %s", name)]


class TestConcurrentIndex:
    """CREATE INDEX CONCURRENTLY waits for old transactions, which blocks no query: it waits
    within the statement timeout, not the DDL lock timeout, naming the transaction it waits
    for; a build that fails leaves no INVALID index, and one an earlier run left is rebuilt."""

    def env(self, database: Database, tmp_path: Path, **variables: str) -> dict[str, str]:
        """The job's environment for the project whose revision 0006 builds an index, and the
        database at 0005."""
        config = make_project(tmp_path, extra={"0006_concurrent_index": CONCURRENT_INDEX})
        env = job_env(DATABASE_URL=database.url, ALEMBIC_CONFIG=str(config),
                      MIGRATE_DDL_LOCK_TIMEOUT=f"{DDL_LOCK_TIMEOUT_S}s", **variables)
        assert run_job("--target", "0005", env=env).code == 0
        return env

    def test_waits_for_an_old_transaction_naming_it(self, database: Database,
                                                    tmp_path: Path) -> None:
        env = self.env(database, tmp_path)
        with old_transaction(database) as old:
            running = RunningJob(env=env)
            waiting = running.wait_for_event("revision_waiting", timeout=90)
            assert any(b["pid"] == old.get_backend_pid()
                       and b["application_name"] == OLD_TRANSACTION
                       for b in waiting["blockers"]), waiting
            old.commit()
            result = running.finish()
        assert result.code == 0, result.stderr
        assert "ddl_lock_timeout" not in result.names()
        assert index_state(database, "ix_employee_name") == [True]
        assert database.applications()["0006"] == 1
        assert database.revisions() == ["0006"]

    def test_a_failed_build_leaves_no_invalid_index(self, database: Database,
                                                    tmp_path: Path) -> None:
        env = self.env(database, tmp_path, MIGRATE_STATEMENT_TIMEOUT="3s")
        with old_transaction(database):
            result = run_job(env=env)
        assert result.code == 6, result.stderr
        message = result.events[-1]["message"]
        assert "statement timeout" in message, message
        assert "Traceback" not in result.stderr
        assert index_state(database, "ix_employee_name") == []
        assert database.revisions() == ["0005"]
        rerun = run_job(env=env)
        assert rerun.code == 0, rerun.stderr
        assert index_state(database, "ix_employee_name") == [True]
        assert database.applications()["0006"] == 1

    def test_an_invalid_index_an_earlier_run_left_is_rebuilt(self, database: Database,
                                                             tmp_path: Path) -> None:
        env = self.env(database, tmp_path)
        # What a killed run leaves: a concurrent build that never finished (here: it failed).
        database.query("INSERT INTO hr.employee (name) VALUES ('twin'), ('twin')")
        with pytest.raises(psycopg2.Error, match="could not create unique index"):
            database.query("CREATE UNIQUE INDEX CONCURRENTLY ix_employee_name "
                           "ON hr.employee (name)")
        assert index_state(database, "ix_employee_name") == [False]
        result = run_job(env=env)
        assert result.code == 0, result.stderr
        assert result.event("invalid_index_dropped")["index"] == "hr.ix_employee_name"
        assert index_state(database, "ix_employee_name") == [True]
        assert database.applications()["0006"] == 1
