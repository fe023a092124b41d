"""SQLite through Python's sqlite3: the job's sessions and what the engine interface asks of them.

A SQLite database is a file: there is no server to wait for, only a directory (a volume that
is not mounted yet), and no server-side lock, so the migration lock is an operating-system
file lock beside the database (sqlite/lock.py), which serialises runners on one host only.
The URL names the file as SQLAlchemy reads it (sqlite/url.py): the job's connection and
every one SQLAlchemy opens for the revisions reach the same file.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, ClassVar

from migration_job.engines.locking import derive_lock_key
from migration_job.engines.shared_answers import (
    AnswersFromErrorKinds,
    ErrorKinds,
    ReadsVersionTable,
)
from migration_job.engines.sqlite import errors as sqlite_errors
from migration_job.engines.sqlite.connection import (
    OPEN,
    LendableConnection,
    connect,
    empty_stand_in,
    is_busy,
    opened_file,
    unwritable,
)
from migration_job.engines.sqlite.lock import FileLock
from migration_job.engines.sqlite.url import connect_target
from migration_job.errors import ConfigError

if TYPE_CHECKING:
    from migration_job.engines.blocking import Blocker
    from migration_job.engines.inputs import ConnectionSettings, VersionTable
    from migration_job.engines.statement_progress import StatementProgress

BUSY = ("another connection held the database's write lock for longer than "
        "MIGRATE_LOCK_TIMEOUT (an application writing, or a tool holding a transaction open); "
        "stop it or raise MIGRATE_LOCK_TIMEOUT, then run the job again")
IN_MEMORY = ("DATABASE_URL names an in-memory SQLite database, which a migration job cannot "
             "migrate (it ends with the job); use sqlite:///relative/path.db or "
             "sqlite:////absolute/path.db")
READ_ONLY = ("make the database file and its directory writable for the job's user again "
             "(remount a read-only volume read-write), then run the job again")
# The commands that only read: they never create the database file, and a file or directory
# they cannot write does not stop them. Every other command may write, and creates the file.
READING = ("wait", "status", "check", "sql", "plan", "lint", "history")


class SqliteSession(ReadsVersionTable):
    """A sqlite3 connection of the job's (see engines.Session for the contract)."""

    def __init__(self, path: str, connection: LendableConnection, absent: bool = False) -> None:
        self.path = path
        self.connection = connection
        # The file does not exist and this command must not create it: the connection is an
        # empty in-memory stand-in (what SQLite would find in a new file).
        self.absent = absent
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
        return f"sqlite file {self.path}" + (" (not created yet)" if self.absent else "")

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
        """Why the job cannot write the file now: its volume remounted read-only, the file or
        its directory no longer writable (connect refuses them up front; this sees a change
        since, which SQLite reports as 'disk I/O error' or 'attempt to write a readonly
        database')."""
        if self.absent:
            return None
        try:
            return unwritable(self.path, os.path.dirname(self.path))
        except OSError:
            return None  # the directory went away: not read-only, the failure says what

    def prepare_for_migrations(self) -> None:
        """Nothing to set: no server ends an idle SQLite connection."""

    def refuse_shared_sessions(self, settings: ConnectionSettings) -> None:
        """No pooler stands between the job and a file."""

    def lock(self, key: int | None, project: VersionTable,
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
        from migration_job.engines.sqlite.handover import lent_to_sqlalchemy

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

    def statement_progress(self) -> tuple[StatementProgress, ...]:
        """SQLite reports no progress of a running statement."""
        return ()

    def unfinished_log(self, project: VersionTable) -> None:
        """DDL rolls back with its revision here: nothing is left unfinished."""

    def sever(self) -> bool:
        """Nothing: a file has no network to be cut off by."""
        return False

    def close(self) -> None:
        """Close the connection and the lock file (the operating system releases the lock)."""
        if self.file_lock is not None:
            self.file_lock.close()
        self.connection.close()

    def close_and_wait(self, timeout: float) -> None:
        """Close: a file has no server to wait for."""
        self.close()


def _same_file(connection: LendableConnection, path: str) -> str:
    """The file SQLite opened, which must be the one the URL names as SQLAlchemy reads it."""
    opened = opened_file(connection)
    if opened != os.path.realpath(path):
        connection.close()
        raise ConfigError(f"DATABASE_URL names {path}, but SQLite opened {opened or 'none'}; "
                          "write the path as sqlite:////absolute/path.db")
    return opened


def _quote(name: str) -> str:
    # Backquotes, not double quotes: SQLite reads a double-quoted name that is no column as a
    # string, so a renamed column would read as its own name instead of failing.
    return "`" + name.replace("`", "``") + "`"


class SqliteEngine(AnswersFromErrorKinds):
    """SQLite through sqlite3 (see engines.Engine for the contract)."""

    transactional_ddl = True
    reports_progress = False
    has_server = False
    read_only_advice = READ_ONLY
    kinds: ClassVar[ErrorKinds] = sqlite_errors
    errors: tuple[type[Exception], ...] = (sqlite3.Error,)

    def connect(self, settings: ConnectionSettings, timeout: float | None = None) -> SqliteSession:
        """Open an autocommit connection to the file SQLAlchemy would open: created when the
        command writes; when it only reads, a missing file stays missing (an empty stand-in)."""
        target = connect_target(settings.database_url or "")
        path = target.path
        assert path is not None, "check_url refuses an in-memory database"
        reads = settings.command in READING
        if reads and os.path.isdir(os.path.dirname(path)) and not os.path.lexists(path):
            from migration_job.engines.sqlite.handover import never_created

            never_created(path)
            return SqliteSession(path, empty_stand_in(), absent=True)
        connection = connect(target, max(1.0, settings.lock_timeout), writes=not reads)
        return SqliteSession(_same_file(connection, path), connection)

    def cancel_own_statements(self, settings: ConnectionSettings) -> int:
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
        """A URL SQLAlchemy would read differently from the job, or that names an in-memory
        database (sqlite://, :memory:, mode=memory), which a job cannot migrate."""
        if connect_target(url).path is None:
            raise ConfigError(IN_MEMORY)

    def failure_advice(self, error: BaseException) -> str | None:
        """A database locked by another writer is no fault of the migration's."""
        return BUSY if is_busy(error) else None


ENGINE = SqliteEngine()
