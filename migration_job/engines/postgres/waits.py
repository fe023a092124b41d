"""PostgreSQL: how long a revision's statements may wait for a lock or run, and who blocks them.

lock_timeout bounds each lock wait: an ALTER TABLE queued behind a long transaction holds up
every later query on that table (they queue behind the ALTER) until it times out, so a short
timeout keeps the application's queries moving; the job then retries (lock_retries.py).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg2

from migration_job.engines.blocking import Blocker, query_line
from migration_job.engines.naming import application_name
from migration_job.engines.postgres.connection import LendableConnection
from migration_job.engines.postgres.partitions import answered_within

# The sessions that hold (or queue ahead for) the locks this process's statements wait for,
# in the database the asking session is in (a fleet's target); pg_blocking_pids only for
# statements that wait for a lock, as it locks the lock manager.
BLOCKERS = (
    "SELECT DISTINCT b.pid, coalesce(b.application_name, ''), host(b.client_addr), "
    "extract(epoch FROM clock_timestamp() - b.xact_start)::float8, coalesce(b.query, ''), "
    "w.wait_event = 'virtualxid' "
    "FROM pg_stat_activity w "
    "CROSS JOIN LATERAL unnest(pg_blocking_pids(w.pid)) AS blocking(pid) "
    "JOIN pg_stat_activity b ON b.pid = blocking.pid "
    "WHERE w.application_name = %s AND w.datname = current_database() "
    "AND w.wait_event_type = 'Lock' ORDER BY b.pid")
# How long the blocker watch waits for the server's answer: it must never hold the job up.
BLOCKERS_WITHIN_S = 3.0


def server_milliseconds(seconds: float) -> str:
    """A duration as PostgreSQL's timeout settings take it: whole milliseconds (a duration
    under 1 ms is 1 ms, never 0, which would mean no limit)."""
    return f"{math.ceil(seconds * 1000)}ms"


def revision_settings(lock_timeout: float, statement_timeout: float) -> dict[str, str]:
    """The session settings that bound a revision's statements; a timeout of 0 leaves the
    server's own setting (the role's or database's) alone."""
    wanted = {"lock_timeout": lock_timeout, "statement_timeout": statement_timeout}
    return {name: server_milliseconds(seconds) for name, seconds in wanted.items() if seconds > 0}


@contextmanager
def bounded_waits(connection: LendableConnection, settings: dict[str, str]) -> Iterator[None]:
    """Within the block, the session's statements are bounded by `settings` (a statement that
    runs CONCURRENTLY waits without the lock timeout: postgres/concurrently.py); afterwards
    the session's own values are back. One round trip each way, paid only when revisions
    run."""
    from migration_job.engines.postgres.concurrently import concurrent_statements

    with concurrent_statements(settings.get("lock_timeout")):
        if not settings:
            yield
            return
        with _bounded(connection, settings):
            yield


@contextmanager
def _bounded(connection: LendableConnection, settings: dict[str, str]) -> Iterator[None]:
    names = list(settings)
    with connection.cursor() as cursor:
        # Evaluated left to right: the old values are read before they are replaced.
        cursor.execute("SELECT " + ", ".join(
            ["current_setting(%s)"] * len(names) + ["set_config(%s, %s, false)"] * len(names)),
            [*names, *(part for item in settings.items() for part in item)])
        row = cursor.fetchone()
    assert row is not None
    connection.revision_settings = settings
    try:
        yield
    finally:
        connection.revision_settings = None
        _restore(connection, dict(zip(names, row[:len(names)], strict=True)))


def _restore(connection: LendableConnection, settings: dict[str, str]) -> None:
    if connection.closed:
        return
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT " + ", ".join(["set_config(%s, %s, false)"] * len(settings)),
                           [part for item in settings.items() for part in item])
    except psycopg2.Error:
        pass  # the session broke: whoever uses it next reports that


def blockers(connection: LendableConnection) -> tuple[Blocker, ...]:
    """The sessions that hold the locks this process's statements wait for."""
    with answered_within(connection, BLOCKERS_WITHIN_S), connection.cursor() as cursor:
        cursor.execute(BLOCKERS, (application_name(),))
        rows = cursor.fetchall()
    return tuple(Blocker(pid=int(row[0]), application_name=str(row[1]), client_addr=row[2],
                         transaction_age_s=row[3], query=query_line(row[4]),
                         transaction_wait=bool(row[5])) for row in rows)
