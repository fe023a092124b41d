"""The applied-history table: one row per revision applied, reverted or stamped.

Alembic's version table says only where the database is; this table says how it got there:
which revision ran, in which direction, when, for how long, with what outcome, on which
runner, from which job version and deploy, and the sha256 of the revision's file when it ran.

Rows are written through SQLAlchemy on the connection each revision runs on, so every engine
shares one implementation. Where the engine has transactional DDL (PostgreSQL, SQLite), a
revision's row is written once, complete, inside the revision's own transaction, just before
it commits: the row and the revision commit together, and a revision that rolls back (failed,
interrupted, its runner killed) leaves nothing it did, so no unfinished row either; the job
then records the failure in a row of its own. One exception: entering an `autocommit_block`
commits the revision's work so far, so the row goes in first, open, and is closed when the
revision ends (a runner killed in the block leaves a row that never finished). Where each DDL
statement commits at once (MySQL, MariaDB), a row is written and committed before the
revision begins, so that a runner killed mid-revision leaves a row that never finished, and
closed inside the revision's transaction. The table is created, under the migration lock,
when the first row is written: never on the fast path.
"""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, NamedTuple

from migration_job import __version__
from migration_job.applied_history.access import refuse_or_go_on, using_history
from migration_job.errors import HistoryUnreadable
from migration_job.log import log

if TYPE_CHECKING:
    import sqlalchemy as sa
    from alembic.runtime.migration import MigrationContext, MigrationStep
    from alembic.script import Script

    from migration_job.engines import MigrationLock
    from migration_job.project import Project
    from migration_job.settings import Settings

# What a finished row says, by direction.
OUTCOMES = {"upgrade": "applied", "downgrade": "reverted", "stamp": "stamped"}
# A row whose runner died before finishing it, closed by the next run under the lock.
ABANDONED = "abandoned"
# A revision that `stamp --replace` took out of the version table without running it down.
REMOVED = "removed"


def history_table(settings: Settings, project: Project) -> sa.Table:
    """The table's definition, in the version table's schema."""
    import sqlalchemy as sa

    return sa.Table(
        project.history_table(settings.history_table), sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("revision", sa.String(255), nullable=False),
        # The revision's down_revision(s), comma-separated ('' for a root).
        sa.Column("parents", sa.String(255), nullable=False),
        # upgrade, downgrade or stamp
        sa.Column("direction", sa.String(16), nullable=False),
        sa.Column("started_at", sa.DateTime, nullable=False),
        sa.Column("finished_at", sa.DateTime),
        sa.Column("duration_ms", sa.Float),
        # applied, reverted, stamped, removed, failed, interrupted, abandoned; NULL while
        # running
        sa.Column("outcome", sa.String(16)),
        sa.Column("runner_host", sa.String(255), nullable=False),
        sa.Column("runner_pid", sa.Integer, nullable=False),
        sa.Column("job_version", sa.String(64), nullable=False),
        sa.Column("deploy_ref", sa.String(255)),
        # sha256 of the revision's file when it ran (NULL when there was no file)
        sa.Column("checksum", sa.String(64)),
        schema=project.version_table_schema,
    )


class Row(NamedTuple):
    """One row, as status, check and the history command show it."""

    id: int
    revision: str
    parents: tuple[str, ...]
    direction: str
    started_at: str
    finished_at: str | None
    duration_ms: float | None
    outcome: str | None
    runner_host: str
    runner_pid: int
    job_version: str
    deploy_ref: str | None
    checksum: str | None

    @classmethod
    def read(cls, found: Any) -> Row:
        """A row from the database's."""
        values = dict(found._mapping)
        values["parents"] = tuple(p for p in str(values["parents"]).split(",") if p)
        for stamp in ("started_at", "finished_at"):
            values[stamp] = _iso(values[stamp])
        return cls(**values)

    def describe(self) -> str:
        """One line on a row that never finished."""
        return (f"revision {self.revision} ({self.direction}) started at {self.started_at} on "
                f"{self.runner_host} pid {self.runner_pid} and has not finished: it is "
                "running now, or its runner was killed")


def file_checksum(script: Script | None) -> str | None:
    """sha256 of a revision's file, or None without one."""
    from migration_job.applied_history.verification import checksum_of

    path = getattr(script, "path", None)
    return checksum_of(path) if path else None


def parents_of(script: Script | None) -> str:
    """A revision's down_revision(s), comma-separated."""
    down = getattr(script, "down_revision", None)
    if down is None:
        return ""
    return down if isinstance(down, str) else ",".join(down)


def _script(context: MigrationContext, revision: str) -> Script | None:
    scripts = context.script
    if scripts is None or "," in revision:
        return None
    return scripts.get_revision(revision)


def job_version() -> str:
    """This migration-job's version (the image runs the package without installing it)."""
    return __version__


def _now() -> datetime:
    """UTC, without a zone: every engine stores that alike."""
    return datetime.now(UTC).replace(tzinfo=None)


def _iso(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.replace(microsecond=0).isoformat() + "Z"
    return str(value)


class Pending(NamedTuple):
    """A revision that started and has no row yet (transactional DDL: written when it ends)."""

    revision: str
    parents: str
    checksum: str | None
    started_at: datetime


class Recorder:
    """Writes one run's rows, on the connection each revision runs on."""

    def __init__(self, settings: Settings, project: Project, direction: str,
                 removing: tuple[str, ...] = ()) -> None:
        self.settings = settings
        self.table = history_table(settings, project)
        self.direction = direction
        # The revisions a stamp takes out of the version table: recorded with its row.
        self.removing = removing
        # Rows ride in their revision's transaction where it rolls back whole.
        self.in_transaction = settings.engine.transactional_ddl
        self.ready = False
        self.pending: Pending | None = None
        self.open_row: int | None = None
        self.open_since = 0.0
        self.finished_insert: sa.Insert | None = None
        self.checked_insert: sa.Insert | None = None

    def started(self, context: MigrationContext, step: MigrationStep, revision: str,
                commit: bool = True) -> None:
        """A revision is about to run (between revisions): note it; where DDL does not roll
        back, write and commit its row now (`commit` False: the caller commits it, with the
        unfinished-revision record it writes next on the same session)."""
        connection = context.connection
        assert connection is not None
        # A stamp step carries no script: look the revision up (a merge point's is a tuple).
        script = getattr(step, "revision", None) or _script(context, revision)
        pending = Pending(revision, parents_of(script), file_checksum(script), _now())
        if not self.ready or not self.in_transaction:
            try:
                with using_history(self.settings, self.table.fullname, "write to"):
                    self._prepare(connection)
                    if not self.in_transaction:
                        self.open_row = self._insert_pending(connection, pending)
            except HistoryUnreadable as error:
                refuse_or_go_on(error, strict=True, refusal=f"revision {revision} did not start")
            # env.py's one transaction commits it all
            if commit and not context._in_external_transaction:
                connection.commit()
        self.pending, self.open_since = pending, time.monotonic()

    def committing_early(self, connection: sa.Connection) -> None:
        """The running revision is about to commit part of itself (an autocommit_block): write
        its row now, open, so that it commits with that part."""
        if self.open_row is None and self.pending is not None:
            self.open_row = self._insert_pending(connection, self.pending)

    def finished(self, context: MigrationContext, lock: MigrationLock | None = None) -> bool:
        """Inside the running revision's transaction, before it commits: write its row
        complete (or close the row written before). Returns whether that statement also
        checked that `lock` is still held (then it raised LockLost if not): where the revision
        runs on the lock's own session and the engine can ask in SQL (PostgreSQL), one round
        trip does both."""
        assert context.connection is not None
        outcome = OUTCOMES[self.direction]
        checked = False
        if self.open_row is not None:
            self._close(context.connection, self.open_row, outcome)
        elif self.pending is not None:
            checked = self._insert_checked(context.connection, self.pending, outcome, lock)
        else:
            return False
        for revision in self.removing:
            row = self._insert(context.connection, revision,
                               parents_of(_script(context, revision)), self.direction, None)
            self._close(context.connection, row, REMOVED, duration=False)
        self.removing = ()
        return checked

    def committed(self) -> None:
        """The running revision's transaction committed, its row with it. Until then ended()
        records it as failed: a check before the commit (the lock's) may still roll it back."""
        self.open_row, self.pending = None, None

    def _insert_checked(self, connection: sa.Connection, pending: Pending, outcome: str,
                        lock: MigrationLock | None) -> bool:
        """The finished row, inserted only while `lock` is held, when the lock can say so
        in SQL on this session; whether it could (else a plain insert)."""
        import sqlalchemy as sa

        check = lock.held_check() if lock is not None else None
        if lock is None or check is None or not on_session_of(connection, lock):
            self._insert_pending(connection, pending, outcome)
            return False
        if self.checked_insert is None:
            names = [c.name for c in self.table.columns if c.name != "id"]
            values = sa.select(*(sa.cast(sa.bindparam(f"v_{n}"), self.table.c[n].type)
                                 for n in names)).where(sa.text(check[0]))
            self.checked_insert = self.table.insert().from_select(names, values)
        row = self._values(pending.revision, pending.parents, self.direction, pending.checksum,
                           pending.started_at, finished_at=_now(),
                           duration_ms=self._elapsed(), outcome=outcome)
        done = connection.execute(self.checked_insert,
                                  {**{f"v_{n}": v for n, v in row.items()}, **check[1]})
        if done.rowcount != 1:
            lock.verify()  # raises LockLost: the lock is not held any more
            connection.execute(self.table.insert().inline(), row)  # (verify says it is)
        return True

    def ended(self, connection: sa.Connection, outcome: str) -> None:
        """After a revision failed or was interrupted (its transaction rolled back): close its
        row with `outcome`, or write it so, where the row rolled back with the revision. Best
        effort: a lost session leaves no row, or the row unfinished."""
        pending = self.pending
        if self.open_row is None and pending is None:
            return
        try:
            connection.rollback()
            closed = self.open_row is not None and self._close(connection, self.open_row,
                                                               outcome)
            if not closed and pending is not None:
                self._insert_pending(connection, pending, outcome)
            connection.commit()
        except Exception as error:  # noqa: BLE001  (the revision's own failure is the news)
            from migration_job.errors import first_line

            log.warning("history_not_recorded", f"could not record the {outcome} revision in "
                        f"the history table: {first_line(error)}", outcome=outcome)
        self.open_row, self.pending = None, None

    def _prepare(self, connection: sa.Connection) -> None:
        """First write of the run: create the table if needed, and close the rows of runners
        that died before finishing (the lock is held: nobody else is running)."""
        import sqlalchemy as sa

        if self.ready:
            return
        if not sa.inspect(connection).has_table(self.table.name, self.table.schema):
            self.table.create(connection)
            log.info("history_table_created", f"created the applied-history table "
                     f"{self.table.fullname}", table=self.table.fullname)
        abandoned = connection.execute(
            sa.select(self.table.c.id, self.table.c.revision)
            .where(self.table.c.finished_at.is_(None))).all()
        for row_id, revision in abandoned:
            log.warning("history_abandoned", f"revision {revision} was started by a runner "
                        "that never finished it (killed?): recorded as abandoned",
                        revision=revision)
            self._close(connection, row_id, ABANDONED, duration=False)
        self.ready = True

    def _insert_pending(self, connection: sa.Connection, pending: Pending,
                        outcome: str | None = None) -> int:
        """A started revision's row: open, or (`outcome`) finished."""
        revision, parents, checksum, started_at = pending
        if outcome is None:
            return self._insert(connection, revision, parents, self.direction, checksum,
                                started_at)
        self._insert(connection, revision, parents, self.direction, checksum, started_at,
                     finished_at=_now(), duration_ms=self._elapsed(), outcome=outcome)
        return 0

    def _insert(self, connection: sa.Connection, revision: str, parents: str, direction: str,
                checksum: str | None, started_at: datetime | None = None,
                **finished: object) -> int:
        """Insert a row; its id when open (0 for a finished one: nothing reads it back)."""
        values = self._values(revision, parents, direction, checksum, started_at, **finished)
        if finished:
            # One statement built once (SQLAlchemy then reuses its compiled form), no id to
            # fetch: a revision's row costs one plain INSERT in its transaction.
            if self.finished_insert is None:
                self.finished_insert = self.table.insert().inline()
            connection.execute(self.finished_insert, values)
            return 0
        inserted = connection.execute(self.table.insert().values(**values))
        assert inserted.inserted_primary_key is not None
        return int(inserted.inserted_primary_key[0])

    def _values(self, revision: str, parents: str, direction: str, checksum: str | None,
                started_at: datetime | None = None, **finished: object) -> dict[str, object]:
        """A row's columns (all but id)."""
        return dict(revision=revision, parents=parents, direction=direction,
                    started_at=started_at or _now(), runner_host=os.uname().nodename,
                    runner_pid=os.getpid(), job_version=job_version(),
                    deploy_ref=self.settings.deploy_ref, checksum=checksum, **finished)

    def _elapsed(self) -> float:
        return round((time.monotonic() - self.open_since) * 1000, 1)

    def _close(self, connection: sa.Connection, row: int, outcome: str,
               duration: bool = True) -> bool:
        """Finish an open row; whether it was there to finish."""
        done = connection.execute(self.table.update().where(self.table.c.id == row).values(
            finished_at=_now(), duration_ms=self._elapsed() if duration else None,
            outcome=outcome))
        return bool(done.rowcount)


def on_session_of(connection: sa.Connection, lock: MigrationLock) -> bool:
    """Whether SQLAlchemy's connection is the lock's own session (lent to it)."""
    return connection.connection.dbapi_connection is getattr(lock.session, "connection", None)


def read_rows(connection: sa.Connection, table: sa.Table) -> list[Row]:
    """The table's rows, oldest first; none when the table does not exist."""
    import sqlalchemy as sa

    if not sa.inspect(connection).has_table(table.name, table.schema):
        return []
    return [Row.read(found) for found in connection.execute(
        sa.select(table).order_by(table.c.id))]
