"""A PostgreSQL session of the job's: what the engine interface asks of one (engines.Session)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from psycopg2 import sql

from migration_job.engines.postgres.connection import LendableConnection, connect
from migration_job.engines.postgres.lock import PostgresAdvisoryLock, lock_key_for
from migration_job.engines.postgres.partitions import SERVER_KEEPALIVES, shut_down
from migration_job.engines.postgres.pooling import refuse_shared_sessions
from migration_job.engines.shared_answers import ReadsVersionTable

if TYPE_CHECKING:
    from migration_job.engines.blocking import Blocker
    from migration_job.engines.inputs import ConnectionSettings, VersionTable
    from migration_job.engines.statement_progress import StatementProgress


class PostgresSession(ReadsVersionTable):
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
        The server's keepalives and TCP user timeout (postgres/partitions.py): it notices a
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

    def refuse_shared_sessions(self, settings: ConnectionSettings) -> None:
        """Raise PoolerNotSupported behind a pooler that shares server sessions."""
        refuse_shared_sessions(self.connection, lambda timeout: connect(settings, timeout=timeout))

    def lock(self, key: int | None, project: VersionTable,
             sleep: Callable[[float], None]) -> PostgresAdvisoryLock:
        """The advisory lock on this session; the key derived when not configured."""
        if key is None:
            key = lock_key_for(self.connection, project.version_table,
                               project.version_table_schema)
        return PostgresAdvisoryLock(self, self.connection, key, sleep=sleep)

    @contextmanager
    def lent_to_sqlalchemy(self, url: str) -> Iterator[None]:
        """Within the block, SQLAlchemy connections to `url` over psycopg2 get this session."""
        from migration_job.engines.postgres.handover import lent_to_sqlalchemy

        with lent_to_sqlalchemy(self.connection, url):
            yield

    @contextmanager
    def bounded_waits(self, lock_timeout: float, statement_timeout: float) -> Iterator[None]:
        """Within the block, lock_timeout and statement_timeout bound this session's statements
        and those of the connections env.py opens itself (postgres/waits.py)."""
        from migration_job.engines.postgres.waits import bounded_waits, revision_settings

        with bounded_waits(self.connection, revision_settings(lock_timeout, statement_timeout)):
            yield

    def blockers(self) -> tuple[Blocker, ...]:
        """The sessions holding the locks this process's statements wait for."""
        from migration_job.engines.postgres.waits import blockers

        return blockers(self.connection)

    def statement_progress(self) -> tuple[StatementProgress, ...]:
        """See postgres_progress.statement_progress."""
        from migration_job.engines.postgres.progress import statement_progress

        return statement_progress(self.connection)

    def unfinished_log(self, project: VersionTable) -> None:
        """DDL rolls back with its revision here: nothing is left unfinished."""

    def sever(self) -> bool:
        """Shut the session's socket down: a statement blocked on it fails at once."""
        shut_down(self.connection)
        return True

    def close(self) -> None:
        """Close the session (the server releases its locks)."""
        self.connection.close()

    def close_and_wait(self, timeout: float) -> None:
        """Close, and wait until the server has ended the session (postgres/session_end.py)."""
        from migration_job.engines.postgres.session_end import close_and_wait

        close_and_wait(self.connection, timeout)
