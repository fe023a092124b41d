"""PostgreSQL through psycopg2: what the engine interface asks of the engine (engines.Engine)."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, ClassVar

import psycopg2

from migration_job.engines.naming import application_name
from migration_job.engines.postgres import errors as postgres_errors
from migration_job.engines.postgres.connection import connect
from migration_job.engines.postgres.partitions import LOST_SESSION, answered_within
from migration_job.engines.postgres.session import PostgresSession
from migration_job.engines.shared_answers import AnswersFromErrorKinds, ErrorKinds

if TYPE_CHECKING:
    from migration_job.engines.inputs import ConnectionSettings


# How long a signal's cancel may wait to connect, and then for the server's answer.
CANCEL_WITHIN_S = 3.0


class PostgresEngine(AnswersFromErrorKinds):
    """PostgreSQL through psycopg2 (see engines.Engine for the contract)."""

    transactional_ddl = True
    reports_progress = True
    has_server = True
    read_only_advice = "point the job at the primary"
    kinds: ClassVar[ErrorKinds] = postgres_errors
    errors: tuple[type[Exception], ...] = (psycopg2.Error,)

    def connect(self, settings: ConnectionSettings,
                timeout: float | None = None) -> PostgresSession:
        """Open an autocommit session."""
        return PostgresSession(connect(settings, timeout=timeout))

    def cancel_own_statements(self, settings: ConnectionSettings) -> int:
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

    def failure_advice(self, error: BaseException) -> str | None:
        """For a lost session, when the server rolls its revision back; any other failed
        revision on PostgreSQL is the migration's to fix."""
        return LOST_SESSION if postgres_errors.is_connection_lost(error) else None


ENGINE = PostgresEngine()
