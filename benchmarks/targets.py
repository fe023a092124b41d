"""The targets of issues 4 and 9: each goal, what this run measured, and whether it was met."""

from __future__ import annotations

import statistics
from dataclasses import dataclass

from benchmarks.contenders import ALEMBIC, DBMATE, FLOOR, JOB
from benchmarks.figures import ms, ratio
from benchmarks.fleets import FleetResults, FleetRun
from benchmarks.measure import Sample, percentile, summarize
from benchmarks.other_engines import EngineResults
from benchmarks.report import Report, full_summary, noop_summary

WAIT_P95_LIMIT_S = 1.0
ATTEMPTS_PER_S_LIMIT = 2.0
RSS_LIMIT_MB = 40.0


@dataclass(frozen=True)
class Target:
    """One target of issue 4 with what this run measured."""

    what: str
    goal: str
    measured: str
    met: bool


def target_size(report: Report) -> int:
    """500 in a full run; the largest measured size in a quick one."""
    sizes = sorted(report.noop.samples)
    return 500 if 500 in sizes else sizes[-1]


# The CPU-bound ideals of the fleet targets ----------------------------------------------------

@dataclass(frozen=True)
class FleetIdeal:
    """The issue's CPU-bound ideals, from the same run's single-runner numbers."""

    noop_cpu_s: float
    single_full_wall_s: float
    at_head_s: float
    behind_s: float


def ideal_of(fleet: FleetResults, noop: dict[int, dict[str, list[Sample]]]) -> FleetIdeal:
    """At head: N x one runner's CPU / C. Behind: one full upgrade + (N-1) no-op CPUs / C.

    One runner's CPU is the job's median no-op CPU time at the fleet's history size, measured
    on the same engine in the same run.
    """
    noop_cpu = summarize(noop[fleet.size][JOB]).cpu_ms / 1000
    single = statistics.median(s.wall_s for s in fleet.single_full)
    return FleetIdeal(noop_cpu_s=noop_cpu, single_full_wall_s=single,
                      at_head_s=fleet.runners * noop_cpu / fleet.cores,
                      behind_s=single + (fleet.runners - 1) * noop_cpu / fleet.cores)


def fleet_ideal(report: Report) -> FleetIdeal:
    """PostgreSQL's fleet ideal."""
    return ideal_of(report.fleet, report.noop.samples)


def cores_left(fleet: FleetResults, run: FleetRun) -> float:
    """The cores other work left to this fleet: C minus other work's CPU time / wall time."""
    return fleet.cores - run.other_cpu_s / run.wall_s if run.wall_s > 0 else fleet.cores


def ideal_on_cores_left(fleet: FleetResults, ideal: FleetIdeal, run: FleetRun) -> float:
    """The run's ideal with C replaced by the cores other work left to it during the run.

    Not the issue's definition (that is C, the whole machine): it tells a fleet slowed by other
    work on the machine from a fleet slowed by itself.
    """
    left = max(cores_left(fleet, run), 0.01)
    if run.state == "at head":
        return fleet.runners * ideal.noop_cpu_s / left
    return ideal.single_full_wall_s + (fleet.runners - 1) * ideal.noop_cpu_s / left


def ratio_on_cores_left(fleet: FleetResults, ideal: FleetIdeal, state: str) -> float:
    """Median over the fleets in `state` of wall / ideal on the cores other work left."""
    return statistics.median(ratio(r.wall_s, ideal_on_cores_left(fleet, ideal, r))
                             for r in fleet.runs if r.state == state)


def median_wall(fleet: FleetResults, state: str) -> float:
    """Median wall time to all done of the fleets in `state`."""
    return statistics.median(r.wall_s for r in fleet.runs if r.state == state)


def fleet_wall(report: Report, state: str) -> float:
    """Median wall time to all done of PostgreSQL's fleets in `state`."""
    return median_wall(report.fleet, state)


# The verdicts -----------------------------------------------------------------------------------

def targets(report: Report) -> list[Target]:
    """Each target of the issue with its measured ratio and verdict."""
    size = target_size(report)
    noop = noop_summary(report)[size]
    job, alembic, floor, dbmate = noop[JOB], noop[ALEMBIC], noop[FLOOR], noop[DBMATE]
    full = full_summary(report)
    ideal = fleet_ideal(report)
    head_wall, behind_wall = fleet_wall(report, "at head"), fleet_wall(report, "behind")
    failures = sum(r.failures for r in report.fleet.runs)
    bad_applications = [r for r in report.fleet.runs if r.state == "behind" and
                        (r.revisions_applied != report.fleet.size or r.max_applications != 1)]
    connected = [w.connected_after_s for w in report.wait]
    p95 = percentile(connected, 0.95)
    rate = statistics.median(w.attempts_per_s for w in report.wait)
    rss = max(s[JOB].rss_mb for s in noop_summary(report).values())
    cpu_ratio = ratio(job.cpu_ms, alembic.cpu_ms)
    floor_ratio = ratio(job.wall_ms, floor.wall_ms)
    full_ratio = ratio(full[JOB].wall_ms, full[ALEMBIC].wall_ms)
    head_ratio = ratio(head_wall, ideal.at_head_s)
    behind_ratio = ratio(behind_wall, ideal.behind_s)
    fleets = len(report.fleet.runs)
    return [
        Target(f"No-op at head, {size} revisions: CPU time", "job <= 0.2x plain Alembic",
               f"{cpu_ratio:.3f}x ({ms(job.cpu_ms)} vs {ms(alembic.cpu_ms)} ms)",
               cpu_ratio <= 0.2),
        Target(f"No-op at head, {size} revisions: wall time", "job <= 2x psycopg2-only floor",
               f"{floor_ratio:.3f}x ({ms(job.wall_ms)} vs {ms(floor.wall_ms)} ms)",
               floor_ratio <= 2.0),
        Target(f"No-op at head, {size} revisions: wall time", "job below dbmate",
               f"{ratio(job.wall_ms, dbmate.wall_ms):.3f}x ({ms(job.wall_ms)} vs "
               f"{ms(dbmate.wall_ms)} ms; the psycopg2-only floor alone is "
               f"{ratio(floor.wall_ms, dbmate.wall_ms):.2f}x dbmate)",
               job.wall_ms < dbmate.wall_ms),
        Target(f"Full upgrade from empty, {report.profile.full_size} revisions: wall time",
               "job <= 1.1x plain Alembic",
               f"{full_ratio:.3f}x ({full[JOB].wall_ms / 1000:.2f} vs "
               f"{full[ALEMBIC].wall_ms / 1000:.2f} s)", full_ratio <= 1.1),
        Target(f"Fleet: {report.fleet.runners} runners at head, {report.fleet.cores} cores",
               "<= 1.5x CPU-bound ideal",
               f"{head_ratio:.3f}x ({head_wall:.2f} s vs ideal {ideal.at_head_s:.2f} s; "
               f"{ratio_on_cores_left(report.fleet, ideal, 'at head'):.2f}x on the cores "
               "other work left)", head_ratio <= 1.5),
        Target(f"Fleet: {report.fleet.runners} runners {report.fleet.size} revisions behind",
               "<= 1.3x CPU-bound ideal",
               f"{behind_ratio:.3f}x ({behind_wall:.2f} s vs ideal {ideal.behind_s:.2f} s; "
               f"{ratio_on_cores_left(report.fleet, ideal, 'behind'):.2f}x on the cores "
               "other work left)", behind_ratio <= 1.3),
        Target("Fleet: failures", "0", f"{failures} non-zero exits in {fleets} fleets",
               failures == 0),
        Target("Fleet: applications per revision", "every revision applied once",
               "once each, in every fleet" if not bad_applications else
               f"{len(bad_applications)} fleet(s) with missing or repeated revisions",
               not bad_applications),
        Target("Wait: connected after the database accepts", f"p95 <= {WAIT_P95_LIMIT_S:g} s",
               f"p95 {p95:.3f} s (p50 {percentile(connected, 0.5):.3f} s)",
               p95 <= WAIT_P95_LIMIT_S),
        Target("Wait: connection attempts while waiting",
               f"at most about 2 a second (judged: <= {ATTEMPTS_PER_S_LIMIT:g}/s)",
               f"{rate:.3f}/s (median of runs)", rate <= ATTEMPTS_PER_S_LIMIT),
        Target("Peak RSS at head (largest over all history sizes)",
               f"<= {RSS_LIMIT_MB:g} MB", f"{rss:.1f} MB", rss <= RSS_LIMIT_MB),
    ]


# Issue 9: the other engines, each against plain Alembic on the same engine -------------------

NOOP_CPU_LIMIT = 0.2
FLEET_AT_HEAD_LIMIT = 1.5


def engine_targets(engine: EngineResults) -> list[Target]:
    """Issue 9's targets on one engine.

    The no-op's CPU time against plain Alembic's at every measured history size, the fleet at
    head against its ideal, and no fleet failing or applying a revision twice. (The fleet
    behind is reported beside it with its own ideal; issue 9 sets it no target.)
    """
    fleet = engine.fleet
    ideal = ideal_of(fleet, engine.noop)
    head_wall = median_wall(fleet, "at head")
    head_ratio = ratio(head_wall, ideal.at_head_s)
    failures = sum(r.failures for r in fleet.runs)
    bad = [r for r in fleet.runs if r.state == "behind" and
           (r.revisions_applied != fleet.size or r.max_applications != 1)]
    name = engine.name
    noop = []
    for size in sorted(engine.noop):
        job = summarize(engine.noop[size][JOB])
        alembic = summarize(engine.noop[size][ALEMBIC])
        cpu_ratio = ratio(job.cpu_ms, alembic.cpu_ms)
        noop.append(Target(f"{name}: no-op at head, {size} revisions: CPU time",
                           f"job <= {NOOP_CPU_LIMIT:g}x plain Alembic",
                           f"{cpu_ratio:.3f}x ({ms(job.cpu_ms)} vs {ms(alembic.cpu_ms)} ms)",
                           cpu_ratio <= NOOP_CPU_LIMIT))
    return [
        *noop,
        Target(f"{name}: fleet of {fleet.runners} at head, {fleet.cores} cores",
               f"<= {FLEET_AT_HEAD_LIMIT:g}x CPU-bound ideal",
               f"{head_ratio:.3f}x ({head_wall:.2f} s vs ideal {ideal.at_head_s:.2f} s; "
               f"{ratio_on_cores_left(fleet, ideal, 'at head'):.2f}x on the cores other work "
               "left)", head_ratio <= FLEET_AT_HEAD_LIMIT),
        Target(f"{name}: fleet failures and applications", "0 failures; every revision once",
               f"{failures} non-zero exits in {len(fleet.runs)} fleets; "
               + ("once each, in every fleet" if not bad else
                  f"{len(bad)} fleet(s) with missing or repeated revisions"),
               failures == 0 and not bad),
    ]


def all_engine_targets(report: Report) -> list[Target]:
    """Issue 9's targets, engine by engine."""
    return [t for engine in report.engines for t in engine_targets(engine)]
