"""Each target migrated in a process of its own, forked from the fleet's, a few at a time.

Processes rather than threads: Alembic's `context` and `op` are module globals, so two
revisions running in threads of one process would trample each other. Forked rather than
started afresh: the parent has read the history and imported Alembic once, and every child
shares that copy-on-write, starting in about a millisecond. Each child runs the
single-database story (worker.run_in_worker with the target's Settings): wait, fast path, its
own lock, a transaction per revision, the same exit codes, the same SIGTERM handling.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import time
from collections import deque
from collections.abc import Callable, Iterable
from functools import partial
from types import FrameType
from typing import TYPE_CHECKING, Any, NamedTuple, NoReturn

from migration_job.log import log

if TYPE_CHECKING:
    from migration_job.fleet.targets import Target
    from migration_job.run.shared import Shared
    from migration_job.settings import Settings

SIGNALS = {signal.SIGTERM, signal.SIGINT}
# What a child reports through its pipe stays under a pipe's buffer: it never blocks on exit.
RESULT_LIMIT = 60_000


class TenantResult(NamedTuple):
    """How one target ended."""

    target: Target
    # The exit code the single-database job would have had; None: never started.
    exit_code: int | None
    summary: str
    applied: tuple[str, ...] = ()
    duration_ms: float = 0.0

    @property
    def outcome(self) -> str:
        """migrated, at_target, failed, interrupted or not_started."""
        if self.exit_code is None:
            return "not_started"
        if self.exit_code == 0:
            return "migrated" if self.applied else "at_target"
        return "interrupted" if self.exit_code in (130, 143) else "failed"


class HistoryWanted(Exception):
    """A child found work pending and has no history: it stops, and asks the parent."""

    def __init__(self, target: Target) -> None:
        super().__init__("the history is not loaded yet")
        self.target = target


class Running(NamedTuple):
    """A child at work."""

    target: Target
    pid: int
    results: int  # the read end of its pipe
    started: float


class FleetRun:
    """Runs the targets `concurrency` at a time; a signal is passed on to every child."""

    def __init__(self, settings: Settings, targets: Iterable[Target], shared: Shared,
                 load_history: Callable[[], None]) -> None:
        assert settings.fleet is not None
        self.settings = settings
        self.concurrency = settings.fleet.concurrency
        self.fail_fast = settings.fleet.fail_fast
        self.pending = deque(targets)
        self.running: dict[int, Running] = {}
        self.signal_number: int | None = None
        self.failed = False
        # What every child gets; its history is read once, when the first child finds work
        # pending (a fleet at head never needs it).
        self.shared = shared
        self.load_history = load_history

    def run(self, report: Callable[[TenantResult], None]) -> list[TenantResult]:
        """Every target's result, in the order they ended (those never started last)."""
        for number in SIGNALS:
            signal.signal(number, self._handle)
        results: list[TenantResult] = []
        try:
            while self.pending or self.running:
                while self.pending and len(self.running) < self.concurrency and self.starting:
                    self._start(self.pending.popleft())
                if not self.running:
                    break
                result = self._reap()
                if isinstance(result, HistoryWanted):
                    self._load_history_for(result.target)
                elif result is not None:
                    results.append(result)
                    report(result)
                    self.failed = self.failed or result.outcome == "failed"
        finally:
            self._stop_children()
        for target in self.pending:
            results.append(TenantResult(target, None, "not started"))
            report(results[-1])
        return results

    def _load_history_for(self, target: Target) -> None:
        """A child found work pending: read the history now, and start that target again
        (it stopped before the lock, or under it before any change)."""
        if self.shared.history is None:
            self.load_history()
        self.pending.appendleft(target)

    @property
    def starting(self) -> bool:
        """Whether to start another target: not after a signal, nor a failure in fail-fast."""
        return self.signal_number is None and not (self.fail_fast and self.failed)

    def _handle(self, signal_number: int, frame: FrameType | None) -> None:
        if self.signal_number is not None:
            return
        self.signal_number = signal_number
        name = signal.Signals(signal_number).name
        log.warning("signal_received", f"received {name}: stopping every running target "
                    "(each rolls back and releases its lock); starting no more", signal=name)
        for pid in self.running:
            _kill(pid, signal_number)

    def _start(self, target: Target) -> None:
        results, report_to = os.pipe()
        # Blocked across fork: a signal now must reach neither the child's copy of our handler
        # nor a parent that does not know the child yet.
        signal.pthread_sigmask(signal.SIG_BLOCK, SIGNALS)
        try:
            pid = os.fork()
            if pid == 0:
                os.close(results)
                _child(self.settings, target, report_to, self.shared)
            os.close(report_to)
            self.running[pid] = Running(target, pid, results, time.monotonic())
        finally:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, SIGNALS)

    def _reap(self) -> TenantResult | HistoryWanted | None:
        pid, status = os.waitpid(-1, 0)
        running = self.running.pop(pid, None)
        if running is None:
            return None
        with os.fdopen(running.results, "rb") as pipe:
            data = pipe.read()
        duration_ms = round((time.monotonic() - running.started) * 1000, 1)
        try:
            found: dict[str, Any] = json.loads(data)
        except ValueError:
            code = os.waitstatus_to_exitcode(status)
            # A negative code: killed by that signal before it could report.
            code = 128 - code if code < 0 else code
            return TenantResult(running.target, code, f"ended with exit code {code} before "
                                "reporting a result", (), duration_ms)
        if found.get("history_wanted"):
            return HistoryWanted(running.target)
        return TenantResult(running.target, int(found["exit_code"]), str(found["summary"]),
                            tuple(found["applied"]), duration_ms)

    def _stop_children(self) -> None:
        """On the way out with children still running (a bug): stop them, and wait."""
        for pid in self.running:
            _kill(pid, signal.SIGTERM)
        for pid in list(self.running):
            os.waitpid(pid, 0)
            os.close(self.running.pop(pid).results)


def _kill(pid: int, signal_number: int) -> None:
    with contextlib.suppress(ProcessLookupError):  # it ended and was reaped meanwhile
        os.kill(pid, signal_number)


def _child(settings: Settings, target: Target, report_to: int, shared: Shared) -> NoReturn:
    """The forked process: run the single-database job on one target, report, exit."""
    code = 1
    try:
        for number in SIGNALS:
            signal.signal(number, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, SIGNALS)
        code = _migrate_one(settings, target, report_to, shared)
    finally:
        sys.stderr.flush()
        os._exit(code)


def _migrate_one(settings: Settings, target: Target, report_to: int, shared: Shared) -> int:
    from migration_job.commands.upgrade import upgrade
    from migration_job.run.worker import run_in_worker

    applied: list[str] = []
    wanted: list[HistoryWanted] = []

    def ask_the_parent() -> None:
        wanted.append(HistoryWanted(target))
        log.silence()  # this run is not the target's: it starts again once the history is read
        raise wanted[0]

    shared.ask_for_history = ask_the_parent

    def collect(event: str, fields: dict[str, Any]) -> None:
        if event == "revision_applied":
            applied.append(str(fields["revision"]))

    log.observers.append(collect)
    log.context = {"target": target.shown}
    code, summary = run_in_worker(settings._replace(
        command="upgrade", database_url=target.url, given_url=target.given_url,
        secrets=(*settings.secrets, *target.secrets), termination_log=None, fleet=None),
        partial(upgrade, shared=shared))
    report = json.dumps({"exit_code": code, "summary": log.scrub(summary)[:RESULT_LIMIT // 2],
                         "applied": applied, "history_wanted": bool(wanted)})
    os.write(report_to, report.encode("utf-8")[:RESULT_LIMIT])
    return code
