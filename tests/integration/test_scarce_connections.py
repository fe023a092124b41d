"""Many more runners than the server has connections: every runner still succeeds and every
revision is applied exactly once."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.conftest import database_in
from tests.support.job import RunningJob, job_env
from tests.support.pgserver import PostgresServer
from tests.support.projects import make_project, revision

RUNNERS = 100
# 20 slots, of which superuser_reserved_connections (3) only superusers may use: the job
# connects as the superuser `postgres`, so all 20 are the runners' to fight over.
MAX_CONNECTIONS = 20
# A revision that takes a while, so that most runners start while one of them migrates and
# holds the lock, and the server's connection slots are contested mid-migration.
SLOW_REVISION = revision("0006", "0005", '''
op.execute("INSERT INTO migration_audit (revision, direction) VALUES ('0006', 'upgrade')")
op.execute("SELECT pg_sleep(5)")
''')
ALL = ["0001", "0002", "0003", "0004", "0005", "0006"]
DEADLINE_S = 900


@pytest.fixture
def scarce_server() -> Iterator[PostgresServer]:
    """A server of the test's own that allows only MAX_CONNECTIONS connections."""
    server = PostgresServer(max_connections=MAX_CONNECTIONS).start()
    try:
        yield server
    finally:
        server.destroy()


class TestMoreRunnersThanConnections:
    """100 runners against a server with 20 connections all exit 0 and apply each revision
    exactly once, none losing its revision to a connection it could not get."""

    def test_hundred_runners_twenty_connections(self, scarce_server: PostgresServer,
                                                tmp_path: Path,
                                                request: pytest.FixtureRequest) -> None:
        # The harness's only connection before the runners: created and closed here.
        database = database_in(scarce_server, request)
        config = make_project(tmp_path, extra={"0006_slow": SLOW_REVISION})
        # The runners' deadlines are the test's own: how soon 100 runners get through 20
        # slots depends on the machine's load (seen: 120 s was not enough at a load of 36
        # on 2 cores), which this test does not measure; the wait for a slot is what it shows.
        env = job_env(DATABASE_URL=database.url, ALEMBIC_CONFIG=str(config),
                      MIGRATE_WAIT_TIMEOUT=str(DEADLINE_S), MIGRATE_LOCK_TIMEOUT=str(DEADLINE_S))
        jobs = [RunningJob(env=env) for _ in range(RUNNERS)]
        results = [job.finish(timeout=DEADLINE_S + 60) for job in jobs]

        codes = Counter(r.code for r in results)
        failed = [f"exit {r.code}:\n{r.stderr[-2000:]}" for r in results if r.code != 0]
        assert not failed, f"exit codes {dict(codes)}; the first failure:\n{failed[0]}"
        assert not [r for r in results if "rolled that revision back" in r.stderr]
        # Only now does the harness connect again.
        assert database.applications() == dict.fromkeys(ALL, 1)
        assert database.revisions() == ["0006"]
        assert database.advisory_locks() == 0
