"""`mark-repaired REVISION`: an operator's word that a revision that did not finish is repaired.

Only engines without transactional DDL (MySQL/MariaDB) leave such a revision behind; the job
refuses to go on (exit 10) until this command clears its record, under the migration lock so
that no runner is in the middle of that revision.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from migration_job.errors import ConfigError
from migration_job.log import log
from migration_job.project import project_for
from migration_job.run.lock import migration_lock
from migration_job.run.wait import connected

if TYPE_CHECKING:
    from migration_job.run.interruption import Interruption
    from migration_job.settings import Settings


def mark_repaired(settings: Settings, interruption: Interruption) -> str:
    """Clear the unfinished record of settings.target; exit 2 if it names another or none."""
    project = project_for(settings)
    revision = settings.target
    with connected(settings, interruption) as session:
        unfinished = session.unfinished_log(project)
        if unfinished is None:
            raise ConfigError(f"nothing to mark repaired: {session.describe()} rolls back a "
                              "revision that does not finish")
        with migration_lock(session, settings, project, interruption):
            found = unfinished.find()
            if found is None:
                raise ConfigError(f"no unfinished revision is recorded, so {revision} needs "
                                  "no repair; run the job as usual")
            if found.revision != revision:
                raise ConfigError(f"the revision that did not finish is {found.revision}, not "
                                  f"{revision}; repair {found.revision} and mark that one")
            unfinished.clear(revision)
    summary = (f"marked revision {revision} repaired: the next run goes on from "
               f"{', '.join(found.before) or 'base'}")
    log.info("revision_marked_repaired", summary, revision=revision)
    return summary
