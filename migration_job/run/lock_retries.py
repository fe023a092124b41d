"""Revisions blocked by another session's lock: rolled back, then tried again a few times.

Modelled on GitLab's `with_lock_retries`: each statement of a revision waits for a table
lock at most MIGRATE_DDL_LOCK_TIMEOUT, so the application's queries that queue behind an
ALTER TABLE are held up no longer than that; a revision that hit the timeout is rolled back
and tried again after a growing, jittered sleep, while the job keeps the migration lock.
Alembic plans each try from the database's revision, so earlier revisions stay applied.
After MIGRATE_DDL_LOCK_RETRIES retries the job exits 9: blocked, retry later.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from typing import TYPE_CHECKING, Protocol, TypeVar

from migration_job.engines.blocking import describe_all
from migration_job.errors import Blocked, DdlLockTimedOut, LockLost, first_line
from migration_job.log import log
from migration_job.run.revision_watch import RevisionWatch

if TYPE_CHECKING:
    from migration_job.engines import MigrationLock
    from migration_job.engines.blocking import Blocker
    from migration_job.run.interruption import Interruption
    from migration_job.run.shared import SpareConnection
    from migration_job.settings import Settings

FIRST_DELAY_S = 1.0
MAX_DELAY_S = 30.0
Result = TypeVar("Result")


class Watch(Protocol):
    """Who blocked the revisions since last asked (revision_watch.RevisionWatch)."""

    def take(self) -> tuple[Blocker, ...]: ...


def retry_delays(retries: int, jitter: Callable[[], float] = random.random) -> Iterator[float]:
    """Seconds to sleep before each retry: doubling from FIRST_DELAY_S up to MAX_DELAY_S, each
    between half and all of that (runners blocked together do not retry together)."""
    for number in range(retries):
        ceiling = min(FIRST_DELAY_S * 2 ** number, MAX_DELAY_S)
        yield ceiling * (0.5 + 0.5 * jitter())


def with_lock_retries(attempt: Callable[[], Result], settings: Settings, lock: MigrationLock,
                      interruption: Interruption,
                      spare: SpareConnection | None = None) -> Result:
    """`attempt()` (applying the pending revisions) with the DDL lock timeout and statement
    timeout set on the lock's session, tried again while a revision hits the lock timeout and
    the lock is still held; meanwhile the revision watch logs who blocks them and how far
    they got, and cuts the lock's session if the server stops answering."""
    with ExitStack() as stack:
        stack.enter_context(lock.session.bounded_waits(settings.ddl_lock_timeout,
                                                       settings.statement_timeout))
        watch = stack.enter_context(RevisionWatch(settings, lock.session, spare))
        attempt = watch.attempts(attempt)
        if settings.ddl_lock_timeout <= 0:
            try:
                return attempt()
            except DdlLockTimedOut as timed_out:  # the database's own lock timeout
                raise Blocked(f"{timed_out}; retry later, once the transaction holding the "
                              "lock has ended (or set MIGRATE_DDL_LOCK_TIMEOUT to retry "
                              "within the run)") from None
        return retrying(attempt, settings, watch, interruption.sleep,
                        lambda timed_out: still_held(lock, settings, timed_out))


def still_held(lock: MigrationLock, settings: Settings, timed_out: DdlLockTimedOut) -> None:
    """Raise LockLost unless the lock is still held: a revision may run again only under it.

    env.py's own connection outlives the lock's session: without this, a revision would be
    retried with no lock at all (the revision gate alone keeping two runners apart).
    """
    gone: tuple[type[Exception], ...] = (LockLost, *settings.engine.errors)
    try:
        lock.verify()
    except gone as error:
        raise LockLost(f"lost the migration lock ({first_line(error)}) before a retry: "
                       f"{timed_out}; run the job again") from None


def retrying(attempt: Callable[[], Result], settings: Settings, watch: Watch,
             sleep: Callable[[float], None],
             before_retry: Callable[[DdlLockTimedOut], None] = lambda _: None) -> Result:
    """`attempt()`, tried again after each DDL lock timeout until the retries run out;
    `before_retry` may stop it (the lock is gone)."""
    delays = retry_delays(settings.ddl_lock_retries)
    tries = 0
    while True:
        tries += 1
        try:
            return attempt()
        except DdlLockTimedOut as timed_out:
            before_retry(timed_out)
            blockers = watch.take()
            delay = next(delays, None)
            if delay is None:
                raise blocked(timed_out, tries, describe_all(blockers)) from None
            log.warning("ddl_lock_timeout",
                        f"{timed_out}; blocked by {describe_all(blockers)}; "
                        f"try {tries} of {settings.ddl_lock_retries + 1}, next in {delay:.1f} s",
                        revision=timed_out.revision, attempt=tries,
                        next_delay_ms=round(delay * 1000),
                        blockers=[blocker.fields() for blocker in blockers])
            sleep(delay)


def blocked(timed_out: DdlLockTimedOut, tries: int, blockers: str) -> Blocked:
    """Exit 9, naming the revision and its blocker(s)."""
    return Blocked(f"{timed_out}, on each of {tries} tr{'y' if tries == 1 else 'ies'}; "
                   f"blocked by {blockers}; retry later, once that transaction has ended "
                   "(or raise MIGRATE_DDL_LOCK_TIMEOUT or MIGRATE_DDL_LOCK_RETRIES)")
