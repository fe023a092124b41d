"""SQLite through Python's sqlite3: the job's sessions and what the engine interface asks of them.

A SQLite database is a file: there is no server to wait for, only a directory (a volume that
is not mounted yet), and no server-side lock, so the migration lock is an operating-system
file lock beside the database (sqlite_lock.py), which serialises runners on one host only.
"""

from __future__ import annotations

import os
import sqlite3
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from migration_job.engines.locking import derive_lock_key
from migration_job.engines.sqlite_lock import FileLock
from migration_job.errors import ConfigError

if TYPE_CHECKING:
    from migration_job.config import Settings
    from migration_job.engines.blocking import Blocker
    from migration_job.project import Project

BUSY = ("another connection held the database's write lock for longer than "
        "MIGRATE_LOCK_TIMEOUT (an application writing, or a tool holding a transaction open); "
        "stop it or raise MIGRATE_LOCK_TIMEOUT, then run the job again")
IN_MEMORY = ("DATABASE_URL names an in-memory SQLite database, which a migration job cannot "
             "migrate (it ends with the job); use sqlite:///relative/path.db or "
             "sqlite:////absolute/path.db")
# Errors that waiting will not fix, and what to do about each: fail at once (exit 4).
PERMANENT = {
    "not writable": "let the job's user write to the database's directory (SQLite writes its "
                    "journal beside the file)",
    "unable to open database file": "check that the path names a file the job's user can "
                                    "create and write, not a directory",
    "file is not a database": "DATABASE_URL points at a file that is not a SQLite database",
    "not a directory": "a part of the database's path is a file, not a directory",
}
# Every sqlite3 connection this process opened and has not closed: what a signal interrupts.
OPEN: weakref.WeakSet[LendableConnection] = weakref.WeakSet()


class DirectoryMissing(sqlite3.OperationalError):
    """The database's directory does not exist (yet): a volume not mounted yet is waited for."""


class LendableConnection(sqlite3.Connection):
    """A sqlite3 connection that SQLAlchemy may borrow without closing it (see postgres.py)."""

    lendable = False
    closed = False

    def close(self) -> None:
        """Close, unless lent out to SQLAlchemy."""
        if not self.lendable:
            self.closed = True
            OPEN.discard(self)
            super().close()


def database_path(url: str | None) -> str:
    """The absolute file a sqlite:/// URL names (relative paths from the working directory)."""
    rest = (url or "").split("://", 1)[-1].split("?", 1)[0]
    return os.path.abspath(rest[1:]) if rest.startswith("/") and rest[1:] else ""


def connect(path: str, busy_timeout: float) -> LendableConnection:
    """Open the file in autocommit mode; the directory must exist and be writable.

    A statement waits up to `busy_timeout` for another connection's SQLite lock (a waiting
    runner's read while the holder commits, or the application's writes), then fails with
    "database is locked".
    """
    directory = os.path.dirname(path)
    if not os.path.isdir(directory):
        if os.path.exists(directory):
            raise sqlite3.OperationalError(f"{directory} is not a directory")
        raise DirectoryMissing(f"the database's directory {directory} does not exist (yet)")
    if not os.access(directory, os.W_OK | os.X_OK):
        raise sqlite3.OperationalError(f"the database's directory {directory} is not writable")
    session = sqlite3.connect(path, timeout=busy_timeout, isolation_level=None,
                              check_same_thread=False, factory=LendableConnection)
    assert isinstance(session, LendableConnection)
    OPEN.add(session)
    return session


class SqliteSession:
    """A sqlite3 connection of the job's (see engines.Session for the contract)."""

    def __init__(self, path: str, connection: LendableConnection) -> None:
        self.path = path
        self.connection = connection
        self.file_lock: FileLock | None = None

    @property
    def server_version(self) -> int:
        """The SQLite library's version number (3045001 for 3.45.1)."""
        major, minor, patch = sqlite3.sqlite_version_info
        return major * 1_000_000 + minor * 1_000 + patch

    def ping(self) -> None:
        """Read the schema: a file that is not a database fails here, not mid-migration."""
        self.connection.execute("SELECT count(*) FROM sqlite_master").fetchone()

    def describe(self) -> str:
        """The database file."""
        return f"sqlite file {self.path}"

    def revisions(self, project: Project) -> tuple[str, ...]:
        """The revisions recorded in the version table; empty when it does not exist yet."""
        rows = self.table_rows(project.version_table_schema, project.version_table,
                               ("version_num",))
        return tuple(sorted(str(r[0]) for r in rows))

    def table_rows(self, schema: str | None, name: str,
                   columns: tuple[str, ...]) -> list[tuple[object, ...]]:
        """The columns of every row of a table; none when it does not exist (see Session)."""
        quoted_schema = _quote(schema or "main")
        found = self.connection.execute(
            f"SELECT 1 FROM {quoted_schema}.sqlite_master WHERE type = 'table' AND name = ?",
            (name,)).fetchone()
        if found is None:
            return []
        return list(self.connection.execute(
            f"SELECT {', '.join(map(_quote, columns))} FROM {quoted_schema}.{_quote(name)}"))

    def read_only_reason(self) -> str | None:
        """Why this session cannot write (a read-only file), else None."""
        if os.path.exists(self.path) and not os.access(self.path, os.W_OK):
            return "the database file is not writable by the job's user"
        return None

    def prepare_for_migrations(self) -> None:
        """Nothing to set: no server ends an idle SQLite connection."""

    def refuse_shared_sessions(self, settings: Settings) -> None:
        """No pooler stands between the job and a file."""

    def lock(self, key: int | None, project: Project,
             sleep: Callable[[float], None]) -> FileLock:
        """The file lock beside the database; the key (for the log) derived when not set."""
        if key is None:
            key = derive_lock_key(self.path, project.version_table_schema or "main",
                                  project.version_table)
        self.file_lock = FileLock(self, f"{self.path}.migration-lock", key, sleep=sleep)
        return self.file_lock

    @contextmanager
    def lent_to_sqlalchemy(self, url: str) -> Iterator[None]:
        """Within the block, SQLAlchemy connections to this file get this connection."""
        from migration_job.engines.sqlite_handover import lent_to_sqlalchemy

        with lent_to_sqlalchemy(self.connection, self.path):
            yield

    @contextmanager
    def bounded_waits(self, lock_timeout: float, statement_timeout: float) -> Iterator[None]:
        """Nothing to bound: SQLite has one write lock, whose wait MIGRATE_LOCK_TIMEOUT
        already bounds (busy_timeout), and no statement timeout."""
        yield

    def blockers(self) -> tuple[Blocker, ...]:
        """SQLite does not say which connection holds its write lock."""
        return ()

    def unfinished_log(self, project: Project) -> None:
        """DDL rolls back with its revision here: nothing is left unfinished."""

    def close(self) -> None:
        """Close the connection and the lock file (the operating system releases the lock)."""
        if self.file_lock is not None:
            self.file_lock.close()
        self.connection.close()


def _quote(name: str) -> str:
    # Backquotes, not double quotes: SQLite reads a double-quoted name that is no column as a
    # string, so a renamed column would read as its own name instead of failing.
    return "`" + name.replace("`", "``") + "`"


def _advice(error: BaseException) -> str | None:
    text = str(error).lower()
    return next((advice for marker, advice in PERMANENT.items() if marker in text), None)


class SqliteEngine:
    """SQLite through sqlite3 (see engines.Engine for the contract)."""

    transactional_ddl = True
    errors: tuple[type[Exception], ...] = (sqlite3.Error,)

    def connect(self, settings: Settings, timeout: float | None = None) -> SqliteSession:
        """Open an autocommit connection to the file (created by its first write)."""
        path = database_path(settings.database_url)
        return SqliteSession(path, connect(path, max(1.0, settings.lock_timeout)))

    def is_transient(self, error: BaseException) -> bool:
        """A missing directory, a busy database: worth waiting for."""
        return isinstance(error, sqlite3.Error) and _advice(error) is None

    def rejection_advice(self, error: BaseException) -> str:
        """What to do about an error waiting will not fix."""
        return _advice(error) or "check the path in DATABASE_URL and its permissions"

    def is_connection_lost(self, error: BaseException) -> bool:
        """Only a closed connection is lost: nothing else can end a session to a file."""
        return isinstance(error, sqlite3.ProgrammingError) and "closed" in str(error).lower()

    def is_permission_denied(self, error: BaseException) -> bool:
        """A write to a file or directory the job's user may not write."""
        return "readonly database" in str(error).lower()

    def cancel_own_statements(self, settings: Settings) -> int:
        """Interrupt every statement running on this process's open connections; returns how
        many were in a transaction (a read waiting for a busy database is stopped too)."""
        connections = [c for c in list(OPEN) if not c.closed]
        busy = sum(c.in_transaction for c in connections)
        for connection in connections:
            connection.interrupt()  # a no-op on a connection that runs nothing
        return busy

    def name_process(self) -> None:
        """Nothing names a connection to a file."""

    def sqlalchemy_connect_args(self) -> dict[str, object]:
        """No connect arguments: the job's engines open the URL's file as env.py's would."""
        return {}

    def check_url(self, url: str) -> None:
        """An in-memory database (sqlite://, :memory:) cannot be migrated by a job."""
        path = database_path(url)
        if not path or path.endswith(":memory:") or "mode=memory" in url:
            raise ConfigError(IN_MEMORY)

    def is_lock_timeout(self, error: BaseException) -> bool:
        """No DDL lock timeout here: a busy database is reported as such (failure_advice)."""
        return False

    def is_statement_timeout(self, error: BaseException) -> bool:
        """SQLite has no statement timeout."""
        return False

    def failure_advice(self, error: BaseException) -> str | None:
        """A database locked by another writer is no fault of the migration's."""
        text = str(error).lower()
        return BUSY if "database is locked" in text or "database is busy" in text else None


ENGINE = SqliteEngine()
