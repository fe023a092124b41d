"""fleet: 100 tenant databases on one PostgreSQL, 4 shards at once, bad targets, SIGTERM, reruns,
and a handful of tenants on SQLite and MariaDB."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from typing import Any

import pytest

from tests.support.job import Result, RunningJob, job_env, run_job, wait_until
from tests.support.mariadbserver import MariaDBServer
from tests.support.pgserver import PostgresServer, _children
from tests.support.projects import (
    SLOW,
    SYNTAX_ERROR,
    make_mysql_project,
    make_project,
    make_sqlite_project,
    revision,
)
from tests.support.queries import run_once

TENANTS = 100
SHARDS = 4
HEAD = ["0005"]
EACH_ONCE = {"0001": 1, "0002": 1, "0003": 1, "0004": 1, "0005": 1}
GATE_KEY = 4716
# Waits, without any lock timeout, for the test's advisory lock GATE_KEY in its database; then
# alters `busy` (in the tenants that have it) within the job's DDL lock timeout.
GATED = revision("0006", "0005", f'''
job_timeout = op.get_bind().exec_driver_sql("SHOW lock_timeout").scalar()
op.execute("SET LOCAL lock_timeout = 0")
op.execute("SELECT pg_advisory_xact_lock({GATE_KEY})")
op.execute(f"SET LOCAL lock_timeout = '{{job_timeout}}'")
op.execute("ALTER TABLE IF EXISTS busy ADD COLUMN note text")
op.execute("INSERT INTO migration_audit (revision, direction) VALUES ('0006', 'upgrade')")
''')


def masked(url: str) -> str:
    """A test server's URL as the fleet shows it: the password masked."""
    return url.replace(url.split(":")[2].split("@")[0], "***")


def create_tenants(server: PostgresServer, prefix: str, count: int) -> list[str]:
    """`count` empty databases, copied from one template (much faster than one by one)."""
    template = f"{prefix}_template"
    run_once(server.connect(), f'CREATE DATABASE "{template}" IS_TEMPLATE true')
    conn = server.connect()
    try:
        with conn.cursor() as cursor:
            for n in range(count):
                cursor.execute(f'CREATE DATABASE "{prefix}_{n}" TEMPLATE "{template}" '
                               "STRATEGY FILE_COPY")
    finally:
        conn.close()
    return [f"{prefix}_{n}" for n in range(count)]


def fleet_env(targets: Path, tmp: Path, **overrides: str) -> dict[str, str]:
    """The fleet's environment: the targets file, the example project, JSON logs."""
    return job_env(MIGRATE_TARGETS_FILE=str(targets), ALEMBIC_CONFIG=str(tmp / "alembic.ini"),
                   **overrides)


def results_of(result: Result) -> dict[str, dict[str, Any]]:
    """Each target's result line, by target (fails on a target reported twice)."""
    found: dict[str, dict[str, Any]] = {}
    for event in result.events:
        if event["event"] == "target_finished":
            assert event["target"] not in found, event
            found[event["target"]] = event
    return found


def tenant_state(server: PostgresServer, name: str) -> tuple[list[str], dict[str, int]]:
    """(alembic_version, how often each revision was applied) of one tenant."""
    conn = server.connect(name)
    try:
        with conn.cursor() as cursor:
            cursor.execute("SELECT version_num FROM alembic_version")
            versions = sorted(row[0] for row in cursor.fetchall())
            cursor.execute("SELECT revision, count(*) FROM migration_audit "
                           "WHERE direction = 'upgrade' GROUP BY revision")
            applied = {row[0]: int(row[1]) for row in cursor.fetchall()}
    finally:
        conn.close()
    return versions, applied


class Fleet:
    """The 100-tenant fleet, run once by 4 shards at once (shared by the tests below)."""

    def __init__(self, server: PostgresServer, root: Path) -> None:
        self.server = server
        self.root = root
        make_project(root)
        self.tenants = create_tenants(server, "fleet", TENANTS)
        self.wrong_password = server.url("fleet_template", password="not-the-password")
        self.missing = server.url("fleet_missing")
        self.targets = root / "targets"
        self.targets.write_text("# the tenants\n\n" + "".join(
            f"{server.url(name)}\n" for name in self.tenants)
            + f"{self.wrong_password}\n  # bad ones\n{self.missing}\n")
        self.shards = self.run_shards()

    def env(self, **overrides: str) -> dict[str, str]:
        """The fleet's environment."""
        return fleet_env(self.targets, self.root, **overrides)

    def run_shards(self) -> list[Result]:
        """All 4 shards at once, as separate processes (each its own termination message)."""
        shards = [RunningJob("fleet", env=self.env(
            JOB_COMPLETION_INDEX=str(index), MIGRATE_SHARDS=str(SHARDS),
            MIGRATE_TERMINATION_LOG=str(self.root / f"termination-{index}")))
            for index in range(SHARDS)]
        return [shard.finish(timeout=300) for shard in shards]

    def shown(self, url: str) -> str:
        """A URL as the fleet shows it."""
        return masked(url)


@pytest.fixture(scope="module")
def fleet(pg: PostgresServer, tmp_path_factory: pytest.TempPathFactory) -> Fleet:
    """The shared fleet run."""
    return Fleet(pg, tmp_path_factory.mktemp("fleet"))


class TestHundredTenantsInFourShards:
    """4 shards at once over 100 tenants and 2 bad targets."""

    def test_each_target_is_migrated_by_exactly_one_shard(self, fleet: Fleet) -> None:
        """The shards' shares are disjoint and cover every target of the file."""
        seen: list[str] = []
        for shard in fleet.shards:
            seen += list(results_of(shard))
            assert 0 < len(results_of(shard)) < TENANTS, "one shard took everything"
        expected = {fleet.shown(fleet.server.url(name)) for name in fleet.tenants}
        expected |= {fleet.shown(fleet.wrong_password), fleet.shown(fleet.missing)}
        assert sorted(seen) == sorted(expected)

    def test_every_tenant_at_head_with_each_revision_applied_once(self, fleet: Fleet) -> None:
        """Every tenant's result line names the 5 revisions it applied, and the database agrees."""
        lines = {k: v for shard in fleet.shards for k, v in results_of(shard).items()}
        for name in fleet.tenants:
            line = lines[fleet.shown(fleet.server.url(name))]
            assert (line["outcome"], line["exit_code"]) == ("migrated", 0), line
            assert line["applied"] == sorted(EACH_ONCE)
            assert line["duration_ms"] > 0
            assert tenant_state(fleet.server, name) == (HEAD, EACH_ONCE)

    def test_each_shard_reads_the_history_once(self, fleet: Fleet) -> None:
        """Alembic and the revision files are read by the shard's process, not per tenant."""
        for shard in fleet.shards:
            assert shard.names().count("fleet_history_loaded") == 1

    def test_bad_targets_are_reported_and_the_rest_succeed(self, fleet: Fleet) -> None:
        """A wrong password and a missing database: exit 4 on their line, exit 13 for their
        shard, named in its termination message; the other shards exit 0."""
        bad = {fleet.shown(fleet.wrong_password), fleet.shown(fleet.missing)}
        for index, shard in enumerate(fleet.shards):
            lines = results_of(shard)
            mine = bad & set(lines)
            termination = (fleet.root / f"termination-{index}").read_text()
            for target in mine:
                assert (lines[target]["outcome"], lines[target]["exit_code"]) == ("failed", 4)
                assert target in termination
            assert shard.code == (13 if mine else 0), shard.stderr[-2000:]
            assert termination.startswith(f"exit {shard.code}: shard {index + 1}/4: ")
            assert shard.events[-1]["event"] == ("fleet_incomplete" if mine else "fleet_finished")

    def test_a_rerun_skips_the_tenants_at_head(self, fleet: Fleet) -> None:
        """One process, no shards: every tenant at target with nothing applied, lock not taken."""
        rerun = run_job("fleet", env=fleet.env(MIGRATE_CONCURRENCY="8"), timeout=300)
        lines = results_of(rerun)
        assert rerun.code == 13
        for name in fleet.tenants:
            assert lines[fleet.shown(fleet.server.url(name))]["outcome"] == "at_target"
        assert "lock_acquired" not in rerun.names()
        assert rerun.events[-1]["message"].startswith("shard 1/1: 102 target(s) in ")


class TestFailFastAndSignals:
    """MIGRATE_FLEET_FAIL_FAST and SIGTERM stop the fleet; a rerun finishes it."""

    def test_fail_fast_starts_nothing_after_a_failure(self, pg: PostgresServer,
                                                      tmp_path: Path) -> None:
        """One at a time, the first target fails: the others are reported as not started."""
        make_project(tmp_path)
        names = create_tenants(pg, "fast", 3)
        targets = tmp_path / "targets"
        targets.write_text(pg.url("fast_missing") + "\n"
                           + "".join(f"{pg.url(n)}\n" for n in names))
        done = run_job("fleet", env=fleet_env(targets, tmp_path, MIGRATE_CONCURRENCY="1",
                                               MIGRATE_FLEET_FAIL_FAST="1"))
        assert done.code == 13
        outcomes = [e["outcome"] for e in results_of(done).values()]
        assert outcomes == ["failed", "not_started", "not_started", "not_started"]
        assert all(not pg.scalar("SELECT to_regclass('alembic_version')", n) for n in names)

    def test_sigterm_rolls_back_every_running_target_then_a_rerun_finishes(
            self, pg: PostgresServer, tmp_path: Path) -> None:
        """Two tenants in a slow revision: SIGTERM cancels both (143), rolls them back, starts
        no other; a rerun migrates them all."""
        make_project(tmp_path, extra={"0006_slow": SLOW})
        names = create_tenants(pg, "term", 4)
        targets = tmp_path / "targets"
        targets.write_text("".join(f"{pg.url(n)}\n" for n in names))
        env = fleet_env(targets, tmp_path, MIGRATE_CONCURRENCY="2")
        job = RunningJob("fleet", env={**env, "PGOPTIONS": "-c migration_test.sleep=600"})
        for name in names[:2]:
            job.wait_for_event("revision_started", revision="0006", target=masked(pg.url(name)))
        job.process.terminate()
        done = job.finish(timeout=60)
        assert done.code == 143, done.stderr[-3000:]
        outcomes = [(e["outcome"], e["exit_code"]) for e in results_of(done).values()]
        assert sorted(outcomes) == [("interrupted", 143)] * 2 + [("not_started", None)] * 2
        for name in names[:2]:
            versions, applied = tenant_state(pg, name)
            assert versions == HEAD
            assert "0006" not in applied
            assert not pg.scalar("SELECT to_regclass('slow_marker')", name)
        assert not pg.scalar("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'")
        rerun = run_job("fleet", env=env)
        assert rerun.code == 0, rerun.stderr[-3000:]
        assert all(tenant_state(pg, n)[1].get("0006") == 1 for n in names)


class Gate:
    """The test's advisory lock GATE_KEY held in one tenant: revision 0006 waits for it."""

    def __init__(self, server: PostgresServer, name: str) -> None:
        self.server, self.name = server, name
        self.session = server.connect(name)
        self.session.autocommit = True
        with self.session.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_lock(%s), pg_backend_pid()", (GATE_KEY,))
            row = cursor.fetchone()
        assert row is not None
        self.pid = int(row[1])

    def waiting(self) -> list[str]:
        """The application names of the sessions waiting at the gate."""
        conn = self.server.connect(self.name)
        try:
            with conn.cursor() as cursor:
                cursor.execute("SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity "
                               "a ON a.pid = l.pid WHERE l.locktype = 'advisory' AND l.objid = "
                               "%s AND NOT l.granted AND l.database = (SELECT oid FROM "
                               "pg_database WHERE datname = current_database())", (GATE_KEY,))
                return [row[0] for row in cursor.fetchall()]
        finally:
            conn.close()

    def open(self) -> None:
        """Let the waiting revision go on."""
        self.session.close()


class TestTenantsApart:
    """Each forked child has an application name of its own: the blockers it names are in its
    own database, and a signal to one child cancels its statements only."""

    def start(self, pg: PostgresServer, tmp_path: Path, prefix: str,
              **variables: str) -> tuple[list[str], list[Gate], RunningJob]:
        """Two tenants whose revision 0006 waits at a gate, both running."""
        make_project(tmp_path, extra={"0006_gated": GATED})
        names = create_tenants(pg, prefix, 2)
        gates = [Gate(pg, name) for name in names]
        targets = tmp_path / "targets"
        targets.write_text("".join(f"{pg.url(n)}\n" for n in names))
        job = RunningJob("fleet", env=fleet_env(targets, tmp_path, MIGRATE_CONCURRENCY="2",
                                                **variables))
        for gate in gates:
            assert wait_until(lambda gate=gate: len(gate.waiting()) == 1, timeout=120), \
                f"revision 0006 never waited at the gate of {gate.name}"
        return names, gates, job

    def test_blockers_named_are_in_the_tenants_own_database(self, pg: PostgresServer,
                                                           tmp_path: Path) -> None:
        """Tenant A's ALTER is blocked while tenant B waits at its gate: A names its own
        blocker, never B's gate (ending that session would hit the wrong tenant)."""
        (name_a, name_b), (gate_a, gate_b), job = self.start(
            pg, tmp_path, "apart", MIGRATE_DDL_LOCK_TIMEOUT="2s", MIGRATE_DDL_LOCK_RETRIES="0")
        names_at_the_gates = gate_a.waiting() + gate_b.waiting()
        pg.scalar("CREATE TABLE busy (id int)", name_a)
        blocker = pg.connect(name_a)
        blocker.autocommit = False
        try:
            with blocker.cursor() as cursor:
                cursor.execute("SELECT count(*) FROM busy")
                blocker_pid = blocker.get_backend_pid()
            gate_a.open()
            blocked = job.wait_for_event("ddl_blocked", target=masked(pg.url(name_a)))
        finally:
            blocker.close()
        gate_b.open()
        done = job.finish()
        assert f"pid {blocker_pid} " in blocked["message"], blocked["message"]
        assert f"pid {gate_b.pid} " not in blocked["message"], blocked["message"]
        lines = results_of(done)
        assert lines[masked(pg.url(name_a))]["exit_code"] == 9
        assert lines[masked(pg.url(name_b))]["outcome"] == "migrated"
        assert tenant_state(pg, name_b)[1]["0006"] == 1
        assert len(set(names_at_the_gates)) == 2, names_at_the_gates
        assert all(f":{job.process.pid}:" not in name for name in names_at_the_gates)

    def test_sigterm_to_one_child_stops_that_tenant_only(self, pg: PostgresServer,
                                                         tmp_path: Path) -> None:
        """SIGTERM to one child: its tenant stops (143); the other tenant's statement is not
        cancelled, and it reaches head once its gate opens."""
        names, gates, job = self.start(pg, tmp_path, "onechild")
        children = _children(job.process.pid)
        assert len(children) == 2, children
        os.kill(children[0], signal.SIGTERM)
        stopped = job.wait_for_event("target_finished", outcome="interrupted")
        stopped_name = next(n for n in names if masked(pg.url(n)) == stopped["target"])
        [other] = [gate for gate in gates if gate.name != stopped_name]
        still_waiting = other.waiting()
        other.open()
        for gate in gates:
            gate.open()
        done = job.finish()
        assert len(still_waiting) == 1, "the other tenant's statement was cancelled"
        assert results_of(done)[masked(pg.url(other.name))]["outcome"] == "migrated"
        assert stopped["exit_code"] == 143
        assert tenant_state(pg, other.name)[1]["0006"] == 1
        assert "0006" not in tenant_state(pg, stopped_name)[1]
        assert done.code == 13


class TestConnectionBudget:
    """A fleet holds at most MIGRATE_CONCURRENCY + 1 connections to its targets' servers."""

    def test_slow_revisions_share_one_spare_connection(self, pg: PostgresServer,
                                                       tmp_path: Path) -> None:
        """Revisions slower than the blocker watch's first look: without the shared spare,
        each running target would open a second session to watch who blocks it."""
        make_project(tmp_path, extra={"0006_slow": SLOW})
        names = create_tenants(pg, "budget", 4)
        targets = tmp_path / "targets"
        targets.write_text("".join(f"{pg.url(n)}\n" for n in names))
        job = RunningJob("fleet", env={**fleet_env(targets, tmp_path, MIGRATE_CONCURRENCY="2"),
                                       "PGOPTIONS": "-c migration_test.sleep=1.5"})
        peak = 0
        conn = pg.connect()
        try:
            with conn.cursor() as cursor:
                while job.process.poll() is None:
                    cursor.execute("SELECT count(*) FROM pg_stat_activity "
                                   "WHERE application_name LIKE 'migration-job:%'")
                    row = cursor.fetchone()
                    peak = max(peak, row[0] if row else 0)
        finally:
            conn.close()
        assert job.finish().code == 0
        assert 2 <= peak <= 3


class TestFleetWideFailures:
    """What every target would fail on stops the fleet before it touches any."""

    def test_an_unreadable_history_exits_7_and_applies_nothing(self, pg: PostgresServer,
                                                              tmp_path: Path) -> None:
        make_project(tmp_path, extra={"0006_broken": SYNTAX_ERROR})
        names = create_tenants(pg, "broken", 2)
        targets = tmp_path / "targets"
        targets.write_text("".join(f"{pg.url(n)}\n" for n in names))
        done = run_job("fleet", env=fleet_env(targets, tmp_path))
        assert done.code == 7, done.stderr[-3000:]
        assert done.events[-1]["event"] == "history_error"
        assert "0006_broken.py, line" in done.events[-1]["message"]
        assert not any(pg.scalar("SELECT to_regclass('alembic_version')", n) for n in names)

    def test_a_failing_names_query_exits_2(self, pg: PostgresServer, tmp_path: Path) -> None:
        catalog = pg.create_database("fleet_bad_catalog")
        done = run_job("fleet", env=job_env(
            DATABASE_URL=catalog, MIGRATE_TARGET_NAMES_QUERY="SELECT name FROM no_such_table",
            MIGRATE_TARGET_URL_TEMPLATE=pg.url("{name}")))
        assert done.code == 2
        assert done.events[-1]["message"].startswith(
            "MIGRATE_TARGET_NAMES_QUERY failed on the catalog database: ")


class TestNamesQueryAsWritten:
    """MIGRATE_TARGET_NAMES_QUERY runs as written: a '%' in it is SQL's, not the driver's
    placeholder (psycopg2's and PyMySQL's paramstyle)."""

    def test_like_pattern_on_postgresql(self, pg: PostgresServer, tmp_path: Path) -> None:
        make_project(tmp_path)
        catalog = pg.create_database("fleet_percent_catalog")
        for name in ("pct_one", "pct_two"):
            pg.create_database(name)
        done = run_job("fleet", env=job_env(
            ALEMBIC_CONFIG=str(tmp_path / "alembic.ini"), DATABASE_URL=catalog,
            MIGRATE_TARGET_NAMES_QUERY="SELECT datname FROM pg_database "
                                       "WHERE datname LIKE 'pct%' ORDER BY datname",
            MIGRATE_TARGET_URL_TEMPLATE=pg.url("{name}")))
        assert done.code == 0, done.stderr[-3000:]
        assert done.event("fleet_names_read")["count"] == 2
        assert [e["outcome"] for e in results_of(done).values()] == ["migrated", "migrated"]

    def test_like_pattern_on_mariadb(self, mariadb: MariaDBServer, tmp_path: Path) -> None:
        config = make_mysql_project(tmp_path / "project")
        for name in ("mpct_one", "mpct_two"):
            mariadb.create_database(name)
        done = run_job("fleet", env=job_env(
            ALEMBIC_CONFIG=str(config), DATABASE_URL=mariadb.url("mpct_one"),
            MIGRATE_TARGET_NAMES_QUERY="SELECT SCHEMA_NAME FROM information_schema.SCHEMATA "
                                       "WHERE SCHEMA_NAME LIKE 'mpct%' ORDER BY 1",
            MIGRATE_TARGET_URL_TEMPLATE=mariadb.url("{name}")))
        assert done.code == 0, done.stderr[-3000:]
        assert done.event("fleet_names_read")["count"] == 2


class TestOtherEngines:
    """A handful of tenants on SQLite and on MariaDB, from a URL template and names."""

    def test_sqlite_tenants_from_a_template_and_a_names_file(self, tmp_path: Path) -> None:
        """Three SQLite files named by a names file: each at head, each revision once."""
        config = make_sqlite_project(tmp_path / "project")
        names = tmp_path / "names"
        names.write_text("alpha\n# not this one\nbeta\n\ngamma\n")
        done = run_job("fleet", env=job_env(
            ALEMBIC_CONFIG=str(config), MIGRATE_TARGET_NAMES_FILE=str(names),
            MIGRATE_TARGET_URL_TEMPLATE=f"sqlite:///{tmp_path}/{{name}}.db"))
        assert done.code == 0, done.stderr[-3000:]
        assert sorted(results_of(done)) == [f"sqlite:///{tmp_path}/{n}.db"
                                            for n in ("alpha", "beta", "gamma")]
        assert all(e["applied"] == ["0001", "0002", "0003"] for e in results_of(done).values())

    def test_mariadb_tenants_named_by_a_catalog_query(self, pg: PostgresServer,
                                                      mariadb: MariaDBServer,
                                                      tmp_path: Path) -> None:
        """The names come from a query on a PostgreSQL catalog; the tenants are on MariaDB."""
        config = make_mysql_project(tmp_path / "project")
        catalog = pg.create_database("fleet_catalog")
        run_once(pg.connect("fleet_catalog"), "CREATE TABLE tenants AS SELECT * FROM "
                 "(VALUES ('m_one', true), ('m_two', true), ('m_gone', false)) t(name, live)")
        for name in ("m_one", "m_two"):
            mariadb.create_database(name)
        done = run_job("fleet", env=job_env(
            ALEMBIC_CONFIG=str(config), DATABASE_URL=catalog,
            MIGRATE_TARGET_NAMES_QUERY="SELECT name FROM tenants WHERE live ORDER BY name",
            MIGRATE_TARGET_URL_TEMPLATE=mariadb.url("{name}")))
        assert done.code == 0, done.stderr[-3000:]
        lines = results_of(done)
        assert [e["outcome"] for e in lines.values()] == ["migrated", "migrated"]
        assert json.dumps(done.event("fleet_names_read")["count"]) == "2"
