"""Fleets: many job processes started at once against one database, behind and at head."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field

from benchmarks.histories import History
from benchmarks.measure import Sample, launcher, machine_busy_s, run_once
from benchmarks.side_by_side import verify_upgraded
from benchmarks.sites import Site
from benchmarks.world import Bench, output_file


@dataclass
class FleetRun:
    """One fleet of runners started at once."""

    state: str
    runners: int
    wall_s: float
    cpu_total_s: float
    server_cpu_s: float
    # CPU time the rest of the machine used meanwhile (busy CPU time of all CPUs, steal
    # included, minus the runners' and the server's): other work that shared the cores.
    other_cpu_s: float
    failures: int
    exit_codes: dict[int, int]
    revisions_applied: int
    max_applications: int
    outcomes: dict[str, int]


@dataclass
class FleetResults:
    """Fleet runs plus the single-runner numbers the CPU-bound ideal is built from."""

    size: int
    runners: int
    cores: int
    single_full: list[Sample] = field(default_factory=list)
    runs: list[FleetRun] = field(default_factory=list)


def _outcome(log_text: str) -> str:
    """What one runner did, from its JSON log."""
    if '"event": "upgrade_finished"' in log_text:
        return "applied the upgrade"
    if '"event": "already_at_target"' not in log_text:
        return "failed"
    if '"event": "lock_acquired"' in log_text:
        return "took the lock, found the work done"
    if '"event": "waiting_for_lock"' in log_text:
        return "waited for the lock, saw head, left without it"
    return "fast path (no lock)"


def run_fleet(bench: Bench, site: Site, history: History, database: str, state: str,
              runners: int, tag: str = "fleet") -> FleetRun:
    """Start `runners` jobs at once; wait for all; check what reached the database."""
    command = bench.job(history, site.url(database), MIGRATE_LOG_FORMAT="json",
                        MIGRATE_LOCK_TIMEOUT="300", MIGRATE_WAIT_TIMEOUT="60")
    outputs = [output_file(f"{tag}-{state}-{i:02d}") for i in range(runners)]
    server_cpu = site.server_cpu_s()
    busy = machine_busy_s()
    started = time.monotonic()
    processes = [launcher().spawn(command, out) for out in outputs]
    samples = [launcher().reap(p) for p in processes]
    wall = time.monotonic() - started
    busy = machine_busy_s() - busy
    time.sleep(0.2)  # let the postmaster reap the last backends before reading its CPU time
    server_cpu = site.server_cpu_s() - server_cpu
    runners_cpu = sum(s.cpu_s for s in samples)
    codes = Counter(s.exit_code for s in samples)
    counts = site.audit_counts(database)
    outcomes = Counter(_outcome(out.read_text(errors="replace")) for out in outputs)
    return FleetRun(state=state, runners=runners, wall_s=wall,
                    cpu_total_s=runners_cpu, server_cpu_s=server_cpu,
                    other_cpu_s=max(0.0, busy - runners_cpu - server_cpu),
                    failures=sum(n for code, n in codes.items() if code != 0),
                    exit_codes=dict(codes), revisions_applied=len(counts),
                    max_applications=max(counts.values(), default=0), outcomes=dict(outcomes))


def fleet(bench: Bench, cores: int, site: Site | None = None,
          histories: dict[int, History] | None = None, tag: str = "fleet") -> FleetResults:
    """Fleets behind (empty database) and at head; and one runner's full upgrade.

    On PostgreSQL's server unless another engine's `site` and `histories` are given.
    """
    site = bench if site is None else site
    histories = bench.histories if histories is None else histories
    size, runners = bench.profile.fleet_size, bench.profile.fleet_runners
    history = histories[size]
    database = "fleet"
    results = FleetResults(size=size, runners=runners, cores=cores)
    bench.say(f"  one runner, full upgrade of {size} revisions: {bench.profile.single_runs} runs")
    for _ in range(bench.profile.single_runs):
        url = site.recreate_database(database)
        results.single_full.append(run_once(bench.job(history, url),
                                            output_file(f"{tag}-single")))
        verify_upgraded(site, database, history)
    for rep in range(bench.profile.fleet_reps):
        bench.say(f"  fleet {rep + 1}/{bench.profile.fleet_reps}: {runners} runners "
                  f"{size} revisions behind, then {runners} at head")
        site.recreate_database(database)
        results.runs.append(run_fleet(bench, site, history, database, "behind", runners, tag))
        results.runs.append(run_fleet(bench, site, history, database, "at head", runners, tag))
    return results
