"""The job's story: wait, fast path, lock, upgrade, report (and downgrade, its mirror).

Alembic and SQLAlchemy are imported only past the fast path (inside the functions that need
them): importing them costs several times more than a whole no-op run.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from migration_job.applied_history.access import read_before_changing
from migration_job.applied_history.skew import newer_database
from migration_job.errors import HistoryError
from migration_job.log import log
from migration_job.project import Project, project_for
from migration_job.run.database import awaits_repair, refuse_unfinished
from migration_job.run.head_verification import verify_at_head
from migration_job.run.heads import known_heads, load_history
from migration_job.run.lock import migration_lock
from migration_job.run.outcome import at_known_head, at_target, describe
from migration_job.run.wait import connected

if TYPE_CHECKING:
    from migration_job.alembic_env.revision_graph import History, Plan
    from migration_job.engines import MigrationLock, Session
    from migration_job.run.interruption import Interruption
    from migration_job.run.shared import Shared, SpareConnection
    from migration_job.settings import Settings


def upgrade(settings: Settings, interruption: Interruption, shared: Shared | None = None) -> str:
    """Wait; exit at once if already at target (no lock); else lock, re-check and upgrade.
    In a fleet's child, `shared` holds what the fleet read once."""
    if settings.x_arguments:
        return upgrade_through_env(settings, interruption)
    project = shared.project if shared else project_for(settings)
    known = shared.known if shared else known_heads(settings, project)

    def read_history() -> History:
        return shared.load_history(settings) if shared else load_history(settings)

    with connected(settings, interruption) as session:
        current = seen = session.revisions(project)
        fast = not awaits_repair(session, project)
        if fast and current == known.revisions:
            verify_at_head(session, settings, project, known)
            return at_known_head(current, known, "no lock needed")
        if fast and known.revisions is not None and known.files is None:
            # A manifest names only the heads: a database ahead of them is told apart here.
            # (Read revision files name every revision: the block below tells it apart.)
            newer = newer_database(session, settings, project, current, known.revisions)
            if newer is not None:
                return newer
        session.prepare_for_migrations()
        history = None
        if fast and (known.revisions is None or known.unknown(current)):
            # Without known heads only the full history can tell whether work is pending; a
            # revision the files do not hold is a history problem it explains (exit 7) before
            # any lock.
            history = read_history()
            before = plan_unless_newer(session, settings, project, history, current)
            if isinstance(before, str):
                return before
            if before.at_target:
                return at_target(before, "already at target, lock not needed")
        # With known heads, runners that find work pending wait for the lock before loading
        # Alembic, watching the version table: in a fleet, all but one see the work done and
        # leave without taking the lock or loading Alembic. Not past an unfinished record:
        # only the lock's holder may judge it (clear it, or refuse: exit 10).
        def done_by_another() -> bool:
            return session.revisions(project) == known.revisions

        with migration_lock(session, settings, project, interruption,
                            needless=done_by_another if known.revisions and fast else None,
                            ) as lock:
            current = session.revisions(project)
            if lock is None:
                return at_known_head(current, known, "another runner finished the upgrade")
            refuse_unfinished(session, project, current)
            if current == known.revisions:
                return at_known_head(current, known, nothing_left(seen, current))
            history = history or read_history()
            now = history.plan(current, settings.target)
            if now.at_target:
                return at_target(now, nothing_left(seen, current))
            verify_applied(session, settings, project, history)
            return apply_plan(settings, history, now, interruption, lock,
                              shared.spare if shared else None)


def nothing_left(seen: tuple[str, ...], current: tuple[str, ...]) -> str:
    """Why a runner that took the lock has nothing to apply: another runner did it while
    this one waited, or nothing was pending (it took the lock to judge an unfinished
    record)."""
    if current != seen:
        return "another runner finished the upgrade while we waited"
    return "nothing was pending"


def upgrade_through_env(settings: Settings, interruption: Interruption) -> str:
    """With -x arguments: env.py may choose the version table from them, so only env.py can
    say where the database is. No fast path: under the lock, Alembic reads it through env.py.
    """
    from migration_job.alembic_env.migrate import current_through_env

    project = project_for(settings)
    with connected(settings, interruption) as session:
        session.prepare_for_migrations()
        history = load_history(settings)
        with migration_lock(session, settings, project, interruption) as lock:
            assert lock is not None  # only a `needless` check lets go of it
            refuse_unfinished(session, project, session.revisions(project))
            now = history.plan(current_through_env(settings, history), settings.target)
            if now.at_target:
                return at_target(now, "already at target (read through env.py: -x arguments)")
            read_before_changing(session, settings, project, verifying=False)
            return apply_plan(settings, history, now, interruption, lock)


def plan_unless_newer(session: Session, settings: Settings, project: Project,
                      history: History, current: tuple[str, ...]) -> Plan | str:
    """The plan; or when the database is at revisions this project does not know because it
    is ahead of this image (skew), the summary of accepting that (or exit 7)."""
    try:
        return history.plan(current, settings.target)
    except HistoryError:
        newer = newer_database(session, settings, project, current, history.heads())
        if newer is None:
            raise
        return newer


def verify_applied(session: Session, settings: Settings, project: Project,
                   history: History) -> None:
    """Before applying: warn about, or refuse (exit 11), applied revisions whose file changed
    since they ran (MIGRATE_VERIFY); refuse when the history cannot be read (exit 4 or 7) and
    this run would record in it. Only runs that have work pay for it."""
    from migration_job.applied_history.verification import (
        changed_revisions,
        checksums_of,
        script_paths,
        verify,
    )

    rows = read_before_changing(session, settings, project, verifying=True)
    if rows is not None and settings.verify != "off":
        verify(settings, changed_revisions(checksums_of(rows), script_paths(history.scripts)))


def apply_plan(settings: Settings, history: History, now: Plan, interruption: Interruption,
               lock: MigrationLock, spare: SpareConnection | None = None) -> str:
    """Apply the pending revisions (the lock is held); log and return the summary."""
    from migration_job.alembic_env.migrate import run_alembic
    from migration_job.alembic_env.progress import Progress
    from migration_job.run.lock_retries import with_lock_retries

    progress = Progress("upgrade")
    started = time.monotonic()
    log.info("upgrade_started", f"upgrading from {describe(now.current)} to "
             f"{describe(now.target)}: {len(now.pending)} revision(s) pending",
             current=list(now.current), target=list(now.target), pending=list(now.pending))
    with_lock_retries(
        lambda: run_alembic(settings, history, settings.target, progress, interruption, lock),
        settings, lock, interruption, spare)
    elapsed_ms = (time.monotonic() - started) * 1000
    summary = (f"upgraded {describe(now.current)} -> {describe(now.target)}: "
               f"{len(progress.applied)} revision(s) in {elapsed_ms:.0f} ms")
    log.info("upgrade_finished", summary, applied=[r for r, _ in progress.applied],
             duration_ms=round(elapsed_ms, 1), revision=describe(now.target))
    return summary


def downgrade(settings: Settings, interruption: Interruption) -> str:
    """Wait, lock and downgrade to the explicit target revision."""
    from migration_job.alembic_env.migrate import run_alembic
    from migration_job.alembic_env.progress import Progress
    from migration_job.run.lock_retries import with_lock_retries

    project = project_for(settings)
    with connected(settings, interruption) as session:
        session.prepare_for_migrations()
        history = load_history(settings)
        with migration_lock(session, settings, project, interruption) as lock:
            assert lock is not None  # only a `needless` check lets go of it
            current = session.revisions(project)
            refuse_unfinished(session, project, current)
            history.plan(current, "heads")  # validates the database's revision
            read_before_changing(session, settings, project, verifying=False)
            progress = Progress("downgrade")
            with_lock_retries(
                lambda: run_alembic(settings, history, settings.target, progress,
                                    interruption, lock),
                settings, lock, interruption)
            now = session.revisions(project)
            summary = (f"downgraded {describe(current)} -> {describe(now)}: "
                       f"{len(progress.applied)} revision(s)")
            log.info("downgrade_finished", summary, applied=[r for r, _ in progress.applied],
                     revision=describe(now))
            return summary
