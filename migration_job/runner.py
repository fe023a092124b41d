"""The job's story, one function per command: wait, fast path, lock, upgrade, report.

Alembic and SQLAlchemy are imported only past the fast path (inside the functions that need
them): importing them costs several times more than a whole no-op run.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from typing import TYPE_CHECKING

import psycopg2

from migration_job import database
from migration_job.config import Settings
from migration_job.database import Connection, read_revisions
from migration_job.errors import (
    DatabaseUnreachable,
    HistoryError,
    JobError,
    MigrationFailed,
    PendingMigrations,
)
from migration_job.interruption import Interruption
from migration_job.locks import PostgresAdvisoryLock, lock_key_for
from migration_job.log import log
from migration_job.manifest import fresh_heads
from migration_job.project import Project, read_project
from migration_job.wait import first_line, wait_for_database

if TYPE_CHECKING:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    from migration_job.history import Plan
    from migration_job.migrate import Progress


def run(settings: Settings, interruption: Interruption) -> str:
    """Run the configured command; return its summary line or raise a JobError."""
    commands = {"upgrade": upgrade, "downgrade": downgrade, "wait": wait, "status": status,
                "check": check, "sql": sql, "manifest": manifest}
    return commands[settings.command](settings, interruption)


def upgrade(settings: Settings, interruption: Interruption) -> str:
    """Wait, take the fast path if already at target, else lock, re-check and upgrade."""
    project = read_project(settings.alembic_config)
    with connected(settings, interruption) as connection:
        current = read_revisions(connection, project)
        if at_head_by_manifest(settings, project, current):
            summary = f"database at {describe(current)}: already at head (manifest), no lock needed"
            log.info("already_at_target", summary, revision=describe(current), via="manifest")
            return summary
        from migration_job.history import alembic_config, load_scripts, plan
        from migration_job.migrate import Progress

        config = alembic_config(settings)
        scripts = load_scripts(config)
        before = plan(scripts, current, settings.target)
        if before.at_target:
            return at_target(before, "already at target, lock not needed")
        with migration_lock(connection, settings, project, interruption):
            now = plan(scripts, read_revisions(connection, project), settings.target)
            if now.at_target:
                return at_target(now, "another runner finished the upgrade while we waited")
            progress = Progress("upgrade")
            started = time.monotonic()
            log.info("upgrade_started", f"upgrading from {describe(now.current)} to "
                     f"{describe(now.target)}: {len(now.pending)} revision(s) pending",
                     current=list(now.current), target=list(now.target),
                     pending=list(now.pending))
            migrate(settings, config, scripts, settings.target, progress, interruption)
            elapsed_ms = (time.monotonic() - started) * 1000
            summary = (f"upgraded {describe(now.current)} -> {describe(now.target)}: "
                       f"{len(progress.applied)} revision(s) in {elapsed_ms:.0f} ms")
            log.info("upgrade_finished", summary, applied=[r for r, _ in progress.applied],
                     duration_ms=round(elapsed_ms, 1), revision=describe(now.target))
            return summary


def downgrade(settings: Settings, interruption: Interruption) -> str:
    """Wait, lock and downgrade to the explicit target revision."""
    from migration_job.history import alembic_config, load_scripts, plan
    from migration_job.migrate import Progress

    project = read_project(settings.alembic_config)
    with connected(settings, interruption) as connection:
        config = alembic_config(settings)
        scripts = load_scripts(config)
        with migration_lock(connection, settings, project, interruption):
            current = read_revisions(connection, project)
            plan(scripts, current, "heads")  # validates the database's revision
            progress = Progress("downgrade")
            migrate(settings, config, scripts, settings.target, progress, interruption)
            now = read_revisions(connection, project)
            summary = (f"downgraded {describe(current)} -> {describe(now)}: "
                       f"{len(progress.applied)} revision(s)")
            log.info("downgrade_finished", summary, applied=[r for r, _ in progress.applied],
                     revision=describe(now))
            return summary


def wait(settings: Settings, interruption: Interruption) -> str:
    """Wait until the database accepts a connection and a query."""
    with connected(settings, interruption):
        return "database reachable"


def status(settings: Settings, interruption: Interruption) -> str:
    """Print current revision(s), head(s) and pending revisions; exit 0 if reachable."""
    from migration_job.history import alembic_config, load_scripts, plan

    project = read_project(settings.alembic_config)
    with connected(settings, interruption) as connection:
        current = read_revisions(connection, project)
    scripts = load_scripts(alembic_config(settings))
    try:
        found: Plan | None = plan(scripts, current, settings.target)
        problem = None
    except HistoryError as error:
        found, problem = None, str(error)
    heads = tuple(sorted(scripts.get_heads()))
    pending = list(found.pending) if found else []
    if settings.json_output:
        print(json.dumps({"current": list(current), "heads": list(heads), "pending": pending,
                          "at_target": bool(found and found.at_target),
                          "target": settings.target, "problem": problem}))
    else:
        print(f"current: {describe(current)}\nheads:   {describe(heads)}\n"
              f"pending: {', '.join(pending) or 'none'}" + (f"\nproblem: {problem}" if problem
                                                              else ""))
    return f"at {describe(current)}, {len(pending)} pending"


def check(settings: Settings, interruption: Interruption) -> str:
    """Exit 0 when the database is at the target, 8 when revisions are pending."""
    from migration_job.history import alembic_config, load_scripts, plan

    project = read_project(settings.alembic_config)
    with connected(settings, interruption) as connection:
        current = read_revisions(connection, project)
    found = plan(load_scripts(alembic_config(settings)), current, settings.target)
    if not found.at_target:
        raise PendingMigrations(f"{len(found.pending)} revision(s) pending: "
                                f"{', '.join(found.pending)}; run the upgrade")
    return at_target(found, "database is at target")


def sql(settings: Settings, interruption: Interruption) -> str:
    """Print the SQL that `upgrade` would run, from --from or the database's revision."""
    from alembic.util import CommandError

    from migration_job.history import alembic_config, load_scripts, plan
    from migration_job.migrate import offline_sql

    config = alembic_config(settings)
    scripts = load_scripts(config)
    start = settings.from_revision
    if start is None:
        project = read_project(settings.alembic_config)
        with connected(settings, interruption) as connection:
            current = read_revisions(connection, project)
        found = plan(scripts, current, settings.target)
        if found.at_target:
            print(f"-- already at {describe(found.target)}: nothing to run")
            return "nothing to run"
        if len(current) > 1:
            raise HistoryError("the database has several heads; pass --from REV")
        start = current[0] if current else None
    try:
        offline_sql(config, scripts, start, settings.target)
    except CommandError as error:
        raise HistoryError(f"cannot render SQL: {first_line(error)}") from None
    return f"SQL printed from {start or 'base'} to {settings.target}"


def manifest(settings: Settings, interruption: Interruption) -> str:
    """Write the heads manifest that lets no-op runs skip loading Alembic (no database needed)."""
    from migration_job.history import alembic_config, load_scripts, record_manifest

    config = alembic_config(settings)
    path = record_manifest(config, load_scripts(config))
    print(path)
    return f"manifest written to {path}"


def at_head_by_manifest(settings: Settings, project: Project,
                        current: tuple[str, ...]) -> bool:
    """Whether a fresh manifest proves the database is at head (never guesses: stale = no)."""
    if settings.target not in ("head", "heads") or not current:
        return False
    heads = fresh_heads(project.config_path, project.script_location)
    if heads is None:
        log.debug("manifest_not_used", "no fresh heads manifest: reading the full history")
        return False
    if settings.target == "head" and len(heads) != 1:
        return False
    return heads == current


@contextmanager
def connected(settings: Settings, interruption: Interruption) -> Iterator[Connection]:
    """A ready connection, after waiting for the database."""
    connection = wait_for_database(settings, sleep=interruption.sleep)
    with closing(connection):
        database.enable_dead_client_detection(connection)
        log.info("database_ready", f"connected to {database.describe(connection)}",
                 server_version=connection.server_version)
        yield connection


@contextmanager
def migration_lock(connection: Connection, settings: Settings, project: Project,
                   interruption: Interruption) -> Iterator[None]:
    """Hold the advisory lock for the block; released on every way out."""
    key = settings.lock_key
    if key is None:
        key = lock_key_for(connection, project.version_table, project.version_table_schema)
    database.keep_session_alive(connection)
    lock = PostgresAdvisoryLock(connection, key, sleep=interruption.sleep)
    lock.acquire(settings.lock_timeout)
    try:
        yield
    finally:
        try:
            lock.release()
        except psycopg2.Error as error:
            log.warning("lock_release_failed", f"could not release the lock cleanly "
                        f"({first_line(error)}); closing the session releases it")


def migrate(settings: Settings, config: Config, scripts: ScriptDirectory, destination: str,
            progress: Progress, interruption: Interruption) -> None:
    """Run Alembic, turning what it raises into the contract's errors."""
    from alembic.util import CommandError
    from sqlalchemy.exc import DBAPIError

    from migration_job.migrate import apply

    try:
        apply(settings, config, scripts, destination, progress)
    except JobError:
        raise
    except CommandError as error:
        raise HistoryError(f"Alembic refused: {first_line(error)}") from None
    except Exception as error:
        interruption.check()
        if progress.running is None and not isinstance(error, (DBAPIError, psycopg2.Error)):
            raise  # env.py itself is broken: a traceback helps more than a summary
        cause = error.orig if isinstance(error, DBAPIError) and error.orig else error
        where = (f"revision {progress.revision_of(progress.running)} "
                 f"({progress.running.doc or 'no message'})" if progress.running
                 else "env.py, before any revision")
        if database.is_connection_lost(cause):
            raise DatabaseUnreachable(
                f"lost the database connection during {where}: {first_line(cause)}; the "
                "server rolled that revision back; run the job again") from None
        log.error("revision_failed", f"{where} failed: {first_line(cause)}",
                  revision=progress.revision_of(progress.running) if progress.running else None,
                  error=first_line(cause))
        raise MigrationFailed(f"{where} failed: {first_line(cause)}; its transaction was "
                              f"rolled back ({len(progress.applied)} earlier revision(s) "
                              "stay applied); fix the migration and deploy again") from None


def at_target(found: Plan, reason: str) -> str:
    """Log and summarise a run that had nothing to do."""
    summary = f"database at {describe(found.target)}: {reason}"
    log.info("already_at_target", summary, revision=describe(found.target))
    return summary


def describe(revisions: tuple[str, ...]) -> str:
    """Revisions for humans: 'base' when there are none."""
    return ", ".join(revisions) if revisions else "base"

