"""Commands that change nothing: wait, status, check, sql, manifest."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, NamedTuple

from migration_job.applied_history.access import refuse_or_go_on
from migration_job.errors import HistoryError, PendingMigrations, first_line
from migration_job.project import Project, project_for
from migration_job.run import heads, outcome
from migration_job.run.audit import VERIFY_REFUSAL, audit_history
from migration_job.run.database import current_revisions, database_state
from migration_job.run.head_verification import Recorded, files_now, judge
from migration_job.run.heads import load_history
from migration_job.run.wait import connected

if TYPE_CHECKING:
    from alembic.script import ScriptDirectory

    from migration_job.alembic_env.revision_graph import Plan
    from migration_job.engines.unfinished import Unfinished
    from migration_job.run.interruption import Interruption
    from migration_job.settings import Settings


def wait(settings: Settings, interruption: Interruption) -> str:
    """Wait until the database accepts a connection and a query."""
    with connected(settings, interruption):
        return "database reachable"


def describe_unfinished(found: Unfinished) -> str:
    """One line on a revision that started and did not finish."""
    return (f"revision {found.revision} ({found.direction}) started at {found.started_at} on "
            f"{found.runner} and has not finished: it is running now, or was cut short (then "
            "an upgrade refuses with exit 10 until it is repaired and marked repaired)")


class Inspection(NamedTuple):
    """The database against the history: status prints it, check judges it."""

    current: tuple[str, ...]
    heads: tuple[str, ...]
    # None when the history and the database disagree: then `problem` says how.
    plan: Plan | None
    problem: str | None
    # The project's revisions, when they could be read.
    scripts: ScriptDirectory | None = None

    @property
    def pending(self) -> list[str]:
        """What an upgrade would apply (nothing, when there is a problem)."""
        return list(self.plan.pending) if self.plan else []

    @property
    def at_target(self) -> bool:
        """Whether the database is at the target (never, when there is a problem)."""
        return self.plan is not None and self.plan.at_target


def inspect(settings: Settings, current: tuple[str, ...]) -> Inspection:
    """Plan the target against the database's revision(s); a history problem is reported,
    not raised (a relative target still raises: a configuration error, exit 2)."""
    try:
        history = load_history(settings)
    except HistoryError as error:
        return Inspection(current, (), None, str(error))
    heads = history.heads()
    try:
        return Inspection(current, heads, history.plan(current, settings.target), None,
                          history.scripts)
    except HistoryError as error:
        return Inspection(current, heads, None, str(error), history.scripts)


def status(settings: Settings, interruption: Interruption) -> str:
    """Print current revision(s), head(s) and pending revisions; exit 0 if reachable."""
    project = project_for(settings)
    current, unfinished, _, _ = database_state(settings, interruption, project)
    found = inspect(settings, current)
    audit = audit_history(settings, project, found.scripts)
    if audit.unreadable is not None:
        refuse_or_go_on(audit.unreadable, strict=False)
    readable = audit.unreadable is None
    if settings.json_output:
        print(json.dumps({"current": list(found.current), "heads": list(found.heads),
                          "pending": found.pending, "at_target": found.at_target,
                          "target": settings.target, "problem": found.problem,
                          "unfinished": unfinished._asdict() if unfinished else None,
                          "history_unfinished": [row._asdict() for row in audit.unfinished]
                          if readable else None,
                          "changed": [change._asdict() for change in audit.changed]
                          if readable else None,
                          "history_error": None if readable else str(audit.unreadable)}))
    else:
        lines = [f"current: {outcome.describe(found.current)}",
                 f"heads:   {outcome.describe(found.heads)}",
                 f"pending: {', '.join(found.pending) or 'none'}"]
        if found.problem:
            lines.append(f"problem: {found.problem}")
        if unfinished:
            lines.append(f"unfinished: {describe_unfinished(unfinished)}")
        if audit.unreadable is not None:
            lines.append(f"history: {audit.unreadable}")
        lines.extend(f"history: {row.describe()}" for row in audit.unfinished)
        lines.extend(f"changed: {c.revision} ({c.file}) changed since it ran"
                     for c in audit.changed)
        print("\n".join(lines))
    return f"at {outcome.describe(found.current)}, {len(found.pending)} pending"


def check(settings: Settings, interruption: Interruption) -> str:
    """Exit 0 when the database is at the target, 8 when revisions are pending, 7 when the
    history and the database disagree, 11 when an applied revision's file changed
    (MIGRATE_VERIFY=fail): the verdict on what `status` shows.

    Readiness probes call this often: heads known without Alembic answer "at head", after
    comparing the applied files' checksums, still without Alembic.
    """
    project = project_for(settings)
    verifying = settings.verify != "off"
    current, unfinished, recorded, unreadable = database_state(settings, interruption, project,
                                                               verifying)
    known = heads.known_heads(settings, project)
    if unfinished is None and current == known.revisions:
        if not verifying:
            return outcome.at_known_head(current, known, "database is at target")
        files = files_now(settings, project, known)
        if files is not None:
            judge(settings, files, Recorded(recorded, unreadable), VERIFY_REFUSAL)
            return outcome.at_known_head(current, known, "database is at target")
    found = inspect(settings, current)
    audit_history(settings, project, found.scripts).report(settings)
    if found.plan is None:
        accepted = newer_than_image(settings, interruption, project, found)
        if accepted is None:
            raise HistoryError(str(found.problem))
        return accepted
    if not found.at_target or unfinished:
        also = f"; {describe_unfinished(unfinished)}" if unfinished else ""
        raise PendingMigrations(f"{len(found.pending)} revision(s) pending: "
                                f"{', '.join(found.pending) or 'none'}{also}; run the upgrade")
    return outcome.at_target(found.plan, "database is at target")


def newer_than_image(settings: Settings, interruption: Interruption, project: Project,
                     found: Inspection) -> str | None:
    """For a database the history cannot plan: when it is ahead of this image's head, exit 7
    saying so, or (MIGRATE_ON_NEWER_DATABASE=accept) the summary of accepting it; else None."""
    if not found.heads:
        return None
    from migration_job.applied_history.skew import newer_database

    with connected(settings, interruption) as session:
        return newer_database(session, settings, project, found.current, found.heads)


def sql(settings: Settings, interruption: Interruption) -> str:
    """Print the SQL that `upgrade` would run, from --from or the database's revision."""
    from alembic.util import CommandError

    from migration_job.alembic_env.migrate import offline_sql

    history = load_history(settings)
    start = settings.from_revision
    if start is not None:
        from migration_job.alembic_env.revision_graph import start_from

        start_from(history.scripts, start)  # an unknown one: exit 7, naming it
    else:
        current = current_revisions(settings, interruption)
        found = history.plan(current, settings.target)
        if found.at_target:
            print(f"-- already at {outcome.describe(found.target)}: nothing to run")
            return "nothing to run"
        if len(current) > 1:
            raise HistoryError("the database has several heads; pass --from REV")
        start = current[0] if current else None
    try:
        offline_sql(history, start, settings.target)
    except CommandError as error:
        raise HistoryError(f"cannot render SQL: {first_line(error)}") from None
    return f"SQL printed from {start or 'base'} to {settings.target}"


def manifest(settings: Settings, interruption: Interruption) -> str:
    """Write the heads manifest that lets no-op runs skip loading Alembic (no database needed)."""
    from migration_job.alembic_env.revision_graph import record_manifest

    path = record_manifest(load_history(settings))
    print(path)
    return f"manifest written to {path}"
