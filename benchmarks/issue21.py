"""Issue 21's targets, side by side in one run, each as a ratio to its own baseline.

1. Full upgrade from empty, history table on (the default), 200 and 500 revisions, on
   PostgreSQL, SQLite and MariaDB: the job against plain `alembic upgrade head` on the same
   interpreter and engine (and the job with MIGRATE_HISTORY=off, to tell the history's cost
   from the rest).
2. No-op at head, a project without a manifest, heads cache warm: the job against its own
   driver's floor (benchmarks/driver_floor.py: start Python, import the driver, connect, read
   alembic_version), per engine; and where the job's start-up goes beyond the floor's
   (`-X importtime` of both).
3. Verification at head: the no-op under MIGRATE_VERIFY=fail against the same no-op with
   MIGRATE_VERIFY=off (no verification, what every no-op cost before), and warn, the default.
4. Container start to exit at head: the job's image against a container of the same base
   image that only runs the psycopg2 floor; the image's size beside it.
5. Fleets that grow: 100 and 1,000 tenant databases on one PostgreSQL server, their names
   from a catalog query, MIGRATE_CONCURRENCY=4, from empty and at head: time, the parent's
   peak RSS and the peak number of server connections; and at head, the largest fleet
   against a loop of the job over the same tenants (one `upgrade` process each, in turn).

    benchmarks/run --issue21 [--quick]     (.venv/bin/python -m benchmarks.issue21)
    .venv/bin/python -m benchmarks.issue21 --rewrite   (the section again, from the JSON)

Writes benchmarks/work/issue21.json and the "Targets (issue 21)" section of BENCHMARKS.md
(between its markers; the main run keeps that section); --quick writes neither.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from benchmarks import environment
from benchmarks.contenders import JOB_NO_HISTORY
from benchmarks.histories import History, write_history
from benchmarks.marked_section import MarkedSection
from benchmarks.measure import Command, Sample, close_launcher, run_once
from benchmarks.side_by_side import round_robin, verify_upgraded
from benchmarks.sites import MariaDBSite, Site, SqliteSite
from benchmarks.world import FULL, HISTORIES, REPO, WORK, Bench, clean_env, output_file
from tests.support.mariadbserver import running_mariadb
from tests.support.pgserver import PostgresServer

SECTION = MarkedSection("issue-21")
DRIVER_FLOOR = REPO / "benchmarks" / "driver_floor.py"
WORK_FLOOR = REPO / "benchmarks" / "work_floor.py"
DRIVERS = {"postgresql": "psycopg2", "sqlite": "sqlite3", "mysql": "PyMySQL"}
ENGINE_NAMES = {"postgresql": "PostgreSQL", "sqlite": "SQLite", "mysql": "MariaDB"}
# The goals.
FULL_GOAL = {"postgresql": 1.10, "sqlite": 1.10, "mysql": 1.15}
FLOOR_GOAL, VERIFY_GOAL, CONTAINER_GOAL = 1.25, 1.10, 1.15
FLEET_TIME_GOAL, FLEET_RSS_GOAL, FLEET_LOOP_GOAL = 10.5, 1.2, 0.1
JOB, ALEMBIC, FLOOR, PLAIN_WORK = "job", "alembic", "floor", "the no-op's work, plainly"
VERIFY_FAIL, VERIFY_OFF = "job, MIGRATE_VERIFY=fail", "job, MIGRATE_VERIFY=off"


@dataclass(frozen=True)
class Plan:
    """How much to measure."""

    sizes: tuple[int, ...] = (200, 500)
    full_rounds: int = 5
    noop_size: int = 500
    noop_rounds: int = 15
    fleet_sizes: tuple[int, int] = (100, 1000)
    concurrency: int = 4
    container_rounds: int = 11
    importtime_runs: int = 5


QUICK = Plan(sizes=(20,), full_rounds=1, noop_size=20, noop_rounds=2, fleet_sizes=(5, 20),
             container_rounds=1, importtime_runs=1)


@dataclass
class Target:
    """One row of the section's table."""

    what: str
    goal: str
    measured: str
    met: bool | None  # None: not measured (the reason is in `measured`)
    why: str = ""

    @property
    def verdict(self) -> str:
        if self.met is None:
            return "not measured"
        return "MET" if self.met else "**NOT MET**"


def median_wall(samples: list[Sample]) -> float:
    """Median wall time, seconds."""
    return statistics.median(s.wall_s for s in samples)


def median_cpu(samples: list[Sample]) -> float:
    """Median CPU time, seconds."""
    return statistics.median(s.cpu_s for s in samples)


# 1. Full upgrade from empty -----------------------------------------------------------------

def full_upgrades(bench: Bench, site: Site, dialect: str, plan: Plan
                  ) -> dict[int, dict[str, list[Sample]]]:
    """Job, plain Alembic and the job without history, each from an empty database, rounds
    rotating; every run checked (each revision once, at head)."""
    results: dict[int, dict[str, list[Sample]]] = {}
    for size in plan.sizes:
        history = write_history(REPO, HISTORIES / f"i21-{dialect}-{size:05d}", size, dialect)
        database = f"i21_full_{size}"
        url = site.url(database)
        contenders = [bench.job(history, url), bench.alembic(history, url),
                      replace(bench.job(history, url, MIGRATE_HISTORY="off"),
                              name=JOB_NO_HISTORY)]
        samples: dict[str, list[Sample]] = {c.name: [] for c in contenders}
        bench.say(f"  {ENGINE_NAMES[dialect]}: full upgrade, {size} revisions, "
                  f"{plan.full_rounds} rounds")
        for number in range(plan.full_rounds):
            shift = number % len(contenders)
            for command in contenders[shift:] + contenders[:shift]:
                site.recreate_database(database)
                samples[command.name].append(run_once(
                    command, output_file(f"i21-full-{dialect}-{size}-{command.name}")))
                verify_upgraded(site, database, history)
        results[size] = samples
    return results


# 2 and 3. No-op at head against the driver's floor, and verifying there --------------------

def driver_floor(bench: Bench, dialect: str, history: History, url: str) -> Command:
    """The engine's driver-only floor."""
    return Command(FLOOR, (str(bench.python), str(DRIVER_FLOOR), dialect, history.head),
                   clean_env(DATABASE_URL=url), REPO)


def work_floor(bench: Bench, dialect: str, job: Command) -> Command:
    """The no-op's work written plainly, with the job's settings (and its warm heads cache)."""
    return Command(PLAIN_WORK, (str(bench.python), str(WORK_FLOOR), dialect), job.env, REPO)


def noop(bench: Bench, site: Site, dialect: str, plan: Plan
         ) -> tuple[dict[str, list[Sample]], dict[str, float]]:
    """The database brought to head by the job (so its history table has a row per
    revision), then the job (warn, the default), under fail and off, and the floor; and the
    self time of each module the job imports beyond the floor's, ms."""
    history = write_history(REPO, HISTORIES / f"i21-{dialect}-noop-{plan.noop_size:05d}",
                            plan.noop_size, dialect)
    database = "i21_noop"
    url = site.recreate_database(database)
    run_once(bench.job(history, url), output_file(f"i21-noop-setup-{dialect}"))
    commands = [bench.job(history, url),
                replace(bench.job(history, url, MIGRATE_VERIFY="fail"), name=VERIFY_FAIL),
                replace(bench.job(history, url, MIGRATE_VERIFY="off"), name=VERIFY_OFF),
                work_floor(bench, dialect, bench.job(history, url)),
                driver_floor(bench, dialect, history, url)]
    bench.say(f"  {ENGINE_NAMES[dialect]}: no-op at head, {plan.noop_size} revisions, "
              f"{plan.noop_rounds} rounds")
    samples = round_robin(commands, plan.noop_rounds, tag=f"i21-noop-{dialect}")
    if site.alembic_version(database) != [history.head]:
        raise RuntimeError(f"{database} moved away from head during the no-op runs")
    extra = imports_beyond(commands[0], commands[-1], plan.importtime_runs, dialect)
    return samples, extra


def self_times(command: Command, tag: str) -> Counter[str]:
    """`-X importtime` of a command: self time per module, microseconds."""
    timed = Command(command.name, (command.argv[0], "-X", "importtime", *command.argv[1:]),
                    command.env, command.cwd)
    out = output_file(tag)
    run_once(timed, out)
    found: Counter[str] = Counter()
    for line in out.read_text(errors="replace").splitlines():
        if line.startswith("import time:") and "self [us]" not in line:
            self_us, _, name = line.removeprefix("import time:").split("|", 2)
            found[name.strip()] += int(self_us)
    return found


def imports_beyond(job: Command, floor: Command, runs: int, dialect: str) -> dict[str, float]:
    """Median self time (ms) of each module the job imports and the floor does not."""
    jobs = [self_times(job, f"i21-importtime-job-{dialect}") for _ in range(runs)]
    floors = set().union(*(self_times(floor, f"i21-importtime-floor-{dialect}")
                           for _ in range(runs)))
    names = set().union(*jobs) - floors
    medians = {n: statistics.median(run.get(n, 0) for run in jobs) / 1000 for n in names}
    return dict(sorted(medians.items(), key=lambda kv: -kv[1]))


# 4. Container start to exit -----------------------------------------------------------------

def containers(plan: Plan) -> dict[str, Any]:
    """The job's image (`upgrade` at head) against the psycopg2 floor in a container of the
    same base image (plain Alembic's image, which has psycopg2), `docker run --rm` each; or
    why it could not be measured."""
    from benchmarks import container_images as images
    from benchmarks.container_start import docker_timed

    if subprocess.run(["docker", "info"], capture_output=True, check=False).returncode != 0:
        return {"skipped": "no Docker engine answers here (scripts/docker-engine starts one)"}
    try:
        base = images.python_image()
        images.docker("build", "-q", "--build-arg", f"PYTHON_IMAGE={base}", "-t", images.JOB,
                      str(REPO))
        images.build_plain(base)
    except (subprocess.SubprocessError, RuntimeError, OSError) as error:
        return {"skipped": f"the images could not be built: {str(error)[-300:]}"}
    server = PostgresServer(password=secrets.token_hex(12)).start()
    try:
        url = server.create_database("example")
        docker_timed("run", "--rm", "--network", "host", "-e", f"DATABASE_URL={url}",
                     images.JOB, "upgrade")
        floor = ("-v", f"{DRIVER_FLOOR}:/floor.py:ro", images.PLAIN, "python3", "/floor.py",
                 "postgresql", "0005")
        contenders = {JOB: (images.JOB,), FLOOR: floor}
        samples: dict[str, list[float]] = {name: [] for name in contenders}
        names = list(contenders)
        for number in range(plan.container_rounds + 1):
            for name in names[number % 2:] + names[:number % 2]:
                seconds, _ = docker_timed("run", "--rm", "--network", "host", "-e",
                                          f"DATABASE_URL={url}", *contenders[name])
                if number > 0:
                    samples[name].append(seconds)
        return {"samples": samples, "base": base,
                "sizes": {image: images.image_size(image)
                          for image in (base, images.JOB, images.PLAIN)}}
    finally:
        server.destroy()
        images.remove_all()


# 5. Fleets that grow ------------------------------------------------------------------------

def fleets(plan: Plan) -> dict[str, Any]:
    """Each fleet size from empty, then at head, on its own tenant databases, named by a
    catalog query; `fleet` with MIGRATE_CONCURRENCY. Then, at head, a loop of the job over
    the largest fleet's tenants (key "job loop")."""
    from benchmarks import fleet_mode
    from tests.support.projects import make_project
    from tests.support.queries import run_once as run_sql

    root = Path(tempfile.mkdtemp(prefix="i21-fleet-"))
    server = PostgresServer(max_connections=100).start()
    try:
        ini = make_project(root / "project")
        subprocess.run([sys.executable, str(REPO / "entrypoint.py"), "manifest"], check=True,
                       env=clean_env(ALEMBIC_CONFIG=str(ini)), capture_output=True)
        for setting in ("log_connections", "log_disconnections"):
            run_sql(server.connect(), f"ALTER SYSTEM SET {setting} = on")
        run_sql(server.connect(), "SELECT pg_reload_conf()")
        results: dict[str, Any] = {}
        for count in plan.fleet_sizes:
            fleet_mode.tenants(server, f"t{count}", count)
        for scenario in ("from empty", "at head"):
            for count in plan.fleet_sizes:
                env = clean_env(
                    ALEMBIC_CONFIG=str(ini), DATABASE_URL=server.url("postgres"),
                    MIGRATE_TARGET_URL_TEMPLATE=server.url("{name}"),
                    MIGRATE_TARGET_NAMES_QUERY=names_query(count),
                    MIGRATE_CONCURRENCY=str(plan.concurrency), MIGRATE_LOG_LEVEL="WARNING")
                argv = [sys.executable, str(REPO / "entrypoint.py"), "fleet"]
                print(f"  fleet of {count}, {scenario}", flush=True)
                found = fleet_mode.measure(argv, env, ini.parent, server)
                if found["exit_code"] != 0:
                    raise RuntimeError(f"fleet of {count} {scenario} exited "
                                       f"{found['exit_code']}: {found['stderr_tail']}")
                results[f"{count} / {scenario}"] = found
        largest = max(plan.fleet_sizes)
        print(f"  a loop of the job over the {largest} tenants, at head", flush=True)
        results["job loop"] = job_loop(server, ini, names_query(largest))
        return results
    finally:
        server.destroy()
        shutil.rmtree(root, ignore_errors=True)


def names_query(count: int) -> str:
    """The catalog query naming a fleet's tenants (not the template they were copied from)."""
    return (f"SELECT datname FROM pg_database WHERE datname LIKE 't{count}\\_%' "
            "AND NOT datistemplate")


def job_loop(server: PostgresServer, ini: Path, query: str) -> dict[str, Any]:
    """One `upgrade` process per tenant the query names, one after another, as a deploy
    script's shell `for` loop runs them: the whole loop's wall time and its children's CPU."""
    conn = server.connect()
    with conn.cursor() as cursor:
        cursor.execute(query)
        names = [row[0] for row in cursor.fetchall()]
    conn.close()
    argv = [sys.executable, str(REPO / "entrypoint.py"), "upgrade"]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    failed = []
    for name in names:
        env = clean_env(ALEMBIC_CONFIG=str(ini), DATABASE_URL=server.url(name),
                        MIGRATE_LOG_LEVEL="WARNING")
        done = subprocess.run(argv, env=env, cwd=ini.parent, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True, check=False)
        if done.returncode != 0:
            failed.append(f"{name} exited {done.returncode}: {done.stderr[-300:]}")
    wall = time.monotonic() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if failed:
        raise RuntimeError(f"the job loop: {len(failed)} of {len(names)} runs failed; "
                           f"first: {failed[0]}")
    return {"tenants": len(names), "wall_s": wall,
            "cpu_s": (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)}


# The run ------------------------------------------------------------------------------------

def run(plan: Plan) -> dict[str, Any]:
    """Every scenario; raw results."""
    started = time.monotonic()
    results: dict[str, Any] = {"load_before": os.getloadavg(), "busy_before": busy(),
                               "plan": asdict(plan)}
    server = PostgresServer(password=secrets.token_hex(12), max_connections=300)
    bench = Bench(profile=FULL, python=Path(sys.executable), dbmate=Path("/bin/false"),
                  server=server)
    try:
        server.start()
        engines: dict[str, Any] = {}
        sites: list[tuple[str, Site]] = [("postgresql", bench),
                                          ("sqlite", SqliteSite(WORK / "sqlite-i21"))]
        for dialect, site in sites:
            engines[dialect] = engine_run(bench, site, dialect, plan)
        with running_mariadb() as mariadb:
            engines["mysql"] = engine_run(bench, MariaDBSite(mariadb), "mysql", plan)
        results["engines"] = engines
    finally:
        close_launcher()
        server.destroy()
    print("==> fleets", flush=True)
    results["fleets"] = fleets(plan)
    print("==> containers", flush=True)
    results["containers"] = containers(plan)
    results["load_after"] = os.getloadavg()
    results["busy_after"] = busy()
    results["runtime_s"] = time.monotonic() - started
    results["commit"] = environment.describe_code(REPO)
    results["generated_at"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    return results


def engine_run(bench: Bench, site: Site, dialect: str, plan: Plan) -> dict[str, Any]:
    """One engine's full upgrades and no-op."""
    print(f"==> {ENGINE_NAMES[dialect]}", flush=True)
    full = full_upgrades(bench, site, dialect, plan)
    samples, extra = noop(bench, site, dialect, plan)
    return {"full": {size: {n: [asdict(s) for s in found] for n, found in by.items()}
                     for size, by in full.items()},
            "noop": {n: [asdict(s) for s in found] for n, found in samples.items()},
            "imports_beyond_floor_ms": extra}


def busy() -> tuple[float, float]:
    """(CPU seconds every core was busy since boot, wall seconds since boot)."""
    from benchmarks.measure import machine_busy_s

    return machine_busy_s(), time.clock_gettime(time.CLOCK_BOOTTIME)


# The section --------------------------------------------------------------------------------

def samples_of(raw: list[dict[str, Any]]) -> list[Sample]:
    return [Sample(**one) for one in raw]


def targets(results: dict[str, Any]) -> list[Target]:
    """Every row, from the raw results."""
    rows: list[Target] = []
    for dialect, found in results["engines"].items():
        engine = ENGINE_NAMES[dialect]
        for size, by in found["full"].items():
            upgraded, alembic = samples_of(by[JOB]), samples_of(by[ALEMBIC])
            off = samples_of(by[JOB_NO_HISTORY])
            ratio = median_wall(upgraded) / median_wall(alembic)
            history_ms = (median_wall(upgraded) - median_wall(off)) * 1000 / int(size)
            rest_ms = (median_wall(off) - median_wall(alembic)) * 1000 / int(size)
            rows.append(Target(
                f"{engine}: full upgrade from empty, {size} revisions, history on: wall time",
                f"job <= {FULL_GOAL[dialect]:.2f}x plain Alembic",
                f"{ratio:.3f}x ({median_wall(upgraded):.2f} vs {median_wall(alembic):.2f} s; "
                f"CPU {median_cpu(upgraded):.2f} vs {median_cpu(alembic):.2f} s)",
                ratio <= FULL_GOAL[dialect],
                f"per revision, the history table {history_ms:+.2f} ms (vs MIGRATE_HISTORY="
                f"off), the rest of the job {rest_ms:+.2f} ms (vs plain Alembic)"))
        noops = {n: samples_of(s) for n, s in found["noop"].items()}
        job, floor = median_wall(noops[JOB]), median_wall(noops[FLOOR])
        work = median_wall(noops[PLAIN_WORK]) if PLAIN_WORK in noops else None
        beyond = found["imports_beyond_floor_ms"]
        top = ", ".join(f"`{n}` {ms:.1f}" for n, ms in list(beyond.items())[:6])
        split = "" if work is None else (
            f"; the same work written plainly (`benchmarks/work_floor.py`: read alembic.ini, "
            f"the revision files' status and the heads cache, connect, read the version table "
            f"and the history's checksums) takes {work * 1000:.1f} ms, {work / floor:.3f}x "
            f"the floor: the work accounts for {(work - floor) * 1000:.1f} ms of the gap, the "
            f"job's own code (its modules, logs, threads, the wait's and the fast path's "
            f"rules) for {(job - work) * 1000:.1f} ms"
            + ("" if work / floor <= FLOOR_GOAL else
               f"; the work alone is over the goal, so no job that verifies at head can meet "
               f"it on this machine: its limit is {work / floor:.3f}x"))
        rows.append(Target(
            f"{engine}: no-op at head, no manifest, cache warm: wall time",
            f"job <= {FLOOR_GOAL}x its driver's floor ({DRIVERS[dialect]})",
            f"{job / floor:.3f}x ({job * 1000:.1f} vs {floor * 1000:.1f} ms)"
            + ("" if work is None else f"; the work alone {work / floor:.3f}x"),
            job / floor <= FLOOR_GOAL,
            f"{(job - floor) * 1000:.1f} ms above the floor{split}; of it, imports the floor "
            f"does not make: {sum(beyond.values()):.1f} ms by `-X importtime` (which inflates "
            f"them), largest self times, ms: {top}"))
        fail, plain = median_wall(noops[VERIFY_FAIL]), median_wall(noops[VERIFY_OFF])
        rows.append(Target(
            f"{engine}: verification at head (MIGRATE_VERIFY=fail), no-op: wall time",
            f"<= {VERIFY_GOAL}x the no-op without verification (MIGRATE_VERIFY=off)",
            f"{fail / plain:.3f}x ({fail * 1000:.1f} vs {plain * 1000:.1f} ms; warn, the "
            f"default, which verifies too: {job / plain:.3f}x)",
            fail / plain <= VERIFY_GOAL))
    rows += container_targets(results["containers"])
    rows += fleet_targets(results["fleets"], results["plan"])
    return rows


def container_targets(found: dict[str, Any]) -> list[Target]:
    what = "Container start to exit at head (`docker run --rm`): wall time"
    goal = f"job's image <= {CONTAINER_GOAL}x a psycopg2-floor container, same base"
    if "skipped" in found:
        return [Target(what, goal, f"not measured: {found['skipped']}", None)]
    job = statistics.median(found["samples"][JOB])
    floor = statistics.median(found["samples"][FLOOR])
    sizes = {image: size / 1e6 for image, size in found["sizes"].items()}
    size_text = ", ".join(f"`{image}` {mb:.1f} MB" for image, mb in sizes.items())
    return [Target(what, goal, f"{job / floor:.3f}x ({job:.3f} vs {floor:.3f} s); image sizes: "
                   f"{size_text}", job / floor <= CONTAINER_GOAL)]


def fleet_runs(found: dict[str, Any]) -> dict[str, Any]:
    """The `fleet` runs, keyed "count / scenario" (without the job loop)."""
    return {key: one for key, one in found.items() if " / " in key}


def fleet_targets(found: dict[str, Any], plan: dict[str, Any]) -> list[Target]:
    small, large = plan["fleet_sizes"]
    factor = large / small
    time_goal = FLEET_TIME_GOAL * factor / 10
    rows = []
    for scenario in ("from empty", "at head"):
        a, b = found[f"{small} / {scenario}"], found[f"{large} / {scenario}"]
        ratio = b["wall_s"] / a["wall_s"]
        rows.append(Target(
            f"Fleet, {small} -> {large} tenants, {scenario}: wall time",
            f"<= {time_goal:g}x (linear)", f"{ratio:.2f}x ({a['wall_s']:.2f} -> "
            f"{b['wall_s']:.2f} s; CPU {a['cpu_s']:.1f} -> {b['cpu_s']:.1f} s)",
            ratio <= time_goal))
    peak = {k: v["parent_peak_rss_mib"] for k, v in fleet_runs(found).items()}
    small_rss = max(peak[f"{small} / {s}"] for s in ("from empty", "at head"))
    large_rss = max(peak[f"{large} / {s}"] for s in ("from empty", "at head"))
    rows.append(Target(f"Fleet, {small} -> {large} tenants: the parent's peak RSS",
                       f"<= {FLEET_RSS_GOAL}x", f"{large_rss / small_rss:.3f}x "
                       f"({small_rss:.1f} -> {large_rss:.1f} MiB)",
                       large_rss / small_rss <= FLEET_RSS_GOAL))
    connections = max(v["peak_connections"] for v in fleet_runs(found).values())
    limit = plan["concurrency"] + 1
    rows.append(Target(f"Fleet, up to {large} tenants: peak server connections",
                       f"<= MIGRATE_CONCURRENCY + 1 = {limit}", str(connections),
                       connections <= limit))
    rows.append(loop_target(found[f"{large} / at head"], found.get("job loop"), large))
    return rows


def loop_target(fleet: dict[str, Any], loop: dict[str, Any] | None, count: int) -> Target:
    what = (f"Fleet of {count} at head against a loop of the job over the same tenants: "
            "wall time")
    goal = f"fleet <= {FLEET_LOOP_GOAL}x the loop"
    if loop is None:
        return Target(what, goal, "not measured: the saved run predates the loop", None)
    ratio = fleet["wall_s"] / loop["wall_s"]
    return Target(what, goal, f"{ratio:.3f}x ({fleet['wall_s']:.2f} vs {loop['wall_s']:.2f} s; "
                  f"CPU {fleet['cpu_s']:.1f} vs {loop['cpu_s']:.1f} s)",
                  ratio <= FLEET_LOOP_GOAL)


def section(results: dict[str, Any]) -> str:
    """The BENCHMARKS.md section."""
    plan = results["plan"]
    before, after = results["busy_before"], results["busy_after"]
    cores = environment.usable_cores()
    other = (after[0] - before[0]) / max(after[1] - before[1], 1e-9)
    lines = [
        "## Targets (issue 21)", "",
        f"Generated by `benchmarks/run --issue21` (`benchmarks/issue21.py`) on "
        f"{results['generated_at']}, code {results['commit']}, in "
        f"{results['runtime_s'] / 60:.1f} min, every row side by side in this one run. "
        f"**The machine is shared** with other work ({cores} usable cores): load average "
        f"{_load(results['load_before'])} at the start, {_load(results['load_after'])} at the "
        f"end, and all cores together were busy {other:.2f} cores on average over the run "
        "(the benchmark's own processes included); wall-time ratios of contenders measured in "
        "the same rounds share that noise, absolute times do not.", "",
        f"Full upgrades: {plan['full_rounds']} rounds, order rotating, from a freshly created "
        "database each run (not timed), every run checked (each revision applied once, the "
        "version table at head); the generated histories of the main run (revision k creates a "
        "table or adds a column and writes its audit row). No-op at head: the database brought "
        f"to head by the job (its history table holds a row per revision), {plan['noop_size']} "
        f"revisions, no manifest, the heads cache warm, {plan['noop_rounds']} rounds after a "
        "warm-up; the floor is `benchmarks/driver_floor.py` with the engine's driver. The "
        "Python contenders run from this checkout's `.venv` with bytecode written "
        "(PYTHONDONTWRITEBYTECODE unset), as an installed copy runs. Fleets: the example "
        "project (5 revisions, manifest written), tenant databases copied from a template on "
        f"one PostgreSQL, `fleet` with MIGRATE_CONCURRENCY={plan['concurrency']}, the names "
        "from `MIGRATE_TARGET_NAMES_QUERY` on the catalog database; connections counted "
        "exactly from the server's connection log. The loop of the job: after the largest "
        "fleet at head, one `entrypoint.py upgrade` process per name the same query returns, "
        "one after another (as a deploy script's shell `for` loop), each exit checked.", "",
        "| target | goal | measured | verdict |", "|---|---|---|---|"]
    rows = targets(results)
    for row in rows:
        lines.append(f"| {row.what} | {row.goal} | {row.measured} | {row.verdict} |")
    reasons = [row for row in rows if row.why and row.met is False]
    if reasons:
        lines += ["", "Where a row is not met, what the measurement says:", ""]
        lines += [f"- {row.what}: {row.why}." for row in reasons]
    lines += ["", *PER_REVISION]
    lines += fleet_table(results["fleets"])
    return SECTION.wrap(lines)


# What the job adds to each revision by design, whatever the machine: the floor under the
# full-upgrade ratios (the per-revision splits above move with the machine's load).
PER_REVISION = [
    "What the job adds to each revision by design, beside two log lines: on PostgreSQL two "
    "statements in the revision's own transaction, the revision gate (`pg_advisory_xact_lock`: "
    "a revision waits until any revision transaction of a runner that lost the lock has "
    "ended) and the history row, whose "
    "INSERT also checks that the session still holds the migration lock (one round trip for "
    "both); on SQLite the history row (its lock is a file lock, checked without SQL); on "
    "MariaDB, where DDL commits at once, the history row and the unfinished-revision record "
    "(exit 10 needs it) written and committed together before the revision, with the version "
    "table read for that record, then the row closed and the record deleted in the "
    "revision's own transaction, that DELETE also checking the migration lock: five "
    "statements and one commit more (three and one with MIGRATE_HISTORY=off), each a round "
    "trip through PyMySQL, which is pure Python. Plain Alembic does none of it, so the ratio "
    "is lowest where each revision does real work, and these generated revisions do almost "
    "none (a small table or a column each). The per-revision splits above come from medians "
    "of separate contenders on a shared machine and move from run to run with its load."]


def fleet_table(found: dict[str, Any]) -> list[str]:
    lines = ["", "| fleet | scenario | wall s | CPU s | parent peak RSS MiB | largest process "
             "RSS MiB | peak connections |", "|---|---|---|---|---|---|---|"]
    for key, one in fleet_runs(found).items():
        count, scenario = key.split(" / ")
        lines.append(f"| {count} tenants | {scenario} | {one['wall_s']:.2f} | "
                     f"{one['cpu_s']:.2f} | {one['parent_peak_rss_mib']:.1f} | "
                     f"{one['max_process_rss_mib']:.1f} | {one['peak_connections']} |")
    return lines


def _load(load: list[float]) -> str:
    return "/".join(f"{value:.1f}" for value in load)


def main(argv: list[str] | None = None) -> int:
    """Run, save and write the section."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run; writes nothing")
    parser.add_argument("--rewrite", action="store_true",
                        help="measure nothing: write the section again from the last run's "
                        "benchmarks/work/issue21.json (after a change to its wording)")
    args = parser.parse_args(argv)
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    if args.rewrite:
        saved = WORK / "issue21.json"
        results = json.loads(saved.read_text())
        results.setdefault("generated_at", time.strftime(
            "%Y-%m-%d %H:%M UTC", time.gmtime(saved.stat().st_mtime)))
        SECTION.write(section(results))
        return 0
    results = run(QUICK if args.quick else Plan())
    text = section(results)
    print(text)
    if not args.quick:
        WORK.mkdir(parents=True, exist_ok=True)
        (WORK / "issue21.json").write_text(json.dumps(results, indent=1, default=str))
        SECTION.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
