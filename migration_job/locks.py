"""The migration lock: one runner at a time per database, schema and version table."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from typing import NamedTuple, Protocol

from migration_job.database import Connection
from migration_job.errors import LockLost, LockTimeout, PoolerNotSupported
from migration_job.log import log

POLL_INTERVAL_S = 0.25
REPORT_EVERY_S = 5.0
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


class Lock(Protocol):
    """A lock that all runners against one database agree on.

    acquire(timeout, needless) returns True once the lock is held, or False as soon as
    `needless()` (checked between tries) says the lock is no longer needed, or raises
    LockTimeout after `timeout` seconds, naming the holder. It must stay interruptible: it
    never blocks inside the database for longer than one poll. verify() raises LockLost
    unless the lock is still held (each revision calls it before it commits). release() is
    safe to call when not held, and the lock also goes away with the session that holds it (process
    killed, node lost).
    """

    def acquire(self, timeout: float, needless: Callable[[], bool] | None = None) -> bool: ...

    def verify(self) -> None: ...

    def release(self) -> None: ...


class Holder(NamedTuple):
    """Who holds the lock, from pg_locks and pg_stat_activity."""

    pid: int
    application_name: str
    client_addr: str | None
    backend_start: str
    state: str

    def describe(self) -> str:
        """One human line."""
        where = self.client_addr or "local socket"
        name = self.application_name or "(no application_name)"
        return (f"pid {self.pid} ({name}) from {where}, connected since {self.backend_start}, "
                f"{self.state}")


def derive_lock_key(database: str, schema: str, version_table: str) -> int:
    """A stable signed 64-bit key namespaced like golang-migrate's (database, schema, table)."""
    return _signed_64(f"migration-job\0{database}\0{schema}\0{version_table}")


def revision_gate_key(lock_key: int) -> int:
    """The key of the revision gate that goes with a migration lock key."""
    return _signed_64(f"migration-job revision gate\0{lock_key}")


def _signed_64(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big", signed=True)


class PostgresAdvisoryLock:
    """A session-level advisory lock, polled with pg_try_advisory_lock.

    Session-level, not transaction-level: it must outlive the per-revision transactions and
    the autocommit blocks that CREATE INDEX CONCURRENTLY needs. Polled, never a blocking
    pg_advisory_lock: that call ignores our signals, and a replica blocked in it holds a
    snapshot that CREATE INDEX CONCURRENTLY in the holder's migration waits for (deadlock).
    """

    def __init__(self, connection: Connection, key: int,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.connection = connection
        self.key = key
        self.sleep = sleep
        self.held = False

    def acquire(self, timeout: float, needless: Callable[[], bool] | None = None) -> bool:
        """Poll until held (True), no longer needed (False) or timed out (LockTimeout)."""
        started = time.monotonic()
        next_report = started
        while True:
            # Asked before each try: once the work is done, a free lock is no reason to take it.
            if needless is not None and needless():
                log.info("lock_not_needed", "stopped waiting for the migration lock: "
                         "another runner finished the work", lock_key=self.key)
                return False
            if self._try():
                break
            now = time.monotonic()
            holder = None
            if now >= next_report:
                holder = self.holder()
                who = holder.describe() if holder else "a session that just let go"
                log.info("waiting_for_lock",
                         f"waiting for the migration lock (key {self.key}), held by {who}",
                         lock_key=self.key, waited_s=round(now - started, 1),
                         holder=holder._asdict() if holder else None)
                next_report = now + REPORT_EVERY_S
            if now - started >= timeout:
                holder = holder or self.holder()
                who = holder.describe() if holder else "another session"
                raise LockTimeout(f"migration lock (key {self.key}) not acquired within "
                                  f"{timeout:g}s: held by {who}; retry when it has finished, "
                                  "or raise MIGRATE_LOCK_TIMEOUT")
            self.sleep(min(POLL_INTERVAL_S, max(0.0, started + timeout - now)))
        self.held = True
        log.info("lock_acquired", f"acquired the migration lock (key {self.key}) after "
                 f"{time.monotonic() - started:.2f}s", lock_key=self.key,
                 waited_ms=round((time.monotonic() - started) * 1000))
        return True

    def revision_gate(self) -> tuple[str, dict[str, int]]:
        """The statement each revision's transaction runs first, on its own connection.

        A transaction-level lock: another runner's revision transaction waits until this one
        ends, even one that runs on after its runner lost the session lock (an env.py on a
        connection the job could not lend its session to), and which rolls back at its check.
        """
        return ("SELECT pg_advisory_xact_lock(%(gate)s::bigint)",
                {"gate": revision_gate_key(self.key)})

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

    def release(self) -> None:
        """Unlock if held; a closed connection has already released it."""
        if not self.held:
            return
        self.held = False
        if self.connection.closed:
            return
        with self.connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(%s::bigint)", (self.key,))
            row = cursor.fetchone()
        if not row or not row[0]:
            log.warning("lock_release_failed", f"the migration lock (key {self.key}) was not "
                        "held by this session when the job released it (was the session "
                        "replaced, e.g. by a pooler?)", lock_key=self.key)
            return
        log.info("lock_released", f"released the migration lock (key {self.key})",
                 lock_key=self.key)

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


def lock_key_for(connection: Connection, version_table: str, schema: str | None) -> int:
    """Derive the key from the server's view of the database and schema."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_database(), coalesce(%s, current_schema(), 'public')",
                       (schema,))
        row = cursor.fetchone()
    assert row is not None
    return derive_lock_key(row[0], row[1], version_table)
