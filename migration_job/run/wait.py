"""Waiting for the database: tenacity's policy objects around the engine's verdict on errors."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from typing import TYPE_CHECKING

from migration_job.errors import ConnectionRejected, DatabaseUnreachable, JobError, first_line
from migration_job.log import log

if TYPE_CHECKING:
    import tenacity

    from migration_job.engines import Engine, Session
    from migration_job.run.interruption import Interruption
    from migration_job.settings import Settings

# Backoff: 0.25 s doubling up to 0.5 s, plus up to 0.4 s of random jitter. Never more than
# 0.9 s between tries (the job notices a ready database within a second), about 1.4 tries a
# second once capped, and replicas started together spread out instead of retrying in step.
BACKOFF_INITIAL_S = 0.25
BACKOFF_EXPONENTIAL_MAX_S = 0.5
BACKOFF_JITTER_S = 0.4
BACKOFF_MAX_S = BACKOFF_EXPONENTIAL_MAX_S + BACKOFF_JITTER_S
# The driver's own connect timeout per address, so that one black-holed address cannot eat the
# wait when the name has others: at most this, and at most half of what remains of the wait,
# so that a try reaches a second address before the wait ends.
ATTEMPT_TIMEOUT_S = 10.0
# The least time a try gets, however little of the wait remains (MIGRATE_WAIT_TIMEOUT=0 tries
# once): libpq's connect_timeout is at least 2 s.
LEAST_TRY_S = 2.0

Sleep = Callable[[float], None]


class StillConnecting(Exception):
    """A try had not ended when the wait timeout did (it goes on, and its session is closed)."""


def wait_for_database(settings: Settings, sleep: Sleep = time.sleep) -> Session:
    """Connect and run a query, retrying transient errors until the wait timeout.

    Returns the open session. Raises ConnectionRejected at once for permanent errors and
    DatabaseUnreachable when the timeout passes. A timeout of 0 tries exactly once.
    """
    engine = settings.engine
    failed: tuple[type[Exception], ...] = (StillConnecting, *engine.errors)
    deadline = time.monotonic() + settings.wait_timeout
    # The database is usually up already: one try before importing tenacity, whose import
    # alone costs about a third of a no-op run.
    try:
        return _attempt(engine, settings, deadline)
    except failed as error:
        # A try still connecting has used up the wait.
        if (isinstance(error, StillConnecting) or not engine.is_transient(error)
                or time.monotonic() >= deadline):
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
    failed: tuple[type[Exception], ...] = (StillConnecting, *engine.errors)
    try:
        for try_ in retrying:
            with try_:
                attempts += 1
                return _attempt(engine, settings, deadline)
    except failed as error:
        raise _final_error(engine, error, settings, attempts) from None
    raise AssertionError("tenacity stopped without an outcome")  # pragma: no cover


def _attempt(engine: Engine, settings: Settings, deadline: float) -> Session:
    """Connect and ping within what remains of the wait.

    The driver's connect timeout applies to each address in turn (all those of a name, each
    host of a multi-host URL), so no timeout given to it bounds the try: the try runs in a
    thread of its own, and the wait ends on time whatever it is doing.
    """
    remaining = max(0.0, deadline - time.monotonic())
    each_address = min(remaining / 2, ATTEMPT_TIMEOUT_S)

    def connect_and_ping() -> Session:
        session = engine.connect(settings, timeout=each_address)
        try:
            session.ping()
        except BaseException:
            session.close()
            raise
        return session

    return _within(max(remaining, LEAST_TRY_S), connect_and_ping,
                   f"still connecting: each address (of a host name, or each host of the URL) "
                   f"gets up to about {max(each_address, LEAST_TRY_S):.0f} s, in turn")


def _within(seconds: float, connect: Callable[[], Session], late: str) -> Session:
    """connect() in a thread, waited for at most `seconds`; StillConnecting (saying `late`)
    when it has not ended by then (a session it opens later is closed)."""
    guard = threading.Lock()
    ended = threading.Event()
    outcome: list[Session | BaseException] = []
    abandoned = False

    def run() -> None:
        try:
            result: Session | BaseException = connect()
        except BaseException as error:  # noqa: BLE001  (handed to the waiting thread)
            result = error
        with guard:
            if abandoned:
                if not isinstance(result, BaseException):
                    result.close()
                return
            outcome.append(result)
        ended.set()

    threading.Thread(target=run, name="connect", daemon=True).start()
    ended.wait(seconds)
    with guard:
        if not outcome:
            abandoned = True
            raise StillConnecting(late)
    if isinstance(outcome[0], BaseException):
        raise outcome[0]
    return outcome[0]


def _log_waiting(attempt: int, error: BaseException, next_try_in_s: float) -> None:
    log.info("waiting_for_database",
             f"database not ready (attempt {attempt}): {every_address(error)}; retrying",
             attempt=attempt, error=every_address(error), next_try_in_s=round(next_try_in_s, 3))


def _final_error(engine: Engine, error: Exception, settings: Settings,
                 attempts: int) -> JobError:
    if not isinstance(error, StillConnecting) and not engine.is_transient(error):
        return ConnectionRejected(f"the database refused the connection: {first_line(error)}; "
                                  f"{engine.rejection_advice(error)}")
    tries = f"{attempts} attempt{'' if attempts == 1 else 's'}"
    return DatabaseUnreachable(
        f"database not reachable after {settings.wait_timeout:g}s ({tries}; the last: "
        f"{every_address(error)}); check the host and port, or raise MIGRATE_WAIT_TIMEOUT")


def every_address(error: BaseException) -> str:
    """The error's lines but hints (indented): one a line for each address a try reached."""
    lines = [line.strip() for line in str(error).splitlines()
             if line.strip() and not line[:1].isspace()]
    return "; ".join(lines) or type(error).__name__


@contextmanager
def connected(settings: Settings, interruption: Interruption) -> Iterator[Session]:
    """A ready session, after waiting for the database; a lost session exits 3."""
    engine = settings.engine
    session = wait_for_database(settings, sleep=interruption.sleep)
    with closing(session):
        log.info("database_ready", f"connected to {session.describe()}",
                 server_version=session.server_version)
        try:
            yield session
        except engine.errors as error:
            if not engine.is_connection_lost(error):
                raise
            raise DatabaseUnreachable(
                f"lost the connection to the database ({first_line(error)}) before any "
                "revision ran; nothing was changed; run the job again") from None
