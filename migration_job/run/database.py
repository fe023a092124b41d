"""What the database says, read on one session after waiting for it: its revisions, a
revision started and not finished, and the checksums its applied-history table recorded."""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

from migration_job.errors import HistoryUnreadable
from migration_job.log import log
from migration_job.project import Project, project_for
from migration_job.run import heads
from migration_job.run.wait import connected

if TYPE_CHECKING:
    from migration_job.engines import Session
    from migration_job.engines.unfinished import Unfinished
    from migration_job.run.interruption import Interruption
    from migration_job.settings import Settings


def current_revisions(settings: Settings, interruption: Interruption,
                      project: Project | None = None) -> tuple[str, ...]:
    """The database's revision(s), after waiting for it."""
    return database_state(settings, interruption, project).current


class DatabaseState(NamedTuple):
    """What the database says, read on one session."""

    current: tuple[str, ...]
    # A revision recorded as started and not finished (on an engine without transactional
    # DDL: cut short, or running right now).
    unfinished: Unfinished | None
    # (revision, outcome, checksum) per applied-history row, when asked for.
    recorded: list[tuple[object, ...]]
    # Why the applied-history table could not be read, when asked for.
    unreadable: HistoryUnreadable | None = None


def database_state(settings: Settings, interruption: Interruption,
                   project: Project | None = None, checksums: bool = False) -> DatabaseState:
    """The database's revision(s), a revision started and not finished, and (`checksums`)
    the checksums the applied-history table recorded."""
    project = project or project_for(settings)
    recorded: list[tuple[object, ...]] = []
    unreadable = None
    with connected(settings, interruption) as session:
        current = session.revisions(project)
        unfinished = session.unfinished_log(project)
        found = unfinished.find() if unfinished is not None else None
        if checksums:
            from migration_job.applied_history.verification import recorded_checksums

            try:
                recorded = recorded_checksums(session, settings, project)
            except HistoryUnreadable as error:
                unreadable = error
    if found is not None and found.finished_after_all(current):
        found = None
    if settings.x_arguments:
        from migration_job.alembic_env.migrate import current_through_env

        # env.py may choose the version table from -x arguments: ask it, as `alembic current`.
        current = current_through_env(settings, heads.load_history(settings))
    return DatabaseState(current, found, recorded, unreadable)


def refuse_unfinished(session: Session, project: Project, current: tuple[str, ...]) -> None:
    """With the lock held: exit 10 while a revision that did not finish awaits repair.

    A record whose revision did finish (the version table moved on; only deleting the record
    was lost) is cleared.
    """
    unfinished = session.unfinished_log(project)
    found = unfinished.find() if unfinished is not None else None
    if unfinished is None or found is None:
        return
    if not found.finished_after_all(current):
        raise found.refusal()
    unfinished.clear(found.revision)
    log.info("unfinished_record_cleared", f"revision {found.revision} had finished after all "
             "(the version table moved on): cleared its unfinished record",
             revision=found.revision)


def awaits_repair(session: Session, project: Project) -> bool:
    """Whether a revision is recorded as unfinished (or running now): no fast path then."""
    unfinished = session.unfinished_log(project)
    return unfinished is not None and unfinished.find() is not None
