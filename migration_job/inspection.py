"""Commands that change nothing: wait, status, check, sql, manifest."""

from __future__ import annotations

import json

from migration_job.config import Settings
from migration_job.database import read_revisions
from migration_job.errors import HistoryError, PendingMigrations
from migration_job.interruption import Interruption
from migration_job.project import Project, read_project
from migration_job.runner import (
    at_head_by_manifest,
    at_target,
    connected,
    describe,
    load_history,
    usable_manifest_heads,
)
from migration_job.wait import first_line


def wait(settings: Settings, interruption: Interruption) -> str:
    """Wait until the database accepts a connection and a query."""
    with connected(settings, interruption):
        return "database reachable"


def current_revisions(settings: Settings, interruption: Interruption,
                      project: Project | None = None) -> tuple[str, ...]:
    """The database's revision(s), after waiting for it."""
    project = project or read_project(settings.alembic_config)
    with connected(settings, interruption) as connection:
        return read_revisions(connection, project)


def status(settings: Settings, interruption: Interruption) -> str:
    """Print current revision(s), head(s) and pending revisions; exit 0 if reachable."""
    current = current_revisions(settings, interruption)
    history = load_history(settings)
    try:
        found = history.plan(current, settings.target)
        pending, at_target_now, problem = list(found.pending), found.at_target, None
    except HistoryError as error:
        pending, at_target_now, problem = [], False, str(error)
    heads = tuple(sorted(history.scripts.get_heads()))
    if settings.json_output:
        print(json.dumps({"current": list(current), "heads": list(heads), "pending": pending,
                          "at_target": at_target_now, "target": settings.target,
                          "problem": problem}))
    else:
        lines = [f"current: {describe(current)}", f"heads:   {describe(heads)}",
                 f"pending: {', '.join(pending) or 'none'}"]
        print("\n".join(lines + ([f"problem: {problem}"] if problem else [])))
    return f"at {describe(current)}, {len(pending)} pending"


def check(settings: Settings, interruption: Interruption) -> str:
    """Exit 0 when the database is at the target, 8 when revisions are pending.

    Readiness probes call this often: a fresh manifest answers "at head" without Alembic.
    """
    project = read_project(settings.alembic_config)
    current = current_revisions(settings, interruption, project)
    if current == usable_manifest_heads(settings, project):
        return at_head_by_manifest(current, "database is at target")
    found = load_history(settings).plan(current, settings.target)
    if not found.at_target:
        raise PendingMigrations(f"{len(found.pending)} revision(s) pending: "
                                f"{', '.join(found.pending)}; run the upgrade")
    return at_target(found, "database is at target")


def sql(settings: Settings, interruption: Interruption) -> str:
    """Print the SQL that `upgrade` would run, from --from or the database's revision."""
    from alembic.util import CommandError

    from migration_job.migrate import offline_sql

    history = load_history(settings)
    start = settings.from_revision
    if start is None:
        current = current_revisions(settings, interruption)
        found = history.plan(current, settings.target)
        if found.at_target:
            print(f"-- already at {describe(found.target)}: nothing to run")
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
    from migration_job.history import record_manifest

    path = record_manifest(load_history(settings))
    print(path)
    return f"manifest written to {path}"
