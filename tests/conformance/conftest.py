"""Each engine under test: a server or a file, and the acts on it the engine interface lacks."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field

import pytest

from migration_job.engines import Engine, Session
from migration_job.engines.mysql.engine import MysqlSession
from migration_job.engines.postgres.session import PostgresSession
from migration_job.settings import Settings
from migration_job.settings.load import load_settings
from tests.support.mariadbserver import running_mariadb
from tests.support.pgserver import free_port, running_server
from tests.support.slow_statements import (
    MARIADB_COPY,
    PG_BUILD,
    gate_ids,
    gates_on,
    mariadb_table,
    pg_gated_table,
)

# A statement the server reports progress for, running on a session: within the block it runs
# (in a thread); the block gets whether it still does.
LongStatement = Callable[[Session], AbstractContextManager[Callable[[], bool]]]


@dataclass
class Target:
    """One engine's server as the suite sees it."""

    settings: Settings
    # Ends a session from the server's side, as an administrator or a crash would.
    terminate: Callable[[Session], None]
    # The server with a wrong password, and an address where nothing listens.
    rejected_url: str
    unreachable_url: str
    # None where the server reports no statement's progress.
    long_statement: LongStatement | None = None
    opened: list[Session] = field(default_factory=list)

    @property
    def engine(self) -> Engine:
        """The engine the URL names."""
        return self.settings.engine

    def session(self) -> Session:
        """A new session, closed at the end of the test."""
        session = self.engine.connect(self.settings, timeout=5)
        self.opened.append(session)
        return session


@contextmanager
def running(execute: Callable[[], None]) -> Iterator[Callable[[], bool]]:
    """`execute()` in a thread for the block; whether it still runs; its error re-raised."""
    failed: list[BaseException] = []

    def run() -> None:
        try:
            execute()
        except BaseException as error:  # noqa: BLE001  (re-raised in the test's thread)
            failed.append(error)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield thread.is_alive
    finally:
        thread.join(120)
    if failed:
        raise failed[0]


def settings_for(url: str) -> Settings:
    """Settings for a URL, loaded as the job loads them."""
    return load_settings({}, {"DATABASE_URL": url, "MIGRATE_TERMINATION_LOG": ""})


@pytest.fixture(scope="session")
def postgres() -> Iterator[Target]:
    """PostgreSQL: an empty database on a throwaway server."""
    with running_server() as server:
        url = server.create_database("conformance")

        def terminate(session: Session) -> None:
            assert isinstance(session, PostgresSession)
            server.scalar(f"SELECT pg_terminate_backend({session.connection.get_backend_pid()})")

        for statement in pg_gated_table(rows=200_000, gates=1):
            server.scalar(statement, "conformance")

        @contextmanager
        def index_build(session: Session) -> Iterator[Callable[[], bool]]:
            """An index build held in its scan until the block ends."""
            assert isinstance(session, PostgresSession)
            connection = session.connection
            def build() -> None:
                with connection.cursor() as cursor:
                    cursor.execute(PG_BUILD)
                    cursor.execute("DROP INDEX progress_gated")

            with (gates_on(server.connect("conformance"), gate_ids(200_000, 1)) as gates,
                  running(build) as still):
                try:
                    yield still
                finally:
                    gates.open_all()

        yield Target(settings_for(url), terminate, server.url("conformance", password="wrong"),
                     server.url("conformance", port=free_port()), index_build)


@pytest.fixture(scope="session")
def mariadb() -> Iterator[Target]:
    """MariaDB (the MySQL engine): an empty database on a throwaway server.

    A session ends from the server's side by KILL of its connection id, as an administrator's
    KILL or the server's wait_timeout would end it.
    """
    with running_mariadb() as server:
        url = server.create_database("conformance")

        def terminate(session: Session) -> None:
            assert isinstance(session, MysqlSession)
            connection_id = session.connection.thread_id()  # type: ignore[no-untyped-call]
            server.scalar(f"KILL {int(connection_id)}")

        for statement in mariadb_table(rows=100_000):
            server.scalar(statement, database="conformance")

        @contextmanager
        def table_copy(session: Session) -> Iterator[Callable[[], bool]]:
            """A table copy that runs for seconds by its work."""
            assert isinstance(session, MysqlSession)
            connection = session.connection

            def copy() -> None:
                with connection.cursor() as cursor:
                    cursor.execute(MARIADB_COPY)
                    cursor.execute("ALTER TABLE progress_table DROP COLUMN digest")

            with running(copy) as still:
                yield still

        yield Target(settings_for(url), terminate, server.url("conformance", password="wrong"),
                     server.url("conformance", port=free_port()), table_copy)


@pytest.fixture(scope="session")
def sqlite(tmp_path_factory: pytest.TempPathFactory) -> Target:
    """SQLite: a file in a fresh directory; a session ends by closing it, as a dying job's does."""
    root = tmp_path_factory.mktemp("sqlite-conformance")
    (root / "a-directory").mkdir()
    # A path that names a directory cannot be opened; a directory that is missing is waited for.
    return Target(settings_for(f"sqlite:///{root}/conformance.db"), lambda s: s.close(),
                  f"sqlite:///{root}/a-directory", f"sqlite:///{root}/not-mounted-yet/app.db")


@pytest.fixture(params=["postgres", "sqlite", "mariadb"])
def target(request: pytest.FixtureRequest) -> Iterator[Target]:
    """Each engine in turn; the sessions a test opened are closed after it."""
    under_test: Target = request.getfixturevalue(request.param)
    yield under_test
    for session in under_test.opened:
        session.close()
    under_test.opened.clear()
