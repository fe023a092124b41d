"""Where the engines of issue 9 keep their databases: SQLite files, a throwaway MariaDB server.

A site gives the fleet and the no-op scenarios what PostgreSQL's Bench gives them: a URL per
database, a way to recreate a database, set-up to head, what a database recorded, and the
server's CPU time. PostgreSQL's Bench (world.py) has the same methods.
"""

from __future__ import annotations

import os
import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Protocol

from benchmarks.histories import History, setup_statements
from tests.support.mariadbserver import MariaDBServer


class Site(Protocol):
    """What the scenarios ask of an engine's databases (world.Bench is PostgreSQL's)."""

    def url(self, database: str) -> str:
        """The job's (and plain Alembic's) URL for a database."""
        ...

    def recreate_database(self, name: str) -> str:
        """Drop and create an empty database; return its URL."""
        ...

    def audit_counts(self, database: str) -> dict[str, int]:
        """Rows in bench_audit per revision step."""
        ...

    def alembic_version(self, database: str) -> list[str]:
        """What alembic_version says."""
        ...

    def server_cpu_s(self) -> float:
        """CPU time the database server has used so far (0 without a server)."""
        ...


class EngineSite(Site, Protocol):
    """A site of an engine other than PostgreSQL: also its name, dialect and set-up."""

    name: str  # as BENCHMARKS.md names the engine
    dialect: str  # the histories' SQL dialect

    def version(self) -> str:
        """The engine's version, for BENCHMARKS.md."""
        ...

    def load_to_head(self, database: str, history: History) -> None:
        """Run the history's SQL and bookkeeping into an empty database (not measured)."""
        ...


class SqliteSite:
    """Database files in one directory; no server."""

    name = "SQLite"
    dialect = "sqlite"

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)

    def path(self, database: str) -> Path:
        """The database's file."""
        return self.directory / f"{database}.db"

    def url(self, database: str) -> str:
        """sqlite:////absolute/path.db"""
        return f"sqlite:///{self.path(database)}"

    def recreate_database(self, name: str) -> str:
        """Remove the file, its journals and the job's lock file: the next open creates it."""
        path = self.path(name)
        for suffix in ("", "-journal", "-wal", "-shm", ".migration-lock"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        os.sync()
        return self.url(name)

    def _query(self, database: str, sql: str) -> list[tuple[object, ...]]:
        with closing(sqlite3.connect(self.path(database))) as connection:
            return connection.execute(sql).fetchall()

    def audit_counts(self, database: str) -> dict[str, int]:
        """Rows in bench_audit per revision step."""
        rows = self._query(database, "SELECT revision, count(*) FROM bench_audit "
                                     "GROUP BY revision")
        return {str(r[0]): int(str(r[1])) for r in rows}

    def alembic_version(self, database: str) -> list[str]:
        """What alembic_version says."""
        return sorted(str(r[0]) for r in self._query(database,
                                                     "SELECT version_num FROM alembic_version"))

    def server_cpu_s(self) -> float:
        """No server: every cycle is spent in the runners themselves."""
        return 0.0

    def version(self) -> str:
        """The SQLite library Python's sqlite3 links (the one the job and Alembic use)."""
        return f"SQLite {sqlite3.sqlite_version} (Python's sqlite3)"

    def load_to_head(self, database: str, history: History) -> None:
        """all.sql in one transaction."""
        connection = sqlite3.connect(self.path(database), isolation_level=None)
        try:
            connection.execute("BEGIN")
            for statement in setup_statements(history):
                connection.execute(statement)
            connection.execute("COMMIT")
        finally:
            connection.close()
        os.sync()


def _quote(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


class MariaDBSite:
    """Databases on a throwaway MariaDB server (tests/support/mariadbserver.py)."""

    name = "MariaDB"
    dialect = "mysql"

    def __init__(self, server: MariaDBServer) -> None:
        self.server = server

    def url(self, database: str) -> str:
        """mysql+pymysql://root:...@127.0.0.1:PORT/database"""
        return self.server.url(database)

    def recreate_database(self, name: str) -> str:
        """DROP DATABASE and CREATE DATABASE, then a sync so the next run's writes are its own."""
        connection = self.server.connect()
        try:
            with connection.cursor() as cursor:
                cursor.execute(f"DROP DATABASE IF EXISTS {_quote(name)}")
                cursor.execute(f"CREATE DATABASE {_quote(name)}")
        finally:
            connection.close()
        os.sync()
        return self.url(name)

    def _query(self, database: str, sql: str) -> list[tuple[object, ...]]:
        connection = self.server.connect(database)
        try:
            with connection.cursor() as cursor:
                cursor.execute(sql)
                return list(cursor.fetchall())
        finally:
            connection.close()

    def audit_counts(self, database: str) -> dict[str, int]:
        """Rows in bench_audit per revision step."""
        rows = self._query(database, "SELECT revision, count(*) FROM bench_audit "
                                     "GROUP BY revision")
        return {str(r[0]): int(str(r[1])) for r in rows}

    def alembic_version(self, database: str) -> list[str]:
        """What alembic_version says."""
        return sorted(str(r[0]) for r in self._query(database,
                                                     "SELECT version_num FROM alembic_version"))

    def server_cpu_s(self) -> float:
        """mariadbd's user + system time (one process: its sessions are threads)."""
        pid = self.server.pid()
        if pid is None:
            return 0.0
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            return 0.0
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def version(self) -> str:
        """SELECT VERSION()."""
        return f"MariaDB {self.server.scalar('SELECT VERSION()')}"

    def load_to_head(self, database: str, history: History) -> None:
        """all.sql statement by statement (MySQL commits each DDL statement by itself)."""
        connection = self.server.connect(database)
        try:
            with connection.cursor() as cursor:
                for statement in setup_statements(history):
                    cursor.execute(statement)
        finally:
            connection.close()
