"""Running Alembic: applying revisions with per-revision progress, and offline SQL."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any, TextIO

import sqlalchemy
from alembic.config import Config
from alembic.runtime.environment import EnvironmentContext
from alembic.runtime.migration import MigrationContext, MigrationStep
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import NullPool

from migration_job.alembic_env.env_drivers import driver_mismatch
from migration_job.alembic_env.implicit_commits import JOB_OWN, implicit_commits
from migration_job.alembic_env.progress import Progress
from migration_job.alembic_env.revision_failure import failure, what_stays
from migration_job.alembic_env.revision_graph import History
from migration_job.alembic_env.signal_stop import SignalStop
from migration_job.alembic_env.signals import Signals
from migration_job.applied_history.recorder import Recorder, on_session_of
from migration_job.engines import MigrationLock, sqlalchemy_url
from migration_job.engines.unfinished import UnfinishedLog, repair_advice
from migration_job.errors import DdlLockTimedOut, HistoryError, JobError, first_line
from migration_job.log import log
from migration_job.project import project_for
from migration_job.settings import Settings


def job_environment(config: Config, scripts: ScriptDirectory,
                    lock: MigrationLock | None = None,
                    interruption: Signals | None = None,
                    recorder: Recorder | None = None,
                    unfinished: UnfinishedLog | None = None,
                    **options: Any) -> EnvironmentContext:
    """Alembic's EnvironmentContext with the contract's rules for any env.py: each revision
    runs in its own transaction, even if env.py did not ask for it, and (given the lock)
    checks inside that transaction, before it commits, that no signal came and that the lock
    is still held; (given a recorder) closes the revision's row in the applied-history
    table in that transaction; and (given the unfinished log, and a revision on the lock's
    session) deletes the revision's unfinished record in it, with the version table's update.

    The override sits on the instance because Alembic publishes the context to env.py
    (`from alembic import context`) per class: a subclass would not be published.
    """
    environment = EnvironmentContext(config, scripts, **options)
    configure = environment.configure

    def before_commit(ctx: MigrationContext, **_: Any) -> None:
        assert lock is not None
        assert ctx.connection is not None
        # The history row's statement may check the lock too (one round trip for both).
        checked = recorder.finished(ctx, lock) if recorder is not None else False
        if interruption is not None:
            interruption.check()  # a statement a signal could not cancel ran to its end
        if unfinished is not None and on_session_of(ctx.connection, lock):
            # The record's DELETE checks the lock too; it deletes nothing once it is lost.
            checked = unfinished.finishing(lock.key) or checked
        if not checked:
            lock.verify()

    def configure_per_migration(*args: Any, **kwargs: Any) -> None:
        kwargs["transaction_per_migration"] = True
        if lock is not None:
            own = kwargs.get("on_version_apply") or ()
            kwargs["on_version_apply"] = (*(own if isinstance(own, (list, tuple)) else (own,)),
                                          before_commit)
        configure(*args, **kwargs)

    environment.configure = configure_per_migration  # type: ignore[method-assign]
    return environment


def guarded(steps: Iterable[MigrationStep], context: MigrationContext, lock: MigrationLock,
            interruption: Signals, unfinished: UnfinishedLog | None,
            recorder: Recorder | None, verb: str) -> Iterator[MigrationStep]:
    """Steps that start only while no signal came, whose body first passes the lock's
    revision gate inside the step's transaction, which (on an engine without
    transactional DDL) are recorded as unfinished until their transaction ended, and which
    get a row in the applied-history table before they start."""
    gate = lock.revision_gate()
    # Built once: SQLAlchemy reuses its compiled form for every revision.
    gate_statement = (None if gate is None else
                      sqlalchemy.text(gate[0]).execution_options(**{JOB_OWN: True}))
    if recorder is not None and recorder.in_transaction:
        _record_before_autocommit(context, recorder)
    assert context.connection is not None
    # On the lock's session the unfinished record's commit commits the history row too.
    shared = unfinished is not None and on_session_of(context.connection, lock)
    for step in steps:
        interruption.check()
        revision = Progress.revision_of(step)
        # The history's row first: a table the job cannot write to stops the run before the
        # unfinished record, which would otherwise refuse every later run (exit 10).
        if recorder is not None:
            recorder.started(context, step, revision, commit=not shared)
        if unfinished is not None:
            unfinished.started(revision, verb)
        if gate is not None and gate_statement is not None:
            step.migration_fn = _gated_body(step.migration_fn, context, gate_statement, gate[1])
        yield step
        # Resumed only once Alembic finished the step: its transaction committed.
        if recorder is not None:
            recorder.committed()
        if unfinished is not None:
            unfinished.finished(revision)
    if unfinished is not None:
        unfinished.all_finished()


def _record_before_autocommit(context: MigrationContext, recorder: Recorder) -> None:
    """Entering Alembic's autocommit_block commits what the revision ran so far: the
    revision's history row goes in first (open), so that it commits with that part."""
    enter = context.autocommit_block

    @contextmanager
    def autocommit_block() -> Iterator[None]:
        assert context.connection is not None
        recorder.committing_early(context.connection)
        with enter():
            yield

    context.autocommit_block = autocommit_block  # type: ignore[method-assign]


def _gated_body(body: Any, context: MigrationContext, statement: sqlalchemy.TextClause,
                parameters: dict[str, int]) -> Any:
    def gated_body(*args: Any, **kwargs: Any) -> None:
        assert context.connection is not None
        context.connection.execute(statement, parameters)
        body(*args, **kwargs)

    return gated_body


def job_engine(settings: Settings) -> sqlalchemy.Engine:
    """An engine for the job's own SQLAlchemy connections (no pool: one run, few sessions)."""
    return sqlalchemy.create_engine(
        sqlalchemy_url(settings.database_url),
        poolclass=NullPool,
        connect_args=settings.engine.sqlalchemy_connect_args(),
    )


def apply(settings: Settings, history: History, destination: str, progress: Progress,
          interruption: Signals, lock: MigrationLock, removing: tuple[str, ...] = (),
          **options: Any) -> None:
    """Upgrade (or downgrade or stamp, per progress.verb) to `destination` through the
    project's env.py; `options` go to Alembic's EnvironmentContext (purge=True for a stamp
    that replaces the version table's revisions, `removing` those it takes out).

    A connection is handed to env.py in config.attributes["connection"] (Alembic's cookbook
    pattern); an env.py that ignores it opens its own engine from sqlalchemy.url instead.
    Either way it gets the lock's own session (Session.lent_to_sqlalchemy).
    """
    config, scripts = history
    project = project_for(settings)
    unfinished = lock.session.unfinished_log(project)
    progress.running, progress.committed = None, False  # a retry starts afresh
    recorder = (Recorder(settings, project, progress.verb, removing)
                if settings.record_history else None)

    stop = SignalStop(interruption, progress)

    # The same step lists alembic.command.upgrade/downgrade/stamp build, through Progress.
    def steps(revision: Any, context: MigrationContext) -> Iterable[MigrationStep]:
        planned: Iterable[MigrationStep]
        if progress.verb == "upgrade":
            planned = scripts._upgrade_revs(destination, revision)
        elif progress.verb == "stamp":
            planned = scripts._stamp_revs(destination, revision)
        else:
            planned = scripts._downgrade_revs(destination, revision)
        stop.guard_autocommit_blocks(context)
        return progress.track(guarded(planned, context, lock, interruption, unfinished,
                                      recorder, progress.verb))

    engine = job_engine(settings)
    try:
        with (lock.session.lent_to_sqlalchemy(sqlalchemy_url(settings.database_url)),
              implicit_commits(settings.engine, progress,
                               recorder.table.name if recorder else None),
              stop.watching_statements(),
              engine.connect() as connection):
            config.attributes["connection"] = connection
            try:
                with job_environment(config, scripts, lock, interruption, recorder,
                                     unfinished, fn=steps, destination_rev=destination,
                                     **options):
                    scripts.run_env()
            except BaseException:
                stop.stand_down()
                if recorder is not None:
                    interrupted = interruption.requested.is_set()
                    recorder.ended(connection, "interrupted" if interrupted else "failed")
                raise
    finally:
        config.attributes.pop("connection", None)
        engine.dispose()


def current_through_env(settings: Settings, history: History) -> tuple[str, ...]:
    """The database's revisions as the project's env.py sees them (as `alembic current`).

    With -x arguments env.py may choose the version table itself (a tenant's schema, say),
    which the job's own reading of alembic.ini cannot know.
    """
    config, scripts = history
    found: list[str] = []

    def capture(revision: Any, context: MigrationContext) -> list[MigrationStep]:
        found.extend(context.get_current_heads())
        return []

    engine = job_engine(settings)
    try:
        with engine.connect() as connection:
            config.attributes["connection"] = connection
            with job_environment(config, scripts, fn=capture, dont_mutate=True):
                scripts.run_env()
    except CommandError as error:
        raise HistoryError(f"Alembic refused: {first_line(error)}") from None
    except Exception as error:
        mismatch = driver_mismatch(error, config)
        if mismatch is None:
            raise
        raise mismatch from None
    finally:
        config.attributes.pop("connection", None)
        engine.dispose()
    return tuple(sorted(found))


def offline_sql(history: History, starting_rev: str | None, destination: str,
                output: TextIO = sys.stdout) -> None:
    """Print the SQL that upgrading from `starting_rev` to `destination` would run."""
    config, scripts = history
    config.output_buffer = output

    def steps(revision: Any, context: MigrationContext) -> Iterable[MigrationStep]:
        return scripts._upgrade_revs(destination, revision)

    with job_environment(config, scripts, fn=steps, as_sql=True, starting_rev=starting_rev,
                         destination_rev=destination):
        scripts.run_env()


def run_alembic(settings: Settings, history: History, destination: str, progress: Progress,
                interruption: Signals, lock: MigrationLock, removing: tuple[str, ...] = (),
                **options: Any) -> None:
    """Apply through Alembic (the lock is held), turning what it raises into contract errors."""
    try:
        apply(settings, history, destination, progress, interruption, lock, removing,
              **options)
    except CommandError as error:
        raise HistoryError(f"Alembic refused: {first_line(error)}") from None
    except Exception as error:
        if interruption.requested.is_set():
            _note_interrupted(settings, progress, interruption)
        if isinstance(error, JobError):
            raise
        interruption.check()
        engine = settings.engine
        if progress.running is None:
            mismatch = driver_mismatch(error, history.config)
            if mismatch is not None:
                raise mismatch from None
            # asyncpg lets the OS's errors through (refused, reset) unwrapped.
            if not isinstance(error, (DBAPIError, ConnectionError, *engine.errors)):
                raise  # env.py itself is broken: a traceback helps more than a summary
        failed = failure(settings, error, progress, lock)
        if isinstance(failed, DdlLockTimedOut) and not engine.transactional_ddl:
            # Nothing of it was committed: it may run again, not only after a repair.
            unfinished = lock.session.unfinished_log(project_for(settings))
            if unfinished is not None:
                unfinished.clear(failed.revision)
        raise failed from None


def _note_interrupted(settings: Settings, progress: Progress,
                      interruption: Signals) -> None:
    """Tell the interruption what the signal left of the running revision, for its last
    line; on an engine without transactional DDL, say so at once."""
    if progress.running is None:
        return
    revision = progress.revision_of(progress.running)
    if settings.engine.transactional_ddl:
        interruption.left = f"revision {revision}: {what_stays(progress)}"
        return
    interruption.left = (f"revision {revision} was cut short: this engine cannot roll back "
                         f"DDL, so part of it may stay applied. {repair_advice(revision)}")
    log.error("revision_unfinished", f"revision {revision} was cut short by the signal; "
              f"this engine cannot roll back DDL, so part of it may be applied. "
              f"{repair_advice(revision)}", revision=revision)
