"""PostgreSQL through psycopg2: the job's sessions and what the engine interface asks of them."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import psycopg2
from psycopg2 import sql
from psycopg2.extensions import connection

from migration_job.engines import application_name, postgres_errors
from migration_job.engines.postgres_lock import PostgresAdvisoryLock, lock_key_for
from migration_job.engines.postgres_partitions import (
    LOST_SESSION,
    SERVER_KEEPALIVES,
    answered_within,
    keepalive_defaults,
    shut_down,
)
from migration_job.engines.postgres_pooling import refuse_shared_sessions

if TYPE_CHECKING:
    from migration_job.config import Settings
    from migration_job.engines.blocking import Blocker
    from migration_job.engines.statement_progress import StatementProgress
    from migration_job.project import Project


# How long a signal's cancel may wait to connect, and then for the server's answer.
CANCEL_WITHIN_S = 3.0


class LendableConnection(connection):
    """A libpq session that SQLAlchemy may borrow without closing it.

    The session that holds the migration lock also runs the revisions (postgres_handover.py).
    SQLAlchemy closes each connection env.py is done with; while `lendable`, close() does
    nothing, because the session must keep the lock until the job lets go.
    """

    lendable = False
    # While revisions run: the settings that bound their statements (postgres_waits.py), for
    # the connections env.py opens itself.
    revision_settings: dict[str, str] | None = None

    def close(self) -> None:
        """Close, unless lent out to SQLAlchemy."""
        if not self.lendable:
            super().close()


def connect(settings: Settings, *, timeout: float | None = None) -> LendableConnection:
    """Open an autocommit session: it never sits idle in a transaction holding a snapshot.

    Nothing goes in the startup packet but libpq's usual parameters and application_name:
    poolers such as PgBouncer reject others (`options`) with their stock settings. The
    keepalives (postgres_partitions.py) are the client's own: they never reach the server.
    """
    kwargs: dict[str, Any] = {"application_name": application_name(),
                              "connection_factory": LendableConnection,
                              **keepalive_defaults(settings.libpq_dsn)}
    if timeout is not None:
        # libpq's connect_timeout is whole seconds, minimum 2.
        kwargs["connect_timeout"] = max(2, int(timeout + 0.999))
    session: LendableConnection = psycopg2.connect(settings.libpq_dsn, **kwargs)
    session.autocommit = True
    return session


class PostgresSession:
    """A libpq session of the job's (see engines.Session for the contract)."""

    def __init__(self, connection: LendableConnection) -> None:
        self.connection = connection

    @property
    def server_version(self) -> int:
        """The server's version number (170002 for 17.2)."""
        return int(self.connection.server_version)

    def ping(self) -> None:
        """Run a trivial query."""
        with self.connection.cursor() as cursor:
            cursor.execute("SELECT 1")

    def describe(self) -> str:
        """host:port/database of the session, without credentials."""
        info = self.connection.info
        return f"{info.host}:{info.port}/{info.dbname} as {info.user}"

    def revisions(self, project: Project) -> tuple[str, ...]:
        """The revisions recorded in the version table; empty when it does not exist yet."""
        rows = self.table_rows(project.version_table_schema, project.version_table,
                               ("version_num",))
        return tuple(sorted(str(r[0]) for r in rows))

    def table_rows(self, schema: str | None, name: str,
                   columns: tuple[str, ...]) -> list[tuple[object, ...]]:
        """The columns of every row of a table; none when it does not exist (see Session)."""
        table: sql.Composable
        if schema:
            table = sql.SQL("{}.{}").format(sql.Identifier(schema), sql.Identifier(name))
        else:
            table = sql.Identifier(name)
        with self.connection.cursor() as cursor:
            cursor.execute("SELECT to_regclass(%s)", (table.as_string(self.connection),))
            row = cursor.fetchone()
            if row is None or row[0] is None:
                return []
            cursor.execute(sql.SQL("SELECT {} FROM {}").format(
                sql.SQL(", ").join(map(sql.Identifier, columns)), table))
            return list(cursor.fetchall())

    def read_only_reason(self) -> str | None:
        """Why this session cannot write (a standby, or read-only transactions), else None."""
        with self.connection.cursor() as cursor:
            cursor.execute("SELECT pg_is_in_recovery(), current_setting('transaction_read_only')")
            row = cursor.fetchone()
        assert row is not None
        if row[0]:
            return "it is a hot standby (in recovery), which only the primary can change"
        if row[1] == "on":
            return ("its transactions are read-only (default_transaction_read_only is on for "
                    "this database, role or server)")
        return None

    def prepare_for_migrations(self) -> None:
        """Session settings for a session that will take the lock and run the revisions.

        Idle timeouts off: the session waits while Alembic loads and between revisions, and
        losing it loses the lock.
        The server's keepalives and TCP user timeout (postgres_partitions.py): it notices a
        client cut off by a partition within about half a minute, where its OS would take
        hours. client_connection_check_interval (PostgreSQL 14+): the server notices a dead
        client within seconds even mid-statement, so a SIGKILLed (or cut off) job's
        transaction ends instead of blocking the next run. Set with set_config rather than
        PGOPTIONS, which poolers reject.
        """
        settings = {"idle_in_transaction_session_timeout": "0"}
        if self.server_version >= 120000:
            settings.update(SERVER_KEEPALIVES)
        if self.server_version >= 140000:
            settings.update({"idle_session_timeout": "0",
                             "client_connection_check_interval": "2000"})
        calls = ", ".join("set_config(%s, %s, false)" for _ in settings)
        with self.connection.cursor() as cursor:  # one round trip: no-op runs pay it
            cursor.execute(f"SELECT {calls}", [v for item in settings.items() for v in item])

    def refuse_shared_sessions(self, settings: Settings) -> None:
        """Raise PoolerNotSupported behind a pooler that shares server sessions."""
        refuse_shared_sessions(self.connection, lambda timeout: connect(settings, timeout=timeout))

    def lock(self, key: int | None, project: Project,
             sleep: Callable[[float], None]) -> PostgresAdvisoryLock:
        """The advisory lock on this session; the key derived when not configured."""
        if key is None:
            key = lock_key_for(self.connection, project.version_table,
                               project.version_table_schema)
        return PostgresAdvisoryLock(self, key, sleep=sleep)

    @contextmanager
    def lent_to_sqlalchemy(self, url: str) -> Iterator[None]:
        """Within the block, SQLAlchemy connections to `url` over psycopg2 get this session."""
        from migration_job.engines.postgres_handover import lent_to_sqlalchemy

        with lent_to_sqlalchemy(self.connection, url):
            yield

    @contextmanager
    def bounded_waits(self, lock_timeout: float, statement_timeout: float) -> Iterator[None]:
        """Within the block, lock_timeout and statement_timeout bound this session's statements
        and those of the connections env.py opens itself (postgres_waits.py)."""
        from migration_job.engines.postgres_waits import bounded_waits, revision_settings

        with bounded_waits(self.connection, revision_settings(lock_timeout, statement_timeout)):
            yield

    def blockers(self) -> tuple[Blocker, ...]:
        """The sessions holding the locks this process's statements wait for."""
        from migration_job.engines.postgres_waits import blockers

        return blockers(self.connection)

    def statement_progress(self) -> tuple[StatementProgress, ...]:
        """See postgres_progress.statement_progress."""
        from migration_job.engines.postgres_progress import statement_progress

        return statement_progress(self.connection)

    def unfinished_log(self, project: Project) -> None:
        """DDL rolls back with its revision here: nothing is left unfinished."""

    def sever(self) -> bool:
        """Shut the session's socket down: a statement blocked on it fails at once."""
        shut_down(self.connection)
        return True

    def close(self) -> None:
        """Close the session (the server releases its locks)."""
        self.connection.close()


class PostgresEngine:
    """PostgreSQL through psycopg2 (see engines.Engine for the contract)."""

    transactional_ddl = True
    reports_progress = True
    has_server = True
    read_only_advice = "point the job at the primary"
    errors: tuple[type[Exception], ...] = (psycopg2.Error,)

    def connect(self, settings: Settings, timeout: float | None = None) -> PostgresSession:
        """Open an autocommit session."""
        return PostgresSession(connect(settings, timeout=timeout))

    def is_transient(self, error: BaseException) -> bool:
        """See postgres_errors.is_transient."""
        return postgres_errors.is_transient(error)

    def rejection_advice(self, error: BaseException) -> str:
        """See postgres_errors.rejection_advice."""
        return postgres_errors.rejection_advice(error)

    def is_connection_lost(self, error: BaseException) -> bool:
        """See postgres_errors.is_connection_lost."""
        return postgres_errors.is_connection_lost(error)

    def is_permission_denied(self, error: BaseException) -> bool:
        """See postgres_errors.is_permission_denied."""
        return postgres_errors.is_permission_denied(error)

    def cancel_own_statements(self, settings: Settings) -> int:
        """Cancel every running statement of this process on the server; returns how many."""
        session = connect(settings, timeout=CANCEL_WITHIN_S)
        try:
            with answered_within(session, CANCEL_WITHIN_S), session.cursor() as cursor:
                cursor.execute(
                    "SELECT count(pg_cancel_backend(pid)) FROM pg_stat_activity "
                    "WHERE application_name = %s AND pid <> pg_backend_pid() "
                    "AND state = 'active'", (application_name(),))
                row = cursor.fetchone()
        finally:
            session.close()
        return int(row[0]) if row else 0

    def name_process(self) -> None:
        """libpq reads PGAPPNAME for every connection, env.py's own engine's too."""
        os.environ["PGAPPNAME"] = application_name()

    def sqlalchemy_connect_args(self) -> dict[str, object]:
        """psycopg2's connect arguments for the job's SQLAlchemy engines."""
        return {"application_name": application_name()}

    def check_url(self, url: str) -> None:
        """Every PostgreSQL URL that parses names a database the job can migrate."""

    def is_lock_timeout(self, error: BaseException) -> bool:
        """See postgres_errors.is_lock_timeout."""
        return postgres_errors.is_lock_timeout(error)

    def is_statement_timeout(self, error: BaseException) -> bool:
        """See postgres_errors.is_statement_timeout."""
        return postgres_errors.is_statement_timeout(error)

    def failure_advice(self, error: BaseException) -> str | None:
        """For a lost session, when the server rolls its revision back; any other failed
        revision on PostgreSQL is the migration's to fix."""
        return LOST_SESSION if postgres_errors.is_connection_lost(error) else None


ENGINE = PostgresEngine()
