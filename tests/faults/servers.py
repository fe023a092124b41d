"""The servers the fault matrix shares between its cells, started on first use: one
PostgreSQL and one MariaDB server of the suite's own (cells kill and restart them)."""

from __future__ import annotations

from pathlib import Path

from tests.faults.mariadb_target import MariaTarget
from tests.faults.pg_target import PgTarget
from tests.faults.sqlite_target import SqliteTarget
from tests.faults.target import Target
from tests.support.mariadbserver import MariaDBServer
from tests.support.pgserver import PostgresServer


class Servers:
    """Lazily started shared servers, destroyed by close()."""

    def __init__(self) -> None:
        self._pg: PostgresServer | None = None
        self._mariadb: MariaDBServer | None = None

    def pg(self) -> PostgresServer:
        """The shared PostgreSQL server."""
        if self._pg is None:
            self._pg = PostgresServer().start()
        return self._pg

    def mariadb(self) -> MariaDBServer:
        """The shared MariaDB server, with the plugin that lists named locks."""
        if self._mariadb is None:
            self._mariadb = MariaDBServer().start()
            self._mariadb.scalar("INSTALL SONAME 'metadata_lock_info'")
        return self._mariadb

    def target(self, engine: str, root: Path) -> Target:
        """A fresh database of `engine` on the shared server (a file, for SQLite)."""
        if engine == "postgresql":
            return PgTarget(self.pg(), root)
        if engine == "mariadb":
            return MariaTarget(self.mariadb(), root)
        return SqliteTarget(root)

    def close(self) -> None:
        """Stop and remove the servers that were started."""
        for server in (self._pg, self._mariadb):
            if server is not None:
                server.destroy()
