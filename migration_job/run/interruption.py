"""SIGTERM and SIGINT: stop waiting at once, cancel our statements on the server."""

from __future__ import annotations

import signal
import threading
import time
from types import FrameType
from typing import TYPE_CHECKING

from migration_job.errors import Interrupted, first_line
from migration_job.log import log

if TYPE_CHECKING:
    from migration_job.settings import Settings

CANCEL_EVERY_S = 0.5
CANCEL_FOR_S = 10.0
# Interruption.lock: the migration lock was never taken, is held, or was taken and released.
NO_LOCK, LOCK_HELD, LOCK_RELEASED = "none", "held", "released"


class Interruption:
    """Turns a signal into Interrupted at the job's next wait, and cancels its statements.

    The job runs in a worker thread because Python runs signal handlers only in the main
    thread, between bytecodes: a main thread blocked inside the driver would not see SIGTERM
    until its statement ended. A server does not stop a statement when the client goes
    away, so the handler has the engine cancel this process's statements, and keeps doing
    so briefly in case the next statement started in between.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.requested = threading.Event()
        self.signal_number: int | None = None
        self.finished = threading.Event()
        # Held while cancelling and reporting it, so that finish() waits for a report in
        # flight and nothing is reported after it: the job's summary stays the last line.
        self._reporting = threading.Lock()
        self.canceller: threading.Thread | None = None
        # What the job did that a stop leaves behind, told by the run as it goes: the last
        # line says it (what the signal left of a running revision; the lock's state).
        self.left: str | None = None
        self.lock = NO_LOCK

    def install(self) -> None:
        """Handle SIGTERM and SIGINT from now on (main thread only)."""
        signal.signal(signal.SIGTERM, self._handle)
        signal.signal(signal.SIGINT, self._handle)

    @property
    def exit_code(self) -> int:
        """128 + the signal number, as shells and orchestrators expect."""
        return 128 + (self.signal_number or signal.SIGTERM)

    def error(self, gave_up_after: float | None = None) -> Interrupted:
        """The error that ends the job after a signal, saying only what was done; `gave_up_after`
        seconds of waiting for the worker, when it did not stop (the server did not answer)."""
        name = signal.Signals(self.signal_number or signal.SIGTERM).name
        if gave_up_after is not None and self.lock == NO_LOCK:
            return Interrupted(f"interrupted by {name}: stopped before holding the migration "
                               f"lock (gave up after {gave_up_after:g} s waiting for the "
                               "database to answer)", self.exit_code)
        if gave_up_after is not None:
            return Interrupted(f"interrupted by {name}: gave up after {gave_up_after:g} s "
                               "waiting for the server to stop the running statement; the "
                               "server rolls its transaction back and frees the lock when it "
                               "notices the job has gone", self.exit_code)
        said = [f"interrupted by {name}: stopped"]
        if self.lock == NO_LOCK:
            said.append("it held no migration lock and changed nothing")
        if self.left is not None:
            said.append(self.left)
        if self.lock == LOCK_RELEASED:
            said.append("released the lock")
        elif self.lock == LOCK_HELD:
            said.append("could not reach the database to release the lock: the server rolls "
                        "back and frees it when it notices that the session is gone")
        return Interrupted("; ".join(said), self.exit_code)

    def sleep(self, seconds: float) -> None:
        """Sleep that a signal cuts short (raising Interrupted)."""
        if self.requested.wait(seconds):
            raise self.error()

    def check(self) -> None:
        """Raise Interrupted if a signal came."""
        if self.requested.is_set():
            raise self.error()

    def _handle(self, signal_number: int, frame: FrameType | None) -> None:
        if self.requested.is_set():
            return
        self.signal_number = signal_number
        self.requested.set()
        log.warning("signal_received",
                    f"received {signal.Signals(signal_number).name}: cancelling and rolling back",
                    signal=signal.Signals(signal_number).name)
        self.canceller = threading.Thread(target=self._cancel_statements, name="canceller",
                                          daemon=True)
        self.canceller.start()

    def finish(self) -> None:
        """The worker is done: stop cancelling; a cancellation in flight is reported first."""
        with self._reporting:
            self.finished.set()

    def _cancel_statements(self) -> None:
        deadline = time.monotonic() + CANCEL_FOR_S
        while time.monotonic() < deadline:
            with self._reporting:
                if self.finished.is_set():
                    return
                self._cancel_once()
            if self.finished.wait(CANCEL_EVERY_S):
                return

    def _cancel_once(self) -> None:
        try:
            cancelled = self.settings.engine.cancel_own_statements(self.settings)
        except Exception as error:  # noqa: BLE001  (best effort; the exit still happens)
            log.debug("cancel_failed", f"could not cancel statements: {first_line(error)}")
            return
        if cancelled:
            log.info("statement_cancelled",
                     f"cancelled {cancelled} running statement(s) on the server",
                     count=cancelled)
