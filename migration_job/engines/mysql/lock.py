"""MySQL's and MariaDB's migration lock: a named lock (GET_LOCK), polled.

A named lock belongs to the session and goes when the session ends (a killed job's included).
Names are server-wide, so the name comes from the key, which is derived from the database and
the version table. GET_LOCK is re-entrant within a session: a session that already holds the
name it never took is one a proxy shares between clients.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pymysql

from migration_job.engines.locking import Holder, PolledLock
from migration_job.engines.mysql import errors as mysql_errors
from migration_job.engines.mysql.connection import CONNECTION_ID
from migration_job.errors import LockLost, LockTimeout, PoolerNotSupported

if TYPE_CHECKING:
    from migration_job.engines import Session
    from migration_job.engines.mysql.connection import LendableConnection

SHARED_SESSION = ("this server session already holds the migration lock, which this job never "
                  "took: a proxy (ProxySQL multiplexing, a transaction pooler) shares server "
                  "sessions between clients, and a session lock cannot work through it; "
                  "connect the job to the server directly")
# True while this session holds the named lock given as the one parameter.
HELD = "IS_USED_LOCK(%s) <=> CONNECTION_ID()"


def lock_name(key: int) -> str:
    """The named lock for a key: at most 64 characters, as MySQL requires."""
    return f"migration-job:{key}"


class NamedLock(PolledLock):
    """GET_LOCK(name, 0) tried every poll; RELEASE_LOCK, or the session's end, lets go."""

    def __init__(self, session: Session, connection: LendableConnection, key: int,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        super().__init__(key, sleep)
        self.session = session
        self.connection = connection
        self.name = lock_name(key)

    def acquire(self, timeout: float, needless: Callable[[], bool] | None = None) -> bool:
        """PolledLock.acquire, with each reply awaited only until the lock timeout ends
        (at least MIN_REPLY_S): a server that stops answering is a lock not acquired in
        time (exit 5), not a wait without end."""
        try:
            with self.connection.answered_by(time.monotonic() + timeout):
                return super().acquire(timeout, needless)
        except pymysql.err.OperationalError as error:
            if not mysql_errors.is_no_reply(error):
                raise
            raise LockTimeout(f"migration lock (key {self.key}) not acquired within "
                              f"{timeout:g}s: {error.args[1]}; retry when the server answers "
                              "again, or raise MIGRATE_LOCK_TIMEOUT") from None

    def _one(self, query: str, *parameters: Any) -> Any:
        with self.connection.cursor() as cursor:
            cursor.execute(query, parameters)
            row = cursor.fetchone()
        return None if row is None else row[0]

    def revision_gate(self) -> None:
        """No transaction-level lock on MySQL: each revision checks the lock before it
        commits, and revisions run on the lock's own session."""

    def _try(self) -> bool:
        # One statement, so that a proxy cannot put the check and the try on two sessions.
        got = self._one("SELECT CASE WHEN IS_USED_LOCK(%s) <=> CONNECTION_ID() THEN -1 "
                        "ELSE GET_LOCK(%s, 0) END", self.name, self.name)
        if got == -1:
            raise PoolerNotSupported(SHARED_SESSION)
        return bool(got == 1)

    def verify(self) -> None:
        """Raise LockLost unless this session still holds the lock."""
        if self._one(f"SELECT {HELD}", self.name) != 1:
            raise LockLost(f"the migration lock ({self.name}) is no longer held by this job's "
                           "session; stopped before committing that revision; run the job "
                           "again")

    def _unlock(self) -> bool | None:
        if not self.connection.open:
            return None
        return bool(self._one("SELECT RELEASE_LOCK(%s)", self.name))

    def holder(self) -> Holder | None:
        """The session holding the name, as the process list shows it."""
        holder_id = self._one("SELECT IS_USED_LOCK(%s)", self.name)
        if holder_id is None:
            return None
        with self.connection.cursor() as cursor:
            # Other users' sessions are visible only with the PROCESS privilege.
            cursor.execute("SELECT USER, HOST, COMMAND, TIME, STATE FROM "
                           "information_schema.PROCESSLIST WHERE ID = %s", (holder_id,))
            row = cursor.fetchone()
        if row is None:
            return Holder(pid=int(holder_id), application_name=self._program(holder_id),
                          client_addr=None, backend_start="",
                          state="details hidden (the job's user lacks the PROCESS privilege)",
                          id_label=CONNECTION_ID)
        user, host, command, seconds, state = row
        return Holder(pid=int(holder_id), application_name=self._program(holder_id) or user,
                      client_addr=host, backend_start="",
                      state=f"{command.lower()} for {seconds}s" + (f" ({state})" if state else ""),
                      id_label=CONNECTION_ID)

    def _program(self, holder_id: int) -> str:
        """The holder's program name, where the server keeps connection attributes."""
        try:
            found = self._one("SELECT ATTR_VALUE FROM performance_schema.session_connect_attrs "
                              "WHERE PROCESSLIST_ID = %s AND ATTR_NAME = 'program_name'",
                              holder_id)
        except pymysql.err.MySQLError:
            return ""  # performance_schema is off (MariaDB's default) or not readable
        return str(found or "")
