"""close_and_wait returns once the server has ended the session: its backend is gone, and with
it the connection slot a session opened next needs (how a fleet's spare connection changes
hands, run/revision_watch.py). A backend the test stops (SIGSTOP) cannot exit: the call waits
for it, up to its timeout and no longer."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from migration_job.engines import Session
from migration_job.run.wait import wait_for_database
from migration_job.settings.load import load_settings
from tests.integration.conftest import Database


def session_on(database: Database) -> Session:
    return wait_for_database(load_settings({}, {"DATABASE_URL": database.url,
                                                "MIGRATE_TERMINATION_LOG": ""}))


def backends(database: Database, pid: int) -> int:
    return int(database.query("SELECT count(*) FROM pg_stat_activity WHERE pid = %s", pid)[0][0])


@contextmanager
def stopped(pid: int) -> Iterator[None]:
    """The backend, stopped: it reads nothing and cannot exit until the block ends."""
    os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(pid, signal.SIGCONT)


def test_returns_once_the_backend_is_gone(database: Database) -> None:
    session = session_on(database)
    pid = session.connection.get_backend_pid()  # type: ignore[attr-defined]
    closing = threading.Thread(target=session.close_and_wait, args=(120.0,))
    with stopped(pid):
        closing.start()
        closing.join(0.5)
        waited_for_the_backend = closing.is_alive()
        backend_while_stopped = backends(database, pid)
    closing.join()
    assert waited_for_the_backend
    assert backend_while_stopped == 1
    assert backends(database, pid) == 0  # gone by the time the call returned


def test_waits_no_longer_than_its_timeout(database: Database) -> None:
    session = session_on(database)
    pid = session.connection.get_backend_pid()  # type: ignore[attr-defined]
    with stopped(pid):
        session.close_and_wait(0.2)  # returns: the test would hang otherwise
        assert session.connection.closed  # type: ignore[attr-defined]
        assert backends(database, pid) == 1  # the server has not ended it yet


def test_a_closed_session_just_closes(database: Database) -> None:
    session = session_on(database)
    session.close()
    session.close_and_wait(120.0)
    assert session.connection.closed  # type: ignore[attr-defined]


def test_a_session_lent_out_stays_open_and_is_not_waited_for(database: Database) -> None:
    """SQLAlchemy holds it, so close() leaves it open and the server will not end it:
    waiting for that would last the whole timeout."""
    session = session_on(database)
    connection = session.connection  # type: ignore[attr-defined]
    pid = connection.get_backend_pid()
    connection.lendable = True
    closing = threading.Thread(target=session.close_and_wait, args=(600.0,), daemon=True)
    try:
        closing.start()
        closing.join(60.0)  # a bound, not a measure: the call must not wait for the server
        assert not closing.is_alive()
        assert not connection.closed
        assert backends(database, pid) == 1
    finally:
        connection.lendable = False
        session.close()
        database.query("SELECT pg_terminate_backend(%s)", pid)  # ends a wait left running
