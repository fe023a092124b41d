"""Network partitions on PostgreSQL, for real: the server sits in a network namespace whose
packets the test drops silently (no RST), as a cut cable or a dead node does. Whatever the
job was doing (a revision, waiting for the lock, waiting for the database), it ends within a
bound that its configured timeouts set, with the contract's exit code and one honest line;
and the server frees a lost runner's lock on its own, soon.

The test watches the server over its Unix socket, which no blackhole reaches; a second
runner reaches it that way too.
"""

from __future__ import annotations

import os
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from migration_job.engines.postgres.connection import connect
from migration_job.settings.load import load_settings
from tests.support.job import RunningJob, job_env, run_job, wait_until
from tests.support.network import Namespace, namespace, tcp_proxy
from tests.support.pgserver import PostgresServer
from tests.support.projects import SLOW, make_project, revision

# How soon the job and the server notice a connection whose packets vanish
# (docs/failure-behaviour.md, "Network partitions"): the keepalive and TCP user timeout the job
# sets on both ends.
NOTICED_WITHIN_S = 30
# Added to every bound: a loaded CI machine is slow to start and stop processes, never this slow.
MARGIN_S = 45
LOCK_KEY = 8_675_309
# Linux's socket option (netinet/tcp.h); Python's socket module names it only from 3.12 on.
TCP_USER_TIMEOUT = 18
JOB_SESSIONS = "application_name LIKE 'migration-job:%%'"
# Idles inside its transaction for IDLE_S seconds (from the job's environment): the server
# sees the session "idle in transaction", waiting for a client that may be gone.
IDLE_IN_REVISION = revision("0006", "0005", '''
import os
import time
op.execute("INSERT INTO migration_audit (revision, direction) VALUES ('0006', 'upgrade')")
time.sleep(float(os.environ.get("IDLE_S", "0")))
''')


@pytest.fixture
def partitioned() -> Iterator[tuple[Namespace, PostgresServer]]:
    """A server inside a namespace of the test's own, which the test can blackhole."""
    with namespace() as netns:
        server = PostgresServer(netns=netns).start()
        try:
            yield netns, server
        finally:
            netns.heal()
            server.destroy()


def count(server: PostgresServer, query: str) -> int:
    """The count a query returns, asked over the server's Unix socket."""
    conn = server.local_connect()
    try:
        with conn.cursor() as cur:
            cur.execute(query)
            row = cur.fetchone()
    finally:
        conn.close()
    assert row is not None
    return int(row[0])


class TestPartitionDuringRevision:
    """Packets vanish while a revision runs: the job exits 3 within the keepalive bound, says
    the server rolls the revision back once it notices, and the server does so, on its own."""

    def test_blackhole_mid_revision(self, partitioned: tuple[Namespace, PostgresServer],
                                    tmp_path: Path) -> None:
        netns, server = partitioned
        config = make_project(tmp_path, extra={"0006_slow": SLOW})
        job = RunningJob(env=job_env(DATABASE_URL=server.url(), ALEMBIC_CONFIG=str(config),
                                     PGOPTIONS="-c migration_test.sleep=600"))
        job.wait_for_event("revision_started", revision="0006")
        assert wait_until(lambda: count(server, (
            f"SELECT count(*) FROM pg_stat_activity WHERE {JOB_SESSIONS} "
            "AND state = 'active' AND query LIKE '%%pg_sleep%%'")) == 1)
        netns.blackhole()
        cut = time.monotonic()

        result = job.finish(timeout=NOTICED_WITHIN_S + 3 * MARGIN_S)
        ended = time.monotonic() - cut
        assert result.code == 3, result.stderr
        assert ended < NOTICED_WITHIN_S + MARGIN_S, f"the job took {ended:.0f} s"
        last = result.events[-1]
        assert last["event"] == "lock_lost", result.stderr
        assert "0006" in last["message"]
        # Not "rolled back": the server cannot have heard of the cut yet.
        assert "rolled" not in last["message"]
        assert f"within about {NOTICED_WITHIN_S} s" in last["message"]
        assert "Traceback" not in result.stderr

        # The server, still cut off, ends the lost session on its own and frees the lock.
        assert wait_until(lambda: count(server, "SELECT count(*) FROM pg_locks "
                                        "WHERE locktype = 'advisory'") == 0,
                          timeout=NOTICED_WITHIN_S + MARGIN_S)
        freed = time.monotonic() - cut
        assert freed < NOTICED_WITHIN_S + MARGIN_S, f"the lock stayed {freed:.0f} s"
        # No transaction of the job's is left (an idle session of its blocker watch may be).
        assert count(server, f"SELECT count(*) FROM pg_stat_activity WHERE {JOB_SESSIONS} "
                     "AND xact_start IS NOT NULL") == 0

        netns.heal()
        again = run_job(env=job_env(DATABASE_URL=server.url(), ALEMBIC_CONFIG=str(config)))
        assert again.code == 0, again.stderr
        assert count(server, "SELECT count(*) FROM migration_audit WHERE revision = '0006'") == 1


class TestPartitionWhileWaitingForTheLock:
    """Packets vanish while the job polls a lock another session holds: it exits 5 at its lock
    timeout (checked around each poll, not between polls), saying the server did not answer."""

    def test_blackholed_poll_ends_at_the_lock_timeout(
            self, partitioned: tuple[Namespace, PostgresServer]) -> None:
        netns, server = partitioned
        lock_timeout = 10
        holder = server.local_connect()
        try:
            with holder.cursor() as cur:
                cur.execute("SELECT pg_advisory_lock(%s)", (LOCK_KEY,))
            job = RunningJob(env=job_env(DATABASE_URL=server.url(),
                                         MIGRATE_LOCK_KEY=str(LOCK_KEY),
                                         MIGRATE_LOCK_TIMEOUT=str(lock_timeout)))
            job.wait_for_event("waiting_for_lock")
            netns.blackhole()
            cut = time.monotonic()
            result = job.finish(timeout=lock_timeout + 3 * MARGIN_S)
        finally:
            holder.close()
        ended = time.monotonic() - cut
        assert result.code == 5, result.stderr
        assert ended < lock_timeout + MARGIN_S, f"the job took {ended:.0f} s"
        last = result.events[-1]
        assert last["event"] == "lock_timeout", result.stderr
        assert "did not answer" in last["message"]
        assert "Traceback" not in result.stderr


class TestDeadRunnerCutOff:
    """A runner cut off by a partition and then killed (its node lost) holds the lock "idle
    in transaction": the server ends that session on its own within the keepalive bound, and
    the next runner, which reaches the server another way, takes the lock and finishes."""

    def test_next_runner_gets_the_lock_soon(
            self, partitioned: tuple[Namespace, PostgresServer], tmp_path: Path) -> None:
        netns, server = partitioned
        config = make_project(tmp_path, extra={"0006_idle": IDLE_IN_REVISION})
        lost = RunningJob(env=job_env(DATABASE_URL=server.url(), ALEMBIC_CONFIG=str(config),
                                      IDLE_S="600"))
        lost.wait_for_event("revision_started", revision="0006")
        assert wait_until(lambda: count(server, (
            f"SELECT count(*) FROM pg_stat_activity WHERE {JOB_SESSIONS} "
            "AND state = 'idle in transaction'")) == 1)
        netns.blackhole()
        cut = time.monotonic()
        lost.process.kill()
        lost.finish()

        bound = NOTICED_WITHIN_S + MARGIN_S
        result = run_job(env=job_env(DATABASE_URL=server.socket_url(),
                                     ALEMBIC_CONFIG=str(config),
                                     MIGRATE_LOCK_TIMEOUT=str(bound)), timeout=bound + MARGIN_S)
        waited = time.monotonic() - cut
        assert result.code == 0, result.stderr
        assert waited < bound, f"the next runner finished {waited:.0f} s after the cut"
        assert count(server, "SELECT count(*) FROM migration_audit WHERE revision = '0006'") == 1


class TestSignalDuringPartition:
    """SIGTERM while the database does not answer: exit 143 after the shutdown grace, and the
    last line does not claim a rollback or a release that only the server can still do."""

    def test_sigterm_mid_revision(self, partitioned: tuple[Namespace, PostgresServer],
                                  tmp_path: Path) -> None:
        netns, server = partitioned
        config = make_project(tmp_path, extra={"0006_slow": SLOW})
        job = RunningJob(env=job_env(DATABASE_URL=server.url(), ALEMBIC_CONFIG=str(config),
                                     PGOPTIONS="-c migration_test.sleep=600"))
        job.wait_for_event("revision_started", revision="0006")
        assert wait_until(lambda: count(server, (
            f"SELECT count(*) FROM pg_stat_activity WHERE {JOB_SESSIONS} "
            "AND state = 'active' AND query LIKE '%%pg_sleep%%'")) == 1)
        netns.blackhole()
        job.process.send_signal(signal.SIGTERM)
        result = job.finish(timeout=NOTICED_WITHIN_S + 3 * MARGIN_S)
        assert result.code == 143, result.stderr
        last = result.events[-1]
        assert last["event"] == "interrupted", result.stderr
        assert "released the lock" not in last["message"]
        assert "rolled back" not in last["message"]
        assert "when it notices" in last["message"]


class TestPartitionBehindAProxy:
    """The job reaches the server through a TCP proxy, and the server is cut off behind it:
    the proxy's kernel keeps the job's connection alive as far as TCP can tell, so only the
    job's own clock ends the wait."""

    def test_lock_poll_ends_at_the_lock_timeout(
            self, partitioned: tuple[Namespace, PostgresServer]) -> None:
        netns, server = partitioned
        lock_timeout = 10
        holder = server.local_connect()
        with tcp_proxy(server.host, server.port) as proxy:
            try:
                with holder.cursor() as cur:
                    cur.execute("SELECT pg_advisory_lock(%s)", (LOCK_KEY,))
                job = RunningJob(env=job_env(
                    DATABASE_URL=server.url(host="127.0.0.1", port=proxy.port),
                    MIGRATE_LOCK_KEY=str(LOCK_KEY), MIGRATE_LOCK_TIMEOUT=str(lock_timeout)))
                job.wait_for_event("waiting_for_lock")
                netns.blackhole()
                cut = time.monotonic()
                result = job.finish(timeout=lock_timeout + 3 * MARGIN_S)
            finally:
                holder.close()
        ended = time.monotonic() - cut
        assert result.code == 5, result.stderr
        assert ended < lock_timeout + MARGIN_S, f"the job took {ended:.0f} s"
        assert "did not answer" in result.events[-1]["message"]

    def test_revision_ends_when_the_server_stops_answering(
            self, partitioned: tuple[Namespace, PostgresServer], tmp_path: Path) -> None:
        netns, server = partitioned
        config = make_project(tmp_path, extra={"0006_slow": SLOW})
        with tcp_proxy(server.host, server.port) as proxy:
            job = RunningJob(env=job_env(
                DATABASE_URL=server.url(host="127.0.0.1", port=proxy.port),
                ALEMBIC_CONFIG=str(config), PGOPTIONS="-c migration_test.sleep=600"))
            job.wait_for_event("revision_started", revision="0006")
            assert wait_until(lambda: count(server, (
                f"SELECT count(*) FROM pg_stat_activity WHERE {JOB_SESSIONS} "
                "AND state = 'active' AND query LIKE '%%pg_sleep%%'")) == 1)
            netns.blackhole()
            cut = time.monotonic()
            result = job.finish(timeout=NOTICED_WITHIN_S + 3 * MARGIN_S)
        ended = time.monotonic() - cut
        assert result.code == 3, result.stderr
        assert ended < NOTICED_WITHIN_S + MARGIN_S, f"the job took {ended:.0f} s"
        last = result.events[-1]
        assert last["event"] == "lock_lost", result.stderr
        assert "rolled" not in last["message"]


class TestKeepalives:
    """Every connection the job opens has keepalives and a TCP user timeout of its own; a URL
    that sets them keeps its values."""

    @staticmethod
    def socket_options(url: str) -> dict[str, int]:
        settings = load_settings({}, {"DATABASE_URL": url, "MIGRATE_TERMINATION_LOG": ""})
        session = connect(settings, timeout=10)
        try:
            with socket.socket(fileno=os.dup(session.fileno())) as shared:
                return {
                    "keepalive": shared.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE),
                    "idle": shared.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE),
                    "user_timeout_ms": shared.getsockopt(socket.IPPROTO_TCP, TCP_USER_TIMEOUT),
                }
        finally:
            session.close()

    def test_defaults(self, pg: PostgresServer) -> None:
        assert self.socket_options(pg.url()) == {
            "keepalive": 1, "idle": 10, "user_timeout_ms": NOTICED_WITHIN_S * 1000}

    def test_the_url_wins(self, pg: PostgresServer) -> None:
        options = self.socket_options(f"{pg.url()}?keepalives_idle=42&tcp_user_timeout=60000")
        assert options == {"keepalive": 1, "idle": 42, "user_timeout_ms": 60000}
