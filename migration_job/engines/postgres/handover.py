"""The revisions run on the very session that holds the migration lock.

Were they to run on a connection of their own, the lock's session could end (a terminated
backend, a pooler's recycled connection, a network cut) while a revision runs: another runner
would take the lock and run the same revision at the same time. On one session, losing the
lock ends the revision with it, and the server rolls it back.

Alembic's env.py opens its connections through SQLAlchemy; a project's own env.py builds its
own engine. SQLAlchemy's `do_connect` event lets the job answer every such connection to the
job's database with the lock's session, so this holds for any env.py that uses psycopg2 and
the URL the job gave it. Any other connection (another driver, other connect arguments) is
left alone and guarded instead: each revision's transaction first passes the revision gate
and checks the lock before it commits (migrate.py); it only gets the job's application_name,
so that a signal cancels its statements (asyncpg reads no PGAPPNAME).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import psycopg2
from psycopg2.extensions import TRANSACTION_STATUS_IDLE

from migration_job.engines.handover import lent, reaches
from migration_job.engines.postgres.connection import LendableConnection
from migration_job.engines.postgres.drivers import bounded_connection, name_connection
from migration_job.engines.postgres.partitions import CLIENT_KEEPALIVES, with_keepalives

if TYPE_CHECKING:
    from sqlalchemy.engine import Dialect

# Connect arguments the job or env.py may add that do not change which database is reached.
NEUTRAL_ARGUMENTS = ("application_name", "connect_timeout", *CLIENT_KEEPALIVES)
LOST = ("the database session that holds the migration lock was lost; no other connection "
        "stands in for it")


@contextmanager
def lent_to_sqlalchemy(session: LendableConnection, url: str) -> Iterator[None]:
    """Within the block, SQLAlchemy connections to `url` over psycopg2 get `session`."""

    def borrow(dialect: Dialect, record: Any, cargs: Any, cparams: dict[str, Any]) -> Any:
        name_connection(dialect.driver, cparams)  # the connections not lent, for signals
        with_keepalives(dialect.driver, cparams)
        own = dialect.driver == "psycopg2" and reaches(url, dialect, cargs, cparams,
                                                       NEUTRAL_ARGUMENTS)
        if own and session.closed:
            # SQLAlchemy reconnecting after the session broke: a new session would hold no
            # lock (and, cut off by a partition, would hang in connect).
            raise psycopg2.OperationalError(LOST)
        # Lent again only while idle: env.py may ignore the connection the job handed it
        # (config.attributes) and open its own, but never two transactions at once.
        if own and session.info.transaction_status == TRANSACTION_STATUS_IDLE:
            # SQLAlchemy manages transactions on a connection that is not in autocommit mode.
            session.autocommit = False
            return session
        if session.revision_settings:
            return bounded_connection(dialect, cargs, cparams, session.revision_settings)
        return None

    with lent(session, {"do_connect": borrow}, lambda: _take_back(session)):
        yield


def _take_back(session: LendableConnection) -> None:
    """Back to the job's autocommit mode; a lost session stays as it is (it is gone)."""
    if session.closed:
        return
    try:
        session.rollback()
        session.autocommit = True
    except psycopg2.Error:
        pass  # the session broke; whoever uses it next reports that
