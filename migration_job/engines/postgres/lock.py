"""PostgreSQL's migration lock: a session-level advisory lock, polled."""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING

from psycopg2.extensions import connection

from migration_job.engines.locking import Holder, PolledLock, derive_lock_key, revision_gate_key
from migration_job.engines.postgres.partitions import answered_within
from migration_job.errors import LockLost, PoolerNotSupported

if TYPE_CHECKING:
    from migration_job.engines import Session
    from migration_job.engines.postgres.connection import LendableConnection

# pg_locks rows of this bigint advisory key in this database (classid: high word, objid: low).
# The key is cast: a small key would otherwise arrive as an integer, and shifting an integer
# by 32 leaves it unchanged, so the holder of a small key would never be found.
KEY_MATCH = ("l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 "
            "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
            "AND l.classid::bigint = (%(key)s::bigint >> 32) & 4294967295 "
            "AND l.objid::bigint = %(key)s::bigint & 4294967295")
POOLED_SESSION = ("this server session already holds the migration lock, which this job never "
                  "took: a pooler (PgBouncer in transaction or statement pooling mode) shares "
                  "server sessions between clients, and a session lock cannot work through it; "
                  "connect the job to PostgreSQL directly or through session pooling")
# How long letting go of the lock may wait for the server: past it, the session is cut, and
# the server frees the lock when it notices.
UNLOCK_WITHIN_S = 10.0


class PostgresAdvisoryLock(PolledLock):
    """A session-level advisory lock, polled with pg_try_advisory_lock.

    Session-level, not transaction-level: it must outlive the per-revision transactions and
    the autocommit blocks that CREATE INDEX CONCURRENTLY needs. Polled, never a blocking
    pg_advisory_lock: that call ignores our signals, and a replica blocked in it holds a
    snapshot that CREATE INDEX CONCURRENTLY in the holder's migration waits for (deadlock).
    """

    def __init__(self, session: Session, connection: LendableConnection, key: int,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        super().__init__(key, sleep)
        self.session = session
        self.connection = connection

    def revision_gate(self) -> tuple[str, dict[str, int]]:
        """The statement each revision's transaction runs first, on its own connection.

        A transaction-level lock: another runner's revision transaction waits until this one
        ends, even one that runs on after its runner lost the session lock (an env.py on a
        connection the job could not lend its session to), and which rolls back at its check.
        """
        return ("SELECT pg_advisory_xact_lock(CAST(:gate AS bigint))",
                {"gate": revision_gate_key(self.key)})

    def held_check(self) -> tuple[str, dict[str, int]]:
        """verify()'s question as a condition, for a statement on this session (the history
        row of a revision that runs on it) to ask in the same round trip."""
        match = KEY_MATCH.replace("%(key)s::bigint", "CAST(:lock_key AS bigint)")
        return (f"EXISTS (SELECT 1 FROM pg_locks l WHERE l.pid = pg_backend_pid() AND {match})",
                {"lock_key": self.key})

    def verify(self) -> None:
        """Raise LockLost unless this session still holds the lock."""
        with self.connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM pg_locks l WHERE l.pid = pg_backend_pid() "
                           f"AND {KEY_MATCH}",
                           {"key": self.key})
            row = cursor.fetchone()
        if not row or not row[0]:
            raise LockLost(f"the migration lock (key {self.key}) is no longer held by this "
                           "job's session; stopped before committing, so that revision was "
                           "rolled back; run the job again")

    def _within(self, seconds: float) -> AbstractContextManager[None]:
        return answered_within(self.connection, seconds)

    def _ending(self, holder: Holder) -> str:
        return f"SELECT pg_terminate_backend({holder.pid})"

    def _unlock(self) -> bool | None:
        if self.connection.closed:
            return None
        with answered_within(self.connection, UNLOCK_WITHIN_S), self.connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(%s::bigint)", (self.key,))
            row = cursor.fetchone()
        return bool(row and row[0])

    def holder(self) -> Holder | None:
        """The session holding this key, if any (bigint keys: classid high, objid low word)."""
        with self.connection.cursor() as cursor:
            cursor.execute(
                "SELECT a.pid, coalesce(a.application_name, ''), host(a.client_addr), "
                "to_char(a.backend_start, 'YYYY-MM-DD\"T\"HH24:MI:SSOF'), "
                "coalesce(a.state, 'unknown') FROM pg_locks l JOIN pg_stat_activity a "
                f"ON a.pid = l.pid WHERE {KEY_MATCH} LIMIT 1", {"key": self.key})
            row = cursor.fetchone()
        if row is None:
            return None
        return Holder(pid=row[0], application_name=row[1], client_addr=row[2],
                      backend_start=row[3], state=row[4])

    def _try(self) -> bool:
        # Asked in one statement, so that a pooler cannot put the two halves on two sessions:
        # a session that holds the key before trying is a server session shared by a pooler.
        with self.connection.cursor() as cursor:
            cursor.execute("WITH before AS MATERIALIZED (SELECT count(*) AS n FROM pg_locks l "
                           f"WHERE l.pid = pg_backend_pid() AND {KEY_MATCH}) "
                           "SELECT n, CASE WHEN n = 0 THEN "
                           "pg_try_advisory_lock(%(key)s::bigint) END FROM before",
                           {"key": self.key})
            row = cursor.fetchone()
        assert row is not None
        if row[0]:
            raise PoolerNotSupported(POOLED_SESSION)
        return bool(row[1])


def lock_key_for(connection: connection, version_table: str, schema: str | None) -> int:
    """Derive the key from the server's view of the database and schema."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_database(), coalesce(%s, current_schema(), 'public')",
                       (schema,))
        row = cursor.fetchone()
    assert row is not None
    return derive_lock_key(row[0], row[1], version_table)
