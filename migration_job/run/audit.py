"""The applied-history table read back and judged against the project's files: what status
and check report from it (revisions that started and never finished, files changed since)."""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

from migration_job.applied_history.access import refuse_or_go_on, table_name, using_history
from migration_job.errors import HistoryUnreadable
from migration_job.log import log
from migration_job.project import Project

if TYPE_CHECKING:
    from alembic.script import ScriptDirectory

    from migration_job.applied_history.recorder import Row
    from migration_job.applied_history.verification import Changed
    from migration_job.settings import Settings

# Why check refuses when the history cannot be read under MIGRATE_VERIFY=fail.
VERIFY_REFUSAL = ("check cannot verify the applied revisions' files without it "
                  "(MIGRATE_VERIFY=fail)")


def recorded_history(settings: Settings, project: Project) -> list[Row]:
    """The applied-history table's rows (oldest first), on a connection of its own."""
    from migration_job.alembic_env.migrate import job_engine
    from migration_job.applied_history.recorder import history_table, read_rows

    engine = job_engine(settings)
    try:
        with (using_history(settings, table_name(settings, project)),
              engine.connect() as connection):
            return read_rows(connection, history_table(settings, project))
    finally:
        engine.dispose()


class Audit(NamedTuple):
    """What status and check report from the history table."""

    # Rows whose revision started and never finished: running now, or the runner was killed.
    unfinished: list[Row]
    # Applied revisions whose file changed since they ran (MIGRATE_VERIFY not off).
    changed: list[Changed]
    # Why the table could not be read (then the two lists are empty).
    unreadable: HistoryUnreadable | None = None

    def report(self, settings: Settings) -> None:
        """Warn about each finding; a changed file fails with exit 11 under MIGRATE_VERIFY=fail,
        and so does a table that cannot be read (exit 4 or 7): nothing can be verified."""
        from migration_job.applied_history.verification import verify

        if self.unreadable is not None:
            refuse_or_go_on(self.unreadable, strict=settings.verify == "fail",
                            refusal=VERIFY_REFUSAL)
        for row in self.unfinished:
            log.warning("history_unfinished", f"history: {row.describe()}",
                        revision=row.revision, direction=row.direction,
                        started_at=row.started_at)
        verify(settings, self.changed)


def audit_history(settings: Settings, project: Project,
                  scripts: ScriptDirectory | None) -> Audit:
    """Read the history table once and judge it against the project's files."""
    from migration_job.applied_history.verification import changed_revisions, script_paths

    try:
        rows = recorded_history(settings, project)
    except HistoryUnreadable as error:
        return Audit([], [], error)
    changed = []
    if scripts is not None and settings.verify != "off":
        changed = changed_revisions(((r.revision, r.outcome, r.checksum) for r in rows),
                                    script_paths(scripts))
    return Audit([row for row in rows if row.finished_at is None], changed)
