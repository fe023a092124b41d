"""Revisions that started and did not finish, on engines whose DDL cannot be rolled back.

MySQL and MariaDB commit each DDL statement on its own: a revision that fails, or whose runner
is killed, half-way can leave part of its changes applied, and the version table still says
the revision did not run. Running it again blindly could fail or apply a change twice; doing
nothing would hide the damage. So the job writes a record before each revision starts and
deletes it when the revision's transaction ended, and refuses to go on while a record says a
revision did not finish (exit 10), until an operator has repaired the database and said so
with `mark-repaired REVISION`.
"""

from __future__ import annotations

from typing import NamedTuple, Protocol

from migration_job.errors import UnfinishedRevision


class Unfinished(NamedTuple):
    """A revision that started and has not finished (or is running right now)."""

    revision: str
    # upgrade or downgrade
    direction: str
    # The version table's revisions when the revision started.
    before: tuple[str, ...]
    started_at: str
    # host and pid of the runner that started it
    runner: str

    def finished_after_all(self, current: tuple[str, ...]) -> bool:
        """Whether the version table moved on: the revision's last step, the version table's
        update, committed, so only deleting the record was lost (its runner died just then).
        The job deletes a record in that same transaction where the revision runs on the
        lock's session; this clears those left by older versions of the job, and by revisions
        that ran on a session of their own."""
        return current != self.before

    def refusal(self) -> UnfinishedRevision:
        """Exit 10: the revision must be repaired by hand before the job goes on."""
        return UnfinishedRevision(
            f"revision {self.revision} ({self.direction}) started at {self.started_at} on "
            f"{self.runner} and did not finish; this engine cannot roll back DDL, so part of "
            f"it may be applied. {repair_advice(self.revision)}")


def repair_advice(revision: str) -> str:
    """How to get past an unfinished revision."""
    return (f"Compare the database with revision {revision}, undo what of it was applied, "
            f"then run `migration-job mark-repaired {revision}` and deploy again (if you "
            f"finished it by hand instead, run `alembic stamp {revision}` before marking it)")


class UnfinishedLog(Protocol):
    """The records of one project's version table (see engines.Session.unfinished_log).

    find() returns the record, or None. started(revision, direction) writes and commits one,
    with the version table's revisions, before the revision's transaction begins (and
    commits whatever else that session wrote so far). finishing(lock_key) deletes it inside
    the revision's last transaction, where the revision runs on the lock's session, before
    it commits: the record goes exactly when the version table's update commits; it returns
    whether it did, which it does only while the session holds the lock named by `lock_key`
    (if not, the lock may be lost). finished(revision) deletes it, where finishing did not,
    once that transaction ended; all_finished() tidies up after the run's last revision;
    clear(revision) deletes it for an operator and says whether there was one. All of them
    run on the session that holds the migration lock.
    """

    def find(self) -> Unfinished | None: ...

    def started(self, revision: str, direction: str) -> None: ...

    def finishing(self, lock_key: int) -> bool: ...

    def finished(self, revision: str) -> None: ...

    def all_finished(self) -> None: ...

    def clear(self, revision: str) -> bool: ...
