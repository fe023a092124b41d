"""The revisions run on the very session that holds the migration lock (MySQL/MariaDB).

As on PostgreSQL (postgres/handover.py): SQLAlchemy's `do_connect` event answers every PyMySQL
connection to the job's database with the lock's session (those of SQLAlchemy's mysqldb
driver included, which PyMySQL serves under MySQLdb's name). While lent, the session leaves
autocommit mode, so that each revision's statements (those MySQL can roll back) form one
transaction that SQLAlchemy commits or rolls back.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import pymysql
from pymysql.constants import SERVER_STATUS

from migration_job.engines.handover import lent, reaches
from migration_job.engines.mysql.connection import LendableConnection

if TYPE_CHECKING:
    from sqlalchemy.engine import Dialect

# Connect arguments the job or env.py may add that do not change which database is reached.
NEUTRAL_ARGUMENTS = ("program_name", "connect_timeout", "client_flag", "charset")


def in_transaction(session: LendableConnection) -> bool:
    """Whether the server said, with its last reply, that a transaction is open."""
    status: int = session.server_status  # type: ignore[attr-defined]
    return bool(status & SERVER_STATUS.SERVER_STATUS_IN_TRANS)


@contextmanager
def lent_to_sqlalchemy(session: LendableConnection, url: str) -> Iterator[None]:
    """Within the block, SQLAlchemy connections to `url` over PyMySQL get `session`."""

    def borrow(dialect: Dialect, record: Any, cargs: Any, cparams: dict[str, Any]) -> Any:
        # Lent again only while idle: env.py may ignore the connection the job handed it
        # (config.attributes) and open its own, but never two transactions at once.
        # PyMySQL under its own name, or under MySQLdb's (MysqlEngine.name_process).
        if (dialect.loaded_dbapi.__name__ != "pymysql" or not session.open
                or in_transaction(session)):
            return None
        if not reaches(url, dialect, cargs, cparams, NEUTRAL_ARGUMENTS):
            return None
        # SQLAlchemy manages transactions on a session that is not in autocommit mode.
        if session.get_autocommit():
            session.autocommit(False)
        return session

    # A revision's statement may legitimately run for hours: its reply is awaited as long as
    # it takes (the server's lock_wait_timeout and max_statement_time bound it; a signal
    # cancels it). The job's own bound comes back with the session.
    with (session.answered_within(None),
          lent(session, {"do_connect": borrow}, lambda: _take_back(session))):
        yield


def _take_back(session: LendableConnection) -> None:
    """Back to the job's autocommit mode; a lost session stays as it is (it is gone)."""
    if not session.open:
        return
    try:
        session.rollback()
        session.autocommit(True)
    except pymysql.err.MySQLError:
        pass  # the session broke; whoever uses it next reports that
