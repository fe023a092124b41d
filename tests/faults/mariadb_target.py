"""The fault matrix's MariaDB harness: a database and a user of its own per cell.

The job connects as that user, not as root: root may write to a read_only server, and its
sessions would be hard to tell from the harness's own. The server's named locks are read
through the metadata_lock_info plugin (installed by the suite's fixture).
"""

from __future__ import annotations

import contextlib
import itertools
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pymysql

from tests.faults.shapes import Effect
from tests.faults.target import Target
from tests.support.mariadbserver import MariaDBServer

_numbers = itertools.count()
# How every gated statement on MariaDB ends (shapes.MARIADB_GATE and blocking_audit).
GATE_ROW_READ = "FROM fault_gate WHERE id = 1 FOR UPDATE"


class MariaTarget(Target):
    """A fresh database and user on `server`."""

    engine = "mariadb"

    def __init__(self, server: MariaDBServer, root: Path) -> None:
        super().__init__(root)
        self.server = server
        number = next(_numbers)
        self.name = self.user = f"f{number}"
        server.create_database(self.name)
        secret = server.password.replace("\\", "\\\\").replace("'", "\\'")
        for statement in (f"CREATE USER '{self.user}'@'127.0.0.1' IDENTIFIED BY '{secret}'",
                          f"GRANT ALL ON `{self.name}`.* TO '{self.user}'@'127.0.0.1'",
                          "CREATE TABLE fault_gate (id integer PRIMARY KEY) ENGINE=InnoDB",
                          "INSERT INTO fault_gate VALUES (1)"):
            self.query(statement)
        self._gate: Any = None
        self._blockers: list[Any] = []

    def url(self) -> str:
        secret = quote(self.server.password, safe="")
        port = self.port_override or self.server.port
        return f"mysql+pymysql://{self.user}:{secret}@127.0.0.1:{port}/{self.name}"

    def query(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        """Rows of a statement, as root on a connection of the harness's own."""
        conn = self.server.connect(self.name)
        try:
            with conn.cursor() as cur:
                cur.execute(sql, params or None)
                return list(cur.fetchall()) if cur.description else []
        finally:
            conn.close()

    def _exists(self, table: str) -> bool:
        return bool(self.query("SELECT 1 FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s "
                               "AND TABLE_NAME = %s", self.name, table))

    def versions(self) -> list[str]:
        if not self._exists("alembic_version"):
            return []
        return sorted(r[0] for r in self.query("SELECT version_num FROM alembic_version"))

    def count(self, effect: Effect) -> int:
        if effect.kind == "audit":
            if not self._exists("migration_audit"):
                return 0
            return int(self.query("SELECT count(*) FROM migration_audit WHERE revision = %s",
                                  effect.name)[0][0])
        if effect.kind == "column":
            table, column = effect.name.split(".")
            return int(self.query("SELECT count(*) FROM information_schema.COLUMNS WHERE "
                                  "TABLE_SCHEMA = %s AND TABLE_NAME = %s AND COLUMN_NAME = %s",
                                  self.name, table, column)[0][0])
        if effect.kind == "table":
            return int(self._exists(effect.name))
        if effect.kind == "row":
            table, key = effect.name.split(".")
            if not self._exists(table):
                return 0
            return int(self.query(f"SELECT count(*) FROM {table} WHERE id = %s",
                                  int(key))[0][0])
        raise AssertionError(f"no {effect.kind} effects on MariaDB")

    def undo(self, effect: Effect) -> None:
        if effect.kind == "audit":
            self.query("DELETE FROM migration_audit WHERE revision = %s", effect.name)
        elif effect.kind == "column":
            table, column = effect.name.split(".")
            self.query(f"ALTER TABLE {table} DROP COLUMN IF EXISTS {column}")
        elif effect.kind == "table":
            self.query(f"DROP TABLE IF EXISTS {effect.name}")
        else:
            table, key = effect.name.split(".")
            self.query(f"DELETE FROM {table} WHERE id = %s", int(key))

    def leftovers(self) -> list[str]:
        sessions = self.query("SELECT ID, COMMAND, STATE, left(INFO, 80) FROM "
                              "information_schema.PROCESSLIST WHERE USER = %s", self.user)
        return [f"session of the job: id {i}, {c}, {s}, {q!r}" for i, c, s, q in sessions]

    def hold_gate(self) -> None:
        """The gate's row, locked in a transaction of the harness's."""
        gate = self.server.connect(self.name)
        with gate.cursor() as cur:
            cur.execute("BEGIN")
            cur.execute("SELECT id FROM fault_gate WHERE id = 1 FOR UPDATE")
        self._gate = gate

    def open_gate(self) -> None:
        super().open_gate()
        if self._gate is not None:
            _close(self._gate)
            self._gate = None

    def at_server_gate(self) -> bool:
        # The process list, not INNODB_TRX's 'LOCK WAIT': InnoDB refreshes INNODB_TRX only
        # when nobody read it for 0.1 s, so a harness polling faster than that reads the same
        # stale copy for ever (CI saw the job wait out innodb_lock_wait_timeout unnoticed).
        # A statement of the job's that reads the gate's row is as good a sign: it cannot end
        # while the harness holds the row (the gate itself, or the audit INSERT held inside).
        return bool(self.query(
            "SELECT ID FROM information_schema.PROCESSLIST WHERE USER = %s AND "
            "COMMAND = 'Query' AND INFO LIKE %s", self.user, f"%{GATE_ROW_READ}"))

    def job_session(self) -> int:
        """The connection that holds the job's named lock (and runs the revisions)."""
        rows = self.query(
            "SELECT DISTINCT l.THREAD_ID FROM information_schema.METADATA_LOCK_INFO l JOIN "
            "information_schema.PROCESSLIST p ON p.ID = l.THREAD_ID WHERE l.LOCK_TYPE = "
            "'User lock' AND l.TABLE_SCHEMA LIKE 'migration-job:%%' AND p.USER = %s", self.user)
        assert len(rows) == 1, f"expected one session holding the migration lock: {rows}"
        return int(rows[0][0])

    def terminate_job_session(self) -> None:
        self.query(f"KILL CONNECTION {self.job_session()}")

    def restart_server(self) -> None:
        self.server.kill()
        self.server.start()

    def hold_blocker(self, kind: str) -> Any:
        """A transaction that read `items`: it holds the table's metadata lock."""
        conn = self.server.connect(self.name)
        with conn.cursor() as cur:
            cur.execute("BEGIN")
            cur.execute("SELECT count(*) FROM items")
        self._blockers.append(conn)
        return conn

    def release_blockers(self) -> None:
        for conn in self._blockers:
            _close(conn)
        self._blockers.clear()

    def set_read_only(self, on: bool) -> None:
        """read_only stops every session without the READ_ONLY ADMIN privilege at once."""
        self.query(f"SET GLOBAL read_only = {'ON' if on else 'OFF'}")

    def close(self) -> None:
        self.open_gate()
        self.release_blockers()


def _close(conn: Any) -> None:
    with contextlib.suppress(pymysql.Error):
        conn.close()
