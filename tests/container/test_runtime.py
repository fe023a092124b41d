"""The image as orchestrators run it: many at once (init containers), and stopped mid-migration."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from tests.container.conftest import DB_USER, HEAD, REVISIONS, SLOW, Database
from tests.container.engine import container_result, docker, wait_for
from tests.support.job import Result

pytestmark = pytest.mark.container

STOP_TIMEOUT = 20
LOCK_KEY = 4242001


@pytest.fixture
def containers() -> Iterator[list[str]]:
    """Names of containers a test starts; all removed afterwards."""
    names: list[str] = []
    yield names
    if names:
        docker("rm", "-f", "-v", *names, check=False)


def start(database: Database, image: str, names: list[str], *args: str,
          options: tuple[str, ...] = ()) -> str:
    """`docker run -d` the job against the database; returns the container name."""
    name = f"mjtest-job-{uuid.uuid4().hex[:8]}"
    names.append(name)
    docker("run", "-d", "--name", name, *database.docker_args(), *options, image, *args)
    return name


def logs(name: str) -> str:
    """Everything a container printed so far."""
    done = docker("logs", name)
    return done.stdout + done.stderr


@contextmanager
def lock_held(database: Database, key: int) -> Iterator[None]:
    """Hold the advisory lock `key` in a psql session of the test's own, until the block ends."""
    psql = subprocess.Popen(["docker", "exec", "-i", database.pg.name, "psql", "-q", "-U", DB_USER,
                             "-d", database.name, "-v", "ON_ERROR_STOP=1"],
                            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    assert psql.stdin is not None
    psql.stdin.write(f"SELECT pg_advisory_lock({key});\n")
    psql.stdin.flush()
    try:
        wait_for("the test's psql to take the lock", lambda: database.advisory_locks() == 1)
        yield
    finally:
        psql.stdin.close()  # psql exits, its session ends, the lock goes with it
        psql.wait(timeout=30)


def test_ten_containers_at_once_apply_each_revision_exactly_once(
        image: str, database: Database, containers: list[str]) -> None:
    # The lock is held until all ten have passed the fast path and wait for it: real contention.
    key = ("-e", f"MIGRATE_LOCK_KEY={LOCK_KEY}")
    with lock_held(database, LOCK_KEY):
        names = [start(database, image, containers, "upgrade", options=key) for _ in range(10)]
        wait_for("all ten to wait for the lock", lambda: all(
            "waiting_for_lock" in logs(n) for n in names), timeout=120)
    docker("wait", *names)
    results: list[Result] = [container_result(name) for name in names]
    assert [r.code for r in results] == [0] * 10, "\n".join(r.stderr for r in results)
    assert database.revisions() == [HEAD]
    assert database.applications() == dict.fromkeys(REVISIONS, 1)
    applied = [e["revision"] for r in results for e in r.events
               if e.get("event") == "revision_applied"]
    assert sorted(applied) == REVISIONS
    wait_for("no advisory lock left", lambda: database.advisory_locks() == 0)


def test_docker_stop_mid_revision_rolls_back_unlocks_and_exits_143(
        image: str, slow_image: str, database: Database, containers: list[str]) -> None:
    assert database.run(image, "upgrade").code == 0
    name = start(database, slow_image, containers, "upgrade")
    wait_for("the slow revision to start", lambda: "pg_sleep" in database.query(
        "SELECT string_agg(query, ' ') FROM pg_stat_activity WHERE state = 'active'"))

    # Within the stop timeout, or docker would SIGKILL it and the exit code would be 137.
    docker("stop", "-t", str(STOP_TIMEOUT), name)
    result = container_result(name)
    assert result.code == 143, result.stderr
    assert result.event("interrupted")["exit_code"] == 143
    assert result.event("lock_released")

    assert database.revisions() == [HEAD]
    assert database.query("SELECT to_regclass('slow_marker')") == ""
    assert SLOW not in database.applications()
    # The server saw the cancel: no statement left sleeping, no lock left (sessions end async).
    wait_for("no advisory lock left", lambda: database.advisory_locks() == 0)
    wait_for("pg_sleep to be gone from the server", lambda: "pg_sleep" not in database.query(
        "SELECT string_agg(query, ' ') FROM pg_stat_activity"))
