"""The revisions run on the job's own sqlite3 connection, each in a real transaction.

As on PostgreSQL (postgres_handover.py), SQLAlchemy's `do_connect` event answers every
connection to the job's database file with the job's connection, so that a signal's
interrupt() reaches the running statement and the lock's connection is the one that writes.

The connection stays in sqlite3's autocommit mode (isolation_level None) and SQLAlchemy's
`begin` event emits BEGIN itself: the sqlite3 module would otherwise begin a transaction only
before an INSERT or UPDATE, so a revision's CREATE TABLE would commit on its own and survive
the rollback of the rest (SQLAlchemy's documented recipe for transactional DDL on pysqlite).
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.engine import Dialect

from migration_job.engines.lending import lent
from migration_job.engines.sqlite import LendableConnection


def _path_of(cargs: Any, cparams: dict[str, Any]) -> str | None:
    database = cargs[0] if cargs else cparams.get("database")
    return os.path.abspath(database) if isinstance(database, str) else None


@contextmanager
def lent_to_sqlalchemy(session: LendableConnection, path: str) -> Iterator[None]:
    """Within the block, SQLAlchemy connections to the file at `path` get `session`."""

    def borrow(dialect: Dialect, record: Any, cargs: Any, cparams: dict[str, Any]) -> Any:
        # Lent again only while idle: never two transactions at once on one connection.
        if (dialect.name != "sqlite" or session.closed or session.in_transaction
                or _path_of(cargs, cparams) != path):
            return None
        return session

    def begin(connection: Connection) -> None:
        lent: object = connection.connection.dbapi_connection
        if lent is session:
            connection.exec_driver_sql("BEGIN")

    with lent(session, {"do_connect": borrow, "begin": begin}, lambda: _take_back(session)):
        yield


def _take_back(session: LendableConnection) -> None:
    """Back to autocommit with no transaction open; a closed connection stays closed."""
    if session.closed:
        return
    with suppress(sqlite3.Error):  # whoever uses it next reports that
        session.rollback()
