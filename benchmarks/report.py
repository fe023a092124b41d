"""One run's results, and the summaries that its targets, BENCHMARKS.md and the plot share."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from benchmarks.environment import Environment
from benchmarks.fleets import FleetResults
from benchmarks.import_profile import ImportProfile
from benchmarks.measure import Sample, Summary, summarize
from benchmarks.other_engines import EngineResults
from benchmarks.side_by_side import NoopResults
from benchmarks.waiting import WaitRun
from benchmarks.world import Profile

if TYPE_CHECKING:
    from benchmarks.heads_paths import HeadsRow


@dataclass(frozen=True)
class Report:
    """Everything one run produced."""

    env: Environment
    profile: Profile
    command: str
    runtime_s: float
    fast_path: bool
    notes: Sequence[str]
    noop: NoopResults
    full: dict[str, list[Sample]]
    fleet: FleetResults
    wait: list[WaitRun]
    imports: ImportProfile
    engines: list[EngineResults]
    load: tuple[tuple[float, float, float], tuple[float, float, float]]
    heads: list[HeadsRow]


def noop_summary(report: Report) -> dict[int, dict[str, Summary]]:
    """Medians per size and contender."""
    return {size: {name: summarize(s) for name, s in by_name.items()}
            for size, by_name in report.noop.samples.items()}


def full_summary(report: Report) -> dict[str, Summary]:
    """Medians of the full upgrade from empty, per contender."""
    return {name: summarize(s) for name, s in report.full.items()}
