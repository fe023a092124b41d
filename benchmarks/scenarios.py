"""The four measurements of issue 4, plus where the job's no-op time goes (import profile)."""

from __future__ import annotations

import random
import statistics
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import psycopg2

from benchmarks.histories import History
from benchmarks.measure import Command, CommandFailed, Sample, launcher, run_once
from benchmarks.world import Bench, output_file
from tests.support.pgserver import PostgresServer

# Contender names, in the order tables show them.
JOB, ALEMBIC, FLOOR, DBMATE, PASS = "job", "alembic", "floor", "dbmate", "python -c pass"
IMPORT_PSYCOPG2 = "python -c 'import psycopg2'"
IMPORT_STACK = "python -c 'import alembic.command, alembic.config, sqlalchemy, psycopg2'"
NO_SITE = "python -S -c pass"
PSQL = "psql -1"


def round_robin(commands: list[Command], runs: int, *, warmup: int = 1,
                tag: str = "") -> dict[str, list[Sample]]:
    """Run every command once per round, rotating the order each round; drop warm-up rounds."""
    samples: dict[str, list[Sample]] = {c.name: [] for c in commands}
    for round_number in range(warmup + runs):
        shift = round_number % len(commands)
        for command in commands[shift:] + commands[:shift]:
            sample = run_once(command, output_file(f"{tag}-{command.name}"))
            if round_number >= warmup:
                samples[command.name].append(sample)
    return samples


# No-op at head ------------------------------------------------------------------------------

@dataclass
class NoopResults:
    """Samples per history size and contender; startup references measured alongside."""

    samples: dict[int, dict[str, list[Sample]]] = field(default_factory=dict)
    references: dict[str, list[Sample]] = field(default_factory=dict)


def noop_at_head(bench: Bench) -> NoopResults:
    """Every contender against a database already at head, for each history size."""
    results = NoopResults()
    smallest = min(bench.profile.sizes)
    for size in bench.profile.sizes:
        history = bench.histories[size]
        url = bench.url(f"alembic_{size}")
        commands = [bench.job(history, url), bench.alembic(history, url),
                    bench.floor(history, url),
                    bench.dbmate_up(history, bench.url(f"dbmate_{size}")),
                    bench.python_c(PASS, "pass")]
        if size == smallest:
            commands += [bench.python_c(NO_SITE, "pass", "-S"),
                         bench.python_c(IMPORT_PSYCOPG2, "import psycopg2"),
                         bench.python_c(IMPORT_STACK, "import alembic.command, alembic.config, "
                                                      "sqlalchemy, psycopg2")]
        bench.say(f"  no-op at head, {size} revisions: {bench.profile.noop_runs} rounds "
                  f"of {len(commands)} contenders")
        samples = round_robin(commands, bench.profile.noop_runs, tag=f"noop-{size}")
        if bench.alembic_version(f"alembic_{size}") != [history.head]:
            raise RuntimeError(f"alembic_{size} moved away from head during the no-op runs")
        results.samples[size] = {n: s for n, s in samples.items()
                                 if n not in (NO_SITE, IMPORT_PSYCOPG2, IMPORT_STACK)}
        for name in (NO_SITE, IMPORT_PSYCOPG2, IMPORT_STACK):
            if name in samples:
                results.references[name] = samples[name]
    return results


# Full upgrade from empty --------------------------------------------------------------------

def verify_upgraded(bench: Bench, database: str, history: History) -> None:
    """Every revision applied exactly once and the version table at head."""
    counts = bench.audit_counts(database)
    if len(counts) != history.size or any(c != 1 for c in counts.values()):
        raise RuntimeError(f"{database}: expected {history.size} revisions applied once each, "
                           f"found {len(counts)} (max {max(counts.values(), default=0)} rows)")
    if bench.alembic_version(database) != [history.head]:
        raise RuntimeError(f"{database}: alembic_version is not {history.head}")


def full_upgrade(bench: Bench) -> dict[str, list[Sample]]:
    """Job vs plain Alembic vs psql -1, each from an empty database, round-robin."""
    size = bench.profile.full_size
    history = bench.histories[size]
    database = "full_upgrade"
    url = bench.url(database)
    contenders = [bench.job(history, url), bench.alembic(history, url),
                  bench.psql_upgrade(history, url)]
    samples: dict[str, list[Sample]] = {c.name: [] for c in contenders}
    bench.say(f"  full upgrade from empty, {size} revisions: {bench.profile.full_runs} rounds")
    for round_number in range(bench.profile.full_runs):
        shift = round_number % len(contenders)
        for command in contenders[shift:] + contenders[:shift]:
            bench.recreate_database(database)
            samples[command.name].append(run_once(command, output_file(f"full-{command.name}")))
            verify_upgraded(bench, database, history)
    return samples


# Fleet ------------------------------------------------------------------------------------

@dataclass
class FleetRun:
    """One fleet of runners started at once."""

    state: str
    runners: int
    wall_s: float
    cpu_total_s: float
    server_cpu_s: float
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


def run_fleet(bench: Bench, history: History, database: str, state: str,
              runners: int) -> FleetRun:
    """Start `runners` jobs at once; wait for all; check what reached the database."""
    command = bench.job(history, bench.url(database), MIGRATE_LOG_FORMAT="json",
                        MIGRATE_LOCK_TIMEOUT="300", MIGRATE_WAIT_TIMEOUT="60")
    outputs = [output_file(f"fleet-{state}-{i:02d}") for i in range(runners)]
    server_cpu = bench.server_cpu_s()
    started = time.monotonic()
    processes = [launcher().spawn(command, out) for out in outputs]
    samples = [launcher().reap(p) for p in processes]
    wall = time.monotonic() - started
    time.sleep(0.2)  # let the postmaster reap the last backends before reading its CPU time
    server_cpu = bench.server_cpu_s() - server_cpu
    codes = Counter(s.exit_code for s in samples)
    counts = bench.audit_counts(database)
    outcomes = Counter(_outcome(out.read_text(errors="replace")) for out in outputs)
    return FleetRun(state=state, runners=runners, wall_s=wall,
                    cpu_total_s=sum(s.cpu_s for s in samples), server_cpu_s=server_cpu,
                    failures=sum(n for code, n in codes.items() if code != 0),
                    exit_codes=dict(codes), revisions_applied=len(counts),
                    max_applications=max(counts.values(), default=0), outcomes=dict(outcomes))


def fleet(bench: Bench, cores: int) -> FleetResults:
    """Fleets behind (empty database) and at head; and one runner's full upgrade."""
    size, runners = bench.profile.fleet_size, bench.profile.fleet_runners
    history = bench.histories[size]
    database = "fleet"
    results = FleetResults(size=size, runners=runners, cores=cores)
    bench.say(f"  one runner, full upgrade of {size} revisions: {bench.profile.single_runs} runs")
    for _ in range(bench.profile.single_runs):
        url = bench.recreate_database(database)
        results.single_full.append(run_once(bench.job(history, url), output_file("fleet-single")))
        verify_upgraded(bench, database, history)
    for rep in range(bench.profile.fleet_reps):
        bench.say(f"  fleet {rep + 1}/{bench.profile.fleet_reps}: {runners} runners "
                  f"{size} revisions behind, then {runners} at head")
        bench.recreate_database(database)
        results.runs.append(run_fleet(bench, history, database, "behind", runners))
        results.runs.append(run_fleet(bench, history, database, "at head", runners))
    return results


# Waiting for a database that comes up ---------------------------------------------------------

@dataclass
class WaitRun:
    """One job started against a stopped server that is started `delay_s` later."""

    delay_s: float
    connected_after_s: float
    probe_resolution_s: float
    after_pg_ctl_s: float
    failed_attempts: int
    attempts_per_s: float
    peak_attempts_1s: int
    exit_code: int


class Probe(threading.Thread):
    """Tries connect + SELECT 1 every 5 ms; remembers when the last failure and first success began.

    The database "starts accepting" (t0) somewhere between the start of the last failed probe
    and the start of the first successful one: we take the last failed probe's start, which
    can only make the job's measured delay longer, never shorter.
    """

    def __init__(self, server: PostgresServer, database: str, deadline: float) -> None:
        super().__init__(daemon=True)
        self.server, self.database, self.deadline = server, database, deadline
        self.last_failure: float | None = None
        self.first_success: float | None = None

    def run(self) -> None:
        """Probe until the first success or the deadline."""
        while time.time() < self.deadline:
            began = time.time()
            try:
                conn = psycopg2.connect(host="127.0.0.1", port=self.server.port, user="postgres",
                                        password=self.server.password, dbname=self.database,
                                        connect_timeout=2, application_name="bench-probe")
                try:
                    with conn.cursor() as cur:
                        cur.execute("SELECT 1")
                finally:
                    conn.close()
            except psycopg2.Error:
                self.last_failure = began
                time.sleep(0.005)
                continue
            self.first_success = began
            return


def _ts(stamp: str) -> float:
    """The job's JSON `ts` (UTC, milliseconds) as a Unix time."""
    return datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC).timestamp()


def _events(path: Path) -> list[tuple[str, float]]:
    import json

    events = []
    for line in path.read_text(errors="replace").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and "event" in record and "ts" in record:
            events.append((str(record["event"]), _ts(str(record["ts"]))))
    return events


def wait_for_start(bench: Bench) -> list[WaitRun]:
    """The job started against a stopped server; the server starts a random 2-4 s later."""
    history = bench.histories[min(bench.profile.sizes)]
    server = PostgresServer(password=bench.server.password, max_connections=50)
    rng = random.Random(4)  # noqa: S311  (delays, not secrets; fixed seed for repeatability)
    runs: list[WaitRun] = []
    try:
        server.start()
        bench.recreate_database("wait", server)
        bench.psql_file(bench.url("wait", server), history.all_sql)
        server.stop()
        command = bench.job(history, bench.url("wait", server), MIGRATE_WAIT_TIMEOUT="60",
                            MIGRATE_LOG_FORMAT="json")
        bench.say(f"  wait: {bench.profile.wait_reps} starts of a stopped server")
        for rep in range(bench.profile.wait_reps):
            delay = rng.uniform(*bench.profile.wait_delay_s)
            out = output_file(f"wait-{rep:02d}")
            process = launcher().spawn(command, out)
            time.sleep(delay)
            probe = Probe(server, "wait", time.time() + 60)
            probe.start()
            server.start()
            pg_ctl_returned = time.time()
            probe.join(60)
            sample = launcher().reap(process)
            server.stop()
            if sample.exit_code != 0:
                raise CommandFailed(f"job exited {sample.exit_code} in the wait scenario:\n"
                                    + out.read_text(errors="replace")[-2000:])
            if probe.first_success is None or probe.last_failure is None:
                raise RuntimeError("the probe never saw the server go from down to up")
            events = _events(out)
            waits = [t for name, t in events if name == "waiting_for_database"]
            ready = next(t for name, t in events if name == "database_ready")
            peak = max((sum(1 for u in waits if t <= u < t + 1.0) for t in waits), default=0)
            runs.append(WaitRun(
                delay_s=delay,
                connected_after_s=ready - probe.last_failure,
                probe_resolution_s=probe.first_success - probe.last_failure,
                after_pg_ctl_s=ready - pg_ctl_returned,
                failed_attempts=len(waits),
                attempts_per_s=len(waits) / (ready - waits[0]) if waits else 0.0,
                peak_attempts_1s=peak,
                exit_code=sample.exit_code))
    finally:
        server.destroy()
    return runs


# Where the job's no-op time goes ------------------------------------------------------------

@dataclass
class ImportProfile:
    """`python -X importtime` of the job's no-op run, medians over a few runs.

    `by_importer_ms`: cumulative time of each import the program itself started (depth 0 in
    the importtime tree: the entry point's own imports and site's), i.e. who caused what.
    `by_package_ms`: self time summed per top-level package, i.e. where the time is spent.
    """

    size: int
    total_ms: float
    modules: int
    by_importer_ms: dict[str, float]
    by_package_ms: dict[str, float]
    heavy_imported: list[str]


def _medians(runs: list[Counter[str]]) -> dict[str, float]:
    """Per key, the median over runs (a key missing from a run counts as 0), largest first."""
    keys = set().union(*runs)
    medians = {k: statistics.median(run.get(k, 0) / 1000 for run in runs) for k in keys}
    return dict(sorted(medians.items(), key=lambda kv: -kv[1]))


def import_profile(bench: Bench) -> ImportProfile:
    """Run the job at head with -X importtime and fold the tree two ways."""
    size = max(bench.profile.sizes)
    history = bench.histories[size]
    base = bench.job(history, bench.url(f"alembic_{size}"))
    command = Command("job -X importtime", (base.argv[0], "-X", "importtime", *base.argv[1:]),
                      base.env, base.cwd)
    by_package: list[Counter[str]] = []
    by_importer: list[Counter[str]] = []
    counts: list[int] = []
    for _ in range(bench.profile.importtime_runs):
        out = output_file("importtime")
        run_once(command, out)
        packages: Counter[str] = Counter()
        importers: Counter[str] = Counter()
        modules = 0
        for line in out.read_text(errors="replace").splitlines():
            if not line.startswith("import time:") or "self [us]" in line:
                continue
            self_us, cumulative_us, name = line.removeprefix("import time:").split("|", 2)
            module = name.strip()
            packages[module.split(".")[0]] += int(self_us)
            if len(name) - len(name.lstrip()) <= 1:  # depth 0: one space after the bar
                importers[module] += int(cumulative_us)
            modules += 1
        by_package.append(packages)
        by_importer.append(importers)
        counts.append(modules)
    package_ms = _medians(by_package)
    heavy = {"alembic", "sqlalchemy", "mako", "tenacity"}
    return ImportProfile(size=size,
                         total_ms=statistics.median(sum(c.values()) / 1000 for c in by_package),
                         modules=int(statistics.median(counts)),
                         by_importer_ms=_medians(by_importer), by_package_ms=package_ms,
                         heavy_imported=sorted(heavy & set(package_ms)))
