"""Version skew: a database ahead of this image (the image was rolled back after a newer one
migrated), told apart from a database at a revision nobody knows.

The version table alone cannot tell them apart: both hold a revision this image does not know.
The applied-history table can: it records each revision's parents, so when the database's
revisions lead back through recorded revisions to this image's head, the database is that many
revisions ahead. MIGRATE_ON_NEWER_DATABASE then decides: fail (exit 7) or accept (exit 0,
without the lock). Anything else stays the history problem it was (exit 7).

Read on the job's own session without SQLAlchemy: it runs before the lock, in every runner of
a fleet that finds work to do, never on the no-op fast path.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from migration_job.applied_history.access import recorded_rows, refuse_or_go_on
from migration_job.errors import HistoryUnreadable, NewerDatabase
from migration_job.log import log

if TYPE_CHECKING:
    from migration_job.engines import Session
    from migration_job.project import Project
    from migration_job.settings import Settings


def revisions_ahead(parents: Mapping[str, tuple[str, ...]], current: tuple[str, ...],
                    heads: tuple[str, ...]) -> int | None:
    """How many recorded revisions lie between `heads` and `current`, when every path down
    from `current` reaches one of `heads` through recorded revisions; else None."""
    ahead: set[str] = set()
    frontier = [revision for revision in current if revision not in heads]
    reached = False
    while frontier:
        revision = frontier.pop()
        if revision in heads:
            reached = True
        elif revision not in ahead:
            if not parents.get(revision):
                return None  # unrecorded, or a root: not built on this image's head
            ahead.add(revision)
            frontier.extend(parents[revision])
    return len(ahead) if reached else None


def newer_database(session: Session, settings: Settings, project: Project,
                   current: tuple[str, ...], heads: tuple[str, ...]) -> str | None:
    """When the database is ahead of `heads`: the summary of accepting it, or NewerDatabase
    (exit 7) per MIGRATE_ON_NEWER_DATABASE. None when it is not ahead (call it only when the
    database is not at `heads`), or not known to be: the history cannot be read (a warning)."""
    try:
        rows = recorded_rows(session, settings, project)
    except HistoryUnreadable as error:
        refuse_or_go_on(error, strict=False)  # then it is not known to be ahead
        return None
    parents = {str(row["revision"]): tuple(p for p in str(row["parents"]).split(",") if p)
               for row in rows}
    ahead = revisions_ahead(parents, current, heads)
    if ahead is None:
        return None
    where = (f"the database is at {', '.join(current)}, {ahead} revision(s) ahead of this "
             f"image's head {', '.join(heads)} (the image is older than the database's schema)")
    if settings.on_newer_database != "accept":
        raise NewerDatabase(f"{where}; deploy the newer image, or set "
                            "MIGRATE_ON_NEWER_DATABASE=accept if this image works with it")
    log.info("newer_database_accepted", f"{where}: accepted (MIGRATE_ON_NEWER_DATABASE="
             "accept), nothing to do", revisions_ahead=ahead, current=list(current),
             heads=list(heads))
    return f"{where}: accepted, lock not needed"
