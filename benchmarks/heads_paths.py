"""How the job learns the head at a no-op (issue 12), side by side with plain Alembic.

For each generated history and for real public Alembic histories fetched from PyPI at run time:
the job reading the head from the revision files with its cache warm, the same with no cache
(MIGRATE_CACHE_DIR=''), the job with a fresh heads manifest, and plain `alembic upgrade head`.
A public history's revision files import their package, so plain Alembic runs with the package
on PYTHONPATH (pip install --target); the job gets the same PYTHONPATH and never imports it.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field, replace
from pathlib import Path

from benchmarks.figures import ms, ratio
from benchmarks.histories import VERSION_TABLE_DDL, History, write_history
from benchmarks.markdown_table import table
from benchmarks.measure import Command, Sample, run_simple, summarize
from benchmarks.side_by_side import round_robin
from benchmarks.world import ENTRYPOINT, HISTORIES, REPO, WORK, Bench, clean_env

CACHED, UNCACHED, MANIFEST, ALEMBIC = ("job, cache warm", "job, no cache", "job, manifest",
                                       "alembic")
ORDER = (CACHED, UNCACHED, MANIFEST, ALEMBIC)
# A dot-directory, like HISTORIES: the installed packages never reach the linters.
SITES = WORK / ".public"


@dataclass(frozen=True)
class PublicHistory:
    """A package on PyPI that ships an Alembic history, and where its source lives."""

    package: str
    version: str
    # pip requirements installed (--target, --no-deps unless `with_deps`) so that its
    # revision files import.
    requirements: tuple[str, ...]
    script_location: str  # inside the installed package
    repository: str
    commit: str  # the release tag the wheel was built from
    with_deps: bool = False


PUBLIC = (
    PublicHistory("optuna", "4.1.0", ("optuna==4.1.0", "numpy==2.1.3", "colorlog==6.9.0",
                                      "tqdm==4.67.1"),
                  "optuna/storages/_rdb/alembic", "https://github.com/optuna/optuna",
                  "tag v4.1.0"),
    PublicHistory("mlflow-skinny", "2.17.0", ("mlflow-skinny==2.17.0",),
                  "mlflow/store/db_migrations", "https://github.com/mlflow/mlflow",
                  "tag v2.17.0", with_deps=True),
)


@dataclass
class HeadsRow:
    """One history's samples per contender."""

    name: str
    revisions: int
    samples: dict[str, list[Sample]] = field(default_factory=dict)
    source: str = ""


def install(public: PublicHistory) -> Path:
    """pip install the package into its own folder (kept between runs)."""
    site = SITES / f"{public.package}-{public.version}"
    if not (site / ".complete").exists():
        shutil.rmtree(site, ignore_errors=True)
        run_simple([str(REPO / ".venv" / "bin" / "python"), "-m", "pip", "install", "-q",
                    "--disable-pip-version-check", "--target", str(site),
                    *(() if public.with_deps else ("--no-deps",)), *public.requirements],
                   env=clean_env())
        (site / ".complete").write_text("")
    return site


def public_project(bench: Bench, public: PublicHistory, site: Path) -> History:
    """The package's revision files in a project like the generated ones (the example's
    alembic.ini and env.py), and a database whose version table is at its head."""
    scaffold = write_history(REPO, HISTORIES / f"public-{public.package}", 1)
    versions = scaffold.alembic_ini.parent / "migrations" / "versions"
    shutil.rmtree(versions)
    shutil.copytree(site / public.script_location / "versions", versions,
                    ignore=shutil.ignore_patterns("__pycache__"))
    # Plain Alembic names the head (the revision files import the package: its PYTHONPATH).
    heads = run_simple([str(REPO / ".venv" / "bin" / "alembic"), "-c", str(scaffold.alembic_ini),
                        "heads"], env=clean_env(PYTHONPATH=str(site)),
                       cwd=scaffold.alembic_ini.parent).split()
    if len(heads) != 2 or heads[1] != "(head)":
        raise RuntimeError(f"{public.package}: `alembic heads` said {heads}")
    head = heads[0]
    size = len(list(versions.glob("*.py")))
    database = f"public_{public.package.replace('-', '_')}"
    url = bench.recreate_database(database)
    sql = scaffold.root / "head.sql"
    sql.write_text(VERSION_TABLE_DDL + f"\nINSERT INTO alembic_version VALUES ('{head}');\n")
    bench.psql_file(url, sql)
    return History(size=size, root=scaffold.root, head=head, dialect="postgresql")


def with_manifest(history: History, pythonpath: str) -> Path:
    """A copy of the project with a fresh heads manifest; returns its alembic.ini."""
    copy = history.root.parent / f"{history.root.name}-manifest"
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(history.root / "alembic", copy / "alembic")
    ini = copy / "alembic" / "alembic.ini"
    run_simple([str(REPO / ".venv" / "bin" / "python"), str(ENTRYPOINT), "manifest"],
               env=clean_env(ALEMBIC_CONFIG=str(ini), PYTHONPATH=pythonpath), cwd=REPO)
    return ini


def contenders(bench: Bench, history: History, url: str, pythonpath: str) -> list[Command]:
    """The four ways, on one database at head."""
    extra = {"PYTHONPATH": pythonpath} if pythonpath else {}
    cache = WORK / "heads-cache"
    manifest_ini = with_manifest(history, pythonpath)
    alembic = bench.alembic(history, url)
    return [
        replace(bench.job(history, url, MIGRATE_CACHE_DIR=str(cache), **extra), name=CACHED),
        replace(bench.job(history, url, MIGRATE_CACHE_DIR="", **extra), name=UNCACHED),
        replace(bench.job(history, url, **extra), name=MANIFEST,
                env=clean_env(DATABASE_URL=url, ALEMBIC_CONFIG=str(manifest_ini),
                              MIGRATE_CACHE_DIR="", **extra)),
        replace(alembic, env={**alembic.env, **extra}),
    ]


def heads_paths(bench: Bench) -> list[HeadsRow]:
    """Every generated history size, then each public history."""
    rows = []
    for size in bench.profile.sizes:
        history = bench.histories[size]
        rows.append(measure(bench, HeadsRow(f"generated, {size}", size), history,
                            bench.url(f"alembic_{size}"), ""))
    for public in PUBLIC:
        bench.say(f"  {public.package} {public.version}: installing from PyPI")
        site = install(public)
        history = public_project(bench, public, site)
        source = f"{public.package} {public.version} ({public.repository}, {public.commit})"
        database = f"public_{public.package.replace('-', '_')}"
        rows.append(measure(bench, HeadsRow(f"{public.package} {public.version}", history.size,
                                            source=source),
                            history, bench.url(database), str(site)))
    return rows


def measure(bench: Bench, row: HeadsRow, history: History, url: str,
            pythonpath: str) -> HeadsRow:
    """Round-robin the four contenders at head."""
    commands = contenders(bench, history, url, pythonpath)
    bench.say(f"  heads paths, {row.name}: {bench.profile.noop_runs} rounds")
    row.samples = round_robin(commands, bench.profile.noop_runs, tag=f"heads-{history.root.name}")
    return row


def cpu_ratio(row: HeadsRow, name: str) -> float:
    """A contender's median CPU time over plain Alembic's."""
    return ratio(summarize(row.samples[name]).cpu_ms, summarize(row.samples[ALEMBIC]).cpu_ms)


def markdown_section(rows: list[HeadsRow]) -> list[str]:
    """BENCHMARKS.md's section on the ways the job learns the head."""
    out = ["## How the job learns the head (issue 12)", "",
           "A no-op at head with no build step: the job reads the head from the revision "
           "files' source (`via: revision files`), with its cache warm (after the warm-up "
           "round) or with no cache (`MIGRATE_CACHE_DIR=''`, as on a read-only root "
           "filesystem); the job with a fresh heads manifest written beforehand; plain "
           "`alembic upgrade head`. Same rounds, rotation and launcher as the no-op above. "
           "Public histories come from PyPI at run time (the package's revision files in a "
           "project with the example's alembic.ini and env.py; the package on PYTHONPATH for "
           "every contender, since its revision files import it).", ""]
    names = [r.name for r in rows]
    out += ["**CPU time (user + sys), ms, median; in brackets: / plain Alembic**", ""]
    out += table(["contender", *names],
                  [[name, *(f"{ms(summarize(r.samples[name]).cpu_ms)} "
                            f"({cpu_ratio(r, name):.3f}x)" for r in rows)] for name in ORDER])
    out += ["", "**Wall time, ms, median; peak RSS, MB, median**", ""]
    out += table(["contender", *names],
                  [[name, *(f"{ms(summarize(r.samples[name]).wall_ms)}; "
                            f"{summarize(r.samples[name]).rss_mb:.1f} MB" for r in rows)]
                   for name in ORDER])
    out += ["", "Revisions per history: " + ", ".join(f"{r.name}: {r.revisions}" for r in rows),
            ""]
    out += [f"- {r.name}: {r.source}" for r in rows if r.source]
    out += ["", _manifest_verdict(rows), ""]
    return out


def _manifest_verdict(rows: list[HeadsRow]) -> str:
    """Whether the manifest still earns its place, from the largest history's numbers."""
    largest = max(rows, key=lambda r: r.revisions)
    cpu = {name: summarize(largest.samples[name]).cpu_ms for name in ORDER}
    return (f"Does the manifest still earn its place? At {largest.revisions} revisions "
            f"({largest.name}) a run with the cache warm took {ms(cpu[CACHED])} ms of CPU, "
            f"with a manifest {ms(cpu[MANIFEST])} ms, with neither {ms(cpu[UNCACHED])} ms: "
            "where a cache persists, the manifest adds nothing. But every pod of a "
            "Kubernetes Job or Deployment starts with an empty filesystem (and often a "
            "read-only one), so in the image the cache is always cold: there the manifest "
            f"written by the image build saves {ms(cpu[UNCACHED] - cpu[MANIFEST])} ms a run "
            "at that size, and it stays, as the image's pre-warmed cache.")

