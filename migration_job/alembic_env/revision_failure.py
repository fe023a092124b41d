"""A failed run of revisions as the contract's error: its exit code, what stays applied, and
what to do, saying only what happened (a rollback only of what was rolled back)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy.exc import DBAPIError

from migration_job.engines.unfinished import repair_advice
from migration_job.errors import (
    DatabaseUnreachable,
    DdlLockTimedOut,
    JobError,
    LockLost,
    MigrationFailed,
    PermissionDenied,
    ReadOnlyDatabase,
    UnfinishedRevision,
    first_line,
)
from migration_job.log import log

if TYPE_CHECKING:
    from migration_job.alembic_env.progress import Progress
    from migration_job.engines import Engine, MigrationLock
    from migration_job.settings import Settings

# What commits part of a revision on PostgreSQL (implicit_commits.py).
AUTOCOMMIT_BLOCK = ("Alembic commits a revision's work when it enters an autocommit_block, "
                    "and each statement in the block commits on its own")


def failure(settings: Settings, error: Exception, progress: Progress,
            lock: MigrationLock) -> JobError:
    """The error that ends the run after `error` stopped a revision (or the run between
    revisions)."""
    engine = settings.engine
    cause = database_error(engine, error)
    revision = progress.revision_of(progress.running) if progress.running else None
    where = place(progress)
    if engine.is_connection_lost(cause) and engine.transactional_ddl:
        return _lost(engine, lock, where, cause, progress)
    earlier = f"{len(progress.applied)} earlier revision(s) stay applied"
    partial = revision is not None and not engine.transactional_ddl
    read_only = None if partial else _read_only_reason(engine, lock)
    if read_only is not None:
        return ReadOnlyDatabase(f"the database became read-only during the run ({read_only}): "
                                f"{where} failed ({first_line(cause)}); {what_stays(progress)};"
                                f" {engine.read_only_advice}")
    if revision is not None and engine.is_lock_timeout(cause) and not progress.committed:
        return DdlLockTimedOut(f"{where} waited longer than {lock_limit(settings)} for a lock "
                               f"and was rolled back ({earlier})", revision)
    log.error("revision_failed", f"{where} failed: {first_line(cause)}", revision=revision,
              error=first_line(cause))
    if partial:
        assert revision is not None
        return UnfinishedRevision(
            f"{where} failed: {first_line(cause)}; this engine cannot roll back DDL, so part "
            f"of it may be applied. {repair_advice(revision)}")
    stays = what_stays(progress)
    if revision is not None and engine.is_lock_timeout(cause):
        return MigrationFailed(
            f"{where} waited longer than {lock_limit(settings)} for a lock; {stays}; it was "
            "not retried, which would run that part again: put its autocommit_block in a "
            "revision of its own (so that the rest can be retried), then deploy again")
    if engine.is_statement_timeout(cause):
        return MigrationFailed(
            f"{where} ran longer than {statement_limit(settings)} and was cancelled: "
            f"{first_line(cause)}; {stays}; make the revision faster (or split it), or "
            f"{'raise' if settings.statement_timeout > 0 else 'set'} "
            "MIGRATE_STATEMENT_TIMEOUT")
    failed = f"{where} failed: {first_line(cause)}; {stays}"
    if engine.is_permission_denied(cause):
        return PermissionDenied(f"{failed}; grant the job's database role the privileges "
                                "the migrations need, or run the job as the owner")
    advice = engine.failure_advice(cause) or "fix the migration and deploy again"
    return MigrationFailed(f"{failed}; {advice}")


def place(progress: Progress) -> str:
    """Where the run stopped: in a revision, between two, or before the first."""
    if progress.running is not None:
        revision = progress.revision_of(progress.running)
        return f"revision {revision} ({progress.running.doc or 'no message'})"
    if progress.applied:
        return f"the step after revision {progress.applied[-1][0]}"
    return "env.py, before any revision"


def what_stays(progress: Progress) -> str:
    """What of the running revision (on an engine with transactional DDL) and of the run's
    earlier revisions stays."""
    earlier = f"{len(progress.applied)} earlier revision(s) stay applied"
    if progress.running is None:
        return f"no revision was running ({earlier})"
    if progress.committed:
        return (f"part of it may stay committed ({AUTOCOMMIT_BLOCK}); only the rest was rolled "
                f"back ({earlier}); a rerun runs the whole revision again: undo that part, "
                "or make it safe to repeat")
    return f"its transaction was rolled back ({earlier})"


def lock_limit(settings: Settings) -> str:
    """What bounded a lock wait: the job's DDL lock timeout, else the database's own."""
    if settings.ddl_lock_timeout > 0:
        return f"the DDL lock timeout ({settings.ddl_lock_timeout:g} s)"
    return ("the database's own lock timeout (lock_timeout on PostgreSQL, lock_wait_timeout "
            "or innodb_lock_wait_timeout on MySQL, set for the role, the database or the "
            "server: MIGRATE_DDL_LOCK_TIMEOUT is 0, which leaves it in force)")


def statement_limit(settings: Settings) -> str:
    """What bounded a statement: the job's statement timeout, else the database's own."""
    if settings.statement_timeout > 0:
        return (f"the statement timeout ({settings.statement_timeout:g} s, "
                "MIGRATE_STATEMENT_TIMEOUT)")
    return ("the database's own statement timeout (statement_timeout on PostgreSQL, "
            "max_statement_time on MariaDB, set for the role, the database or the server: "
            "MIGRATE_STATEMENT_TIMEOUT is 0, which leaves it in force)")


def database_error(engine: Engine, error: BaseException) -> BaseException:
    """The driver's error behind what SQLAlchemy or Alembic raised, preferring a lost session.

    A lost session can surface as a later complaint (SQLAlchemy's "Can't reconnect until
    invalid transaction is rolled back" when Alembic leaves an autocommit block); the loss
    itself is further down the chain of causes.
    """
    chain: list[BaseException] = []
    seen: list[BaseException] = []
    link: BaseException | None = error
    while link is not None and link not in seen:
        seen.append(link)
        chain.append(link.orig if isinstance(link, DBAPIError) and link.orig else link)
        link = link.__cause__ or link.__context__
    return next((e for e in chain if engine.is_connection_lost(e)), chain[0])


def _lost(engine: Engine, lock: MigrationLock, where: str, cause: BaseException,
          progress: Progress) -> JobError:
    """A lost connection: of env.py's own (the lock still held), or of the lock's session."""
    stays = "" if progress.running is None else f"; {_server_rollback(engine, cause, progress)}"
    if _still_held(engine, lock):  # env.py's own connection (another driver) ended
        return DatabaseUnreachable(
            f"lost the database connection that ran {where} ({first_line(cause)})"
            f"{stays}; run the job again")
    # The revisions run on the session that holds the lock: losing one loses both.
    return LockLost(
        f"lost the migration lock: the database session holding it ended during {where} "
        f"({first_line(cause)}){stays}; run the job again")


def _server_rollback(engine: Engine, cause: BaseException, progress: Progress) -> str:
    if progress.committed:
        return what_stays(progress)
    # Not "rolled back": after a network cut the server has not noticed yet.
    return engine.failure_advice(cause) or "the server rolls that revision back"


def _still_held(engine: Engine, lock: MigrationLock) -> bool:
    """Whether the job's session still holds the lock (after a connection was lost)."""
    gone: tuple[type[Exception], ...] = (LockLost, *engine.errors)
    try:
        lock.verify()
    except gone:
        return False
    return True


def _read_only_reason(engine: Engine, lock: MigrationLock) -> str | None:
    """Why the database refuses writes now (a primary demoted, made read-only mid-run)."""
    try:
        return lock.session.read_only_reason()
    except engine.errors:
        return None  # the session broke as well: the failure itself is the news
