"""No-op at head and full upgrade from empty: every contender in turn, round-robin."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from benchmarks.contenders import IMPORT_PSYCOPG2, IMPORT_STACK, JOB_NO_HISTORY, NO_SITE, PASS
from benchmarks.histories import History
from benchmarks.measure import Command, Sample, run_once
from benchmarks.sites import Site
from benchmarks.world import Bench, output_file


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

def verify_upgraded(site: Site, database: str, history: History) -> None:
    """Every revision applied exactly once and the version table at head."""
    counts = site.audit_counts(database)
    if len(counts) != history.size or any(c != 1 for c in counts.values()):
        raise RuntimeError(f"{database}: expected {history.size} revisions applied once each, "
                           f"found {len(counts)} (max {max(counts.values(), default=0)} rows)")
    if site.alembic_version(database) != [history.head]:
        raise RuntimeError(f"{database}: alembic_version is not {history.head}")


def full_upgrade(bench: Bench) -> dict[str, list[Sample]]:
    """Job vs plain Alembic vs psql -1, each from an empty database, round-robin."""
    size = bench.profile.full_size
    history = bench.histories[size]
    database = "full_upgrade"
    url = bench.url(database)
    contenders = [bench.job(history, url), bench.alembic(history, url),
                  bench.psql_upgrade(history, url),
                  replace(bench.job(history, url, MIGRATE_HISTORY="off"), name=JOB_NO_HISTORY)]
    samples: dict[str, list[Sample]] = {c.name: [] for c in contenders}
    bench.say(f"  full upgrade from empty, {size} revisions: {bench.profile.full_runs} rounds")
    for round_number in range(bench.profile.full_runs):
        shift = round_number % len(contenders)
        for command in contenders[shift:] + contenders[:shift]:
            bench.recreate_database(database)
            samples[command.name].append(run_once(command, output_file(f"full-{command.name}")))
            verify_upgraded(bench, database, history)
    return samples
