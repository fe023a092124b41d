"""Waiting for the database: tenacity's policy objects and the transient/permanent decision."""

from __future__ import annotations

import time
from collections.abc import Callable

import psycopg2
import tenacity

from migration_job import database
from migration_job.config import Settings
from migration_job.database import Connection
from migration_job.errors import ConnectionRejected, DatabaseUnreachable
from migration_job.log import log

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
# Everything else that stops a connection (refused, reset, timeout, a name that does not
# resolve yet, "the database system is starting up", "too many connections") is retried.
BACKOFF_INITIAL_S = 0.1
BACKOFF_MAX_S = 1.0

Sleep = Callable[[float], None]


def is_permanent(error: BaseException) -> bool:
    """Whether a connection error will not go away by waiting."""
    text = str(error).lower()
    return any(marker in text for marker in PERMANENT_MARKERS)


def is_transient(error: BaseException) -> bool:
    """Whether a connection error is worth another try."""
    return isinstance(error, psycopg2.OperationalError) and not is_permanent(error)


def first_line(error: BaseException) -> str:
    """The error's first non-empty line, for one-line messages."""
    for line in str(error).splitlines():
        if line.strip():
            return line.strip()
    return type(error).__name__


def wait_for_database(settings: Settings, sleep: Sleep = time.sleep) -> Connection:
    """Connect and run a query, retrying transient errors until the wait timeout.

    Returns the open connection. Raises ConnectionRejected at once for permanent errors and
    DatabaseUnreachable when the timeout passes. A timeout of 0 tries exactly once.
    """
    deadline = time.monotonic() + settings.wait_timeout

    def log_retry(state: tenacity.RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        log.info("waiting_for_database",
                 f"database not ready (attempt {state.attempt_number}): "
                 f"{first_line(error) if error else 'unknown'}; retrying",
                 attempt=state.attempt_number, error=first_line(error) if error else None,
                 next_try_in_s=round(state.upcoming_sleep, 3))

    def attempt() -> Connection:
        remaining = max(0.0, deadline - time.monotonic())
        connection = database.connect(settings, timeout=min(remaining, 10.0))
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return connection

    retrying = tenacity.Retrying(
        stop=tenacity.stop_before_delay(settings.wait_timeout),
        wait=tenacity.wait_random_exponential(multiplier=BACKOFF_INITIAL_S, max=BACKOFF_MAX_S),
        retry=tenacity.retry_if_exception(is_transient),
        before_sleep=log_retry,
        sleep=sleep,
        reraise=True,
    )
    attempts = 0
    try:
        for try_ in retrying:
            with try_:
                attempts += 1
                return attempt()
    except psycopg2.Error as error:
        if is_permanent(error) or not isinstance(error, psycopg2.OperationalError):
            raise ConnectionRejected(
                f"the database refused the connection: {first_line(error)}; "
                "check the user, password, database name and grants") from None
        raise DatabaseUnreachable(
            f"database not reachable after {settings.wait_timeout:g}s "
            f"({attempts} attempts): {first_line(error)}; "
            "check the host and port, or raise MIGRATE_WAIT_TIMEOUT") from None
    raise AssertionError("tenacity stopped without an outcome")  # pragma: no cover
