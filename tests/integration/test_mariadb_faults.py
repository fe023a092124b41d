"""The job on MariaDB when the server or the configuration misbehaves: a server that never
answers, a frozen one, an env.py that reads the URL itself, URLs the driver cannot use, and
records of revisions that did finish.

Every wait is bounded by its configured timeout on the job's own clock: a test that says "did
not hang" gives the job its timeouts plus a generous margin, never a speed to beat.
"""

from __future__ import annotations

import os
import signal
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.integration import test_mariadb
from tests.integration.test_mariadb import (
    HEAD,
    MakeDatabase,
    MariaDatabase,
    applied,
    assert_failed_cleanly,
    assert_no_password,
    start_slow_job,
    stop,
    stop_leftovers,
)
from tests.support.job import job_env, run_job, wait_until
from tests.support.mariadbserver import MariaDBServer
from tests.support.projects import MYSQL_SLOW, make_mysql_project

# test_mariadb.py's fixtures, which pytest finds here by these names: a fresh database and
# project per test on the session's server.
server = test_mariadb.server
make_db = test_mariadb.make_db
db = test_mariadb.db
# Beyond a configured timeout: how long the job may take to notice it and report.
MARGIN_S = 10
# The job's grace for a rollback after a signal (worker.SHUTDOWN_GRACE_S) and the bound of
# its cancelling connection: what a SIGTERM may take at most when the server is frozen.
SHUTDOWN_GRACE_S = 15
CANCEL_TIMEOUT_S = 3
LOCK_KEY = "4242"


@contextmanager
def silent_listener() -> Iterator[int]:
    """A TCP port that accepts connections and never sends a byte (MySQL's server speaks
    first: a client waits for its greeting)."""
    listener = socket.create_server(("127.0.0.1", 0))
    accepted: list[socket.socket] = []
    stopping = threading.Event()

    def accept() -> None:
        while not stopping.is_set():
            try:
                accepted.append(listener.accept()[0])
            except OSError:
                return

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield int(listener.getsockname()[1])
    finally:
        stopping.set()
        listener.close()
        for connection in accepted:
            connection.close()


@pytest.fixture
def own_server() -> Iterator[MariaDBServer]:
    """A server of the test's own, which it may freeze (SIGSTOP); thawed and destroyed after.

    With the plugin that lists named locks (as the session's server in test_mariadb.py).
    """
    mariadb = MariaDBServer()
    try:
        mariadb.start().scalar("INSTALL SONAME 'metadata_lock_info'")
        yield mariadb
    finally:
        pid = mariadb.pid()
        if pid is not None:
            os.kill(pid, signal.SIGCONT)
        mariadb.destroy()


def freeze(mariadb: MariaDBServer) -> None:
    """Stop the server's process (SIGSTOP): the kernel still accepts connections, nobody
    answers them."""
    pid = mariadb.pid()
    assert pid is not None
    os.kill(pid, signal.SIGSTOP)


def own_database(mariadb: MariaDBServer, tmp_path: Path) -> MariaDatabase:
    """A fresh database and project on a server of the test's own."""
    database = MariaDatabase(mariadb, "frozen", make_mysql_project(tmp_path / "project"))
    mariadb.create_database(database.name)
    return database


class TestNoAnswer:
    """A server that stops answering ends each wait at its configured timeout, with the
    contract's code: 3 while waiting for the database, 5 while waiting for the lock."""

    def test_server_that_never_greets_is_exit_3_within_the_wait_timeout(
            self, db: MariaDatabase) -> None:
        with silent_listener() as port:
            url = db.server.url(db.name, port=port)
            result = run_job(env=job_env(DATABASE_URL=url, ALEMBIC_CONFIG=str(db.config),
                                         MIGRATE_WAIT_TIMEOUT="3"), timeout=3 + MARGIN_S)
        message = assert_failed_cleanly(result, 3, "MIGRATE_WAIT_TIMEOUT")
        assert result.events[-1]["event"] == "database_unreachable", message
        assert "timed out" in message or "no answer" in message, message
        assert_no_password(result)

    def test_frozen_server_while_waiting_for_the_lock_is_exit_5(
            self, own_server: MariaDBServer, tmp_path: Path) -> None:
        database = own_database(own_server, tmp_path)
        holder = own_server.connect()
        try:
            with holder.cursor() as cursor:
                cursor.execute("SELECT GET_LOCK(%s, 0)", (f"migration-job:{LOCK_KEY}",))
                assert cursor.fetchone() == (1,)
            job = database.start(MIGRATE_LOCK_KEY=LOCK_KEY, MIGRATE_LOCK_TIMEOUT="5")
            job.wait_for_event("waiting_for_lock")
            freeze(own_server)
            result = job.finish(timeout=5 + MARGIN_S)
        finally:
            stop_leftovers(database)
            holder.close()
        message = assert_failed_cleanly(result, 5, "MIGRATE_LOCK_TIMEOUT")
        assert result.events[-1]["event"] == "lock_timeout", message
        assert "lock_acquired" not in result.names()
        assert_no_password(result)

    def test_sigterm_while_the_server_is_frozen_exits_143(
            self, own_server: MariaDBServer, tmp_path: Path) -> None:
        # The revision's statement may run for hours and has no bound of the job's; the
        # connection that cancels it after a signal has, and the job exits 143 anyway.
        database = own_database(own_server, tmp_path)
        try:
            slow = start_slow_job(database)
            freeze(own_server)
            slow.job.process.send_signal(signal.SIGTERM)
            result = slow.job.finish(timeout=SHUTDOWN_GRACE_S + CANCEL_TIMEOUT_S + MARGIN_S)
        finally:
            stop_leftovers(database)
        assert result.code == 143, result.stderr
        assert result.events[-1]["event"] == "interrupted", result.stderr
        # Nothing was rolled back or released yet: the server does that once it runs again.
        message = result.events[-1]["message"]
        assert "gave up" in message, message
        assert "released the lock" not in message, message

    def test_a_revision_may_run_longer_than_every_timeout(self, db: MariaDatabase) -> None:
        # The bounds are the job's waits', never a revision's: SLEEP(3) outlives them all.
        assert db.run().code == 0
        db.add_revision("0004_slow", MYSQL_SLOW)
        result = db.run(SLOW_SECONDS="3", MIGRATE_WAIT_TIMEOUT="1", MIGRATE_LOCK_TIMEOUT="1")
        assert result.code == 0, result.stderr
        assert applied(result) == ["0004"]
        assert db.unfinished() == []


# env.py as the tutorial writes it: an engine of its own, from the environment's URL
# (ENV_URL when the test sets one, else DATABASE_URL), ignoring the connection the job hands it.
OWN_URL_ENV = '''
import os

from alembic import context
from sqlalchemy import create_engine, pool

url = os.environ.get("ENV_URL") or os.environ["DATABASE_URL"]
if context.is_offline_mode():
    context.configure(url=url, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    engine = create_engine(url, poolclass=pool.NullPool)
    with engine.connect() as connection:
        context.configure(connection=connection)
        with context.begin_transaction():
            context.run_migrations()
'''


def reading_the_url_itself(database: MariaDatabase) -> MariaDatabase:
    """The database with the tutorial's env.py in its project."""
    (database.config.parent / "migrations" / "env.py").write_text(OWN_URL_ENV)
    return database


class TestEnvReadsTheUrl:
    """An env.py that builds its engine from DATABASE_URL gets PyMySQL for every MySQL form
    and runs on the lock's session; a driver that is not installed is exit 2 naming it."""

    @pytest.mark.parametrize("scheme", ["mysql", "mysql+mysqldb", "mariadb"])
    def test_tutorial_urls_migrate(self, make_db: MakeDatabase, scheme: str) -> None:
        database = reading_the_url_itself(make_db(scheme=scheme))
        result = database.run()
        assert result.code == 0, result.stderr
        assert database.revisions() == HEAD
        assert database.applications() == {"0001": 1, "0002": 1, "0003": 1}
        assert_no_password(result)

    def test_revisions_run_on_the_session_holding_the_lock(self, make_db: MakeDatabase) -> None:
        database = reading_the_url_itself(make_db(scheme="mysql+mysqldb"))
        slow = start_slow_job(database)
        assert slow.statement_connection == slow.lock_holder
        stop(slow)

    @pytest.mark.parametrize(("env_url", "driver"), [
        ("postgresql+pg8000://u:p@127.0.0.1:1/db", "pg8000"),
        ("mysql+mysqlconnector://u:p@127.0.0.1:1/db", "mysqlconnector"),
    ])
    def test_driver_not_installed_is_exit_2_naming_it(self, db: MariaDatabase, env_url: str,
                                                      driver: str) -> None:
        result = reading_the_url_itself(db).run(ENV_URL=env_url)
        message = assert_failed_cleanly(result, 2, driver)
        assert result.events[-1]["event"] == "configuration_error", message
        assert "revision_started" not in result.names()
        assert_no_password(result)


class TestUrlMistakes:
    """A MySQL URL the driver cannot use is a configuration error (exit 2), in one line."""

    @pytest.mark.parametrize(("suffix", "named"), [
        ("", "database"),
        ("/{db}?ssl_ca=/nonexistent/ca.pem", "ssl_ca"),
        ("/{db}?ssl_ca={tmp}/not-a-certificate.pem", "ssl_ca"),
        ("/{db}?charset=nonsense", "charset"),
    ], ids=["no-database", "missing-ssl-ca", "malformed-ssl-ca", "unknown-charset"])
    def test_exit_2_in_one_line(self, db: MariaDatabase, tmp_path: Path, suffix: str,
                                named: str) -> None:
        (tmp_path / "not-a-certificate.pem").write_text("not a certificate\n")
        url = (db.server.url(db.name).rsplit("/", 1)[0]
               + suffix.format(db=db.name, tmp=tmp_path))
        result = run_job(env=job_env(DATABASE_URL=url, ALEMBIC_CONFIG=str(db.config),
                                     MIGRATE_WAIT_TIMEOUT="5"))
        message = assert_failed_cleanly(result, 2, named)
        assert result.events[-1]["event"] == "configuration_error", message
        assert db.tables() == []
        assert_no_password(result)


class TestFinishedRecords:
    """A record of a revision that did finish (its runner died before deleting it) is cleared
    by the next upgrade, at head as with work pending; one that did not finish is exit 10."""

    @staticmethod
    def killed_in_0004(database: MariaDatabase) -> None:
        """A runner killed inside 0004: its record stays, the version table says 0003."""
        slow = start_slow_job(database)
        slow.job.process.send_signal(signal.SIGKILL)
        slow.job.finish(timeout=30)
        assert wait_until(lambda: database.lock_is_free(slow.lock_name), timeout=60)
        assert database.unfinished() == ["0004"]

    def test_record_of_a_finished_head_is_cleared(self, db: MariaDatabase) -> None:
        self.killed_in_0004(db)
        # As if 0004 had committed and only deleting its record was lost.
        db.query("UPDATE alembic_version SET version_num = '0004'")
        result = db.run()
        assert result.code == 0, result.stderr
        assert result.event("unfinished_record_cleared")["revision"] == "0004"
        assert "another runner" not in result.events[-1]["message"]
        assert applied(result) == []
        assert db.unfinished() == []
        assert not db.exists("alembic_version_unfinished")
        again = db.run()
        assert again.code == 0, again.stderr
        assert "lock_acquired" not in again.names()

    def test_unfinished_revision_the_image_no_longer_has_is_exit_10(
            self, db: MariaDatabase) -> None:
        self.killed_in_0004(db)
        # The image rolled back to one whose head is 0003: the database is at its head,
        # but 0004 is half applied.
        (db.config.parent / "migrations" / "versions" / "0004_slow.py").unlink()
        result = db.run()
        assert_failed_cleanly(result, 10, "0004", "mark-repaired")
        assert result.events[-1]["event"] == "revision_unfinished", result.stderr
        assert db.unfinished() == ["0004"]
