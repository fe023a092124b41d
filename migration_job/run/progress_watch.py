"""How far the running revision got: a `revision_progress` event every MIGRATE_PROGRESS_INTERVAL
once a revision has run that long, with the server's own figures where it has them. A look of
the revision watch's thread (revision_watch.py).

The running revision is known from the job's own events (revision_started, revision_applied)
and from each try's end; the running statement from SQLAlchemy's (running_statement.py).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar

from migration_job.alembic_env.running_statement import RunningStatement
from migration_job.log import log
from migration_job.run.progress_report import Estimate, progress_line

if TYPE_CHECKING:
    from migration_job.engines.statement_progress import StatementProgress
    from migration_job.settings import Settings

# Between revisions, how often at most the watch checks whether one started.
IDLE_CHECK_S = 0.5
Result = TypeVar("Result")


class Running(NamedTuple):
    """The revision running now, and since when (time.monotonic())."""

    revision: str
    direction: str
    since: float


class ProgressWatch:
    """Logs how far the running revision got, each time it has run another interval."""

    def __init__(self, settings: Settings) -> None:
        self.every = settings.progress_interval
        self.statement = RunningStatement()
        # Set by the job's thread (one assignment each: the watch's thread reads it whole).
        self.running: Running | None = None
        # The revision the events so far were about, and how many of them there were.
        self.followed: Running | None = None
        self.reports = 0
        self.estimate = Estimate()

    @contextmanager
    def following(self) -> Iterator[None]:
        """Within the block, follow the revisions as they start and end, and their
        statements."""
        def observe(event: str, fields: dict[str, Any]) -> None:
            if event == "revision_started":
                self.running = Running(str(fields["revision"]), str(fields["direction"]),
                                       time.monotonic())
            elif event == "revision_applied":
                self.running = None

        log.observers.append(observe)
        try:
            with self.statement.watching():
                yield
        finally:
            log.observers.remove(observe)

    def attempts(self, attempt: Callable[[], Result]) -> Callable[[], Result]:
        """`attempt` (applying the revisions), after which no revision runs any more, even
        when it failed (a revision that failed logs no revision_applied)."""
        def watched() -> Result:
            try:
                return attempt()
            finally:
                self.running = None

        return watched

    def next_due(self, now: float) -> float:
        """When the next event may be due."""
        running = self.running
        if running is None or running is not self.followed:
            return now + min(self.every, IDLE_CHECK_S)
        return running.since + (self.reports + 1) * self.every

    def due(self, now: float) -> Running | None:
        """The running revision if an event about it is due now (it counts as logged)."""
        running = self.running
        if running is None:
            return None
        if running is not self.followed:
            self.followed, self.reports, self.estimate = running, 0, Estimate()
        elapsed = now - running.since
        if elapsed < (self.reports + 1) * self.every:
            return None
        # A late look (the watch's thread waited for a connection) logs once, not once per
        # interval missed.
        self.reports = math.floor(elapsed / self.every)
        return running

    def report(self, running: Running, figures: tuple[StatementProgress, ...] | None) -> None:
        """Log `revision_progress`: the elapsed time, the statement, the server's figures
        (None: not asked, or the server could not be reached)."""
        now = time.monotonic()
        elapsed = now - running.since
        statement = self.statement.line
        shown = self.estimate.update(figures[0], now) if figures else None
        fields: dict[str, Any] = {"revision": running.revision,
                                  "direction": running.direction,
                                  "elapsed_s": round(elapsed, 1)}
        if statement:
            fields["statement"] = statement
        if shown is not None:
            found = shown.figures
            fields["phase"] = found.phase
            if found.done is not None:
                fields["done"] = found.done
            if found.total is not None:
                fields["total"] = found.total
            if found.done is not None:
                fields["unit"] = found.unit
            if shown.percent is not None:
                # Rounded down, as the text line: 100 only once the phase is done.
                fields["percent"] = math.floor(shown.percent * 10) / 10
            if shown.eta_s is not None:
                fields["eta_s"] = round(shown.eta_s)
        log.info("revision_progress", progress_line(f"{running.direction} {running.revision}",
                                                    elapsed, statement, shown), **fields)
