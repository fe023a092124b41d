"""Issue 9's engines, side by side with plain Alembic on the same engine: no-op at head, fleet.

For each engine (a Site: SQLite files, a MariaDB server) the same generated histories as on
PostgreSQL are written in the engine's SQL, with the heads manifest the image writes; each
no-op database is brought to head by running the history's SQL (not timed). Then the job and
plain `alembic upgrade head` (same project, same interpreter, same database) run round-robin,
and fleets of runners start at once, behind and at head, as on PostgreSQL.
"""

from __future__ import annotations

from dataclasses import dataclass

from benchmarks.contenders import PASS
from benchmarks.fleets import FleetResults, fleet
from benchmarks.histories import History, write_history
from benchmarks.import_profile import ImportProfile, import_profile
from benchmarks.measure import Sample
from benchmarks.side_by_side import round_robin
from benchmarks.sites import EngineSite
from benchmarks.world import HISTORIES, REPO, Bench, write_manifest

# The engine's driver imported and nothing else: how much of the job's no-op is the driver.
IMPORT_DRIVER = {"sqlite": "import sqlite3", "mysql": "import pymysql"}


@dataclass
class EngineResults:
    """One engine's no-op samples per history size, its fleets and the job's imports at head."""

    name: str
    dialect: str
    version: str
    noop: dict[int, dict[str, list[Sample]]]
    references: dict[str, list[Sample]]
    fleet: FleetResults
    imports: ImportProfile


def driver_import(dialect: str) -> str:
    """The reference command's name: python -c 'import DRIVER'."""
    return f"python -c '{IMPORT_DRIVER[dialect]}'"


def prepare(bench: Bench, site: EngineSite) -> dict[int, History]:
    """The engine's histories (with a fresh heads manifest) and a database at head for each."""
    histories: dict[int, History] = {}
    sizes = sorted({*bench.profile.engine_sizes, bench.profile.fleet_size})
    for size in sizes:
        history = write_history(REPO, HISTORIES / f"{site.dialect}-n{size:05d}", size,
                                site.dialect)
        if bench.manifest:
            write_manifest(bench, history)
        database = f"alembic_{size}"
        site.recreate_database(database)
        site.load_to_head(database, history)
        if site.alembic_version(database) != [history.head]:
            raise RuntimeError(f"{site.name}: setting up {database} did not reach {history.head}")
        histories[size] = history
    bench.say(f"  {site.name}: histories of {', '.join(map(str, sizes))} revisions ready")
    return histories


def engine_benchmark(bench: Bench, site: EngineSite, cores: int) -> EngineResults:
    """No-op at head (job, plain Alembic, references) per size; fleets; the job's imports."""
    histories = prepare(bench, site)
    noop: dict[int, dict[str, list[Sample]]] = {}
    references: dict[str, list[Sample]] = {}
    sizes = bench.profile.engine_sizes
    if bench.profile.fleet_size not in sizes:
        raise ValueError("the fleet's ideal needs the no-op at the fleet's history size")
    reference = driver_import(site.dialect)
    for size in sizes:
        history, url = histories[size], site.url(f"alembic_{size}")
        commands = [bench.job(history, url), bench.alembic(history, url),
                    bench.python_c(PASS, "pass")]
        if size == min(sizes):
            commands.append(bench.python_c(reference, IMPORT_DRIVER[site.dialect]))
        bench.say(f"  {site.name}: no-op at head, {size} revisions: "
                  f"{bench.profile.noop_runs} rounds of {len(commands)} contenders")
        samples = round_robin(commands, bench.profile.noop_runs,
                              tag=f"{site.dialect}-noop-{size}")
        if site.alembic_version(f"alembic_{size}") != [history.head]:
            raise RuntimeError(f"{site.name}: alembic_{size} moved away from head")
        if reference in samples:
            references[reference] = samples.pop(reference)
        noop[size] = samples
    largest = max(sizes)
    imports = import_profile(bench, histories[largest], site.url(f"alembic_{largest}"))
    bench.say(f"  {site.name}: fleets")
    fleets = fleet(bench, cores, site, histories, tag=f"{site.dialect}-fleet")
    return EngineResults(name=site.name, dialect=site.dialect, version=site.version(),
                         noop=noop, references=references, fleet=fleets, imports=imports)
