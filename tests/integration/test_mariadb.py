"""The job on MariaDB (the MySQL/MariaDB engine): a fresh database per test on the session's
server, the real job as a subprocess, its JSON events read as it prints them.

MySQL commits DDL at once, so the job records each revision as started before running it (in
`<version_table>_unfinished`) and refuses to go on past one that did not finish (exit 10) until
it is repaired and marked so. The named lock (GET_LOCK) is seen from the server's side through
the metadata_lock_info plugin, which the tests install on the session's server: its
METADATA_LOCK_INFO table lists every user lock by name and holding connection, so the tests
need not know how the job derives the lock's name.
"""

from __future__ import annotations

import itertools
import json
import re
import signal
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote

import pytest

from tests.support.audit_checks import changed_file_then_older_image
from tests.support.job import (
    Result,
    RunningJob,
    imported_modules,
    job_env,
    run_job,
    wait_until,
)
from tests.support.mariadbserver import MariaDBServer
from tests.support.pgserver import PASSWORD, free_port
from tests.support.projects import (
    MYSQL_AFTER_0004,
    MYSQL_FAILING,
    MYSQL_FIXED,
    MYSQL_GATE,
    MYSQL_GATED,
    MYSQL_SLOW,
    make_mysql_project,
    revision,
)

HEAD = ["0003"]
UNFINISHED = "alembic_version_unfinished"
LOCK_NAME = re.compile(r"migration-job:-?[0-9]+")
_numbers = itertools.count()


@dataclass
class MariaDatabase:
    """A database a test migrates on a MariaDB server, and the project that migrates it."""

    server: MariaDBServer
    name: str
    config: Path
    scheme: str = "mysql+pymysql"
    # Jobs started in the background, killed after the test if one is still running.
    started: list[RunningJob] = field(default_factory=list)

    @property
    def url(self) -> str:
        """The job's URL, its password URL-encoded."""
        return self.server.url(self.name, self.scheme)

    def env(self, **overrides: str) -> dict[str, str]:
        """The job's environment for this database."""
        return job_env(DATABASE_URL=self.url, ALEMBIC_CONFIG=str(self.config), **overrides)

    def run(self, *args: str, **overrides: str) -> Result:
        """Run the job to completion."""
        return run_job(*args, env=self.env(**overrides))

    def start(self, *args: str, **overrides: str) -> RunningJob:
        """Start the job in the background."""
        job = RunningJob(*args, env=self.env(**overrides))
        self.started.append(job)
        return job

    def add_revision(self, name: str, source: str) -> None:
        """Add (or replace) a revision file in the project."""
        (self.config.parent / "migrations" / "versions" / f"{name}.py").write_text(source)

    def query(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        """Rows of a statement, on an autocommit connection of the test's own."""
        connection = self.server.connect(self.name)
        try:
            with connection.cursor() as cursor:
                cursor.execute(sql, params or None)
                return list(cursor.fetchall()) if cursor.description else []
        finally:
            connection.close()

    def exists(self, table: str) -> bool:
        """Whether a table exists in this database."""
        return bool(self.query("SELECT 1 FROM information_schema.TABLES "
                               "WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s", self.name, table))

    def tables(self) -> list[str]:
        """Every table of this database."""
        return sorted(r[0] for r in self.query(
            "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s",
            self.name))

    def revisions(self) -> list[str]:
        """What alembic_version says (empty if it does not exist)."""
        if not self.exists("alembic_version"):
            return []
        return sorted(r[0] for r in self.query("SELECT version_num FROM alembic_version"))

    def applications(self) -> dict[str, int]:
        """How often each revision was applied, from the audit table."""
        rows = self.query("SELECT revision, count(*) FROM migration_audit "
                          "WHERE direction = 'upgrade' GROUP BY revision")
        return {r[0]: int(r[1]) for r in rows}

    def unfinished(self) -> list[str]:
        """The revisions the job recorded as started and not finished."""
        if not self.exists(UNFINISHED):
            return []
        return sorted(r[0] for r in self.query(f"SELECT revision FROM {UNFINISHED}"))

    def running_statements(self, like: str = "%SLEEP(%") -> list[int]:
        """Connection ids of other sessions in this database running a matching statement."""
        return [int(r[0]) for r in self.query(
            "SELECT ID FROM information_schema.PROCESSLIST WHERE DB = %s "
            "AND COMMAND = 'Query' AND INFO LIKE %s AND ID <> CONNECTION_ID()",
            self.name, like)]

    def migration_locks(self) -> dict[str, int]:
        """The job's named locks held by sessions in this database: name -> connection id."""
        rows = self.query(
            "SELECT l.TABLE_SCHEMA, l.THREAD_ID FROM information_schema.METADATA_LOCK_INFO l "
            "JOIN information_schema.PROCESSLIST p ON p.ID = l.THREAD_ID "
            "WHERE l.LOCK_TYPE = 'User lock' AND l.TABLE_SCHEMA LIKE 'migration-job:%%' "
            "AND p.DB = %s", self.name)
        return {r[0]: int(r[1]) for r in rows}

    def lock_is_free(self, name: str) -> bool:
        """Whether nobody on the server holds the named lock."""
        return bool(self.query("SELECT IS_FREE_LOCK(%s)", name)[0][0] == 1)

    def lock_user(self, name: str) -> int | None:
        """The connection id holding the named lock, as the server says (IS_USED_LOCK)."""
        value = self.query("SELECT IS_USED_LOCK(%s)", name)[0][0]
        return None if value is None else int(value)


@pytest.fixture(scope="module")
def server(mariadb: MariaDBServer) -> MariaDBServer:
    """The session's server, with the plugin that lists named locks and their holders."""
    if not mariadb.scalar("SELECT count(*) FROM information_schema.PLUGINS "
                          "WHERE PLUGIN_NAME = 'METADATA_LOCK_INFO' AND PLUGIN_STATUS = 'ACTIVE'"):
        mariadb.scalar("INSTALL SONAME 'metadata_lock_info'")
    return mariadb


class MakeDatabase(Protocol):
    """Makes a fresh database and a MySQL project for it (see make_mysql_project)."""

    def __call__(self, *, scheme: str = ..., extra: dict[str, str] | None = ...,
                 generic_env: bool = ...) -> MariaDatabase: ...


@pytest.fixture
def make_db(server: MariaDBServer, request: pytest.FixtureRequest,
            tmp_path: Path) -> Iterator[MakeDatabase]:
    """New, empty databases named after the test, each with a project of its own; a job the
    test left running is killed after it."""
    made: list[MariaDatabase] = []
    stem = re.sub(r"[^a-z0-9]+", "_", request.node.name.lower())[:40]

    def make(*, scheme: str = "mysql+pymysql", extra: dict[str, str] | None = None,
             generic_env: bool = True) -> MariaDatabase:
        name = f"m{next(_numbers)}_{stem}"
        server.create_database(name)
        config = make_mysql_project(tmp_path / f"project{len(made)}", extra=extra,
                                    generic_env=generic_env)
        made.append(MariaDatabase(server, name, config, scheme))
        return made[-1]

    yield make
    for database in made:
        stop_leftovers(database)


@pytest.fixture
def db(make_db: MakeDatabase) -> MariaDatabase:
    """A fresh database and a MySQL project with Alembic's generic env.py."""
    return make_db()


def stop_leftovers(database: MariaDatabase) -> None:
    """Kill the background jobs of a test that ended before they did."""
    for job in database.started:
        if job.process.poll() is None:
            job.process.kill()
            job.process.wait(30)


def assert_failed_cleanly(result: Result, code: int, *fragments: str) -> str:
    """Exit `code`, no traceback, the last line a JSON event naming `fragments`.

    (Lines before it may be Alembic's own: the generic env.py logs through alembic.ini.)
    """
    assert result.code == code, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert result.events, result.stderr
    assert result.events[-1]["event"] is not None, result.stderr
    message = str(result.events[-1]["message"])
    for fragment in fragments:
        assert fragment in message, message
    return message


def assert_no_password(result: Result) -> None:
    """The password, plain or URL-encoded, appears nowhere in what the job printed."""
    printed = result.stdout + result.stderr
    assert PASSWORD not in printed
    assert quote(PASSWORD, safe="") not in printed


def applied(result: Result) -> list[str]:
    """The revisions a run applied, in order."""
    return [e["revision"] for e in result.events if e["event"] == "revision_applied"]


class TestUpgrade:
    """A fresh database is migrated to head once; a rerun is a no-op that takes no lock."""

    def test_fresh_upgrade_then_rerun_is_a_noop_without_the_lock(self, db: MariaDatabase) -> None:
        first = db.run()
        assert first.code == 0, first.stderr
        assert applied(first) == ["0001", "0002", "0003"]
        assert "lock_acquired" in first.names()
        assert db.revisions() == HEAD
        assert db.applications() == {"0001": 1, "0002": 1, "0003": 1}
        assert db.query("SELECT name, price FROM items ORDER BY id") == [("widget", 3),
                                                                         ("gadget", 5)]
        # Each record of a started revision is gone once the revision finished.
        assert db.unfinished() == []
        again = db.run()
        assert again.code == 0, again.stderr
        assert "lock_acquired" not in again.names()
        assert again.event("already_at_target")["revision"] == "0003"
        assert db.applications() == {"0001": 1, "0002": 1, "0003": 1}

    def test_manifest_fast_path_imports_no_alembic(self, db: MariaDatabase) -> None:
        assert db.run("manifest").code == 0
        assert db.run().code == 0
        fast, imported = imported_modules(db.env())
        assert fast.code == 0, fast.stderr
        assert fast.event("already_at_target")["via"] == "manifest"
        assert "pymysql" in imported
        assert not [m for m in imported
                    if m.split(".")[0] in ("alembic", "sqlalchemy", "psycopg2")]

    @pytest.mark.parametrize("scheme", ["mysql", "mysql+pymysql", "mariadb", "mariadb+pymysql",
                                        "mysql+mysqldb"])
    def test_url_schemes_all_mean_pymysql(self, make_db: MakeDatabase, scheme: str) -> None:
        database = make_db(scheme=scheme)
        assert database.url.startswith(f"{scheme}://")
        result = database.run()
        assert result.code == 0, result.stderr
        assert database.revisions() == HEAD
        assert database.applications() == {"0001": 1, "0002": 1, "0003": 1}
        assert_no_password(result)

    @pytest.mark.parametrize("scheme", ["mysql+mysqlconnector", "mariadb+mariadbconnector"])
    def test_other_drivers_are_exit_2_in_one_line(self, db: MariaDatabase, scheme: str) -> None:
        db.scheme = scheme
        result = db.run(MIGRATE_WAIT_TIMEOUT="60")
        assert_failed_cleanly(result, 2, scheme.split("+")[1])
        assert len(result.stderr.splitlines()) == 1, result.stderr
        assert result.events[-1]["event"] == "configuration_error"
        assert db.tables() == []
        assert_no_password(result)

    def test_status_json_and_check(self, db: MariaDatabase) -> None:
        pending = db.run("status", "--json")
        assert pending.code == 0, pending.stderr
        assert json.loads(pending.stdout)["pending"] == ["0001", "0002", "0003"]
        assert_failed_cleanly(db.run("check"), 8, "0001, 0002, 0003")
        assert db.run().code == 0
        status = db.run("status", "--json")
        assert status.code == 0, status.stderr
        done = json.loads(status.stdout)
        assert (done["current"], done["pending"], done["at_target"], done["problem"]) == \
            (HEAD, [], True, None)
        assert db.run("check").code == 0
        assert_no_password(status)

    def test_sql_prints_the_pending_sql_and_runs_none(self, db: MariaDatabase) -> None:
        fresh = db.run("sql")
        assert fresh.code == 0, fresh.stderr
        for statement in ("CREATE TABLE migration_audit", "CREATE TABLE items",
                          "ALTER TABLE items ADD COLUMN price", "INSERT INTO alembic_version"):
            assert statement in fresh.stdout, fresh.stdout
        assert db.tables() == []
        assert db.run().code == 0
        db.add_revision("0004_slow", MYSQL_SLOW)
        # From the database's revision: only 0004, and its sleep is printed, never run.
        pending = db.run("sql", SLOW_SECONDS="600")
        assert pending.code == 0, pending.stderr
        assert "CREATE TABLE slow_marker" in pending.stdout
        assert "SLEEP(600.0)" in pending.stdout
        assert "CREATE TABLE items" not in pending.stdout
        assert not db.exists("slow_marker")
        assert db.revisions() == HEAD
        assert db.unfinished() == []


class TestConcurrentRunners:
    """Twenty runners started together on a fresh database apply each revision exactly once."""

    def test_each_revision_applied_once(self, db: MariaDatabase) -> None:
        jobs = [db.start() for _ in range(20)]
        results = [job.finish() for job in jobs]
        assert [r.code for r in results] == [0] * 20, [r.stderr for r in results if r.code]
        assert db.applications() == {"0001": 1, "0002": 1, "0003": 1}
        assert sum(applied(r) != [] for r in results) == 1
        assert sorted(itertools.chain.from_iterable(applied(r) for r in results)) == \
            ["0001", "0002", "0003"]
        assert sum("upgrade_finished" in r.names() for r in results) == 1
        assert db.revisions() == HEAD
        assert db.unfinished() == []
        assert db.migration_locks() == {}


@dataclass
class SlowJob:
    """A job sleeping inside revision 0004, and what the server says about it."""

    job: RunningJob
    # The connection the revision's statement runs on.
    statement_connection: int
    # The job's named lock and the connection that holds it.
    lock_name: str
    lock_holder: int


def start_slow_job(db: MariaDatabase, **overrides: str) -> SlowJob:
    """Apply up to 0003, then start an upgrade whose revision 0004 sleeps on the server."""
    assert db.run().code == 0
    db.add_revision("0004_slow", MYSQL_SLOW)
    job = db.start(SLOW_SECONDS="600", **overrides)
    job.wait_for_event("revision_started", revision="0004")
    assert wait_until(lambda: len(db.running_statements()) == 1), \
        "the slow statement never showed up on the server"
    [statement_connection] = db.running_statements()
    locks = db.migration_locks()
    assert len(locks) == 1, locks
    [(name, holder)] = locks.items()
    return SlowJob(job, statement_connection, name, holder)


def stop(slow: SlowJob) -> None:
    """SIGTERM the slow job and see it exit 143."""
    slow.job.process.send_signal(signal.SIGTERM)
    result = slow.job.finish(timeout=60)
    assert result.code == 143, result.stderr


class TestLock:
    """A named lock on the session that runs the revisions, named per database."""

    @pytest.mark.parametrize("generic_env", [True, False], ids=["generic-env", "job-env"])
    def test_revisions_run_on_the_session_holding_the_lock(self, make_db: MakeDatabase,
                                                           generic_env: bool) -> None:
        # The generic env.py builds an engine of its own, the job's env.py takes the connection
        # the job hands it: either way the revision runs on the lock's session.
        database = make_db(generic_env=generic_env)
        slow = start_slow_job(database)
        assert database.lock_user(slow.lock_name) == slow.lock_holder
        assert not database.lock_is_free(slow.lock_name)
        assert slow.statement_connection == slow.lock_holder
        stop(slow)

    @pytest.mark.parametrize("key", [None, "-1"])
    def test_lock_name(self, db: MariaDatabase, key: str | None) -> None:
        # "migration-job:" and the signed key within MySQL's 64 characters, whether the key is
        # derived (from the database and version table) or MIGRATE_LOCK_KEY gives it.
        slow = start_slow_job(db, **({"MIGRATE_LOCK_KEY": key} if key else {}))
        assert LOCK_NAME.fullmatch(slow.lock_name), slow.lock_name
        if key:
            assert slow.lock_name == f"migration-job:{key}"
        assert len(slow.lock_name) <= 64, slow.lock_name
        stop(slow)

    def test_exit_5_names_the_holder(self, db: MariaDatabase) -> None:
        slow = start_slow_job(db)
        result = db.run(MIGRATE_LOCK_TIMEOUT="1")
        message = assert_failed_cleanly(result, 5, f"held by connection id {slow.lock_holder} (",
                                        " from 127.0.0.1")
        assert result.events[-1]["event"] == "lock_timeout", message
        waiting = result.event("waiting_for_lock")
        # A MariaDB session's id is a connection id (CONNECTION_ID()), not a process id.
        assert waiting["holder"]["connection_id"] == slow.lock_holder
        assert "pid" not in waiting["holder"]
        assert f"held by connection id {slow.lock_holder} (" in waiting["message"]
        assert "lock_acquired" not in result.names()
        assert_no_password(result)
        stop(slow)

    def test_waiting_runner_stops_on_sigterm(self, db: MariaDatabase) -> None:
        slow = start_slow_job(db)
        waiter = db.start(MIGRATE_LOCK_TIMEOUT="600")
        waiter.wait_for_event("waiting_for_lock")
        waiter.process.send_signal(signal.SIGTERM)
        result = waiter.finish(timeout=60)
        assert result.code == 143, result.stderr
        assert result.events[-1]["event"] == "interrupted", result.stderr
        assert "revision_started" not in result.names()
        assert db.lock_user(slow.lock_name) == slow.lock_holder
        stop(slow)

    def test_databases_on_one_server_do_not_share_a_lock(self, db: MariaDatabase,
                                                         make_db: MakeDatabase) -> None:
        slow = start_slow_job(db)
        other = make_db()
        result = other.run(MIGRATE_LOCK_TIMEOUT="1")
        assert result.code == 0, result.stderr
        assert "waiting_for_lock" not in result.names()
        assert other.revisions() == HEAD
        assert not db.lock_is_free(slow.lock_name)
        stop(slow)


# Two ALTERs (each committed at once on MySQL) with Python code between them that waits for
# the test's hand-off: the file GATE_DIR/go (it says it got there with GATE_DIR/between).
TWO_ALTERS = revision("0004", "0003", '''
import os, pathlib, time
op.execute("ALTER TABLE items ADD COLUMN first_note varchar(10)")
gate = pathlib.Path(os.environ["GATE_DIR"])
(gate / "between").touch()
deadline = time.monotonic() + 120
while not (gate / "go").exists() and time.monotonic() < deadline:
    time.sleep(0.05)
op.execute("ALTER TABLE items ADD COLUMN second_note varchar(10)")
op.execute("INSERT INTO migration_audit VALUES ('0004', 'upgrade')")
''')


def column_names(db: MariaDatabase, table: str) -> list[str]:
    """The columns of a table of the test's database."""
    return [r[0] for r in db.query("SELECT COLUMN_NAME FROM information_schema.COLUMNS "
                                   "WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s", db.name, table)]


class TestSignals:
    """SIGTERM kills the running statement and releases the lock; the revision stays unfinished
    (its DDL was committed) until repaired. SIGKILL: the server frees the lock."""

    def test_sigterm_kills_the_statement_and_releases_the_lock(self, db: MariaDatabase) -> None:
        slow = start_slow_job(db)
        slow.job.process.send_signal(signal.SIGTERM)
        # Only a hang fails here: exit 143 rather than a kill shows the job stopped by itself.
        result = slow.job.finish(timeout=60)
        assert result.code == 143, result.stderr
        assert result.events[-1]["event"] == "interrupted", result.stderr
        assert "statement_cancelled" in result.names()
        assert "lock_released" in result.names()
        assert db.running_statements() == []
        assert db.lock_is_free(slow.lock_name)
        assert db.revisions() == HEAD
        # MySQL committed the CREATE TABLE; the audit row after it was rolled back.
        assert db.exists("slow_marker")
        assert "0004" not in db.applications()
        assert db.unfinished() == ["0004"]

    def test_unfinished_revision_refused_until_marked_repaired(self, db: MariaDatabase) -> None:
        stop(start_slow_job(db))
        refused = db.run()
        message = assert_failed_cleanly(refused, 10, "0004", "mark-repaired")
        assert refused.events[-1]["event"] == "revision_unfinished", message
        assert "revision_started" not in refused.names()
        assert db.revisions() == HEAD
        assert db.unfinished() == ["0004"]
        # The operator repairs what 0004 left (its table), then says so.
        db.query("DROP TABLE slow_marker")
        marked = db.run("mark-repaired", "0004")
        assert marked.code == 0, marked.stderr
        assert marked.event("revision_marked_repaired")["revision"] == "0004"
        assert db.unfinished() == []
        assert db.revisions() == HEAD
        rerun = db.run()
        assert rerun.code == 0, rerun.stderr
        assert applied(rerun) == ["0004"]
        assert db.revisions() == ["0004"]
        assert db.applications() == {"0001": 1, "0002": 1, "0003": 1, "0004": 1}
        assert db.unfinished() == []

    def test_sigterm_between_two_alters_says_what_stays(self, db: MariaDatabase,
                                                         tmp_path: Path) -> None:
        """SIGTERM while the revision runs Python code between two ALTERs: its DDL stays
        committed, so the last line says the revision may be partly applied, never that it
        was rolled back; the next run exits 10."""
        assert db.run().code == 0
        db.add_revision("0004_two_alters", TWO_ALTERS)
        job = db.start(GATE_DIR=str(tmp_path))
        assert wait_until(lambda: (tmp_path / "between").exists(), timeout=60), \
            "the revision never reached the code between its ALTERs"
        job.process.send_signal(signal.SIGTERM)
        job.wait_for_event("signal_received")
        (tmp_path / "go").touch()
        result = job.finish(timeout=60)
        message = assert_failed_cleanly(result, 143, "0004", "mark-repaired")
        assert "rolled back" not in message, message
        assert "released the lock" in message, message
        assert "first_note" in column_names(db, "items")
        assert db.revisions() == HEAD
        assert db.unfinished() == ["0004"]
        refused = db.run()
        assert_failed_cleanly(refused, 10, "0004", "mark-repaired")

    def test_sigkill_frees_the_lock_and_the_rerun_refuses(self, db: MariaDatabase) -> None:
        slow = start_slow_job(db)
        slow.job.process.send_signal(signal.SIGKILL)
        assert slow.job.finish(timeout=10).code == -signal.SIGKILL
        # The server notices the dead client within seconds (polled, never a fixed sleep).
        assert wait_until(lambda: db.lock_is_free(slow.lock_name), timeout=60)
        assert wait_until(lambda: db.running_statements() == [], timeout=60)
        assert db.revisions() == HEAD
        assert db.unfinished() == ["0004"]
        # Strict: the job cannot tell that 0004's changes need no repair.
        refused = db.run()
        assert_failed_cleanly(refused, 10, "0004", "mark-repaired")
        assert refused.events[-1]["event"] == "revision_unfinished", refused.stderr
        assert db.revisions() == HEAD
        assert "0004" not in db.applications()


class TestUnfinishedRevisions:
    """A failed revision is unfinished on MySQL (exit 10); records are repaired or cleared."""

    def test_failing_revision_is_exit_10_then_repaired(self, db: MariaDatabase) -> None:
        assert db.run().code == 0
        db.add_revision("0004_failing", MYSQL_FAILING)
        failed = db.run()
        assert_failed_cleanly(failed, 10, "0004", "table_that_does_not_exist")
        assert db.revisions() == HEAD
        assert db.exists("half_done")
        assert "0004" not in db.applications()
        assert db.unfinished() == ["0004"]
        refused = db.run()
        assert_failed_cleanly(refused, 10, "0004", "mark-repaired")
        assert refused.events[-1]["event"] == "revision_unfinished", refused.stderr
        # Repaired: the half-done table dropped and the revision fixed.
        db.query("DROP TABLE half_done")
        db.add_revision("0004_failing", MYSQL_FIXED)
        marked = db.run("mark-repaired", "0004")
        assert marked.code == 0, marked.stderr
        assert "revision_marked_repaired" in marked.names()
        fixed = db.run()
        assert fixed.code == 0, fixed.stderr
        assert db.revisions() == ["0004"]
        assert db.applications()["0004"] == 1
        assert db.exists("half_done")
        assert db.unfinished() == []

    def test_mark_repaired_without_a_record_is_exit_2(self, db: MariaDatabase) -> None:
        assert db.run().code == 0
        result = db.run("mark-repaired", "0002")
        assert_failed_cleanly(result, 2, "0002")
        assert db.revisions() == HEAD
        assert db.unfinished() == []

    def test_record_of_a_completed_revision_is_cleared(self, db: MariaDatabase) -> None:
        assert db.run().code == 0
        db.add_revision("0004_gated", MYSQL_GATED)
        gate = db.server.connect()
        try:
            with gate.cursor() as cursor:
                cursor.execute("SELECT GET_LOCK(%s, 0)", (MYSQL_GATE,))
                assert cursor.fetchone() == (1,)
            job = db.start()
            job.wait_for_event("revision_started", revision="0004")
            assert wait_until(lambda: db.unfinished() == ["0004"])
            # The record as a runner that dies between its commit and the record's removal
            # leaves it (a plain read: it takes no lock the job's transaction could meet).
            connection = db.server.connect(db.name)
            try:
                with connection.cursor() as cursor:
                    cursor.execute(f"SHOW CREATE TABLE {UNFINISHED}")
                    shown = cursor.fetchone()
                    assert shown is not None
                    create_table = str(shown[1])
                    cursor.execute(f"SELECT * FROM {UNFINISHED}")
                    columns = [c[0] for c in cursor.description or ()]
                    records = list(cursor.fetchall())
            finally:
                connection.close()
        finally:
            gate.close()
        done = job.finish()
        assert done.code == 0, done.stderr
        assert db.revisions() == ["0004"]
        assert db.unfinished() == []
        # The job may drop the table once no record is left: then it comes back as it was.
        if not db.exists(UNFINISHED):
            db.query(create_table)
        names = ", ".join(f"`{c}`" for c in columns)
        marks = ", ".join(["%s"] * len(columns))
        for record in records:
            db.query(f"INSERT INTO {UNFINISHED} ({names}) VALUES ({marks})", *record)
        assert db.unfinished() == ["0004"]
        db.add_revision("0005_after", MYSQL_AFTER_0004)
        rerun = db.run()
        assert rerun.code == 0, rerun.stderr
        assert applied(rerun) == ["0005"]
        assert db.revisions() == ["0005"]
        assert db.unfinished() == []
        assert db.applications() == {"0001": 1, "0002": 1, "0003": 1, "0004": 1, "0005": 1}


    @pytest.mark.parametrize("then", ["released", "killed"])
    def test_record_goes_with_the_version_tables_update(self, db: MariaDatabase,
                                                        then: str) -> None:
        """The record is deleted in the revision's last transaction: while its DELETE waits
        for a row lock the test holds, the version table has not moved either; once let go
        both commit together, and a runner killed there leaves both as they were."""
        assert db.run().code == 0
        db.add_revision("0004_gated", MYSQL_GATED)
        gate = db.server.connect()
        blocker = db.server.connect(db.name)
        try:
            with gate.cursor() as cursor:
                cursor.execute("SELECT GET_LOCK(%s, 0)", (MYSQL_GATE,))
            job = db.start()
            job.wait_for_event("revision_started", revision="0004")
            assert wait_until(lambda: db.unfinished() == ["0004"])
            blocker.begin()
            with blocker.cursor() as cursor:
                cursor.execute(f"SELECT revision FROM {UNFINISHED} WHERE revision = '0004' "
                               "FOR UPDATE")
            with gate.cursor() as cursor:
                cursor.execute("SELECT RELEASE_LOCK(%s)", (MYSQL_GATE,))
            assert wait_until(lambda: db.running_statements(f"DELETE FROM `{UNFINISHED}`%")), \
                "the record's DELETE never waited for the test's row lock"
            assert db.revisions() == ["0003"]
            if then == "killed":
                job.process.send_signal(signal.SIGKILL)
        finally:
            blocker.rollback()
            blocker.close()
            gate.close()
        result = job.finish()
        if then == "killed":
            assert result.code == -signal.SIGKILL
            assert db.revisions() == ["0003"]
            assert db.unfinished() == ["0004"]
            assert "0004" not in db.applications()
            return
        assert result.code == 0, result.stderr
        assert db.revisions() == ["0004"]
        assert db.unfinished() == []
        assert "unfinished_record_cleared" not in db.run().names()


# Lets go of every named lock of its session, the migration lock too, the session alive.
RELEASES_ALL_LOCKS = revision("0004", "0003", '''
op.execute("INSERT INTO migration_audit VALUES ('0004', 'upgrade')")
op.execute("SELECT RELEASE_ALL_LOCKS()")
''')


@pytest.mark.parametrize("history", ["on", "off"])
class TestLockLetGoWithinTheSession:
    """A revision whose own SQL lets go of the migration lock: the check before its commit
    (asked by the statement that deletes its unfinished record) stops it, exit 3; what it
    wrote and the version table's update roll back, its record stays."""

    def test_exit_3(self, db: MariaDatabase, history: str) -> None:
        assert db.run().code == 0
        db.add_revision("0004_releases", RELEASES_ALL_LOCKS)
        lost = db.run(MIGRATE_HISTORY=history)
        assert_failed_cleanly(lost, 3, "no longer held")
        assert lost.events[-1]["event"] == "lock_lost"
        assert db.revisions() == ["0003"]
        assert "0004" not in db.applications()
        assert db.unfinished() == ["0004"]
        if history == "on":
            rows = db.query("SELECT outcome FROM alembic_version_history "
                            "WHERE revision = '0004'")
            assert rows == [("failed",)]


class TestConnecting:
    """Refusals for good are exit 4 at once; a server not there is waited for (exit 3)."""

    def test_wrong_password_is_exit_4_at_once(self, db: MariaDatabase) -> None:
        # The wrong password starts with the right one: printing either would show.
        url = db.server.url(db.name, password=PASSWORD + "-wrong")
        result = run_job(env=job_env(DATABASE_URL=url, ALEMBIC_CONFIG=str(db.config),
                                     MIGRATE_WAIT_TIMEOUT="60"))
        assert_failed_cleanly(result, 4)
        assert result.events[-1]["event"] == "connection_rejected"
        assert "waiting_for_database" not in result.names()
        assert_no_password(result)
        assert db.tables() == []

    def test_unknown_database_is_exit_4_at_once(self, db: MariaDatabase) -> None:
        missing = f"{db.name}_missing"
        result = run_job(env=job_env(DATABASE_URL=db.server.url(missing),
                                     ALEMBIC_CONFIG=str(db.config), MIGRATE_WAIT_TIMEOUT="60"))
        assert_failed_cleanly(result, 4, missing)
        assert result.events[-1]["event"] == "connection_rejected"
        assert "waiting_for_database" not in result.names()
        assert_no_password(result)

    def test_unreachable_port_is_exit_3_after_the_wait(self, db: MariaDatabase) -> None:
        url = db.server.url(db.name, port=free_port())
        result = run_job(env=job_env(DATABASE_URL=url, ALEMBIC_CONFIG=str(db.config),
                                     MIGRATE_WAIT_TIMEOUT="1"))
        assert_failed_cleanly(result, 3)
        assert result.events[-1]["event"] == "database_unreachable"
        assert "waiting_for_database" in result.names()
        assert_no_password(result)

    @pytest.mark.parametrize("down", ["stop", "kill"])
    def test_server_starting_late_is_waited_for(self, tmp_path: Path, down: str) -> None:
        # A server of the test's own, stopped or killed (then recovering its data) after the
        # database was created, and started again once the job waits for it.
        late = MariaDBServer()
        database = MariaDatabase(late, "late", make_mysql_project(tmp_path / "project"))
        try:
            late.start()
            late.create_database(database.name)
            if down == "stop":
                late.stop()
            else:
                late.kill()
            assert late.pid() is None
            job = database.start(MIGRATE_WAIT_TIMEOUT="120")
            job.wait_for_event("waiting_for_database")
            late.start()
            result = job.finish()
            assert result.code == 0, result.stderr
            assert database.revisions() == HEAD
            assert database.applications() == {"0001": 1, "0002": 1, "0003": 1}
            assert_no_password(result)
        finally:
            stop_leftovers(database)
            late.destroy()


BRANCH_A = revision("0004a", "0003", 'op.execute("CREATE TABLE branch_a (id integer)")')
BRANCH_B = revision("0004b", "0003", 'op.execute("CREATE TABLE branch_b (id integer)")')


class TestHistory:
    """History problems are exit 7 before any change and before the lock."""

    def test_multiple_heads(self, make_db: MakeDatabase) -> None:
        database = make_db(extra={"0004a_branch": BRANCH_A, "0004b_branch": BRANCH_B})
        result = database.run()
        assert_failed_cleanly(result, 7, "0004a", "0004b")
        assert result.events[-1]["event"] == "history_error"
        assert "lock_acquired" not in result.names()
        assert database.tables() == []

    def test_database_at_an_unknown_revision(self, db: MariaDatabase) -> None:
        assert db.run().code == 0
        db.query("UPDATE alembic_version SET version_num = 'cafe0001'")
        result = db.run()
        assert_failed_cleanly(result, 7, "cafe0001")
        assert result.events[-1]["event"] == "history_error"
        assert "lock_acquired" not in result.names()
        assert json.loads(db.run("status", "--json").stdout)["problem"]
        assert db.run("check").code == 7
        assert db.revisions() == ["cafe0001"]


class TestAppliedHistory:
    """The applied-history table on MariaDB: each revision's row, a failed one's too."""

    def test_rows_of_applied_and_failed_revisions(self, db: MariaDatabase) -> None:
        assert db.run(MIGRATE_DEPLOY_REF="v1.2.3").code == 0
        db.add_revision("0004_failing", MYSQL_FAILING)
        assert db.run().code == 10
        shown = db.run("history", "--json")
        assert shown.code == 0, shown.stderr
        rows = json.loads(shown.stdout)
        assert [(r["revision"], r["outcome"], r["deploy_ref"]) for r in rows] == [
            ("0001", "applied", "v1.2.3"), ("0002", "applied", "v1.2.3"),
            ("0003", "applied", "v1.2.3"), ("0004", "failed", None)]
        assert rows[1]["parents"] == ["0001"]
        assert len(rows[1]["checksum"]) == 64

    def test_changed_file_and_a_database_newer_than_the_image(self, db: MariaDatabase) -> None:
        """Checksums (MIGRATE_VERIFY=fail: exit 11) and skew (MIGRATE_ON_NEWER_DATABASE) read
        the history table on MariaDB as on PostgreSQL."""
        changed_file_then_older_image(db.run, db.config.parent / "migrations" / "versions")


ALTER_ITEMS_FIRST = revision("0004", "0003", '''
op.execute("ALTER TABLE items ADD COLUMN note varchar(10)")
op.execute("INSERT INTO migration_audit VALUES ('0004', 'upgrade')")
''')
# The ALTER commits the INSERT before it waits for the table: a retry would insert it again.
ALTER_ITEMS_AFTER_A_WRITE = revision("0004", "0003", '''
op.execute("INSERT INTO migration_audit VALUES ('0004', 'upgrade')")
op.execute("ALTER TABLE items ADD COLUMN note varchar(10)")
''')


class TestDdlLockTimeout:
    """lock_wait_timeout bounds a revision's wait for a table; a revision is retried only if
    nothing of it was committed (MySQL commits each DDL statement), else exit 10."""

    @staticmethod
    def blocked(database: MariaDatabase, source: str) -> tuple[Any, Result]:
        """Run the job (one retry) while a transaction of the test's holds `items`."""
        assert database.run().code == 0
        database.add_revision("0004_alter_items", source)
        blocker = database.server.connect(database.name)
        with blocker.cursor() as cursor:
            cursor.execute("BEGIN")
            cursor.execute("SELECT count(*) FROM items")
        return blocker, database.run(MIGRATE_DDL_LOCK_TIMEOUT="1s",
                                     MIGRATE_DDL_LOCK_RETRIES="1")

    def test_blocked_before_any_commit_is_retried_then_exit_9(
            self, db: MariaDatabase) -> None:
        blocker, result = self.blocked(db, ALTER_ITEMS_FIRST)
        assert result.code == 9, result.stderr
        retry = result.event("ddl_lock_timeout")
        assert blocker.thread_id() in [b["connection_id"] for b in retry["blockers"]]
        assert f"connection id {blocker.thread_id()} (" in retry["message"]
        assert result.events[-1]["event"] == "ddl_blocked"
        assert db.unfinished() == []
        assert db.revisions() == ["0003"]
        assert "0004" not in db.applications()
        blocker.commit()
        blocker.close()
        assert db.run().code == 0
        assert db.applications()["0004"] == 1

    def test_blocked_after_a_write_exits_10(self, db: MariaDatabase) -> None:
        blocker, result = self.blocked(db, ALTER_ITEMS_AFTER_A_WRITE)
        blocker.close()
        assert result.code == 10, result.stderr
        assert "ddl_lock_timeout" not in result.names()
        assert db.unfinished() == ["0004"]
