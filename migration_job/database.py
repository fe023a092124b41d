"""Direct psycopg2 connections: what the job needs before and around Alembic."""

from __future__ import annotations

import os
from typing import Any

import psycopg2
from psycopg2 import sql
from psycopg2.extensions import connection

from migration_job.config import Settings
from migration_job.project import Project

# Unique per process, so SIGTERM can find and cancel this job's statements on the server,
# including those of a project's own env.py engine (libpq picks it up from PGAPPNAME).
APPLICATION_NAME = f"migration-job:{os.uname().nodename[:32]}:{os.getpid()}:{os.urandom(3).hex()}"


class Session(connection):
    """A libpq session that SQLAlchemy may borrow without closing it.

    The session that holds the migration lock also runs the revisions (see handover.py).
    SQLAlchemy closes each connection env.py is done with; while `lendable`, close() does
    nothing, because the session must keep the lock until the job lets go.
    """

    lendable = False

    def close(self) -> None:
        """Close, unless lent out to SQLAlchemy."""
        if not self.lendable:
            super().close()


Connection = Session  # the type of the job's libpq sessions


def connect(settings: Settings, *, timeout: float | None = None) -> Session:
    """Open an autocommit session: it never sits idle in a transaction holding a snapshot.

    Nothing goes in the startup packet but libpq's usual parameters and application_name:
    poolers such as PgBouncer reject others (`options`) with their stock settings.
    """
    kwargs: dict[str, Any] = {"application_name": APPLICATION_NAME,
                              "connection_factory": Session}
    if timeout is not None:
        # libpq's connect_timeout is whole seconds, minimum 2.
        kwargs["connect_timeout"] = max(2, int(timeout + 0.999))
    session: Session = psycopg2.connect(settings.libpq_dsn, **kwargs)
    session.autocommit = True
    return session


def read_revisions(connection: Connection, project: Project) -> tuple[str, ...]:
    """The revisions recorded in the version table; empty when it does not exist yet."""
    table: sql.Composable
    if project.version_table_schema:
        table = sql.SQL("{}.{}").format(
            sql.Identifier(project.version_table_schema), sql.Identifier(project.version_table))
    else:
        table = sql.Identifier(project.version_table)
    with connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass(%s)", (table.as_string(connection),))
        row = cursor.fetchone()
        if row is None or row[0] is None:
            return ()
        cursor.execute(sql.SQL("SELECT version_num FROM {}").format(table))
        return tuple(sorted(str(r[0]) for r in cursor.fetchall()))


def cancel_own_statements(settings: Settings) -> int:
    """Cancel every running statement of this process on the server; returns how many."""
    session = connect(settings, timeout=3)
    try:
        with session.cursor() as cursor:
            cursor.execute(
                "SELECT count(pg_cancel_backend(pid)) FROM pg_stat_activity "
                "WHERE application_name = %s AND pid <> pg_backend_pid() AND state = 'active'",
                (APPLICATION_NAME,),
            )
            row = cursor.fetchone()
    finally:
        session.close()
    return int(row[0]) if row else 0


def describe(connection: Connection) -> str:
    """host:port/database of a connection, without credentials."""
    info = connection.info
    return f"{info.host}:{info.port}/{info.dbname} as {info.user}"


def prepare_for_migrations(connection: Connection) -> None:
    """Session settings for a session that will take the lock and run the revisions.

    Idle timeouts off: the session waits while Alembic loads and between revisions, and
    losing it loses the lock.
    client_connection_check_interval (PostgreSQL 14+): the server notices a dead client
    within seconds even mid-statement, so a SIGKILLed job's transaction ends instead of
    blocking the next run. Set with SET rather than PGOPTIONS, which poolers reject.
    """
    settings = {"idle_in_transaction_session_timeout": "0"}
    if int(connection.server_version) >= 140000:
        settings.update({"idle_session_timeout": "0", "client_connection_check_interval": "2000"})
    calls = ", ".join("set_config(%s, %s, false)" for _ in settings)
    with connection.cursor() as cursor:  # one round trip: no-op runs without a manifest pay it
        cursor.execute(f"SELECT {calls}", [v for item in settings.items() for v in item])


def read_only_reason(connection: Connection) -> str | None:
    """Why this session cannot write (a standby, or read-only transactions), else None."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_is_in_recovery(), current_setting('transaction_read_only')")
        row = cursor.fetchone()
    assert row is not None
    if row[0]:
        return "it is a hot standby (in recovery), which only the primary can change"
    if row[1] == "on":
        return ("its transactions are read-only (default_transaction_read_only is on for "
                "this database, role or server)")
    return None


def is_connection_lost(error: BaseException) -> bool:
    """Whether a database error means the session is gone (not that a statement failed)."""
    if not isinstance(error, psycopg2.OperationalError):
        return False
    code = error.pgcode
    # No SQLSTATE: libpq's own error (the socket broke). Class 08: connection exception.
    # 57P01-57P03: the server is shutting down, crashed, or not accepting connections.
    return code is None or code.startswith("08") or code in ("57P01", "57P02", "57P03")
