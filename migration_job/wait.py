"""Waiting for the database: tenacity's policy objects around the engine's verdict on errors."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from migration_job.errors import ConnectionRejected, DatabaseUnreachable, JobError, first_line
from migration_job.log import log

if TYPE_CHECKING:
    import tenacity

    from migration_job.config import Settings
    from migration_job.engines import Engine, Session

# Backoff: 0.25 s doubling up to 0.5 s, plus up to 0.4 s of random jitter. Never more than
# 0.9 s between tries (the job notices a ready database within a second), about 1.4 tries a
# second once capped, and replicas started together spread out instead of retrying in step.
BACKOFF_INITIAL_S = 0.25
BACKOFF_EXPONENTIAL_MAX_S = 0.5
BACKOFF_JITTER_S = 0.4
BACKOFF_MAX_S = BACKOFF_EXPONENTIAL_MAX_S + BACKOFF_JITTER_S
# The driver's own connect timeout per attempt, so that a black-holed address cannot eat the wait.
ATTEMPT_TIMEOUT_S = 10.0

Sleep = Callable[[float], None]


def wait_for_database(settings: Settings, sleep: Sleep = time.sleep) -> Session:
    """Connect and run a query, retrying transient errors until the wait timeout.

    Returns the open session. Raises ConnectionRejected at once for permanent errors and
    DatabaseUnreachable when the timeout passes. A timeout of 0 tries exactly once.
    """
    engine = settings.engine
    deadline = time.monotonic() + settings.wait_timeout
    # The database is usually up already: one try before importing tenacity, whose import
    # alone costs about a third of a no-op run.
    try:
        return _attempt(engine, settings, deadline)
    except engine.errors as error:
        if not engine.is_transient(error) or time.monotonic() >= deadline:
            raise _final_error(engine, error, settings, attempts=1) from None
        _log_waiting(1, error, BACKOFF_INITIAL_S)
    sleep(BACKOFF_INITIAL_S)
    return _retry(engine, settings, deadline, sleep)


def _retry(engine: Engine, settings: Settings, deadline: float, sleep: Sleep) -> Session:
    import tenacity

    def log_retry(state: tenacity.RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        if error is not None:
            _log_waiting(state.attempt_number + 1, error, state.upcoming_sleep)

    retrying = tenacity.Retrying(
        stop=tenacity.stop_before_delay(max(0.0, deadline - time.monotonic())),
        wait=(tenacity.wait_exponential(multiplier=BACKOFF_INITIAL_S, max=BACKOFF_EXPONENTIAL_MAX_S)
              + tenacity.wait_random(0, BACKOFF_JITTER_S)),
        retry=tenacity.retry_if_exception(engine.is_transient),
        before_sleep=log_retry,
        sleep=sleep,
        reraise=True,
    )
    attempts = 1
    try:
        for try_ in retrying:
            with try_:
                attempts += 1
                return _attempt(engine, settings, deadline)
    except engine.errors as error:
        raise _final_error(engine, error, settings, attempts) from None
    raise AssertionError("tenacity stopped without an outcome")  # pragma: no cover


def _attempt(engine: Engine, settings: Settings, deadline: float) -> Session:
    remaining = max(0.0, deadline - time.monotonic())
    session = engine.connect(settings, timeout=min(remaining, ATTEMPT_TIMEOUT_S))
    try:
        session.ping()
    except BaseException:
        session.close()
        raise
    return session


def _log_waiting(attempt: int, error: BaseException, next_try_in_s: float) -> None:
    log.info("waiting_for_database",
             f"database not ready (attempt {attempt}): {first_line(error)}; retrying",
             attempt=attempt, error=first_line(error), next_try_in_s=round(next_try_in_s, 3))


def _final_error(engine: Engine, error: Exception, settings: Settings,
                 attempts: int) -> JobError:
    if not engine.is_transient(error):
        return ConnectionRejected(f"the database refused the connection: {first_line(error)}; "
                                  f"{engine.rejection_advice(error)}")
    return DatabaseUnreachable(
        f"database not reachable after {settings.wait_timeout:g}s ({attempts} attempts): "
        f"{first_line(error)}; check the host and port, or raise MIGRATE_WAIT_TIMEOUT")
