"""The fault matrix's SQLite harness: a database file per cell; gates are Python gates."""

from __future__ import annotations

import contextlib
import fcntl
import os
import sqlite3
import subprocess
from contextlib import closing
from pathlib import Path
from typing import Any

from tests.faults.shapes import Effect
from tests.faults.target import Target


class SqliteTarget(Target):
    """data/app.db under the cell's folder (the folder exists, the file not yet)."""

    engine = "sqlite"

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.data = root / "data"
        self.data.mkdir()
        self.path = self.data / "app.db"
        self._blockers: list[sqlite3.Connection] = []
        self._read_only = False

    def url(self) -> str:
        return f"sqlite:///{self.path}"

    def query(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        """Rows of a statement on a connection of the harness's own (autocommit)."""
        with closing(sqlite3.connect(self.path, isolation_level=None, timeout=30)) as conn:
            return conn.execute(sql, params).fetchall()

    def _exists(self, kind: str, name: str) -> bool:
        return bool(self.query("SELECT 1 FROM sqlite_master WHERE type = ? AND name = ?",
                               kind, name))

    def versions(self) -> list[str]:
        if not self.path.exists() or not self._exists("table", "alembic_version"):
            return []
        return sorted(r[0] for r in self.query("SELECT version_num FROM alembic_version"))

    def count(self, effect: Effect) -> int:
        if not self.path.exists():
            return 0
        if effect.kind == "audit":
            if not self._exists("table", "migration_audit"):
                return 0
            return int(self.query("SELECT count(*) FROM migration_audit WHERE revision = ?",
                                  effect.name)[0][0])
        if effect.kind == "column":
            table, column = effect.name.split(".")
            return sum(r[1] == column for r in self.query(f"PRAGMA table_info({table})"))
        if effect.kind == "table":
            return int(self._exists("table", effect.name))
        if effect.kind == "row":
            table, key = effect.name.split(".")
            if not self._exists("table", table):
                return 0
            return int(self.query(f"SELECT count(*) FROM {table} WHERE id = ?",
                                  int(key))[0][0])
        raise AssertionError(f"no {effect.kind} effects on SQLite")

    def undo(self, effect: Effect) -> None:
        if effect.kind == "audit":
            self.query("DELETE FROM migration_audit WHERE revision = ?", effect.name)
        elif effect.kind == "column":
            table, column = effect.name.split(".")
            self.query(f"ALTER TABLE {table} DROP COLUMN {column}")
        elif effect.kind == "table":
            self.query(f"DROP TABLE IF EXISTS {effect.name}")
        else:
            table, key = effect.name.split(".")
            self.query(f"DELETE FROM {table} WHERE id = ?", int(key))

    def leftovers(self) -> list[str]:
        """The job's file lock, if anyone still holds it."""
        lock_file = Path(f"{self.path}.migration-lock")
        if not lock_file.exists():
            return []
        fd = os.open(lock_file, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return [f"the file lock {lock_file.name} is still held"]
        finally:
            os.close(fd)
        return []

    def at_server_gate(self) -> bool:
        raise AssertionError("SQLite has only Python gates")

    def hold_blocker(self, kind: str) -> Any:
        """Another writer: a transaction that took the database's write lock."""
        conn = sqlite3.connect(self.path, isolation_level=None, timeout=0)
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("CREATE TABLE other_writer (id integer)")
        self._blockers.append(conn)
        return conn

    def release_blockers(self) -> None:
        for conn in self._blockers:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            conn.close()
        self._blockers.clear()

    def set_read_only(self, on: bool) -> None:
        """The database's folder read-only, as a read-only volume: a bind mount of it onto
        itself, remounted ro (file modes would not stop root, which CI runs as)."""
        if on and not self._read_only:
            subprocess.run(["mount", "--bind", str(self.data), str(self.data)], check=True)
            subprocess.run(["mount", "-o", "remount,bind,ro", str(self.data)], check=True)
            self._read_only = True
        elif not on and self._read_only:
            subprocess.run(["umount", str(self.data)], check=True)
            self._read_only = False

    def close(self) -> None:
        self.open_gate()
        self.release_blockers()
        self.set_read_only(False)
