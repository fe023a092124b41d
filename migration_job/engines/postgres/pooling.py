"""Poolers that share server sessions: found before the lock, and refused.

A session-level lock needs a session that stays the same. PgBouncer in transaction or
statement pooling mode hands each transaction (or statement) whatever server session is free:
two runners both "acquire" the lock on one shared server session, revisions run twice, and a
lock stays behind on a pooled session after every runner released it. No lock that a pooler
can move between clients is safe, and a revision that runs outside a transaction
(CREATE INDEX CONCURRENTLY in an autocommit block) cannot be covered by a transaction-level
lock at all; so the job refuses such a pooler, as peers advise (Rails and golang-migrate users
turn their lock off behind one), and says how to connect instead. Session pooling works.
"""

from __future__ import annotations

import socket
from collections.abc import Callable

import psycopg2
from psycopg2.extensions import connection

from migration_job.engines.postgres.partitions import socket_of
from migration_job.errors import PoolerNotSupported, first_line
from migration_job.log import log

PROBE_CONNECT_TIMEOUT_S = 10.0
PROBE_ROUNDS = 3


def refuse_shared_sessions(session: connection, connect: Callable[[float], connection]) -> None:
    """Raise PoolerNotSupported if a pooler shares server sessions between this job's clients.

    Costs one query on a direct connection. When the server sees the job's connection come
    from another address than the job's socket (a proxy or pooler in between), a second
    client session, opened with `connect(timeout)`, asks which server sessions its
    statements land on.
    """
    if not _behind_proxy(session):
        return
    try:
        probe = connect(PROBE_CONNECT_TIMEOUT_S)
    except psycopg2.Error as error:
        log.warning("pooler_check_skipped", "could not open a second session to check for a "
                    f"pooler ({first_line(error)}); going on without that check")
        return
    try:
        mode = _pooling_mode(session, probe)
    finally:
        probe.close()
    if mode is not None:
        raise PoolerNotSupported(
            f"the database is reached through a pooler in {mode} pooling mode, which shares "
            "server sessions between clients: the session-level migration lock cannot hold "
            "through it; connect the job to PostgreSQL directly, or through a pool in session "
            "mode (PgBouncer: pool_mode = session for the job's database entry)")


def _behind_proxy(session: connection) -> bool:
    """Whether the server sees this session come from an address other than our socket's."""
    with socket_of(session) as own:
        family, local = own.family, own.getsockname()
    with session.cursor() as cursor:
        cursor.execute("SELECT host(inet_client_addr()), inet_client_port()")
        row = cursor.fetchone()
    assert row is not None
    if family == socket.AF_UNIX:
        return row[0] is not None
    return (row[0], row[1]) != (local[0], local[1])


def _pooling_mode(session: connection, probe: connection) -> str | None:
    """'transaction' or 'statement' if the two sessions do not each keep one server session.

    Two client sessions of their own always have two server sessions, each the same every
    time. A pooler that shares them puts both on the server session it used last (PgBouncer's
    default), or moves a session to the one it used longest ago (round robin): asking twice
    from each side, for a few rounds, shows either, even while other clients use the pool.
    """
    own: set[int] = set()
    other: set[int] = set()
    for _ in range(PROBE_ROUNDS):
        own.update((_backend_pid(session), _backend_pid(session)))
        other.update((_backend_pid(probe), _backend_pid(probe)))
    if len(own) == 1 and len(other) == 1 and own != other:
        return None
    try:
        with probe.cursor() as cursor:  # a statement pooler ends a client that opens one
            cursor.execute("BEGIN")
            cursor.execute("ROLLBACK")
    except psycopg2.OperationalError:
        return "statement"
    return "transaction"


def _backend_pid(session: connection) -> int:
    with session.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        row = cursor.fetchone()
    assert row is not None
    return int(row[0])
