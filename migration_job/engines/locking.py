"""What every engine's migration lock shares: its key, its holder, and the polling loop."""

from __future__ import annotations

import hashlib
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from typing import NamedTuple, TypeVar

from migration_job.errors import LockTimeout
from migration_job.log import log

POLL_INTERVAL_S = 0.25
REPORT_EVERY_S = 5.0
# The least time a call on the lock's session gets, however little of the timeout remains: a
# try made just before the timeout is not taken for a server that stopped answering.
LEAST_ANSWER_S = 1.0
# Past the lock timeout, how long the last look at the holder (for the message) may take.
LAST_LOOK_S = 5.0
Answer = TypeVar("Answer")


class NoAnswer(Exception):
    """A call on a session got no answer before its deadline, and the session was cut.

    An engine's own error class for it derives from this and from the driver's error, so that
    the job treats it as a lost session everywhere and the polling loop tells it apart.
    """


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

    def held_check(self) -> tuple[str, dict[str, int]] | None:
        """No condition a statement can test: verify() alone tells (see MigrationLock)."""
        return None

    def _within(self, seconds: float) -> AbstractContextManager[None]:
        """A block in which a call on the lock's session that gets no answer for `seconds`
        raises NoAnswer, on the client's clock; an engine that cannot bound a call waits as
        long as its driver does."""
        return nullcontext()

    def acquire(self, timeout: float, needless: Callable[[], bool] | None = None) -> bool:
        """Poll until held (True), no longer needed (False) or timed out (LockTimeout).

        Each call on the session gets what remains of the timeout (at least LEAST_ANSWER_S):
        a server that stops answering (a partition) cannot hold the job past it.
        """
        started = time.monotonic()
        deadline = started + timeout
        next_report = started
        while True:
            # Asked before each try: once the work is done, a free lock is no reason to take it.
            if needless is not None and self._answered(needless, deadline, timeout):
                log.info("lock_not_needed", "stopped waiting for the migration lock: "
                         "another runner finished the work", lock_key=self.key)
                return False
            if self._answered(self._try, deadline, timeout):
                break
            now = time.monotonic()
            holder = None
            if now >= next_report:
                holder = self._answered(self.holder, deadline, timeout)
                who = holder.describe() if holder else "a session that just let go"
                log.info("waiting_for_lock",
                         f"waiting for the migration lock (key {self.key}), held by {who}",
                         lock_key=self.key, waited_s=round(now - started, 1),
                         holder=holder.fields() if holder else None)
                next_report = now + REPORT_EVERY_S
            if now - started >= timeout:
                raise self._timed_out(timeout, holder)
            self.sleep(min(POLL_INTERVAL_S, max(0.0, started + timeout - now)))
        self.held = True
        log.info("lock_acquired", f"acquired the migration lock (key {self.key}) after "
                 f"{time.monotonic() - started:.2f}s", lock_key=self.key,
                 waited_ms=round((time.monotonic() - started) * 1000))
        return True

    def _answered(self, call: Callable[[], Answer], deadline: float, timeout: float) -> Answer:
        """call() on the lock's session, cut at the deadline: LockTimeout when it was."""
        try:
            with self._within(max(deadline - time.monotonic(), LEAST_ANSWER_S)):
                return call()
        except NoAnswer as error:
            raise LockTimeout(f"migration lock (key {self.key}) not acquired within "
                              f"{timeout:g}s: {error}; check the network between the job and "
                              "the database, then run the job again") from None

    def _timed_out(self, timeout: float, holder: Holder | None) -> LockTimeout:
        """The lock timeout's error, naming the holder and how to end a stale one."""
        if holder is None:
            try:
                with self._within(LAST_LOOK_S):
                    holder = self.holder()
            except NoAnswer:
                holder = None
        who = holder.describe() if holder else "another session"
        ending = self._ending(holder) if holder else None
        stale = f"; if that runner is gone, end its session: {ending}" if ending else ""
        return LockTimeout(f"migration lock (key {self.key}) not acquired within {timeout:g}s: "
                           f"held by {who}; retry when it has finished, or raise "
                           f"MIGRATE_LOCK_TIMEOUT{stale}")

    def _ending(self, holder: Holder) -> str | None:
        """The statement that ends the holder's session by hand, where a stale one can be
        left behind (a runner lost in a partition); None where it cannot."""
        return None

    def release(self) -> bool:
        """Unlock if held; a session that ended has left it to the server, which frees it
        once it notices. True when the job let go of it (or never held it)."""
        if not self.held:
            return True
        self.held = False
        released = self._unlock()
        if released is None:
            return False
        if not released:
            log.warning("lock_release_failed", f"the migration lock (key {self.key}) was not "
                        "held by this session when the job released it (was the session "
                        "replaced, e.g. by a pooler?)", lock_key=self.key)
            return False
        log.info("lock_released", f"released the migration lock (key {self.key})",
                 lock_key=self.key)
        return True
