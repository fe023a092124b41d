"""The migration lock, held for a block: taken after refusing a database the job cannot
migrate through this session, and released on every way out."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from migration_job.errors import ReadOnlyDatabase, first_line
from migration_job.log import log
from migration_job.run.interruption import LOCK_HELD, LOCK_RELEASED

if TYPE_CHECKING:
    from migration_job.engines import MigrationLock, Session
    from migration_job.project import Project
    from migration_job.run.interruption import Interruption
    from migration_job.settings import Settings


@contextmanager
def migration_lock(session: Session, settings: Settings, project: Project,
                   interruption: Interruption, needless: Callable[[], bool] | None = None,
                   ) -> Iterator[MigrationLock | None]:
    """Hold the migration lock for the block; released on every way out.

    First refuses a database that cannot be migrated through this session: a read-only one,
    or one behind a pooler that shares server sessions. Yields None, without the lock, when
    `needless()` said while waiting that the lock is not needed.
    """
    reason = session.read_only_reason()
    if reason:
        raise ReadOnlyDatabase(f"cannot migrate {session.describe()}: {reason}; "
                               f"{settings.engine.read_only_advice}")
    session.refuse_shared_sessions(settings)
    lock = session.lock(settings.lock_key, project, sleep=interruption.sleep)
    held = lock.acquire(settings.lock_timeout, needless)
    if held:
        interruption.lock = LOCK_HELD
    try:
        yield lock if held else None
    finally:
        try:
            if lock.release() and held:
                interruption.lock = LOCK_RELEASED
        except settings.engine.errors as error:
            log.warning("lock_release_failed", f"could not release the lock cleanly "
                        f"({first_line(error)}); the server frees it once it notices that "
                        "the session has ended")
