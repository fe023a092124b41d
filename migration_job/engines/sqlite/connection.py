"""The job's sqlite3 connections: opened on the file SQLAlchemy would open, only where the job's
user can do what the command needs, and a write transaction that waits for other writers."""

from __future__ import annotations

import os
import sqlite3
import threading
import time
import weakref
from typing import Any

from migration_job.engines.sqlite.url import MEMORY, Target
from migration_job.errors import ConfigError
from migration_job.log import log

# Between two tries for SQLite's write lock while another connection holds it.
WRITE_LOCK_POLL_S = 0.1
# Every sqlite3 connection this process opened and has not closed: what a signal interrupts.
OPEN: weakref.WeakSet[LendableConnection] = weakref.WeakSet()


class DirectoryMissing(sqlite3.OperationalError):
    """The database's directory does not exist (yet): a volume not mounted yet is waited for."""


class NotWritable(sqlite3.OperationalError):
    """The job's user cannot write the database file or its directory: waiting will not help."""


class LendableConnection(sqlite3.Connection):
    """A sqlite3 connection that SQLAlchemy may borrow without closing it (see postgres.py)."""

    lendable = False
    closed = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # How long a statement waits for another connection's lock (sqlite3's `timeout`).
        self.busy_timeout = float(kwargs.get("timeout", 5.0))
        # Set by interrupt(): SQLite's own busy wait does not notice an interrupt, ours does.
        self.interrupted = threading.Event()

    def interrupt(self) -> None:
        """Stop the running statement, and a wait for the write lock (begin_immediate)."""
        self.interrupted.set()
        super().interrupt()

    def close(self) -> None:
        """Close, unless lent out to SQLAlchemy."""
        if not self.lendable:
            self.closed = True
            OPEN.discard(self)
            super().close()


def connect(target: Target, busy_timeout: float, writes: bool = True) -> LendableConnection:
    """Open `target` in autocommit mode; its directory must exist. When the command
    `writes`, the file (if any) and the directory must be writable by the job's user; when
    it does not, the file is never created.

    A statement waits up to `busy_timeout` for another connection's SQLite lock (a waiting
    runner's read while the holder commits, or the application's writes), then fails with
    "database is locked".
    """
    path = target.path
    assert path is not None, "check_url refuses an in-memory database"
    directory = os.path.dirname(path)
    if not os.path.isdir(directory):
        if os.path.exists(directory):
            raise sqlite3.OperationalError(f"{directory} is not a directory")
        raise DirectoryMissing(f"the database's directory {directory} does not exist (yet)")
    if not writes:
        return open_connection(target.without_creating(), busy_timeout)
    refuse_unwritable(target, path, directory)
    return open_connection(target, busy_timeout)


def open_connection(target: Target, busy_timeout: float) -> LendableConnection:
    """sqlite3.connect with the filename and URI flag SQLAlchemy would use, in autocommit."""
    session = sqlite3.connect(target.filename, timeout=busy_timeout, isolation_level=None,
                              check_same_thread=False, factory=LendableConnection,
                              uri=target.uri)
    assert isinstance(session, LendableConnection)
    OPEN.add(session)
    return session


def empty_stand_in() -> LendableConnection:
    """An empty in-memory database: what a file that does not exist yet holds."""
    return open_connection(Target(MEMORY, False), 1.0)


def opened_file(connection: sqlite3.Connection) -> str:
    """The file SQLite opened, as SQLite names it (absolute, symbolic links resolved)."""
    return str(connection.execute("PRAGMA database_list").fetchone()[2])


def refuse_unwritable(target: Target, path: str, directory: str) -> None:
    """Raise NotWritable (or ConfigError for a read-only URL) when a write must fail."""
    mode = target.parameters.get("mode")
    if mode == "ro" or target.parameters.get("immutable", "0") not in ("", "0"):
        raise ConfigError("DATABASE_URL opens the SQLite database read-only ("
                          f"{'mode=ro' if mode == 'ro' else 'immutable'}): a migration "
                          "writes; remove that parameter")
    reason = unwritable(path, directory)
    if reason is not None:
        raise NotWritable(reason)


def unwritable(path: str, directory: str) -> str | None:
    """Why the job's user cannot write the database file or its directory (SQLite writes its
    journal beside the file) now, or None."""
    if os.statvfs(directory).f_flag & os.ST_RDONLY:
        return f"the file system holding {directory} is mounted read-only"
    if os.path.exists(path) and not os.access(path, os.W_OK, effective_ids=True):
        return f"this user (uid {os.geteuid()}) cannot write the database file {path}"
    if not os.access(directory, os.W_OK | os.X_OK, effective_ids=True):
        return (f"this user (uid {os.geteuid()}) cannot write the database's directory "
                f"{directory}")
    return None


def begin_immediate(connection: LendableConnection) -> None:
    """BEGIN IMMEDIATE: take SQLite's write lock before the transaction reads anything.

    A deferred BEGIN reads first, and SQLite fails a read transaction's step up to writing at
    once when another connection holds the write lock: busy_timeout is not consulted there,
    since both could wait for each other. An immediate transaction waits for the lock
    (up to the connection's busy timeout) instead. The wait is polled here, not left to
    busy_timeout, so that it is logged and a signal's interrupt() ends it.
    """
    deadline = time.monotonic() + connection.busy_timeout
    connection.execute("PRAGMA busy_timeout = 0")
    try:
        waiting = False
        while True:
            try:
                connection.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as error:
                if not is_busy(error) or time.monotonic() >= deadline:
                    raise
            if not waiting:
                waiting = True
                log.info("waiting_for_write_lock",
                         "another connection holds the SQLite database's write lock (an "
                         "application writing); waiting for it up to MIGRATE_LOCK_TIMEOUT "
                         f"({connection.busy_timeout:g}s)",
                         timeout_s=connection.busy_timeout)
            if connection.interrupted.wait(WRITE_LOCK_POLL_S):
                raise sqlite3.OperationalError("interrupted")
    finally:
        connection.execute(f"PRAGMA busy_timeout = {round(connection.busy_timeout * 1000)}")


def is_busy(error: BaseException) -> bool:
    """Whether another connection held a lock this one needed."""
    text = str(error).lower()
    return "database is locked" in text or "database is busy" in text
