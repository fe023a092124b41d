"""env.py on asyncpg and psycopg 3 (issue 10, point 1): every guarantee holds although the
job cannot lend its lock's psycopg2 session to their connections.

Projects are made with the pinned Alembic (`alembic init -t async`, `-t pyproject_async`,
`-t generic`, and `alembic revision`); the tests write the revisions' bodies. Each revision
proves it ran alone (a second advisory lock that a concurrent run of it could not take), and
writes an audit row, so that a test can count how often it ran; 0001 also records which
driver and application_name env.py's connection had.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from migration_job.engines.locking import derive_lock_key
from tests.integration.conftest import Database
from tests.support.job import (
    ENTRYPOINT,
    OUTPUTS,
    Result,
    RunningJob,
    imported_modules,
    job_env,
    parse_events,
    run_job,
    wait_until,
)
from tests.support.projects import ALONE_BEHIND_A_GATE, ALONE_GUARD
from tests.support.slow_statements import PG_BUILD, PG_SCANNING, gate_ids, gates_on, pg_gated_table

ALEMBIC = [sys.executable, "-m", "alembic"]
# What `alembic revision` writes for upgrade() in every template's script.py.mako.
UPGRADE = 'def upgrade() -> None:\n    """Upgrade schema."""\n'
EMPTY_UPGRADE = f"{UPGRADE}    pass\n"
REVISIONS = ("0001", "0002", "0003")
ALONE = ('op.execute("DO $$ BEGIN IF NOT pg_try_advisory_xact_lock(777) THEN '
         "RAISE EXCEPTION 'two runners at once'; END IF; END $$\")")


def audited(revision: str, *body: str, alone: str = ALONE) -> str:
    """A revision body: alone, audited, then `body`."""
    return "\n".join((alone, f'op.execute("INSERT INTO migration_audit VALUES '
                             f"('{revision}', 'upgrade')\")", *body))


FIRST = "\n".join((
    'op.execute("CREATE TABLE migration_audit (revision text, direction text)")',
    # Which driver and name env.py's connection had: the job's name lets a signal cancel it.
    "bind = op.get_bind()",
    'mode = "async" if bind.dialect.is_async else "sync"',
    'op.execute(f"CREATE TABLE env_driver AS SELECT \'{bind.dialect.driver} {mode}\'::text '
    'AS driver, current_setting(\'application_name\') AS application_name")',
    audited("0001"),
))
SECOND = audited("0002", 'op.execute("CREATE TABLE items (id int)")')
QUICK = audited("0003")
# Sleeps as long as the job's environment says: slow for the run a test stops, instant after.
SLOW = audited("0003", 'op.execute("CREATE TABLE slow_marker (id int)")', "import os",
               'op.execute("SELECT pg_sleep(" + os.environ.get("TEST_SLEEP_S", "0") + ")")')
# Waits for advisory lock 555, which the test holds until it lets the revision go on.
GATED = audited("0003", 'op.execute("SELECT pg_advisory_xact_lock(555)")',
                alone=f'op.execute("{ALONE_BEHIND_A_GATE}")')
# What bounds env.py's own connection while revisions run (the job's timeouts).
TIMEOUTS = audited("0003", 'op.execute("CREATE TABLE env_timeouts AS SELECT '
                   "current_setting('lock_timeout') AS lock_timeout, "
                   "current_setting('statement_timeout') AS statement_timeout\")")
FAILING = audited("0003", 'op.execute("CREATE TABLE half_done (id int)")',
                  'op.execute("SELECT * FROM table_that_does_not_exist")')


@dataclass(frozen=True)
class Case:
    """A driver for env.py: the URL scheme that names it, and the template it runs under."""

    scheme: str
    template: str
    # What the revisions saw: the SQLAlchemy driver and whether it ran through asyncio.
    driver: str


CASES = [
    pytest.param(Case("postgresql+asyncpg", "async", "asyncpg async"), id="asyncpg"),
    pytest.param(Case("postgresql+psycopg", "async", "psycopg async"), id="psycopg-async"),
    pytest.param(Case("postgresql+psycopg", "generic", "psycopg sync"), id="psycopg-sync"),
]


def alembic(cwd: Path, *args: str) -> None:
    """The alembic command, as a developer runs it in the project's folder."""
    subprocess.run([*ALEMBIC, *args], cwd=cwd, check=True, capture_output=True, timeout=60)


@pytest.fixture(scope="module")
def templates(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """Projects from `alembic init -t TEMPLATE` with three empty revisions, made once."""
    made: dict[str, Path] = {}

    def template(name: str) -> Path:
        if name not in made:
            root = tmp_path_factory.mktemp(name)
            alembic(root, "init", "-t", name, "migrations")
            down = None
            for rev in REVISIONS:
                alembic(root, "revision", "--rev-id", rev, "-m", f"step {rev}")
                assert (down is None) == (rev == "0001")
                down = rev
            made[name] = root
        return made[name]

    return template


class Project:
    """A copy of a template project whose revisions have the given bodies."""

    def __init__(self, root: Path, bodies: dict[str, str]) -> None:
        self.root = root
        self.config = root / ("pyproject.toml" if (root / "pyproject.toml").exists()
                              else "alembic.ini")
        for rev, body in bodies.items():
            path = next((root / "migrations" / "versions").glob(f"{rev}_*.py"))
            source = path.read_text()
            assert source.count(EMPTY_UPGRADE) == 1, path
            indented = "".join(f"    {line}\n" for line in body.splitlines())
            path.write_text(source.replace(EMPTY_UPGRADE, UPGRADE + indented))


@pytest.fixture
def make(templates: Callable[[str], Path],
         tmp_path: Path) -> Callable[..., Project]:
    """make(template, third=BODY): a fresh copy of the template's project."""
    def project(template: str, third: str = QUICK) -> Project:
        root = tmp_path / "project"
        shutil.copytree(templates(template), root)
        return Project(root, {"0001": FIRST, "0002": SECOND, "0003": third})

    return project


def env_for(database: Database, case: Case, project: Project, **extra: str) -> dict[str, str]:
    return job_env(DATABASE_URL=database.url.replace("postgresql://", f"{case.scheme}://"),
                   ALEMBIC_CONFIG=str(project.config), **extra)


def env_driver(database: Database) -> tuple[str, str]:
    """The driver and application_name that env.py's connection had when 0001 ran."""
    row = database.query("SELECT driver, application_name FROM env_driver")[0]
    return str(row[0]), str(row[1])


def lock_holder_pid(database: Database) -> int:
    """The backend holding the migration lock (the default key)."""
    key = derive_lock_key(database.name, "public", "alembic_version")
    rows = database.query(
        "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted AND objsubid = 1 "
        "AND classid::bigint = (%s::bigint >> 32) & 4294967295 "
        "AND objid::bigint = %s::bigint & 4294967295", key, key)
    assert rows, "nobody holds the migration lock"
    return int(rows[0][0])


def statements_like(database: Database, pattern: str) -> int:
    """Active statements matching a pattern, of any application (the test's own excepted)."""
    return int(database.query(
        "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND query LIKE %s "
        "AND pid <> pg_backend_pid()", pattern)[0][0])


def waiting_for_a_lock(database: Database) -> int:
    """Sessions of this database waiting for an advisory lock."""
    return int(database.query(
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted "
        "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())")[0][0])


def at_once(count: int, env: dict[str, str]) -> list[Result]:
    """`count` runners started together; their results once all exited."""
    runners = [subprocess.Popen([sys.executable, str(ENTRYPOINT)], env=env, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
               for _ in range(count)]
    results = []
    for runner in runners:
        stdout, stderr = runner.communicate(timeout=300)
        OUTPUTS.extend([stdout, stderr])
        results.append(Result(runner.returncode, stdout, stderr, parse_events(stderr)))
    return results


@pytest.mark.parametrize("case", CASES)
class TestEveryGuarantee:
    """For each driver env.py may use: upgrade and no-op, runners at once, SIGTERM, a lost lock
    session, a failing revision."""

    def test_env_connection_gets_the_timeouts(self, database: Database,
                                              make: Callable[..., Project], case: Case) -> None:
        """env.py's own connection waits for a lock and runs as briefly as the job's."""
        project = make(case.template, third=TIMEOUTS)
        result = run_job(env=env_for(database, case, project, MIGRATE_DDL_LOCK_TIMEOUT="3s",
                                     MIGRATE_STATEMENT_TIMEOUT="7s"))
        assert result.code == 0, result.stderr
        assert database.query("SELECT lock_timeout, statement_timeout FROM env_timeouts") == [
            ("3s", "7s")]

    def test_fresh_upgrade_then_no_op(self, database: Database, make: Callable[..., Project],
                                      case: Case) -> None:
        project = make(case.template)
        first = run_job(env=env_for(database, case, project))
        assert first.code == 0, first.stderr
        assert first.event("upgrade_finished")["applied"] == list(REVISIONS)
        assert database.revisions() == ["0003"]
        driver, application_name = env_driver(database)
        assert driver == case.driver
        assert application_name.startswith("migration-job:")
        again = run_job(env=env_for(database, case, project))
        assert again.code == 0, again.stderr
        assert "already_at_target" in again.names()
        assert "lock_acquired" not in again.names()
        assert database.applications() == dict.fromkeys(REVISIONS, 1)

    def test_four_runners_apply_each_revision_once(
            self, database: Database, make: Callable[..., Project], case: Case) -> None:
        project = make(case.template)
        results = at_once(4, env_for(database, case, project, MIGRATE_LOCK_TIMEOUT="120"))
        for result in results:
            assert result.code == 0, result.stderr
            assert "two runners at once" not in result.stderr
        assert sum("upgrade_finished" in r.names() for r in results) == 1
        assert database.revisions() == ["0003"]
        assert database.applications() == dict.fromkeys(REVISIONS, 1)
        assert database.advisory_locks() == 0

    def test_sigterm_cancels_env_py_s_statement(
            self, database: Database, make: Callable[..., Project], case: Case) -> None:
        project = make(case.template, third=SLOW)
        job = RunningJob(env=env_for(database, case, project, TEST_SLEEP_S="600"))
        job.wait_for_event("revision_started", revision="0003")
        # Found by the job's application_name, as the canceller finds it.
        assert wait_until(lambda: database.running_statements("%pg_sleep%") == 1), \
            "the slow statement never showed up under the job's application_name"
        job.process.send_signal(signal.SIGTERM)
        result = job.finish(timeout=60)
        assert result.code == 143, result.stderr
        assert result.events[-1]["event"] == "interrupted"
        assert "statement_cancelled" in result.names()
        assert statements_like(database, "%pg_sleep%") == 0
        assert database.revisions() == ["0002"]
        assert not database.exists("slow_marker")
        assert "0003" not in database.applications()
        assert database.advisory_locks() == 0

    def test_lost_lock_session_rolls_back_at_the_check(
            self, database: Database, make: Callable[..., Project], case: Case) -> None:
        """pg_terminate_backend on the lock's session while env.py's own connection runs a
        revision: the next runner's revision waits at the revision gate; the first rolls
        back at its check before commit (exit 3); the revision is applied once."""
        project = make(case.template, third=GATED)
        database.query(ALONE_GUARD)
        gate = database.server.connect(database.name)
        with gate.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_lock(555)")
        # No DDL lock timeout: the revision's wait for 555 must last as long as the test says.
        first = RunningJob(env=env_for(database, case, project, MIGRATE_DDL_LOCK_TIMEOUT="0"))
        first.wait_for_event("revision_started", revision="0003")
        assert wait_until(lambda: database.running_statements("%555%") == 1)
        database.query("SELECT pg_terminate_backend(%s)", lock_holder_pid(database))

        second = RunningJob(env=env_for(database, case, project, MIGRATE_LOCK_TIMEOUT="120",
                                        MIGRATE_DDL_LOCK_TIMEOUT="0"))
        second.wait_for_event("revision_started", revision="0003")
        # The first revision waits for 555, the second one at the gate behind the first.
        assert wait_until(lambda: waiting_for_a_lock(database) == 2)
        gate.close()  # the first revision goes on, and reaches its check before commit

        lost = first.finish()
        assert lost.code == 3, lost.stderr
        assert lost.events[-1]["event"] == "lock_lost"
        assert "lost the migration lock" in lost.events[-1]["message"]
        took_over = second.finish()
        assert took_over.code == 0, took_over.stderr
        assert "two runners at once" not in took_over.stderr + lost.stderr
        assert database.revisions() == ["0003"]
        assert database.applications() == dict.fromkeys(REVISIONS, 1)
        assert database.advisory_locks() == 0

    def test_env_py_s_own_connection_lost_exits_3(
            self, database: Database, make: Callable[..., Project], case: Case) -> None:
        """pg_terminate_backend on env.py's connection mid-revision (the lock's session
        lives on): exit 3, the revision rolled back, and the next run applies it."""
        project = make(case.template, third=GATED)
        database.query(ALONE_GUARD)
        gate = database.server.connect(database.name)
        with gate.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_lock(555)")
        job = RunningJob(env=env_for(database, case, project, MIGRATE_DDL_LOCK_TIMEOUT="0"))
        job.wait_for_event("revision_started", revision="0003")
        assert wait_until(lambda: database.running_statements("%555%") == 1)
        database.query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                       "WHERE state = 'active' AND query LIKE '%%555%%' "
                       "AND pid <> pg_backend_pid()")
        result = job.finish()
        gate.close()
        assert result.code == 3, result.stderr
        assert result.events[-1]["event"] == "database_unreachable"
        assert "lost the database connection that ran revision 0003" in \
            result.events[-1]["message"]
        assert database.revisions() == ["0002"]
        assert database.advisory_locks() == 0
        again = run_job(env=env_for(database, case, project))
        assert again.code == 0, again.stderr
        assert database.applications() == dict.fromkeys(REVISIONS, 1)

    def test_env_py_s_own_statement_reports_its_progress(
            self, database: Database, make: Callable[..., Project], case: Case) -> None:
        """An index build on env.py's own connection: the server's figures, found by the
        job's application_name."""
        for statement in pg_gated_table(200_000, gates=1):
            database.query(statement)
        project = make(case.template, third=audited("0003", f'op.execute("{PG_BUILD}")'))
        with gates_on(database.server.connect(database.name), gate_ids(200_000, 1)):
            job = RunningJob(env=env_for(database, case, project, MIGRATE_PROGRESS_INTERVAL="1s"))
            held = job.wait_for_event("revision_progress", phase=PG_SCANNING)
        result = job.finish()
        assert result.code == 0, result.stderr
        assert (held["revision"], held["statement"]) == ("0003", PG_BUILD)
        assert 0 < held["done"] < held["total"]

    def test_failing_revision_exits_6(self, database: Database, make: Callable[..., Project],
                                      case: Case) -> None:
        project = make(case.template, third=FAILING)
        result = run_job(env=env_for(database, case, project))
        assert result.code == 6, result.stderr
        assert result.events[-1]["event"] == "migration_failed"
        assert result.event("revision_failed")["revision"] == "0003"
        assert "table_that_does_not_exist" in result.events[-1]["message"]
        assert "Traceback" not in result.stderr
        assert database.revisions() == ["0002"]
        assert not database.exists("half_done")
        assert database.advisory_locks() == 0


class TestBareUrl:
    """A bare postgresql:// URL: env.py gets a driver that fits it."""

    def test_async_env_py_gets_psycopg_s_async_mode(
            self, database: Database, make: Callable[..., Project]) -> None:
        project = make("async")
        result = run_job(env=job_env(DATABASE_URL=database.url,
                                     ALEMBIC_CONFIG=str(project.config)))
        assert result.code == 0, result.stderr
        assert database.revisions() == ["0003"]
        assert env_driver(database)[0] == "psycopg async"

    def test_pyproject_async_project(self, database: Database,
                                     make: Callable[..., Project]) -> None:
        project = make("pyproject_async")
        assert project.config.name == "pyproject.toml"
        result = run_job(env=job_env(DATABASE_URL=database.url,
                                     ALEMBIC_CONFIG=str(project.config)))
        assert result.code == 0, result.stderr
        assert env_driver(database)[0] == "psycopg async"
        assert database.applications() == dict.fromkeys(REVISIONS, 1)

    def test_synchronous_env_py_keeps_psycopg2(self, database: Database,
                                               make: Callable[..., Project]) -> None:
        project = make("generic")
        result = run_job(env=job_env(DATABASE_URL=database.url,
                                     ALEMBIC_CONFIG=str(project.config)))
        assert result.code == 0, result.stderr
        assert env_driver(database)[0] == "psycopg2 sync"


class TestDriverThatDoesNotFit:
    """A URL whose driver env.py cannot use: exit 2 naming the drivers that work, nothing
    applied, the lock released."""

    @pytest.mark.parametrize(("scheme", "template", "complaint"), [
        ("postgresql+psycopg2", "async", "env.py runs asyncio, but the driver it got "
                                         "(psycopg2) is not async"),
        ("postgresql+asyncpg", "generic", "env.py is synchronous, but the driver it got "
                                          "(asyncpg) runs through asyncio"),
    ])
    def test_exit_2(self, database: Database, make: Callable[..., Project], scheme: str,
                    template: str, complaint: str) -> None:
        project = make(template)
        result = run_job(env=env_for(database, Case(scheme, template, ""), project))
        assert result.code == 2, result.stderr
        assert result.events[-1]["event"] == "configuration_error"
        assert complaint in result.events[-1]["message"]
        assert "Traceback" not in result.stderr
        assert database.revisions() == []
        assert database.advisory_locks() == 0


class TestFastPath:
    """A no-op run with an asyncpg URL and a fresh manifest loads no driver of env.py's."""

    def test_no_driver_import_at_head(self, database: Database,
                                      make: Callable[..., Project]) -> None:
        project = make("async")
        case = Case("postgresql+asyncpg", "async", "")
        assert run_job("manifest", env=job_env(ALEMBIC_CONFIG=str(project.config))).code == 0
        assert run_job(env=env_for(database, case, project)).code == 0
        done, imported = imported_modules(env_for(database, case, project))
        assert done.code == 0, done.stderr
        assert '"via": "manifest"' in done.stderr
        assert not [m for m in imported if m.split(".")[0] in
                    ("alembic", "sqlalchemy", "asyncpg", "psycopg", "greenlet")]
