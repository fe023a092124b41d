"""The fault matrix's PostgreSQL harness: a database per cell on a server the suite owns."""

from __future__ import annotations

import contextlib
import itertools
from pathlib import Path
from typing import Any

import psycopg2

from tests.faults.shapes import Effect
from tests.faults.target import Target
from tests.support.pgserver import PostgresServer

_numbers = itertools.count()
JOB_SESSIONS = "application_name LIKE 'migration-job:%%'"
# The job's migration lock and revision gate are one-key advisory locks (objsubid 1); the
# test's gate is the two-key lock (91919, 1) (objsubid 2), so neither is mistaken for the other.
GATE_WAIT = ("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted "
             "AND classid = 91919 AND objid = 1 AND objsubid = 2 AND database = "
             "(SELECT oid FROM pg_database WHERE datname = current_database())")


class PgTarget(Target):
    """A fresh database on `server`; the job may reach it through a proxy's port."""

    engine = "postgresql"

    def __init__(self, server: PostgresServer, root: Path) -> None:
        super().__init__(root)
        self.server = server
        self.name = f"f{next(_numbers)}"
        server.create_database(self.name)
        self._gate: Any = None
        self._blockers: list[Any] = []

    def url(self) -> str:
        return self.server.url(self.name, port=self.port_override)

    def query(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        """Rows of a statement on a connection of the harness's own (autocommit)."""
        conn = self.server.connect(self.name)
        try:
            with conn.cursor() as cur:
                cur.execute(sql, params or None)
                return list(cur.fetchall()) if cur.description else []
        finally:
            conn.close()

    def _exists(self, relation: str) -> bool:
        return self.query("SELECT to_regclass(%s)", relation)[0][0] is not None

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
            return int(self.query("SELECT count(*) FROM information_schema.columns WHERE "
                                  "table_name = %s AND column_name = %s", table, column)[0][0])
        if effect.kind == "table":
            return int(self._exists(effect.name))
        if effect.kind == "row":
            table, key = effect.name.split(".")
            if not self._exists(table):
                return 0
            return int(self.query(f"SELECT count(*) FROM {table} WHERE id = %s",
                                  int(key))[0][0])
        valid = effect.kind == "index"
        return int(self.query("SELECT count(*) FROM pg_index i JOIN pg_class c ON "
                              "c.oid = i.indexrelid WHERE c.relname = %s AND i.indisvalid = %s",
                              effect.name, valid)[0][0])

    def undo(self, effect: Effect) -> None:
        if effect.kind == "audit":
            self.query("DELETE FROM migration_audit WHERE revision = %s", effect.name)
        elif effect.kind == "column":
            table, column = effect.name.split(".")
            self.query(f"ALTER TABLE {table} DROP COLUMN IF EXISTS {column}")
        elif effect.kind == "table":
            self.query(f"DROP TABLE IF EXISTS {effect.name}")
        elif effect.kind == "row":
            table, key = effect.name.split(".")
            self.query(f"DELETE FROM {table} WHERE id = %s", int(key))
        else:
            self.query(f"DROP INDEX IF EXISTS {effect.name}")

    def leftovers(self) -> list[str]:
        sessions = self.query(
            f"SELECT pid, state, left(query, 80) FROM pg_stat_activity WHERE datname = %s "
            f"AND {JOB_SESSIONS}", self.name)
        locks = self.query(
            "SELECT l.pid, l.classid, l.objid, l.granted FROM pg_locks l LEFT JOIN "
            "pg_stat_activity a ON a.pid = l.pid WHERE l.locktype = 'advisory' AND "
            "l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
            "AND coalesce(a.application_name, '') <> 'test-harness'")
        return ([f"session of the job: pid {p}, {s}, {q!r}" for p, s, q in sessions]
                + [f"advisory lock ({c}, {o}) of pid {p}, granted={g}"
                   for p, c, o, g in locks])

    def hold_gate(self) -> None:
        gate = self.server.connect(self.name)
        with gate.cursor() as cur:
            cur.execute("SELECT pg_advisory_lock(91919, 1)")
        self._gate = gate

    def open_gate(self) -> None:
        super().open_gate()
        if self._gate is not None:
            _close(self._gate)
            self._gate = None

    def at_server_gate(self) -> bool:
        return int(self.query(GATE_WAIT)[0][0]) == 1

    def job_session(self) -> int:
        """The backend that holds the migration lock (and runs the revisions)."""
        rows = self.query(
            f"SELECT DISTINCT l.pid FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
            f"WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 AND a.datname = %s "
            f"AND {JOB_SESSIONS.replace('application_name', 'a.application_name')}", self.name)
        assert len(rows) == 1, f"expected one session holding the migration lock: {rows}"
        return int(rows[0][0])

    def terminate_job_session(self) -> None:
        self.query("SELECT pg_terminate_backend(%s)", self.job_session())

    def restart_server(self) -> None:
        self.server.kill()
        self.server.start()

    def hold_blocker(self, kind: str) -> Any:
        """A transaction holding a row lock on items, or (kind "snapshot") an old snapshot."""
        conn = psycopg2.connect(host=self.server.host, port=self.server.port, user="postgres",
                                password=self.server.password, dbname=self.name,
                                application_name="test-harness")
        with conn.cursor() as cur:
            if kind == "snapshot":
                cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                cur.execute("SELECT count(*) FROM migration_audit")
            else:
                cur.execute("SELECT id FROM items WHERE id = 1 FOR UPDATE")
        self._blockers.append(conn)
        return conn

    def release_blockers(self) -> None:
        for conn in self._blockers:
            _close(conn)
        self._blockers.clear()

    def waits_for_snapshot(self, longer_than: float) -> bool:
        """Whether the job's CREATE INDEX CONCURRENTLY has waited for an older transaction
        (its virtualxid) for longer than that many seconds."""
        return bool(self.query(
            f"SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND {JOB_SESSIONS} "
            "AND wait_event = 'virtualxid' AND now() - query_start > %s * interval '1 second'",
            self.name, longer_than)[0][0])

    def set_read_only(self, on: bool) -> None:
        """ALTER SYSTEM: the server's sessions pick it up for their next transaction."""
        value = "on" if on else "off"
        conn = self.server.connect()
        try:
            with conn.cursor() as cur:
                cur.execute(f"ALTER SYSTEM SET default_transaction_read_only = {value}")
                cur.execute("SELECT pg_reload_conf()")
        finally:
            conn.close()

    def read_only_in_new_sessions(self) -> bool:
        """Whether a new session starts read-only (the reload is asynchronous)."""
        return bool(self.query("SHOW default_transaction_read_only")[0][0] == "on")

    def close(self) -> None:
        self.open_gate()
        self.release_blockers()


def _close(conn: Any) -> None:
    with contextlib.suppress(psycopg2.Error):
        conn.close()
