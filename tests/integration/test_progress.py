"""revision_progress: long revisions report how far they got, in the server's own figures,
on real servers; quick ones and the no-op say nothing; a fleet stays within its connections.

The long revisions are held at known points by the tests (advisory locks, a gate file), so
that every event a test waits for is sure to come; only MariaDB's table copy is long by its
work (slow_statements.py says why), with an interval many times shorter than the copy.
"""

from __future__ import annotations

import itertools
import threading
from pathlib import Path
from typing import Any

from tests.integration.conftest import Database
from tests.integration.test_fleet import GATE_KEY, GATED, create_tenants, fleet_env, masked
from tests.support.job import RunningJob, job_env, run_job
from tests.support.mariadbserver import MariaDBServer
from tests.support.pgserver import PASSWORD, PostgresServer
from tests.support.projects import make_mysql_project, make_project, make_sqlite_project, revision
from tests.support.slow_statements import (
    MARIADB_COPY,
    MARIADB_COPYING,
    PG_BUILD,
    PG_SCANNING,
    gate_ids,
    gates_on,
    mariadb_table,
    pg_gated_table,
)

ROWS = 2_000_000
# The index build, sorting in many runs (so it passes through several phases).
INDEX_BUILD = revision("0006", "0005", f'''
op.execute("SET LOCAL maintenance_work_mem = '1MB'")
op.execute("{PG_BUILD}")
''')
SLEEP_KEY = 4343
# Waits for the test's advisory lock; its statement holds the test server's password.
SLEEPING = revision("0006", "0005", f'''
op.execute("SELECT pg_advisory_xact_lock({SLEEP_KEY}), {PASSWORD!r}::text AS secret")
''')
# Waits in Python (no statement runs) until the test creates the gate file.
SQLITE_WAITING = revision("0004", "0003", '''
import os, time
op.execute("CREATE TABLE waited (id integer)")
while not os.path.exists(os.environ["TEST_GATE"]):
    time.sleep(0.05)
''')
_numbers = itertools.count()


def progress_events(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The revision_progress events, in order."""
    return [e for e in events if e.get("event") == "revision_progress"]


def job_sessions(database: Database) -> int:
    """The job's sessions on the database's server."""
    return int(database.query("SELECT count(*) FROM pg_stat_activity WHERE datname = "
                              "current_database() AND application_name LIKE 'migration-job:%%'"
                              )[0][0])


class TestPostgres:
    """An index build's phases and figures; a wait's heartbeats; nothing for quick work."""

    def test_an_index_build_reports_its_phase_and_rising_percent(
            self, database: Database, tmp_path: Path) -> None:
        for statement in pg_gated_table(ROWS, gates=2):
            database.query(statement)
        config = make_project(tmp_path, extra={"0006_index": INDEX_BUILD})
        env = job_env(DATABASE_URL=database.url, ALEMBIC_CONFIG=str(config),
                      MIGRATE_PROGRESS_INTERVAL="1s")
        with gates_on(database.server.connect(database.name), gate_ids(ROWS, 2)) as gates:
            job = RunningJob(env=env)
            first = job.wait_for_event("revision_progress", phase=PG_SCANNING)
            # The lock's session runs the build; one more asks both who blocks it and how far
            # it got.
            assert job_sessions(database) == 2
            gates.open_next()
            # Held at the second gate until the test opens it: this event is sure to come.
            later = job.wait_for_event("revision_progress", phase=PG_SCANNING,
                                       where=lambda e: e.get("percent", 0) > first["percent"])
            gates.open_next()
            result = job.finish()
        assert result.code == 0, result.stderr[-3000:]
        assert (first["revision"], first["direction"]) == ("0006", "upgrade")
        assert first["statement"] == PG_BUILD
        assert (first["unit"], first["total"]) == ("blocks", later["total"])
        assert 0 < first["done"] < later["done"] < later["total"]
        assert later["eta_s"] >= 0
        events = progress_events(result.events)
        assert {e["revision"] for e in events} == {"0006"}
        assert all(e.get("percent", 0) <= 100 for e in events)
        elapsed = [e["elapsed_s"] for e in events]
        assert elapsed == sorted(elapsed)
        assert result.event("revision_applied")["duration_ms"] > 0

    def test_a_waiting_revision_gives_heartbeats_its_password_masked(
            self, database: Database, tmp_path: Path) -> None:
        """No figures for a lock wait: elapsed time and statement only; no DDL lock timeout
        (the blocker watch is off, the progress watch is not)."""
        config = make_project(tmp_path, extra={"0006_sleeping": SLEEPING})
        env = job_env(DATABASE_URL=database.url, ALEMBIC_CONFIG=str(config),
                      MIGRATE_PROGRESS_INTERVAL="1s", MIGRATE_DDL_LOCK_TIMEOUT="0")
        with gates_on(database.server.connect(database.name), [SLEEP_KEY]) as gate:
            job = RunningJob(env=env)
            first = job.wait_for_event("revision_progress")
            second = job.wait_for_event("revision_progress",
                                        where=lambda e: e["elapsed_s"] > first["elapsed_s"])
            gate.open_all()
            result = job.finish()
        assert result.code == 0, result.stderr[-3000:]
        assert set(first) - {"ts", "level", "event", "message"} == {
            "revision", "direction", "elapsed_s", "statement"}
        assert second["statement"] == (
            f"SELECT pg_advisory_xact_lock({SLEEP_KEY}), '***'::text AS secret")
        assert PASSWORD not in result.stderr
        assert "elapsed, running SELECT pg_advisory_xact_lock" in second["message"]

    def test_quick_revisions_and_the_no_op_log_none(self, database: Database,
                                                    tmp_path: Path) -> None:
        """With the default interval (10 s): the example's revisions take milliseconds."""
        env = job_env(DATABASE_URL=database.url, ALEMBIC_CONFIG=str(make_project(tmp_path)))
        first = run_job(env=env)
        assert first.code == 0, first.stderr[-3000:]
        assert len(first.event("upgrade_finished")["applied"]) == 5
        again = run_job(env=env)
        assert again.code == 0
        assert "already_at_target" in again.names()
        assert progress_events(first.events) == progress_events(again.events) == []


def test_sqlite_heartbeats_open_no_connection(tmp_path: Path) -> None:
    """SQLite reports no figures: the watch logs the elapsed time without opening the file."""
    config = make_sqlite_project(tmp_path / "project", extra={"0004_waiting": SQLITE_WAITING})
    gate = tmp_path / "gate"
    database = tmp_path / "app.db"
    job = RunningJob(env=job_env(DATABASE_URL=f"sqlite:///{database}",
                                 ALEMBIC_CONFIG=str(config), TEST_GATE=str(gate),
                                 MIGRATE_PROGRESS_INTERVAL="500ms",
                                 MIGRATE_DDL_LOCK_TIMEOUT="0"))
    first = job.wait_for_event("revision_progress", revision="0004")
    second = job.wait_for_event("revision_progress",
                                where=lambda e: e["elapsed_s"] > first["elapsed_s"])
    descriptors = Path(f"/proc/{job.process.pid}/fd")
    opened = [fd for fd in descriptors.iterdir() if _points_at(fd, database)]
    gate.touch()
    result = job.finish()
    assert result.code == 0, result.stderr[-3000:]
    assert len(opened) == 1  # the lock's own connection, which runs the revision
    for event in (first, second):
        assert set(event) - {"ts", "level", "event", "message"} == {
            "revision", "direction", "elapsed_s"}


def _points_at(descriptor: Path, target: Path) -> bool:
    try:
        return Path(descriptor.readlink()) == target
    except OSError:  # closed meanwhile
        return False


def test_mariadb_table_copy_reports_its_stage_and_rising_percent(
        mariadb: MariaDBServer, tmp_path: Path) -> None:
    """ALTER TABLE ... ALGORITHM=COPY: MariaDB's stage and percentage (a copy of seconds,
    looked at every 100 ms)."""
    name = f"progress_{next(_numbers)}"
    url = mariadb.create_database(name)
    for statement in mariadb_table(rows=300_000):
        mariadb.scalar(statement, database=name)
    config = make_mysql_project(tmp_path, extra={
        "0004_copy": revision("0004", "0003", f'op.execute("{MARIADB_COPY}")')})
    job = RunningJob(env=job_env(DATABASE_URL=url, ALEMBIC_CONFIG=str(config),
                                 MIGRATE_PROGRESS_INTERVAL="100ms"))
    first = job.wait_for_event("revision_progress", phase=MARIADB_COPYING,
                               where=lambda e: "percent" in e)
    later = job.wait_for_event("revision_progress", phase=MARIADB_COPYING,
                               where=lambda e: e.get("percent", 0) > first["percent"])
    result = job.finish()
    assert result.code == 0, result.stderr[-3000:]
    assert first["statement"] == MARIADB_COPY
    assert "eta_s" in later
    assert f"% ({MARIADB_COPYING}), " in later["message"]
    assert "done" not in later  # MariaDB gives a percentage, not counts


def test_a_fleet_stays_within_its_connections(pg: PostgresServer, tmp_path: Path) -> None:
    """Two targets at a time, each held in its revision by the test: every look of both
    watches goes through the one spare connection, and each event names its target."""
    make_project(tmp_path, extra={"0006_gated": GATED})
    names = create_tenants(pg, "progress", 4)
    targets = tmp_path / "targets"
    targets.write_text("".join(f"{pg.url(n)}\n" for n in names))
    gates = [pg.connect(n) for n in names]
    for gate in gates:
        with gate.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_lock(%s)", (GATE_KEY,))
    job = RunningJob("fleet", env=fleet_env(targets, tmp_path, MIGRATE_CONCURRENCY="2",
                                            MIGRATE_PROGRESS_INTERVAL="200ms"))
    peak = _Peak(pg, job)
    peak.start()
    try:
        seen: list[str] = []
        for _ in names:
            event = job.wait_for_event("revision_progress",
                                       where=lambda e: e.get("target") not in seen)
            seen.append(event["target"])
            gates[[masked(pg.url(n)) for n in names].index(event["target"])].close()
        result = job.finish()
    finally:
        for gate in gates:
            gate.close()
    assert result.code == 0, result.stderr[-3000:]
    assert sorted(seen) == sorted(masked(pg.url(n)) for n in names)
    peak.join()
    assert 2 <= peak.value <= 3


class _Peak(threading.Thread):
    """The most job sessions seen on the server at once, polled until the job exits."""

    def __init__(self, server: PostgresServer, job: RunningJob) -> None:
        super().__init__(daemon=True)
        self.server, self.job, self.value = server, job, 0

    def run(self) -> None:
        connection = self.server.connect()
        try:
            with connection.cursor() as cursor:
                while self.job.process.poll() is None:
                    cursor.execute("SELECT count(*) FROM pg_stat_activity "
                                   "WHERE application_name LIKE 'migration-job:%'")
                    row = cursor.fetchone()
                    self.value = max(self.value, row[0] if row else 0)
        finally:
            connection.close()
