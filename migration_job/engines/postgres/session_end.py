"""Closing a session and waiting for the server to have ended it.

A backend outlives its client's goodbye: libpq sends Terminate and returns at once, and the
backend exits when the scheduler next runs it (seen here: 12 ms later on a busy machine).
Until then it holds a connection slot, so a session opened in its place at once counts beside
it against max_connections and a role's CONNECTION LIMIT. The backend frees its slot before
its socket closes (proc_exit: the shared-memory callbacks, ProcKill among them, run before
the socket's, the last one registered): the end of the stream on a copy of the socket says
that the slot is free.
"""

from __future__ import annotations

import contextlib
import time

import psycopg2
from psycopg2.extensions import connection

from migration_job.engines.postgres.partitions import socket_of


def close_and_wait(session: connection, timeout: float) -> None:
    """Close `session`; return once the server has closed its end, or after `timeout` s."""
    try:
        watch = socket_of(session)
    except (OSError, psycopg2.Error):  # closed already, or lost
        session.close()
        return
    with watch:
        session.close()
        if not session.closed:  # lent out to SQLAlchemy: it stays open
            return
        deadline = time.monotonic() + timeout
        with contextlib.suppress(OSError):  # a reset, or the deadline (socket.timeout)
            while (left := deadline - time.monotonic()) > 0:
                watch.settimeout(left)
                if not watch.recv(4096):  # TLS's close_notify may come first
                    return
