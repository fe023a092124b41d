"""Network partitions: how both ends of the job's sessions notice packets that vanish.

A cut that drops packets without a reset leaves a blocked `recv` waiting for hours: the OS's
keepalive starts after two hours, and unacknowledged data is retransmitted for about 15
minutes. So every connection the job opens has keepalives and a TCP user timeout of its own
(the URL may set other values), and the session that takes the lock asks the server for the
same on its end, so that a lost runner's transaction and lock end soon. Behind a TCP proxy
neither helps (the proxy's kernel answers for the server): the job's own statements that
wait (a lock poll, its release, a signal's cancel, the blocker watch) also have a deadline
on the client's clock, which cuts the session when it passes. A revision's statements have
none (they may run for hours): there the blocker watch notices that the server has stopped
answering (migration_job.run.blocker_watch).
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
from collections.abc import Iterator

import psycopg2
from psycopg2.extensions import connection, parse_dsn

from migration_job.engines.locking import NoAnswer

# About how long either end takes to notice a connection whose packets vanish: keepalive
# probes start after KEEPALIVE_IDLE_S of silence, and the connection ends once sent data
# (or a probe) has gone unacknowledged for NOTICED_WITHIN_S (the TCP user timeout).
NOTICED_WITHIN_S = 30
KEEPALIVE_IDLE_S = 10
KEEPALIVE_INTERVAL_S = 5
KEEPALIVE_COUNT = 3
# libpq's connection parameters: a URL that names one of them keeps its own value.
CLIENT_KEEPALIVES = {
    "keepalives": "1",
    "keepalives_idle": str(KEEPALIVE_IDLE_S),
    "keepalives_interval": str(KEEPALIVE_INTERVAL_S),
    "keepalives_count": str(KEEPALIVE_COUNT),
    "tcp_user_timeout": str(NOTICED_WITHIN_S * 1000),
}
# The server's settings for the same, on the session that holds the lock (PostgreSQL 12+;
# ignored over a Unix socket). client_connection_check_interval then ends a statement that
# runs while its client is gone.
SERVER_KEEPALIVES = {
    "tcp_keepalives_idle": str(KEEPALIVE_IDLE_S),
    "tcp_keepalives_interval": str(KEEPALIVE_INTERVAL_S),
    "tcp_keepalives_count": str(KEEPALIVE_COUNT),
    "tcp_user_timeout": str(NOTICED_WITHIN_S * 1000),
}
# libpq's connect_timeout (per address) for the connections env.py opens itself.
ENV_CONNECT_TIMEOUT_S = 10
LOST_SESSION = ("the server rolls that revision back when it notices that the session is gone "
                f"(within about {NOTICED_WITHIN_S} s of a network cut; at once if it ended the "
                "session itself)")


class ServerDidNotAnswer(psycopg2.OperationalError, NoAnswer):
    """A statement got no answer before its deadline; its session was cut (it is lost)."""


def keepalive_defaults(dsn: str) -> dict[str, str]:
    """The keepalive parameters the job adds to a connection string: those it does not set."""
    try:
        given = parse_dsn(dsn)
    except psycopg2.Error:
        given = {}  # connecting reports what is wrong with it
    return {name: value for name, value in CLIENT_KEEPALIVES.items() if name not in given}


def with_keepalives(driver: str, cparams: dict[str, object]) -> None:
    """Give a connection env.py opens itself through libpq (psycopg2, psycopg 3) the job's
    keepalives and a connect timeout, where its URL sets none; asyncpg has no such settings."""
    if driver in ("psycopg", "psycopg2"):
        for name, value in {**CLIENT_KEEPALIVES,
                            "connect_timeout": str(ENV_CONNECT_TIMEOUT_S)}.items():
            cparams.setdefault(name, value)


def socket_of(session: connection) -> socket.socket:
    """A copy of the session's socket: closing it leaves libpq's own open. OSError, or
    psycopg2's InterfaceError once the session is closed."""
    copy = os.dup(session.fileno())
    try:
        return socket.socket(fileno=copy)
    except OSError:
        os.close(copy)
        raise


def shut_down(session: connection) -> None:
    """Shut the session's socket down (from any thread): whatever waits on it fails at once,
    and the session is lost."""
    with contextlib.suppress(OSError, psycopg2.Error), socket_of(session) as shared:
        shared.shutdown(socket.SHUT_RDWR)


@contextlib.contextmanager
def answered_within(session: connection, seconds: float) -> Iterator[None]:
    """Within the block, a call on `session` that gets no answer for `seconds` fails with
    ServerDidNotAnswer: its socket is shut down, which ends the session."""
    state = threading.Lock()
    cut = threading.Event()
    done = False

    def cut_session() -> None:
        with state:
            if done or session.closed:
                return
            cut.set()
            shut_down(session)

    timer = threading.Timer(max(0.0, seconds), cut_session)
    timer.daemon = True
    timer.start()
    try:
        yield
    except psycopg2.Error as error:
        if cut.is_set():
            raise ServerDidNotAnswer(f"the server did not answer within {seconds:.1f} s "
                                     "(a network partition, or a proxy that lost the server?)"
                                     ) from error
        raise
    finally:
        with state:
            done = True
        timer.cancel()
