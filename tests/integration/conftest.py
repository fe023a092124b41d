"""Session servers (PostgreSQL; MariaDB on first use) and a fresh PostgreSQL database per test."""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.support.mariadbserver import MariaDBServer, running_mariadb
from tests.support.pgserver import PostgresServer, running_server

_numbers = itertools.count()


@pytest.fixture(scope="session")
def pg() -> Iterator[PostgresServer]:
    """The session's server (tests that stop or kill a server start their own)."""
    with running_server() as server:
        yield server


@pytest.fixture(scope="session")
def mariadb() -> Iterator[MariaDBServer]:
    """The session's MariaDB server (tests that stop or kill a server start their own)."""
    with running_mariadb() as server:
        yield server


@dataclass
class Database:
    """One test's database and a superuser view into it."""

    server: PostgresServer
    name: str
    url: str

    def query(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        """Run a query as the test harness and return all rows."""
        conn = self.server.connect(self.name)
        try:
            with conn.cursor() as cur:
                cur.execute(sql, params or None)
                return list(cur.fetchall()) if cur.description else []
        finally:
            conn.close()

    def revisions(self) -> list[str]:
        """What alembic_version says (empty if it does not exist)."""
        if not self.query("SELECT to_regclass('alembic_version')")[0][0]:
            return []
        return sorted(r[0] for r in self.query("SELECT version_num FROM alembic_version"))

    def applications(self) -> dict[str, int]:
        """How often each revision was applied, from the audit table."""
        rows = self.query("SELECT revision, count(*) FROM migration_audit "
                          "WHERE direction = 'upgrade' GROUP BY revision")
        return {r[0]: int(r[1]) for r in rows}

    def exists(self, relation: str) -> bool:
        """Whether a table (or other relation) exists."""
        return self.query("SELECT to_regclass(%s)", relation)[0][0] is not None

    def advisory_locks(self) -> int:
        """Advisory locks held in this database by anyone."""
        return int(self.query(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND database = "
            "(SELECT oid FROM pg_database WHERE datname = current_database())")[0][0])

    def running_statements(self, like: str) -> int:
        """Active statements of migration-job sessions matching a pattern."""
        return int(self.query(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE 'migration-job:%%' "
            "AND state = 'active' AND query LIKE %s", like)[0][0])


def database_in(server: PostgresServer, request: pytest.FixtureRequest) -> Database:
    """A new, empty database named after the test."""
    stem = re.sub(r"[^a-z0-9]+", "_", request.node.name.lower())[:40]
    name = f"t{next(_numbers)}_{stem}"
    return Database(server, name, server.create_database(name))


@pytest.fixture
def database(pg: PostgresServer, request: pytest.FixtureRequest) -> Database:
    """A fresh database on the session's server."""
    return database_in(pg, request)
