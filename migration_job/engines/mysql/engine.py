"""MySQL 8 and MariaDB 10.6+ through PyMySQL (pure Python): the job's sessions and the engine.

What differs from PostgreSQL: DDL is not transactional (each statement commits on its own),
so each revision is recorded before it starts (mysql/unfinished.py) and a revision that did
not finish stops the next run (exit 10); the lock is a named lock (mysql/lock.py); a signal
stops a running statement with KILL QUERY from a second session. No wait for the server's
reply is without end (mysql/connection.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, ClassVar

import pymysql

from migration_job.engines.locking import derive_lock_key
from migration_job.engines.mysql import errors as mysql_errors
from migration_job.engines.mysql.connection import (
    CANCEL_TIMEOUT_S,
    OPEN,
    REPLY_TIMEOUT_S,
    LendableConnection,
    connect,
)
from migration_job.engines.mysql.lock import NamedLock
from migration_job.engines.mysql.unfinished import MysqlUnfinishedLog
from migration_job.engines.mysql.url import check_url
from migration_job.engines.naming import application_name
from migration_job.engines.shared_answers import (
    AnswersFromErrorKinds,
    ErrorKinds,
    ReadsVersionTable,
)

if TYPE_CHECKING:
    from migration_job.engines.blocking import Blocker
    from migration_job.engines.inputs import ConnectionSettings, VersionTable
    from migration_job.engines.statement_progress import StatementProgress


class MysqlSession(ReadsVersionTable):
    """A PyMySQL session of the job's (see engines.Session for the contract)."""

    def __init__(self, connection: LendableConnection) -> None:
        self.connection = connection

    def _row(self, query: str, *parameters: object) -> tuple[Any, ...]:
        with self.connection.cursor() as cursor:
            cursor.execute(query, parameters or None)
            row = cursor.fetchone()
        return tuple(row) if row is not None else (None,)

    def _one(self, query: str, *parameters: object) -> Any:
        return self._row(query, *parameters)[0]

    @property
    def server_version(self) -> int:
        """The server's version as a number (101106 for 10.11.6, 80036 for 8.0.36)."""
        info = str(self.connection.get_server_info())  # type: ignore[no-untyped-call]
        # MariaDB 10 and 11 say "5.5.5-10.11.6-MariaDB" to old replication clients.
        numbers = [*info.removeprefix("5.5.5-").split("-")[0].split("."), "0", "0"]
        major, minor, patch = (int("".join(c for c in n if c.isdigit()) or 0)
                               for n in numbers[:3])
        return major * 10_000 + minor * 100 + patch

    def ping(self) -> None:
        """Run a trivial query, answered within the connect's timeout (the wait's proof
        that the server answers: it must not outlast the wait's attempt)."""
        with self.connection.answered_within(self.connection.handshake_timeout):
            self._one("SELECT 1")

    def describe(self) -> str:
        """host:port/database of the session, without credentials."""
        c = self.connection
        where = c.unix_socket or f"{c.host}:{c.port}"
        database = c.db.decode() if isinstance(c.db, bytes) else c.db
        user = c.user.decode() if isinstance(c.user, bytes) else c.user
        return f"{where}/{database} as {user}"

    def table_rows(self, schema: str | None, name: str,
                   columns: tuple[str, ...]) -> list[tuple[object, ...]]:
        """The columns of every row of a table; none when it does not exist (see Session)."""
        table = f"{_quote(schema)}.{_quote(name)}" if schema else _quote(name)
        try:
            with self.connection.cursor() as cursor:
                cursor.execute(f"SELECT {', '.join(map(_quote, columns))} FROM {table}")
                return list(cursor.fetchall())
        except pymysql.err.ProgrammingError as error:
            if mysql_errors.code(error) == mysql_errors.NO_SUCH_TABLE:
                return []
            raise

    def read_only_reason(self) -> str | None:
        """Why this session cannot write (a read-only server or replica), else None."""
        try:
            row = self._row("SELECT @@global.read_only, @@session.transaction_read_only")
        except pymysql.err.OperationalError as error:
            if mysql_errors.code(error) != mysql_errors.UNKNOWN_VARIABLE:
                raise
            # MariaDB before 11.1 knows the variable by its older name.
            row = self._row("SELECT @@global.read_only, @@session.tx_read_only")
        if row[0]:
            return ("the server is read-only (read_only is on: a replica, or a primary in "
                    "maintenance)")
        if row[1]:
            return "its transactions are read-only (transaction_read_only is on)"
        return None

    def prepare_for_migrations(self) -> None:
        """No idle timeout may end the lock's session while Alembic loads or a revision
        runs: wait_timeout (the server's idle limit, 8 hours by default) is raised to a week.
        """
        self._one("SET SESSION wait_timeout = 604800")

    def refuse_shared_sessions(self, settings: ConnectionSettings) -> None:
        """The lock's own try notices a session a proxy shares (mysql/lock.py)."""

    def lock(self, key: int | None, project: VersionTable,
             sleep: Callable[[float], None]) -> NamedLock:
        """The named lock on this session; the key derived when not configured."""
        if key is None:
            database = self._one("SELECT DATABASE()") or ""
            key = derive_lock_key(str(database), project.version_table_schema or "",
                                  project.version_table)
        return NamedLock(self, self.connection, key, sleep=sleep)

    @contextmanager
    def bounded_waits(self, lock_timeout: float, statement_timeout: float) -> Iterator[None]:
        """Within the block, lock_wait_timeout (and on MariaDB max_statement_time) bound this
        session's statements (mysql/waits.py)."""
        from migration_job.engines.mysql.waits import bounded_waits, revision_settings

        with bounded_waits(self.connection,
                           revision_settings(lock_timeout, statement_timeout, self._mariadb())):
            yield

    def blockers(self) -> tuple[Blocker, ...]:
        """See mysql_waits.blockers."""
        from migration_job.engines.mysql.waits import blockers

        return blockers(self.connection)

    def statement_progress(self) -> tuple[StatementProgress, ...]:
        """See mysql_progress.statement_progress."""
        from migration_job.engines.mysql.progress import statement_progress

        return statement_progress(self.connection, self._mariadb())

    def _mariadb(self) -> bool:
        return "mariadb" in str(self.connection.get_server_info()).lower()  # type: ignore[no-untyped-call]

    def unfinished_log(self, project: VersionTable) -> MysqlUnfinishedLog:
        """DDL is not transactional here: revisions are recorded while they run."""
        return MysqlUnfinishedLog(self, self.connection, project)

    @contextmanager
    def lent_to_sqlalchemy(self, url: str) -> Iterator[None]:
        """Within the block, SQLAlchemy connections to `url` over PyMySQL get this session."""
        from migration_job.engines.mysql.handover import lent_to_sqlalchemy

        with lent_to_sqlalchemy(self.connection, url):
            yield

    def sever(self) -> bool:
        """Nothing: a revision cut short here needs a repair, which a false alarm must not
        cost; the lock check before each commit still guards."""
        return False

    def close(self) -> None:
        """Close the session (the server releases its named locks)."""
        self.connection.close()

    def close_and_wait(self, timeout: float) -> None:
        """Close: the server counts the session until its thread is gone, after the socket
        closed, so the end of the stream would prove nothing."""
        self.close()


def _thread_id(connection: LendableConnection) -> int:
    """The server's id of a session (CONNECTION_ID() on it)."""
    return int(connection.thread_id())  # type: ignore[no-untyped-call]


def _quote(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


class MysqlEngine(AnswersFromErrorKinds):
    """MySQL and MariaDB through PyMySQL (see engines.Engine for the contract)."""

    kinds: ClassVar[ErrorKinds] = mysql_errors
    errors: tuple[type[Exception], ...] = (pymysql.err.MySQLError,)
    transactional_ddl = False
    reports_progress = True
    has_server = True
    read_only_advice = "point the job at the primary"

    def connect(self, settings: ConnectionSettings, timeout: float | None = None) -> MysqlSession:
        """Open an autocommit session: connected and pinged within `timeout`, its other
        statements answered within the wait timeout (at least REPLY_TIMEOUT_S)."""
        replies = max(settings.wait_timeout, REPLY_TIMEOUT_S)
        return MysqlSession(connect(settings, timeout=timeout, reply_timeout=replies))

    def cancel_own_statements(self, settings: ConnectionSettings) -> int:
        """KILL QUERY, from a new session, every statement this process's sessions run."""
        ids = sorted(_thread_id(c) for c in list(OPEN) if c.open)
        if not ids:
            return 0
        session = connect(settings, timeout=CANCEL_TIMEOUT_S)
        try:
            with session.cursor() as cursor:
                cursor.execute("SELECT ID FROM information_schema.PROCESSLIST WHERE ID IN %s "
                               "AND COMMAND = 'Query' AND ID <> CONNECTION_ID()", (ids,))
                running = [row[0] for row in cursor.fetchall()]
                for thread in running:
                    cursor.execute(f"KILL QUERY {int(thread)}")
        finally:
            session.close()
        return len(running)

    def name_process(self) -> None:
        """PyMySQL answers to the name MySQLdb too (mysqlclient's module, which SQLAlchemy
        loads for a bare mysql:// or mariadb:// and for +mysqldb, as the tutorial writes
        them): an env.py that builds its engine from DATABASE_URL itself then connects
        through PyMySQL, which the job answers with the lock's session (mysql/handover.py).

        The job's own sessions carry application_name() as their program_name attribute;
        MySQL has no variable that names the connections env.py opens itself.
        """
        pymysql.install_as_MySQLdb()

    def sqlalchemy_connect_args(self) -> dict[str, object]:
        """PyMySQL's connect arguments for the job's SQLAlchemy engines."""
        return {"program_name": application_name()}

    def check_url(self, url: str) -> None:
        """See mysql_url.check_url."""
        check_url(url)

    def failure_advice(self, error: BaseException) -> str | None:
        """See mysql_errors.failure_advice."""
        return mysql_errors.failure_advice(error)


ENGINE = MysqlEngine()
