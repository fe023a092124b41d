"""A database behind several addresses: a host name with several, and libpq's multi-host URL
(host1:port1,host2:port2), whose failover (target_session_attrs=read-write) finds the primary.

However many addresses there are, the wait for the database ends within MIGRATE_WAIT_TIMEOUT:
libpq's connect_timeout applies to each address, so no single timeout bounds the sum.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.job import RunningJob, job_env, run_job
from tests.support.network import Namespace, namespace, with_hosts
from tests.support.pgserver import PostgresServer, running_server, running_standby

# Added to a bound: the job's start and exit on a loaded machine. Small enough that a wait
# that took the per-address timeout three times over (30 s for a 10 s wait) fails.
MARGIN_S = 12
PASSWORD_IN_URL = "secret"


@pytest.fixture
def silent_addresses() -> Iterator[list[str]]:
    """Three addresses whose packets vanish unanswered (blackholed namespaces)."""
    with namespace() as first, namespace() as second, namespace() as third:
        for netns in (first, second, third):
            netns.blackhole()
        yield [first.address, second.address, third.address]


@pytest.fixture
def two_servers() -> Iterator[tuple[Namespace, PostgresServer, PostgresServer]]:
    """Two servers, each in a namespace of its own; the first namespace is for blackholing."""
    with namespace() as cut_off, namespace() as reachable:
        first = PostgresServer(netns=cut_off).start()
        second = PostgresServer(netns=reachable, password=first.password).start()
        try:
            yield cut_off, first, second
        finally:
            cut_off.heal()
            first.destroy()
            second.destroy()


def one_url(servers: list[tuple[str, int]], password: str, query: str = "") -> str:
    """libpq's multi-host URL for the servers, in order."""
    from urllib.parse import quote

    hosts = ",".join(f"{host}:{port}" for host, port in servers)
    return f"postgresql://postgres:{quote(password, safe='')}@{hosts}/postgres{query}"


class TestWaitBoundedWhateverTheAddresses:
    """Every address silent: exit 3 within the wait timeout, not once per address."""

    def test_host_name_with_three_addresses(self, silent_addresses: list[str],
                                            tmp_path: Path) -> None:
        name = "db-of-three"
        started = time.monotonic()
        result = run_job(env=job_env(
            DATABASE_URL=f"postgresql://postgres:{PASSWORD_IN_URL}@{name}:5432/postgres",
            MIGRATE_WAIT_TIMEOUT="10"), prefix=with_hosts({name: silent_addresses}, tmp_path),
            timeout=120)
        took = time.monotonic() - started
        assert result.code == 3, result.stderr
        assert took < 10 + MARGIN_S, f"the wait took {took:.0f} s"
        last = result.events[-1]
        assert last["event"] == "database_unreachable"
        assert "1 attempts" not in last["message"]
        assert PASSWORD_IN_URL not in result.stderr

    def test_multi_host_url_all_silent(self, silent_addresses: list[str]) -> None:
        url = one_url([(address, 5432) for address in silent_addresses], PASSWORD_IN_URL)
        started = time.monotonic()
        result = run_job(env=job_env(DATABASE_URL=url, MIGRATE_WAIT_TIMEOUT="10"), timeout=120)
        took = time.monotonic() - started
        assert result.code == 3, result.stderr
        assert took < 10 + MARGIN_S, f"the wait took {took:.0f} s"
        assert result.events[-1]["event"] == "database_unreachable"
        assert PASSWORD_IN_URL not in result.stderr


class TestMultiHostUrl:
    """libpq's host1:port1,host2:port2 form works end to end: wait, lock, env.py, revisions."""

    def test_skips_a_silent_server(
            self, two_servers: tuple[Namespace, PostgresServer, PostgresServer]) -> None:
        cut_off, first, second = two_servers
        cut_off.blackhole()
        url = one_url([(first.host, first.port), (second.host, second.port)], first.password)
        result = run_job(env=job_env(DATABASE_URL=url, MIGRATE_WAIT_TIMEOUT="60"), timeout=180)
        assert result.code == 0, result.stderr
        assert f"{second.host}:{second.port}" in result.event("database_ready")["message"]
        assert second.scalar("SELECT version_num FROM alembic_version") == "0005"

    def test_failover_finds_the_new_primary(self) -> None:
        with running_server() as primary, running_standby(primary) as standby:
            url = one_url([("127.0.0.1", primary.port), ("127.0.0.1", standby.port)],
                          primary.password, "?target_session_attrs=read-write")
            assert run_job(env=job_env(DATABASE_URL=url)).code == 0
            standby.catch_up()
            primary.stop()
            job = RunningJob(env=job_env(DATABASE_URL=url, MIGRATE_WAIT_TIMEOUT="120",
                                         MIGRATE_TARGET="0005"))
            # Neither will do: the primary is down, the standby is read-only.
            job.wait_for_event("waiting_for_database")
            standby.promote()
            result = job.finish(timeout=180)
            assert result.code == 0, result.stderr
            assert f"127.0.0.1:{standby.port}" in result.event("database_ready")["message"]
            assert standby.scalar("SELECT version_num FROM alembic_version") == "0005"
