"""What every engine's migration lock shares: its key, its holder, and the polling loop."""

from __future__ import annotations

import hashlib
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import NamedTuple

from migration_job.errors import LockTimeout
from migration_job.log import log

POLL_INTERVAL_S = 0.25
REPORT_EVERY_S = 5.0


class Holder(NamedTuple):
    """Who holds the lock, as the server knows the holding session."""

    pid: int
    application_name: str
    client_addr: str | None
    backend_start: str
    state: str
    # What `pid` is on this server: a process id, or (MySQL, MariaDB) a connection id.
    id_label: str = "pid"

    def describe(self) -> str:
        """One human line."""
        where = self.client_addr or "local socket"
        name = self.application_name or "(no application_name)"
        since = f"connected since {self.backend_start}, " if self.backend_start else ""
        return f"{self.id_label} {self.pid} ({name}) from {where}, {since}{self.state}"

    def fields(self) -> dict[str, object]:
        """For the JSON log: the id under its label's name (pid, connection_id)."""
        fields: dict[str, object] = {self.id_label.replace(" ", "_"): self.pid}
        fields.update((k, v) for k, v in self._asdict().items() if k not in ("pid", "id_label"))
        return fields


def derive_lock_key(database: str, schema: str, version_table: str) -> int:
    """A stable signed 64-bit key namespaced like golang-migrate's (database, schema, table)."""
    return _signed_64(f"migration-job\0{database}\0{schema}\0{version_table}")


def revision_gate_key(lock_key: int) -> int:
    """The key of the revision gate that goes with a migration lock key."""
    return _signed_64(f"migration-job revision gate\0{lock_key}")


def _signed_64(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big", signed=True)


class PolledLock(ABC):
    """A lock taken by trying again every POLL_INTERVAL_S, never by blocking in the database.

    An engine supplies one try, the unlock and the holder; the waiting, its reports and the
    timeout are the same on every engine.
    """

    def __init__(self, key: int, sleep: Callable[[float], None] = time.sleep) -> None:
        self.key = key
        self.sleep = sleep
        self.held = False

    @abstractmethod
    def _try(self) -> bool:
        """One non-blocking try: True if the lock is now held."""

    @abstractmethod
    def _unlock(self) -> bool | None:
        """Let go: True if it was held, False if not, None if the session has ended."""

    @abstractmethod
    def holder(self) -> Holder | None:
        """Who holds the lock, if anyone."""

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
                         holder=holder.fields() if holder else None)
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

    def release(self) -> None:
        """Unlock if held; a session that ended has already released it."""
        if not self.held:
            return
        self.held = False
        released = self._unlock()
        if released is None:
            return
        if not released:
            log.warning("lock_release_failed", f"the migration lock (key {self.key}) was not "
                        "held by this session when the job released it (was the session "
                        "replaced, e.g. by a pooler?)", lock_key=self.key)
            return
        log.info("lock_released", f"released the migration lock (key {self.key})",
                 lock_key=self.key)
