"""BENCHMARKS.md and the plot, from one run's results. Speed claims live only in that file."""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from benchmarks.environment import Environment
from benchmarks.measure import Sample, Summary, percentile, summarize
from benchmarks.scenarios import (
    ALEMBIC,
    DBMATE,
    FLOOR,
    JOB,
    PASS,
    PSQL,
    FleetResults,
    ImportProfile,
    NoopResults,
    WaitRun,
)
from benchmarks.world import Profile

NOOP_ORDER = (JOB, ALEMBIC, FLOOR, DBMATE, PASS)
LABELS = {JOB: "the job (`entrypoint.py upgrade`)", ALEMBIC: "plain `alembic upgrade head`",
          FLOOR: "psycopg2-only floor (`benchmarks/floor.py`)", DBMATE: "`dbmate up`",
          PASS: "`python -c pass`", PSQL: "`psql -1 -f` of the same SQL"}
WAIT_P95_LIMIT_S = 1.0
ATTEMPTS_PER_S_LIMIT = 2.0
RSS_LIMIT_MB = 40.0
LEGEND = {JOB: "the job", ALEMBIC: "alembic upgrade head", FLOOR: "psycopg2-only floor",
          DBMATE: "dbmate up", PASS: "python -c pass"}


@dataclass(frozen=True)
class Target:
    """One target of issue 4 with what this run measured."""

    what: str
    goal: str
    measured: str
    met: bool


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
    load: tuple[tuple[float, float, float], tuple[float, float, float]]


def ms(value: float) -> str:
    """Milliseconds, readable: 1 decimal below 100."""
    return f"{value:.1f}" if value < 100 else f"{value:.0f}"


def _load(load: tuple[float, float, float]) -> str:
    return "/".join(f"{x:.1f}" for x in load)


def ratio(a: float, b: float) -> float:
    """a / b, guarding against an empty denominator."""
    return a / b if b > 0 else float("inf")


def noop_summary(report: Report) -> dict[int, dict[str, Summary]]:
    """Medians per size and contender."""
    return {size: {name: summarize(s) for name, s in by_name.items()}
            for size, by_name in report.noop.samples.items()}


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


def fleet_ideal(report: Report) -> FleetIdeal:
    """At head: N x one runner's CPU / C. Behind: one full upgrade + (N-1) no-op CPUs / C."""
    fleet = report.fleet
    noop_cpu = summarize(report.noop.samples[fleet.size][JOB]).cpu_ms / 1000
    single = statistics.median(s.wall_s for s in fleet.single_full)
    return FleetIdeal(noop_cpu_s=noop_cpu, single_full_wall_s=single,
                      at_head_s=fleet.runners * noop_cpu / fleet.cores,
                      behind_s=single + (fleet.runners - 1) * noop_cpu / fleet.cores)


def fleet_wall(report: Report, state: str) -> float:
    """Median wall time to all done of the fleets in `state`."""
    return statistics.median(r.wall_s for r in report.fleet.runs if r.state == state)


def targets(report: Report) -> list[Target]:
    """Each target of the issue with its measured ratio and verdict."""
    size = target_size(report)
    noop = noop_summary(report)[size]
    job, alembic, floor, dbmate = noop[JOB], noop[ALEMBIC], noop[FLOOR], noop[DBMATE]
    full = {name: summarize(s) for name, s in report.full.items()}
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
               f"{ms(dbmate.wall_ms)} ms)", job.wall_ms < dbmate.wall_ms),
        Target(f"Full upgrade from empty, {report.profile.full_size} revisions: wall time",
               "job <= 1.1x plain Alembic",
               f"{full_ratio:.3f}x ({full[JOB].wall_ms / 1000:.2f} vs "
               f"{full[ALEMBIC].wall_ms / 1000:.2f} s)", full_ratio <= 1.1),
        Target(f"Fleet: {report.fleet.runners} runners at head, {report.fleet.cores} cores",
               "<= 1.5x CPU-bound ideal",
               f"{head_ratio:.3f}x ({head_wall:.2f} s vs ideal {ideal.at_head_s:.2f} s)",
               head_ratio <= 1.5),
        Target(f"Fleet: {report.fleet.runners} runners {report.fleet.size} revisions behind",
               "<= 1.3x CPU-bound ideal",
               f"{behind_ratio:.3f}x ({behind_wall:.2f} s vs ideal {ideal.behind_s:.2f} s)",
               behind_ratio <= 1.3),
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


# Markdown -------------------------------------------------------------------------------------

def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def markdown(report: Report, plot_path: str) -> str:
    """The whole BENCHMARKS.md."""
    env, profile = report.env, report.profile
    summary = noop_summary(report)
    sizes = sorted(summary)
    out: list[str] = [
        "# Benchmarks",
        "",
        "Generated by `benchmarks/run` (do not edit by hand: rerun it). Every speed claim about "
        "the migration job lives in this file, measured side by side in one run.",
        "",
        f"- **Date**: {env.date}; **run**: `{report.command}` ({profile.name} profile), "
        f"took {report.runtime_s / 60:.1f} min",
        f"- **Machine**: {env.cores} usable cores, {env.cpu_model}, {env.ram_gib} GiB RAM, "
        f"kernel {env.kernel}, {env.os_name}; load average (1, 5, 15 min) "
        f"{_load(report.load[0])} at the start, {_load(report.load[1])} at the end "
        "(anything well above 0 means other work shared the CPUs)",
        f"- **Versions**: Python {env.python}; alembic {env.alembic}; SQLAlchemy "
        f"{env.sqlalchemy}; psycopg2 {env.psycopg2}; {env.postgresql}; {env.dbmate} "
        f"(native binary from the npm package); matplotlib {env.matplotlib}",
        f"- **Code measured**: commit {env.commit}; heads manifest (job fast path): "
        + ("written with `entrypoint.py manifest` for every history before measuring"
           if report.fast_path else "**not available** in this checkout (no `manifest` "
           "command), so the job ran without it"),
        "",
    ]
    for note in report.notes:
        out.append(f"> Note: {note}")
    if report.notes:
        out.append("")
    out += ["## Targets (issue 4)", ""]
    out += _table(["target", "goal", "measured", "verdict"],
                  [[t.what, t.goal, t.measured, "MET" if t.met else "**NOT MET**"]
                   for t in targets(report)])
    out += ["", f"![no-op at head]({plot_path})", ""]

    out += ["## No-op at head", "",
            f"Each history's database is already at head. {profile.noop_runs} rounds after one "
            "discarded warm-up round; in each round every contender runs once, the order "
            "rotating by one each round. Medians. Every command is forked by a tiny launcher "
            "process (`benchmarks/launcher.py`, about 5 MB resident: Linux carries peak RSS "
            "across fork and exec, so a child of the big harness would report at least the "
            "harness's size). Wall time is fork to reap on the launcher's monotonic clock; "
            "CPU time is the child's user + system time and peak RSS its `ru_maxrss`, both "
            "from `os.wait4`. Python contenders use the same interpreter "
            "(`.venv/bin/python`); plain Alembic runs its console script on it.", ""]
    head = ["contender", *(f"{n} revisions" for n in sizes)]
    cells: list[tuple[str, Callable[[Summary], str]]] = [
        ("Wall time, ms: median (min-max)",
         lambda s: f"{ms(s.wall_ms)} ({ms(s.wall_min_ms)}-{ms(s.wall_max_ms)})"),
        ("CPU time (user + sys), ms, median", lambda s: ms(s.cpu_ms)),
        ("Peak RSS, MB, median", lambda s: f"{s.rss_mb:.1f}"),
    ]
    for title, cell in cells:
        out += [f"**{title}**", ""]
        out += _table(head, [[LABELS[name], *(cell(summary[n][name]) for n in sizes)]
                             for name in NOOP_ORDER])
        out.append("")
    out += ["**Ratios (medians)**", ""]
    ratios: list[tuple[str, Callable[[dict[str, Summary]], float]]] = [
        ("job CPU / plain Alembic CPU", lambda d: ratio(d[JOB].cpu_ms, d[ALEMBIC].cpu_ms)),
        ("job wall / plain Alembic wall", lambda d: ratio(d[JOB].wall_ms, d[ALEMBIC].wall_ms)),
        ("job wall / psycopg2-only floor wall", lambda d: ratio(d[JOB].wall_ms, d[FLOOR].wall_ms)),
        ("job wall / dbmate wall", lambda d: ratio(d[JOB].wall_ms, d[DBMATE].wall_ms)),
        ("plain Alembic wall / floor wall", lambda d: ratio(d[ALEMBIC].wall_ms, d[FLOOR].wall_ms)),
        ("floor wall / dbmate wall", lambda d: ratio(d[FLOOR].wall_ms, d[DBMATE].wall_ms)),
    ]
    out += _table(["ratio", *(f"{n} revisions" for n in sizes)],
                  [[label, *(f"{fn(summary[n]):.2f}x" for n in sizes)] for label, fn in ratios])
    out.append("")
    if report.noop.references:
        out += ["**Start-up references** (measured in the same rounds as the "
                f"{sizes[0]}-revision contenders)", ""]
        refs = {name: summarize(s) for name, s in report.noop.references.items()}
        refs = {PASS: summary[sizes[0]][PASS], **refs}
        out += _table(["command", "wall ms", "CPU ms", "peak RSS MB"],
                      [[f"`{name}`", ms(s.wall_ms), ms(s.cpu_ms), f"{s.rss_mb:.1f}"]
                       for name, s in refs.items()])
        out.append("")

    imports = report.imports
    out += ["## Where the job's no-op time goes", "",
            f"`python -X importtime entrypoint.py upgrade` at head, {imports.size} revisions "
            f"(median of {profile.importtime_runs} run(s); `-X importtime` itself inflates the "
            f"numbers somewhat): {imports.modules} modules imported, "
            f"{ms(imports.total_ms)} ms of import time in total; of Alembic, SQLAlchemy, Mako "
            "and tenacity it imported: "
            + (", ".join(f"`{m}`" for m in imports.heavy_imported) or "none")
            + ". Left: cumulative time of each import the program started itself (`site` is "
            "the interpreter's start-up, including the `.pth` files of `.venv`). Right: self "
            "time summed per top-level package.", ""]
    importers = list(imports.by_importer_ms.items())
    packages = list(imports.by_package_ms.items())
    shown = max(len(importers[:10]), len(packages[:10]))
    rows = []
    for i in range(shown):
        left = [f"`{importers[i][0]}`", ms(importers[i][1])] if i < len(importers) else ["", ""]
        right = [f"`{packages[i][0]}`", ms(packages[i][1])] if i < len(packages) else ["", ""]
        rows.append(left + right)
    rows.append(["everything else", ms(sum(v for _, v in importers[shown:])),
                 "everything else", ms(sum(v for _, v in packages[shown:]))])
    out += _table(["top-level import (what pulled it in)", "cumulative ms",
                   "package (where the time is spent)", "self ms"], rows)
    out.append("")

    full = {name: summarize(s) for name, s in report.full.items()}
    out += ["## Full upgrade from empty", "",
            f"{profile.full_size} revisions into a freshly created database each run (drop and "
            f"create are not timed), {profile.full_runs} rounds, order rotating. The job and "
            "Alembic run each revision in its own transaction (the project's `env.py` sets "
            "`transaction_per_migration`); `psql -1` runs the same statements plus the same "
            "`alembic_version` bookkeeping in one transaction. Every run is checked: each "
            "revision's audit row exactly once, `alembic_version` at head.", ""]
    out += _table(["contender", "wall s (median)", "min-max s", "CPU s", "peak RSS MB",
                   "wall vs plain Alembic"],
                  [[LABELS[name], f"{s.wall_ms / 1000:.2f}",
                    f"{s.wall_min_ms / 1000:.2f}-{s.wall_max_ms / 1000:.2f}",
                    f"{s.cpu_ms / 1000:.2f}", f"{s.rss_mb:.1f}",
                    f"{ratio(s.wall_ms, full[ALEMBIC].wall_ms):.2f}x"]
                   for name, s in full.items()])
    out.append("")

    fleet, ideal = report.fleet, fleet_ideal(report)
    out += ["## Fleet", "",
            f"{fleet.runners} job processes started at once (spawned back to back) against one "
            f"database of the {fleet.size}-revision history: **behind** = empty database, all "
            f"{fleet.size} revisions pending; **at head** = the same database right after. "
            f"{profile.fleet_reps} repetition(s) of each. Wall time is from the first spawn to "
            f"the last runner reaped. CPU-bound ideal on C = {fleet.cores} cores (the issue's "
            f"definition): at head {fleet.runners} x one runner's no-op CPU time "
            f"({ms(ideal.noop_cpu_s * 1000)} ms, the job's median above at {fleet.size} "
            f"revisions) / C = {ideal.at_head_s:.2f} s; behind: one runner's full upgrade of "
            f"{fleet.size} revisions (median wall of {len(fleet.single_full)} single run(s): "
            f"{ideal.single_full_wall_s:.2f} s) + {fleet.runners - 1} x no-op CPU / C = "
            f"{ideal.behind_s:.2f} s.", ""]
    rows = []
    for run in fleet.runs:
        ideal_s = ideal.at_head_s if run.state == "at head" else ideal.behind_s
        outcomes = "; ".join(f"{n} {what}" for what, n in sorted(run.outcomes.items()))
        rows.append([run.state, f"{run.wall_s:.2f}", f"{ratio(run.wall_s, ideal_s):.2f}x",
                     f"{run.cpu_total_s:.2f}", f"{run.server_cpu_s:.2f}", str(run.failures),
                     f"{run.revisions_applied} of {fleet.size}, max {run.max_applications}x",
                     outcomes])
    out += _table(["state", "wall s", "vs ideal", "CPU s (all runners)", "server CPU s",
                   "failures",
                   "revisions applied (times)", "what the runners did"], rows)
    out.append("")

    wait = report.wait
    connected = [w.connected_after_s for w in wait]
    out += ["## Waiting for the database", "",
            f"The job (`upgrade`, `MIGRATE_WAIT_TIMEOUT=60`, JSON logs) starts against a stopped "
            f"server; {profile.wait_delay_s[0]:g}-{profile.wait_delay_s[1]:g} s later (random) "
            "the harness runs `pg_ctl start`. **t0**, the moment the database starts "
            "accepting, is defined by a probe in the harness that tries connect + `SELECT 1` "
            "every 5 ms: t0 is the start of its last failed attempt before the first success "
            "(so the true moment lies after t0, and the delay below can only be overstated, by "
            "at most the probe resolution shown). **Connected** is the `ts` of the job's "
            "`database_ready` event (same clock). **Attempts per second** = failed attempts "
            "(`waiting_for_database` events) / time from the first failed attempt to "
            "connected, i.e. the mean attempt frequency while waiting; the peak is the most "
            "failed attempts in any 1 s window.", ""]
    out += _table(["", "p50", "p95", "max"],
                  [["connected - t0, s", f"{percentile(connected, 0.5):.3f}",
                    f"{percentile(connected, 0.95):.3f}", f"{max(connected):.3f}"],
                   ["connected - `pg_ctl start -w` returned, s",
                    f"{percentile([w.after_pg_ctl_s for w in wait], 0.5):.3f}",
                    f"{percentile([w.after_pg_ctl_s for w in wait], 0.95):.3f}",
                    f"{max(w.after_pg_ctl_s for w in wait):.3f}"],
                   ["probe resolution, s",
                    f"{percentile([w.probe_resolution_s for w in wait], 0.5):.3f}",
                    f"{percentile([w.probe_resolution_s for w in wait], 0.95):.3f}",
                    f"{max(w.probe_resolution_s for w in wait):.3f}"],
                   ["attempts per second while waiting",
                    f"{percentile([w.attempts_per_s for w in wait], 0.5):.2f}",
                    f"{percentile([w.attempts_per_s for w in wait], 0.95):.2f}",
                    f"{max(w.attempts_per_s for w in wait):.2f}"],
                   ["failed attempts in the busiest 1 s window",
                    f"{percentile([float(w.peak_attempts_1s) for w in wait], 0.5):g}",
                    f"{percentile([float(w.peak_attempts_1s) for w in wait], 0.95):g}",
                    str(max(w.peak_attempts_1s for w in wait))]])
    out.append("")
    out += ["## Method and caveats", "",
            "- One PostgreSQL 15 server started by the benchmark on 127.0.0.1 (free port, "
            "`max_connections=300`, `fsync=off`, `synchronous_commit=off`, "
            "`full_page_writes=off`: the same for every contender; durability settings "
            "would slow every full upgrade alike), SCRAM password authentication over TCP.",
            "- Histories are generated: revision k creates a small table (odd k) or adds a "
            "column (even k), and inserts its row into `bench_audit`. The Alembic revisions "
            "run exactly the SQL in the dbmate files (`op.execute`), in a linear chain.",
            "- The job runs with `MIGRATE_TERMINATION_LOG=` (empty) so that it writes no "
            "termination file; everything else is default (text logs, except JSON where "
            "the harness reads events).",
            "- Every Python contender runs on the development `.venv`, whose editable install "
            "of migration-job puts an import-finder `.pth` file into every interpreter start "
            "(compare `python -c pass` with `python -S -c pass` above); the Docker image "
            "installs no such file, so its Python start-up is cheaper for all of them.",
            "- `dbmate up` also checks that the database exists (one extra connection); it is "
            "the native binary from the `@dbmate/linux-x64` npm package, not the Node shim.",
            "- Raw samples: `benchmarks/work/results.json`; each contender's last output: "
            "`benchmarks/work/output/`.",
            ""]
    return "\n".join(out)


def plot(report: Report, path: Path) -> None:
    """No-op at head: wall, CPU and peak RSS against history size, one line per contender."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    summary = noop_summary(report)
    sizes = sorted(summary)
    figure, axes = plt.subplots(1, 3, figsize=(11, 3.6), dpi=80)
    panels: list[tuple[str, Callable[[Summary], float], bool]] = [
        ("wall time, ms (log)", lambda s: s.wall_ms, True),
        ("CPU time, ms (log)", lambda s: s.cpu_ms, True),
        ("peak RSS, MB", lambda s: s.rss_mb, False),
    ]
    for axis, (title, value, log_y) in zip(axes, panels, strict=True):
        for name in NOOP_ORDER:
            axis.plot(sizes, [value(summary[n][name]) for n in sizes], marker="o",
                      label=LEGEND[name], linewidth=1.5)
        axis.set_xscale("log")
        if log_y:
            axis.set_yscale("log")
            axis.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
            axis.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
            axis.yaxis.set_minor_formatter(NullFormatter())
        else:
            axis.set_ylim(bottom=0)
        axis.set_xticks(sizes, [str(n) for n in sizes])
        axis.set_xlabel("revisions in the history")
        axis.set_title(title, fontsize=10)
        axis.grid(True, which="both", alpha=0.3)
    handles, labels = axes[0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="lower center", ncol=len(NOOP_ORDER), fontsize=9,
                  frameon=False)
    figure.suptitle(f"No-op at head: medians of {report.profile.noop_runs} runs each, "
                    f"{report.env.cores} cores ({report.env.date})", fontsize=11)
    figure.tight_layout(rect=(0, 0.07, 1, 1))
    figure.savefig(path, dpi=80)
    plt.close(figure)
