"""What a revision_progress event says: the percentage shown, the time left, the text line."""

from __future__ import annotations

import math
from typing import NamedTuple

from migration_job.engines.statement_progress import StatementProgress

# The estimate of the time left waits for this many samples of a phase (the first is where the
# rate is measured from): one sample says nothing about a rate.
SAMPLES_FOR_A_RATE = 2


class Shown(NamedTuple):
    """A phase's figures as an event shows them."""

    figures: StatementProgress
    percent: float | None
    eta_s: float | None


class Estimate:
    """One revision's statement followed sample by sample: within a phase its percentage
    never goes down (a server's estimate of the total may), and the time left is the rest at
    the rate since the phase was first seen. A new phase starts both afresh."""

    def __init__(self) -> None:
        self.phase: str | None = None
        self.samples = 0
        self.first: tuple[float, float] | None = None  # (when, percent) of the phase's first
        self.highest = 0.0

    def update(self, figures: StatementProgress, now: float) -> Shown:
        """The figures of a new sample, as shown."""
        if figures.phase != self.phase:
            self.phase, self.samples, self.first, self.highest = figures.phase, 0, None, 0.0
        percent = figures.percent
        if percent is None:
            return Shown(figures, None, None)
        self.samples += 1
        self.highest = max(self.highest, percent)
        if self.first is None:
            self.first = (now, self.highest)
        return Shown(figures, self.highest, self._eta(now))

    def _eta(self, now: float) -> float | None:
        assert self.first is not None
        since, start = self.first
        if self.samples < SAMPLES_FOR_A_RATE or self.highest <= start or now <= since:
            return None
        rate = (self.highest - start) / (now - since)
        return (100.0 - self.highest) / rate


def duration(seconds: float) -> str:
    """'6 s', '12 min 5 s', '2 h 05 min'."""
    whole = round(seconds)
    if whole < 120:
        return f"{whole} s"
    if whole < 7200:
        return f"{whole // 60} min {whole % 60} s"
    return f"{whole // 3600} h {whole % 3600 // 60:02d} min"


def progress_line(step: str, elapsed_s: float, statement: str | None,
                  shown: Shown | None) -> str:
    """'upgrade 0004: 41% (building index: scanning table, 11,473 of 28,038 blocks), 6 s
    elapsed, about 9 s left'; without the server's figures, the elapsed time and statement."""
    elapsed = f"{duration(elapsed_s)} elapsed"
    if shown is None:
        running = f", running {statement}" if statement else ""
        return f"{step}: {elapsed}{running}"
    figures = shown.figures
    counts = ""
    if figures.done is not None:
        of_total = f" of {figures.total:,}" if figures.total is not None else ""
        counts = f", {figures.done:,}{of_total} {figures.unit}".rstrip()
    left = f", about {duration(shown.eta_s)} left" if shown.eta_s is not None else ""
    if shown.percent is None:
        return f"{step}: {figures.phase}{counts}, {elapsed}{left}"
    # Rounded down: 100% only once the phase is done.
    return f"{step}: {math.floor(shown.percent)}% ({figures.phase}{counts}), {elapsed}{left}"
