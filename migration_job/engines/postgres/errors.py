"""What psycopg2's and the server's errors mean: wait, fail at once, lost session, no grant."""

from __future__ import annotations

import sys

import psycopg2

# Server and libpq messages that mean "this will not fix itself": fail at once.
PERMANENT_MARKERS = (
    "password authentication failed",
    "authentication failed",
    "no password supplied",
    "no pg_hba.conf entry",
    "does not exist",  # database "x" / role "x"
    "permission denied",
    "must be superuser",
    "not permitted to log in",
    "invalid connection option",
    "invalid sslmode value",
    "invalid integer value",
    "invalid uri",
)
CHECK_CREDENTIALS = "check the user, password, database name and grants"
# Permanent too, but the advice above would send the reader the wrong way.
PERMANENT_WITH_ADVICE = {
    "server does not support ssl":
        "the server offers no SSL but sslmode requires it: enable SSL on the server, or set "
        "sslmode=prefer (or disable) in DATABASE_URL if an unencrypted connection is acceptable",
    # ALTER DATABASE ... ALLOW_CONNECTIONS false. Not the server-wide "the database system is
    # not (yet) accepting connections" of a starting or recovering server: that is retried.
    "is not currently accepting connections":
        "the database refuses every connection (ALTER DATABASE ... ALLOW_CONNECTIONS false): "
        "ask its owner to allow connections again",
}
# Everything else that stops a connection (refused, reset, timeout, a name that does not
# resolve yet, "the database system is starting up", "too many clients") is retried.
# SQLSTATE lock_not_available: lock_timeout (or NOWAIT) ended a lock wait.
LOCK_NOT_AVAILABLE = "55P03"
# SQLSTATE query_canceled: statement_timeout, but also pg_cancel_backend (a signal's cancel);
# only the server's message tells them apart.
QUERY_CANCELED = "57014"
STATEMENT_TIMEOUT_MESSAGE = "statement timeout"
# SQLSTATE insufficient_privilege: no retry and no fix to the migration helps, a grant does.
INSUFFICIENT_PRIVILEGE = "42501"


def permanent_advice(error: BaseException) -> str | None:
    """What to do about a connection error that waiting will not fix; None if it might."""
    text = str(error).lower()
    for marker, advice in PERMANENT_WITH_ADVICE.items():
        if marker in text:
            return advice
    return CHECK_CREDENTIALS if any(marker in text for marker in PERMANENT_MARKERS) else None


def is_transient(error: BaseException) -> bool:
    """Whether a connection error is worth another try."""
    return isinstance(error, psycopg2.OperationalError) and permanent_advice(error) is None


def rejection_advice(error: BaseException) -> str:
    """What to do about a connection error that is not transient."""
    return permanent_advice(error) or CHECK_CREDENTIALS


def is_connection_lost(error: BaseException) -> bool:
    """Whether a database error means the session is gone (not that a statement failed).

    Any PostgreSQL driver's: psycopg2's (the job's), and psycopg 3's and asyncpg's, which a
    project's env.py may use (SQLAlchemy's DBAPIError.orig, and asyncpg's own error behind
    SQLAlchemy's adaptation of it, both carry the SQLSTATE).
    """
    if isinstance(error, psycopg2.OperationalError) or _is_psycopg_operational(error):
        # No SQLSTATE: libpq's own error (the socket broke).
        return sqlstate(error) is None or _session_ended(sqlstate(error))
    # asyncpg reports a broken socket as ConnectionDoesNotExistError (08003), or lets the
    # OS's error through.
    return _session_ended(sqlstate(error)) or isinstance(error, ConnectionError)


def is_permission_denied(error: BaseException) -> bool:
    """Whether a statement failed for want of a privilege."""
    return sqlstate(error) == INSUFFICIENT_PRIVILEGE


def is_lock_timeout(error: BaseException) -> bool:
    """Whether a statement gave up waiting for a lock (lock_timeout)."""
    return sqlstate(error) == LOCK_NOT_AVAILABLE


def is_statement_timeout(error: BaseException) -> bool:
    """Whether statement_timeout cancelled a statement (not pg_cancel_backend: a signal's)."""
    return (sqlstate(error) == QUERY_CANCELED
            and STATEMENT_TIMEOUT_MESSAGE in str(error).lower())


def sqlstate(error: BaseException) -> str | None:
    """The error's SQLSTATE: psycopg2 calls it pgcode, psycopg 3 and asyncpg sqlstate."""
    code = getattr(error, "pgcode", None) or getattr(error, "sqlstate", None)
    return code if isinstance(code, str) else None


def _session_ended(code: str | None) -> bool:
    """Class 08: connection exception. 57P01-57P03: the server is shutting down, crashed, or
    not accepting connections."""
    return code is not None and (code.startswith("08") or code in ("57P01", "57P02", "57P03"))


def _is_psycopg_operational(error: BaseException) -> bool:
    """A psycopg 3 OperationalError; never imports psycopg (the fast path must not pay)."""
    psycopg = sys.modules.get("psycopg")
    return psycopg is not None and isinstance(error, psycopg.OperationalError)
