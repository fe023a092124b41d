"""Waiting for the database: tenacity's policy objects and the transient/permanent decision."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import psycopg2

from migration_job import database
from migration_job.config import Settings
from migration_job.database import Connection
from migration_job.errors import ConnectionRejected, DatabaseUnreachable, JobError
from migration_job.log import log

if TYPE_CHECKING:
    import tenacity

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
# Backoff: 0.25 s doubling up to 0.5 s, plus up to 0.4 s of random jitter. Never more than
# 0.9 s between tries (the job notices a ready database within a second), about 1.4 tries a
# second once capped, and replicas started together spread out instead of retrying in step.
BACKOFF_INITIAL_S = 0.25
BACKOFF_EXPONENTIAL_MAX_S = 0.5
BACKOFF_JITTER_S = 0.4
BACKOFF_MAX_S = BACKOFF_EXPONENTIAL_MAX_S + BACKOFF_JITTER_S
# libpq's own connect timeout per attempt, so that a black-holed address cannot eat the wait.
ATTEMPT_TIMEOUT_S = 10.0

Sleep = Callable[[float], None]


def permanent_advice(error: BaseException) -> str | None:
    """What to do about a connection error that waiting will not fix; None if it might."""
    text = str(error).lower()
    for marker, advice in PERMANENT_WITH_ADVICE.items():
        if marker in text:
            return advice
    return CHECK_CREDENTIALS if any(marker in text for marker in PERMANENT_MARKERS) else None


def is_permanent(error: BaseException) -> bool:
    """Whether a connection error will not go away by waiting."""
    return permanent_advice(error) is not None


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
    # The database is usually up already: one try before importing tenacity, whose import
    # alone costs about a third of a no-op run.
    try:
        return _attempt(settings, deadline)
    except psycopg2.Error as error:
        if not is_transient(error) or time.monotonic() >= deadline:
            raise _final_error(error, settings, attempts=1) from None
        _log_waiting(1, error, BACKOFF_INITIAL_S)
    sleep(BACKOFF_INITIAL_S)
    return _retry(settings, deadline, sleep)


def _retry(settings: Settings, deadline: float, sleep: Sleep) -> Connection:
    import tenacity

    def log_retry(state: tenacity.RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        if error is not None:
            _log_waiting(state.attempt_number + 1, error, state.upcoming_sleep)

    retrying = tenacity.Retrying(
        stop=tenacity.stop_before_delay(max(0.0, deadline - time.monotonic())),
        wait=(tenacity.wait_exponential(multiplier=BACKOFF_INITIAL_S, max=BACKOFF_EXPONENTIAL_MAX_S)
              + tenacity.wait_random(0, BACKOFF_JITTER_S)),
        retry=tenacity.retry_if_exception(is_transient),
        before_sleep=log_retry,
        sleep=sleep,
        reraise=True,
    )
    attempts = 1
    try:
        for try_ in retrying:
            with try_:
                attempts += 1
                return _attempt(settings, deadline)
    except psycopg2.Error as error:
        raise _final_error(error, settings, attempts) from None
    raise AssertionError("tenacity stopped without an outcome")  # pragma: no cover


def _attempt(settings: Settings, deadline: float) -> Connection:
    remaining = max(0.0, deadline - time.monotonic())
    connection = database.connect(settings, timeout=min(remaining, ATTEMPT_TIMEOUT_S))
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except BaseException:
        connection.close()
        raise
    return connection


def _log_waiting(attempt: int, error: BaseException, next_try_in_s: float) -> None:
    log.info("waiting_for_database",
             f"database not ready (attempt {attempt}): {first_line(error)}; retrying",
             attempt=attempt, error=first_line(error), next_try_in_s=round(next_try_in_s, 3))


def _final_error(error: psycopg2.Error, settings: Settings, attempts: int) -> JobError:
    advice = permanent_advice(error)
    if advice is not None or not isinstance(error, psycopg2.OperationalError):
        return ConnectionRejected(f"the database refused the connection: {first_line(error)}; "
                                  f"{advice or CHECK_CREDENTIALS}")
    return DatabaseUnreachable(
        f"database not reachable after {settings.wait_timeout:g}s ({attempts} attempts): "
        f"{first_line(error)}; check the host and port, or raise MIGRATE_WAIT_TIMEOUT")
