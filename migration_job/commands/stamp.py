"""`stamp REV`: adopt a database that was created without migrations (a baseline).

The version table is set to REV without running any revision, under the wait and the lock like
any change, and recorded in the applied-history table, with the revisions it takes out of the
version table (`removed`). A database that already holds a revision is refused unless
`--replace` says to overwrite it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from migration_job.applied_history.access import read_before_changing
from migration_job.errors import HistoryError
from migration_job.log import log
from migration_job.project import project_for
from migration_job.run.database import refuse_unfinished
from migration_job.run.heads import load_history
from migration_job.run.lock import migration_lock
from migration_job.run.outcome import describe
from migration_job.run.wait import connected

if TYPE_CHECKING:
    from migration_job.alembic_env.revision_graph import History
    from migration_job.run.interruption import Interruption
    from migration_job.settings import Settings


def stamp(settings: Settings, interruption: Interruption) -> str:
    """Set the version table to TARGET without running revisions; exit 7 for an unknown one,
    or when the database already holds a revision and --replace is not given."""
    from migration_job.alembic_env.migrate import run_alembic
    from migration_job.alembic_env.progress import Progress
    from migration_job.alembic_env.revision_graph import resolve

    project = project_for(settings)
    history = load_history(settings)
    wanted = resolve(history.scripts, settings.target)  # unknown: exit 7, before connecting
    with connected(settings, interruption) as session:
        session.prepare_for_migrations()
        with migration_lock(session, settings, project, interruption) as lock:
            assert lock is not None  # only a `needless` check lets go of it
            current = session.revisions(project)
            refuse_unfinished(session, project, current)
            if current and not settings.replace:
                raise HistoryError(
                    f"the database is already at {describe(current)}: stamp adopts a database "
                    f"without revisions; to overwrite, run `stamp {settings.target} --replace`")
            read_before_changing(session, settings, project, verifying=False)
            run_alembic(settings, history, settings.target, Progress("stamp"), interruption,
                        lock, removed_by(history, current, wanted), purge=bool(current))
    summary = f"stamped {describe(wanted)} (was {describe(current)}): no revision ran"
    log.info("stamped", summary, revision=describe(wanted), replaced=list(current))
    return summary


def removed_by(history: History, current: tuple[str, ...],
               wanted: tuple[str, ...]) -> tuple[str, ...]:
    """The revisions the version table stops holding when it goes from `current` to `wanted`:
    those `current` holds (each and all below it) that `wanted` does not."""
    from migration_job.alembic_env.revision_graph import ancestry

    kept = set(ancestry(history.scripts, wanted)) if wanted else set()
    held: list[str] = []
    for revision in current:
        try:
            below = ancestry(history.scripts, (revision,))
        except HistoryError:  # a revision this project does not know: only itself
            below = [revision]
        held += [r for r in below if r not in held]
    return tuple(r for r in held if r not in kept)
