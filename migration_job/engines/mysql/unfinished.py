"""The unfinished-revision records on MySQL/MariaDB: a table beside the version table.

`<version_table>_unfinished` holds at most one row per revision that started and has not
finished, all on the lock's session. A record is written and committed before its revision
starts; it is deleted inside the revision's last transaction, so that it goes exactly when
the version table's update commits (or, where the revision ran on another session, deleted
and committed once that transaction ended). The table is created when a run starts its first
revision and dropped when the run's revisions all finished: it exists only while a revision
runs or awaits repair.
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import TYPE_CHECKING, Any

import pymysql

from migration_job.engines.mysql.lock import HELD, lock_name
from migration_job.engines.unfinished import Unfinished

if TYPE_CHECKING:
    from migration_job.engines import Session
    from migration_job.engines.inputs import VersionTable
    from migration_job.engines.mysql.connection import LendableConnection

NO_SUCH_TABLE = 1146
NAME_LIMIT = 64


def table_name(version_table: str) -> str:
    """`<version_table>_unfinished`, shortened with a digest to MySQL's 64 characters."""
    name = f"{version_table}_unfinished"
    if len(name) <= NAME_LIMIT:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:12]
    return f"{version_table[:NAME_LIMIT - len(digest) - 13]}_{digest}_unfinished"


def _quote(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


class MysqlUnfinishedLog:
    """See engines.unfinished.UnfinishedLog."""

    def __init__(self, session: Session, connection: LendableConnection,
                 project: VersionTable) -> None:
        self.session = session
        self.project = project
        self.connection = connection
        table = _quote(table_name(project.version_table))
        schema = project.version_table_schema
        self.table = f"{_quote(schema)}.{table}" if schema else table
        self.created = False
        # The revision whose record is written and not yet deleted.
        self.running: str | None = None

    def _run(self, query: str, *parameters: object) -> tuple[Any, ...] | None:
        with self.connection.cursor() as cursor:
            cursor.execute(query, parameters)
            row = cursor.fetchone()
        # While lent to SQLAlchemy the session is not in autocommit mode: commit each write
        # (and end the snapshot of each read) here, between revisions.
        self.connection.commit()
        return None if row is None else tuple(row)

    def find(self) -> Unfinished | None:
        """The record, if any; None also when the table was never created."""
        try:
            row = self._run("SELECT revision, direction, before_revisions, "
                            f"DATE_FORMAT(started_at, '%%Y-%%m-%%dT%%H:%%i:%%SZ'), runner "
                            f"FROM {self.table} ORDER BY started_at LIMIT 1")
        except pymysql.err.ProgrammingError as error:
            if error.args and error.args[0] == NO_SUCH_TABLE:
                return None
            raise
        if row is None:
            return None
        revision, direction, before, started_at, runner = row
        return Unfinished(str(revision), str(direction), tuple(json.loads(before)),
                          str(started_at), str(runner))

    def started(self, revision: str, direction: str) -> None:
        """Record, and commit, that a revision is about to run from the version table's
        current revisions."""
        before = self.session.revisions(self.project)
        if not self.created:
            self._run(f"CREATE TABLE IF NOT EXISTS {self.table} ("
                      "revision VARCHAR(255) NOT NULL PRIMARY KEY, "
                      "direction VARCHAR(16) NOT NULL, "
                      "before_revisions TEXT NOT NULL, "
                      "started_at DATETIME NOT NULL, "
                      "runner VARCHAR(255) NOT NULL)")
            self.created = True
        self._run(f"REPLACE INTO {self.table} VALUES (%s, %s, %s, UTC_TIMESTAMP(), %s)",
                  revision, direction, json.dumps(list(before)),
                  f"{os.uname().nodename} pid {os.getpid()}")
        self.running = revision

    def finishing(self, lock_key: int) -> bool:
        """Inside the running revision's last transaction, before it commits: delete its
        record, only while this session holds the migration lock `lock_key`; whether it did
        (if not, the lock may be lost)."""
        revision, self.running = self.running, None
        with self.connection.cursor() as cursor:
            deleted = cursor.execute(f"DELETE FROM {self.table} WHERE revision = %s AND {HELD}",
                                     (revision, lock_name(lock_key)))
        return bool(deleted)

    def finished(self, revision: str) -> None:
        """The revision's transaction ended: delete its record, unless it went with it."""
        if self.running == revision:
            self._delete(revision)
        self.running = None

    def all_finished(self) -> None:
        """Every revision of the run finished: drop the table, so that it exists only while
        a revision runs or awaits repair (Alembic's autogenerate would otherwise see it)."""
        self._drop_if_empty()

    def clear(self, revision: str) -> bool:
        """Delete the record of a revision (and the table, if that was the last); whether
        there was one."""
        try:
            deleted = self._delete(revision)
        except pymysql.err.ProgrammingError as error:
            if error.args and error.args[0] == NO_SUCH_TABLE:
                return False
            raise
        self._drop_if_empty()
        return deleted

    def _delete(self, revision: str) -> bool:
        with self.connection.cursor() as cursor:
            deleted = cursor.execute(f"DELETE FROM {self.table} WHERE revision = %s",
                                     (revision,))
        self.connection.commit()
        return bool(deleted)

    def _drop_if_empty(self) -> None:
        row = self._run(f"SELECT COUNT(*) FROM {self.table}")
        if row is not None and row[0] == 0:
            self._run(f"DROP TABLE IF EXISTS {self.table}")
            self.created = False
