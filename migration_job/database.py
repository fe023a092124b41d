"""Direct psycopg2 connections: what the job needs before and around Alembic."""

from __future__ import annotations

import os
from typing import Any

import psycopg2
from psycopg2 import sql
from psycopg2.extensions import connection

from migration_job.config import Settings
from migration_job.project import Project

Connection = connection  # the type of a libpq session


# Unique per process, so SIGTERM can find and cancel this job's statements on the server,
# including those of a project's own env.py engine (libpq picks it up from PGAPPNAME).
APPLICATION_NAME = f"migration-job:{os.uname().nodename[:32]}:{os.getpid()}:{os.urandom(3).hex()}"
# PostgreSQL keeps running a statement whose client died; this makes it notice within seconds
# (PostgreSQL 14+), so a SIGKILLed job's transaction ends instead of blocking the next run.
CLIENT_CHECK_OPTION = "-c client_connection_check_interval=2000"


def connect(settings: Settings, *, timeout: float | None = None) -> Connection:
    """Open an autocommit connection: it never sits idle in a transaction holding a snapshot."""
    kwargs: dict[str, Any] = {"application_name": APPLICATION_NAME}
    if timeout is not None:
        # libpq's connect_timeout is whole seconds, minimum 2.
        kwargs["connect_timeout"] = max(2, int(timeout + 0.999))
    session: Connection = psycopg2.connect(settings.libpq_dsn, **kwargs)
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


def client_check_supported(connection: Connection) -> bool:
    """Whether the server knows client_connection_check_interval (PostgreSQL 14+)."""
    return int(connection.server_version) >= 140000


def enable_dead_client_detection(connection: Connection) -> None:
    """Make every later connection of this process (env.py's too) set CLIENT_CHECK_OPTION."""
    if not client_check_supported(connection):
        return
    options = os.environ.get("PGOPTIONS", "")
    if CLIENT_CHECK_OPTION not in options:
        os.environ["PGOPTIONS"] = f"{options} {CLIENT_CHECK_OPTION}".strip()


def describe(connection: Connection) -> str:
    """host:port/database of a connection, without credentials."""
    info = connection.info
    return f"{info.host}:{info.port}/{info.dbname} as {info.user}"


def keep_session_alive(connection: Connection) -> None:
    """Exempt the lock's session from the server's idle timeouts: it sits idle, holding the
    lock, for as long as the migrations run on another connection."""
    settings = ["idle_in_transaction_session_timeout"]
    if int(connection.server_version) >= 140000:
        settings.append("idle_session_timeout")
    with connection.cursor() as cursor:
        for name in settings:
            cursor.execute("SELECT set_config(%s, '0', false)", (name,))


def is_connection_lost(error: BaseException) -> bool:
    """Whether a database error means the session is gone (not that a statement failed)."""
    if not isinstance(error, psycopg2.OperationalError):
        return False
    code = error.pgcode
    # No SQLSTATE: libpq's own error (the socket broke). Class 08: connection exception.
    # 57P01-57P03: the server is shutting down, crashed, or not accepting connections.
    return code is None or code.startswith("08") or code in ("57P01", "57P02", "57P03")
