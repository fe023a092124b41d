"""The revisions run on the job's own sqlite3 connection, each in a real transaction.

As on PostgreSQL (postgres/handover.py), SQLAlchemy's `do_connect` event answers every
connection to the job's database file with the job's connection, so that a signal's
interrupt() reaches the running statement and the lock's connection is the one that writes.
"The job's file" is decided by the file each side opens, read by one rule (sqlite/url.py),
never by how the URL spells it.

The connection stays in sqlite3's autocommit mode (isolation_level None) and SQLAlchemy's
`begin` event emits BEGIN itself: the sqlite3 module would otherwise begin a transaction only
before an INSERT or UPDATE, so a revision's CREATE TABLE would commit on its own and survive
the rollback of the rest (SQLAlchemy's documented recipe for transactional DDL on pysqlite).
It begins IMMEDIATE (sqlite_connection.begin_immediate): another writer is waited for.

A command that only reads must not create a file that does not exist: its SQLAlchemy
connections to that file get an empty in-memory database instead (never_created).
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import TYPE_CHECKING, Any

from migration_job.engines.handover import lent
from migration_job.engines.sqlite.connection import (
    LendableConnection,
    begin_immediate,
    empty_stand_in,
)
from migration_job.engines.sqlite.url import Target
from migration_job.errors import ConfigError

if TYPE_CHECKING:
    from sqlalchemy import Connection
    from sqlalchemy.engine import Dialect

# Files that this process must not create (a reading command's), watched by one listener.
NEVER_CREATED: set[str] = set()


def file_of(dialect: Dialect, cargs: Any, cparams: dict[str, Any]) -> str | None:
    """The file (symbolic links resolved) a SQLAlchemy connection is about to open."""
    if dialect.name != "sqlite":
        return None
    database = cargs[0] if cargs else cparams.get("database")
    if not isinstance(database, str):
        return None
    try:
        path = Target(database, bool(cparams.get("uri", False))).path
    except ConfigError:  # not a file this job could have opened
        return None
    return os.path.realpath(path) if path is not None else None


@contextmanager
def lent_to_sqlalchemy(session: LendableConnection, path: str) -> Iterator[None]:
    """Within the block, SQLAlchemy connections to the file at `path` get `session`, whose
    transactions begin IMMEDIATE."""

    def borrow(dialect: Dialect, record: Any, cargs: Any, cparams: dict[str, Any]) -> Any:
        # Lent again only while idle: never two transactions at once on one connection.
        if (session.closed or session.in_transaction
                or file_of(dialect, cargs, cparams) != os.path.realpath(path)):
            return None
        return session

    def begin(connection: Connection) -> None:
        lent: object = connection.connection.dbapi_connection
        if lent is session:
            begin_immediate(session)

    with lent(session, {"do_connect": borrow, "begin": begin}, lambda: _take_back(session)):
        yield


def _take_back(session: LendableConnection) -> None:
    """Back to autocommit with no transaction open; a closed connection stays closed."""
    if session.closed:
        return
    with suppress(sqlite3.Error):  # whoever uses it next reports that
        session.rollback()


def never_created(path: str) -> None:
    """From now on in this process, SQLAlchemy connections to `path` while it does not exist
    get an empty in-memory database, which they cannot turn into the file."""
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    if not NEVER_CREATED:
        event.listen(Engine, "do_connect", _stand_in_while_absent)
    NEVER_CREATED.add(os.path.realpath(path))


def _stand_in_while_absent(dialect: Dialect, record: Any, cargs: Any,
                           cparams: dict[str, Any]) -> Any:
    path = file_of(dialect, cargs, cparams)
    if path in NEVER_CREATED and not os.path.lexists(path):
        return empty_stand_in()
    return None
