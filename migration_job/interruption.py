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
    from migration_job.config import Settings

CANCEL_EVERY_S = 0.5
CANCEL_FOR_S = 10.0


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
        # Where the migration lock stands (runner.migration_lock), for a truthful last line.
        self.lock_state = "not taken"

    def install(self) -> None:
        """Handle SIGTERM and SIGINT from now on (main thread only)."""
        signal.signal(signal.SIGTERM, self._handle)
        signal.signal(signal.SIGINT, self._handle)

    @property
    def exit_code(self) -> int:
        """128 + the signal number, as shells and orchestrators expect."""
        return 128 + (self.signal_number or signal.SIGTERM)

    def error(self) -> Interrupted:
        """The error that ends the job after a signal, saying only what was done: a lock the
        job could not let go of (the database did not answer) is the server's to free."""
        name = signal.Signals(self.signal_number or signal.SIGTERM).name
        done = {
            "not taken": "stopped before holding the migration lock",
            "released": "stopped, rolled back and released the lock",
        }.get(self.lock_state, "stopped without reaching the database to roll back and "
              "release the lock: the server rolls back and frees the lock when it notices "
              "the session is gone")
        return Interrupted(f"interrupted by {name}: {done}", self.exit_code)

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
