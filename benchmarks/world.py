"""The benchmark's world: its own PostgreSQL server, generated histories, databases, contenders."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.histories import History, write_history
from benchmarks.measure import Command, run_simple
from tests.support.pgserver import PostgresServer

REPO = Path(__file__).resolve().parents[1]
WORK = REPO / "benchmarks" / "work"
# A dot-directory: mypy, ruff and pytest skip it, so thousands of generated revision files
# never reach the linters even when they are pointed at benchmarks/.
HISTORIES = WORK / ".histories"
OUTPUTS = WORK / "output"
HEADS_CACHE = WORK / "heads-cache"
FLOOR = REPO / "benchmarks" / "floor.py"
ENTRYPOINT = REPO / "entrypoint.py"

# Variables of the caller's shell that would change what a contender does.
_INHERITED_NOISE = ("DATABASE_URL", "DATABASE_URL_FILE", "ALEMBIC_CONFIG", "PGHOST", "PGPORT",
                    "PGUSER", "PGPASSWORD", "PGDATABASE", "PGOPTIONS", "PGAPPNAME", "PGSERVICE",
                    "PGSSLMODE", "PYTHONPATH", "PYTHONDONTWRITEBYTECODE", "PYTHONPROFILEIMPORTTIME")


@dataclass(frozen=True)
class Profile:
    """How much to measure: the full run, or a short smoke run (--quick)."""

    name: str
    sizes: tuple[int, ...]
    noop_runs: int
    full_size: int
    full_runs: int
    fleet_size: int
    fleet_runners: int
    fleet_reps: int
    single_runs: int
    wait_reps: int
    wait_delay_s: tuple[float, float]
    importtime_runs: int
    # History sizes of the no-op at head on the engines other than PostgreSQL (issue 9); the
    # fleet's size must be one of them (its ideal is built from that size's no-op CPU time).
    engine_sizes: tuple[int, ...]


FULL = Profile(name="full", sizes=(10, 100, 500, 1000), noop_runs=15, full_size=500,
               full_runs=7, fleet_size=100, fleet_runners=50, fleet_reps=3, single_runs=3,
               wait_reps=15, wait_delay_s=(2.0, 4.0), importtime_runs=3,
               engine_sizes=(100, 500))
QUICK = Profile(name="quick", sizes=(10, 100), noop_runs=3, full_size=100, full_runs=2,
                fleet_size=100, fleet_runners=50, fleet_reps=1, single_runs=1, wait_reps=3,
                wait_delay_s=(1.0, 2.0), importtime_runs=1, engine_sizes=(100,))


def clean_env(**overrides: str) -> dict[str, str]:
    """The caller's environment without database/job variables, plus `overrides`."""
    env = {k: v for k, v in os.environ.items()
           if k not in _INHERITED_NOISE and not k.startswith("MIGRATE_")}
    # The job would write /dev/termination-log when writable (root): not on a bench machine.
    env["MIGRATE_TERMINATION_LOG"] = ""
    env.update(overrides)
    return env


@dataclass
class Bench:
    """Everything a scenario needs."""

    profile: Profile
    python: Path
    dbmate: Path
    server: PostgresServer
    histories: dict[int, History] = field(default_factory=dict)
    manifest: bool = False
    notes: list[str] = field(default_factory=list)

    @property
    def psql(self) -> Path:
        """psql from the same PostgreSQL installation as the server."""
        return self.server.bindir / "psql"

    def url(self, database: str, server: PostgresServer | None = None) -> str:
        """A libpq/SQLAlchemy URL for a database on the benchmark's server."""
        return (server or self.server).url(database)

    def say(self, message: str) -> None:
        """Progress for the person waiting."""
        print(message, flush=True)

    def note(self, message: str) -> None:
        """Something the report must mention."""
        self.say(f"NOTE: {message}")
        self.notes.append(message)

    # Databases ---------------------------------------------------------------------------

    def recreate_database(self, name: str, server: PostgresServer | None = None) -> str:
        """Drop (forcing other sessions off) and create a database; return its URL.

        Then a CHECKPOINT and a sync, so that the writes of the drop, the create and the
        previous run are flushed now instead of during the next measured run.
        """
        conn = (server or self.server).connect()
        try:
            with conn.cursor() as cur:
                cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                cur.execute(f'CREATE DATABASE "{name}"')
                cur.execute("CHECKPOINT")
        finally:
            conn.close()
        os.sync()
        return self.url(name, server)

    def psql_file(self, url: str, path: Path) -> None:
        """Run a SQL file in one transaction (not measured: set-up)."""
        run_simple([str(self.psql), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-1", "-f", str(path),
                    "-d", url], env=clean_env())

    def audit_counts(self, database: str) -> dict[str, int]:
        """Rows in bench_audit per revision step."""
        conn = self.server.connect(database)
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT revision, count(*) FROM bench_audit GROUP BY revision")
                return {str(r[0]): int(r[1]) for r in cur.fetchall()}
        finally:
            conn.close()

    def alembic_version(self, database: str) -> list[str]:
        """What alembic_version says."""
        conn = self.server.connect(database)
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT version_num FROM alembic_version")
                return sorted(str(r[0]) for r in cur.fetchall())
        finally:
            conn.close()

    def server_cpu_s(self) -> float:
        """CPU time of the server so far: the postmaster, its reaped backends, its live children."""
        postmaster = self.server.pid()
        if postmaster is None:
            return 0.0
        tick = os.sysconf("SC_CLK_TCK")
        total = 0
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue  # the process ended while we looked
            pid, ppid = int(stat.parent.name), int(fields[1])
            if pid == postmaster:  # utime stime cutime cstime: fields 14-17 of stat(5)
                total += sum(int(f) for f in fields[11:15])
            elif ppid == postmaster:
                total += int(fields[11]) + int(fields[12])
        return total / tick

    # Contenders ----------------------------------------------------------------------------

    def job(self, history: History, url: str, **extra: str) -> Command:
        """The migration job: `python entrypoint.py upgrade` (its heads cache in WORK)."""
        settings = {"MIGRATE_CACHE_DIR": str(HEADS_CACHE), **extra}
        return Command("job", (str(self.python), str(ENTRYPOINT), "upgrade"),
                       clean_env(DATABASE_URL=url, ALEMBIC_CONFIG=str(history.alembic_ini),
                                 **settings), REPO)

    def alembic(self, history: History, url: str) -> Command:
        """Plain Alembic's console script, on the same interpreter: `alembic upgrade head`."""
        script = self.python.parent / "alembic"
        return Command("alembic", (str(self.python), str(script), "-c", str(history.alembic_ini),
                                   "upgrade", "head"),
                       clean_env(DATABASE_URL=url), history.alembic_ini.parent)

    def floor(self, history: History, url: str) -> Command:
        """The psycopg2-only floor: connect, read alembic_version, compare with the head."""
        return Command("floor", (str(self.python), str(FLOOR), history.head),
                       clean_env(DATABASE_URL=url), REPO)

    def dbmate_up(self, history: History, url: str) -> Command:
        """dbmate 2.x on the same schema written as SQL files."""
        return Command("dbmate", (str(self.dbmate), "--no-dump-schema", "--migrations-dir",
                                  str(history.dbmate_dir), "up"),
                       clean_env(DATABASE_URL=url + "?sslmode=disable"), REPO)

    def python_c(self, name: str, code: str, *flags: str) -> Command:
        """`python [FLAGS] -c CODE` on the same interpreter."""
        return Command(name, (str(self.python), *flags, "-c", code), clean_env(), REPO)

    def psql_upgrade(self, history: History, url: str) -> Command:
        """`psql -1 -f all.sql`: every revision's SQL in one transaction."""
        return Command("psql -1", (str(self.psql), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-1",
                                   "-f", str(history.all_sql), "-d", url), clean_env(), REPO)


def manifest_supported(python: Path) -> bool:
    """Whether this checkout's job has the `manifest` command (the no-op fast path)."""
    done = subprocess.run([str(python), str(ENTRYPOINT), "manifest", "--help"],
                          capture_output=True, text=True, timeout=60, check=False,
                          env=clean_env(), cwd=REPO)
    return done.returncode == 0


def write_manifest(bench: Bench, history: History) -> None:
    """`python entrypoint.py manifest` for the project, so the job's fast path is fresh."""
    run_simple([str(bench.python), str(ENTRYPOINT), "manifest"],
               env=clean_env(ALEMBIC_CONFIG=str(history.alembic_ini)), cwd=REPO)


def prepare_histories(bench: Bench) -> None:
    """Generate every history; bring its Alembic database and its dbmate database to head."""
    # The PostgreSQL histories get no manifest (issue 12: the job as run from a checkout);
    # the other engines' still do (benchmarks.other_engines).
    bench.manifest = manifest_supported(bench.python)
    shutil.rmtree(HEADS_CACHE, ignore_errors=True)
    for size in bench.profile.sizes:
        history = write_history(REPO, HISTORIES / f"n{size:05d}", size)
        bench.histories[size] = history
        url = bench.recreate_database(f"alembic_{size}")
        bench.psql_file(url, history.all_sql)
        if bench.alembic_version(f"alembic_{size}") != [history.head]:
            raise RuntimeError(f"setting up alembic_{size} did not reach {history.head}")
        dbmate_url = bench.recreate_database(f"dbmate_{size}")
        run_simple(list(bench.dbmate_up(history, dbmate_url).argv),
                   env=bench.dbmate_up(history, dbmate_url).env)
        if len(bench.audit_counts(f"dbmate_{size}")) != size:
            raise RuntimeError(f"dbmate did not apply {size} revisions to dbmate_{size}")
        bench.say(f"  history of {size} revisions ready ({history.root})")


def find_dbmate() -> Path:
    """The native dbmate binary: $DBMATE, else the npm platform package in benchmarks/work."""
    if os.environ.get("DBMATE"):
        return Path(os.environ["DBMATE"])
    found = sorted((WORK / "node_modules" / "@dbmate").glob("*/bin/dbmate"))
    if found:
        return found[0]
    which = shutil.which("dbmate")
    if which:
        return Path(which)
    raise SystemExit("dbmate not found: run benchmarks/run (it installs it with npm) "
                     "or set DBMATE=/path/to/dbmate")


def output_file(name: str) -> Path:
    """Where a contender's output goes (kept for inspection, overwritten each run)."""
    OUTPUTS.mkdir(parents=True, exist_ok=True)
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
    return OUTPUTS / f"{safe}.log"


def env_with(env: Mapping[str, str], **extra: str) -> dict[str, str]:
    """A copy of `env` with more variables."""
    copy = dict(env)
    copy.update(extra)
    return copy
