"""The MariaDB test server (tests/support/mariadbserver.py) does what the engine's tests need.

A test of the test infrastructure: the MySQL/MariaDB engine's real scenarios replace it.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import pymysql
import pytest
import sqlalchemy
from pymysql.connections import Connection
from pymysql.cursors import Cursor

from tests.support.mariadbserver import MariaDBServer, running_mariadb
from tests.support.pgserver import PASSWORD

# MySQL client and server error numbers the checks below expect.
ACCESS_DENIED = 1045
UNKNOWN_DATABASE = 1049
CANNOT_CONNECT = 2003
SERVER_GONE = 2006
LOST_CONNECTION = 2013


def one(conn: Connection[Cursor], sql: str, *params: object) -> object:
    """The first value of the first row of a query on a connection."""
    with conn.cursor() as cur:
        cur.execute(sql, params or None)
        row = cur.fetchone()
    return None if row is None else row[0]


def eventually(check: Callable[[], bool], timeout: float = 30) -> bool:
    """Whether a check comes true, polled until a deadline (never a fixed sleep)."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
    return True


class TestConnecting:
    """A created database is reachable with the password; a wrong password or database is not."""

    def test_created_database_connects_with_the_password(self, mariadb: MariaDBServer) -> None:
        url = mariadb.create_database("selftest_connect")
        assert url.startswith("mysql+pymysql://root:p%40ss%3Aw%25rd%2F%23%3F%26x@127.0.0.1:")
        conn = mariadb.connect("selftest_connect")
        try:
            assert one(conn, "SELECT DATABASE()") == "selftest_connect"
        finally:
            conn.close()
        # The URL as a user writes it works through SQLAlchemy, the encoded password included.
        assert sqlalchemy.make_url(url).password == PASSWORD
        engine = sqlalchemy.create_engine(url)
        try:
            with engine.connect() as through_url:
                assert through_url.scalar(sqlalchemy.text("SELECT DATABASE()")) \
                    == "selftest_connect"
        finally:
            engine.dispose()

    def test_wrong_password_is_refused(self, mariadb: MariaDBServer) -> None:
        with pytest.raises(pymysql.err.OperationalError) as refused:
            mariadb.connect(password=PASSWORD + "x")
        assert refused.value.args[0] == ACCESS_DENIED

    def test_unknown_database_is_refused(self, mariadb: MariaDBServer) -> None:
        with pytest.raises(pymysql.err.OperationalError) as refused:
            mariadb.connect("selftest_no_such_database")
        assert refused.value.args[0] == UNKNOWN_DATABASE


class TestNamedLocks:
    """A GET_LOCK held on one connection is seen by another, which cannot take it until freed."""

    def test_lock_is_seen_held_and_freed(self, mariadb: MariaDBServer) -> None:
        mariadb.create_database("selftest_lock")
        holder = mariadb.connect("selftest_lock")
        other = mariadb.connect("selftest_lock")
        try:
            holder_id = one(holder, "SELECT CONNECTION_ID()")
            assert one(holder, "SELECT GET_LOCK('selftest', 0)") == 1
            assert one(other, "SELECT IS_USED_LOCK('selftest')") == holder_id
            assert one(other, "SELECT IS_FREE_LOCK('selftest')") == 0
            assert one(other, "SELECT GET_LOCK('selftest', 0)") == 0
            # The process list names the holder's session: who it is, where from, which database.
            assert one(other, "SELECT CONCAT(USER, ' ', DB) FROM information_schema.PROCESSLIST "
                              "WHERE ID = %s", holder_id) == "root selftest_lock"
            assert one(holder, "SELECT RELEASE_LOCK('selftest')") == 1
            assert one(other, "SELECT IS_USED_LOCK('selftest')") is None
        finally:
            holder.close()
            other.close()

    def test_disconnect_frees_the_lock(self, mariadb: MariaDBServer) -> None:
        holder = mariadb.connect()
        watcher = mariadb.connect()
        try:
            assert one(holder, "SELECT GET_LOCK('selftest_disconnect', 0)") == 1
            assert one(watcher, "SELECT IS_USED_LOCK('selftest_disconnect')") is not None
            holder.close()
            assert eventually(
                lambda: one(watcher, "SELECT IS_USED_LOCK('selftest_disconnect')") is None)
            assert one(watcher, "SELECT GET_LOCK('selftest_disconnect', 0)") == 1
        finally:
            watcher.close()


class TestKillAndRestart:
    """kill() breaks open connections, and start() brings the same data back on the same port."""

    def test_kill_breaks_connections_and_start_recovers(self) -> None:
        with running_mariadb() as server:
            server.create_database("selftest_kill")
            conn = server.connect("selftest_kill")
            one(conn, "CREATE TABLE kept (n INT PRIMARY KEY) ENGINE=InnoDB")
            one(conn, "INSERT INTO kept VALUES (42)")
            assert one(conn, "SELECT GET_LOCK('selftest_kill', 0)") == 1
            pid = server.pid()
            assert pid is not None

            server.kill()

            assert server.pid() is None
            with pytest.raises(pymysql.err.OperationalError) as broken:
                one(conn, "SELECT 1")
            assert broken.value.args[0] in (SERVER_GONE, LOST_CONNECTION)
            conn.close()
            with pytest.raises(pymysql.err.OperationalError) as refused:
                server.connect("selftest_kill", connect_timeout=5)
            assert refused.value.args[0] == CANNOT_CONNECT

            server.start()

            again = server.connect("selftest_kill")
            try:
                assert server.pid() not in (None, pid)
                assert one(again, "SELECT n FROM kept") == 42
                assert one(again, "SELECT IS_USED_LOCK('selftest_kill')") is None
            finally:
                again.close()

    def test_stop_then_start(self) -> None:
        with running_mariadb() as server:
            server.stop()
            assert server.pid() is None
            assert not server.socket.exists()
            server.start()
            assert server.scalar("SELECT 1") == 1
