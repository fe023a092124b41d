"""What every engine's session and engine answer the same way, written once: the version
table's revisions from the session's own table reading, and the error questions asked of the
engine's errors module (each engine's `errors.py` implements ErrorKinds)."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, Protocol

if TYPE_CHECKING:
    from migration_job.engines.inputs import VersionTable


class ErrorKinds(Protocol):
    """An engine's errors module: which of its driver's errors are which."""

    def is_transient(self, error: BaseException) -> bool: ...
    def rejection_advice(self, error: BaseException) -> str: ...
    def is_connection_lost(self, error: BaseException) -> bool: ...
    def is_permission_denied(self, error: BaseException) -> bool: ...
    def is_lock_timeout(self, error: BaseException) -> bool: ...
    def is_statement_timeout(self, error: BaseException) -> bool: ...


class AnswersFromErrorKinds:
    """The Engine interface's error questions, answered by the engine's errors module."""

    kinds: ClassVar[ErrorKinds]

    def is_transient(self, error: BaseException) -> bool:
        """Whether waiting may cure it (a server starting, a refused connection)."""
        return self.kinds.is_transient(error)

    def rejection_advice(self, error: BaseException) -> str:
        """What to do about an error waiting will not fix."""
        return self.kinds.rejection_advice(error)

    def is_connection_lost(self, error: BaseException) -> bool:
        """Whether the session ended under the job (and its lock with it)."""
        return self.kinds.is_connection_lost(error)

    def is_permission_denied(self, error: BaseException) -> bool:
        """Whether the job's user may not do what it tried."""
        return self.kinds.is_permission_denied(error)

    def is_lock_timeout(self, error: BaseException) -> bool:
        """Whether a statement gave up waiting for a lock (the DDL lock timeout)."""
        return self.kinds.is_lock_timeout(error)

    def is_statement_timeout(self, error: BaseException) -> bool:
        """Whether a statement ran past the statement timeout."""
        return self.kinds.is_statement_timeout(error)


class ReadsVersionTable:
    """Session.revisions, from the session's own table_rows."""

    def table_rows(self, schema: str | None, name: str,
                   columns: tuple[str, ...]) -> list[tuple[object, ...]]:
        """The columns of every row of a table; none when it does not exist."""
        raise NotImplementedError

    def revisions(self, project: VersionTable) -> tuple[str, ...]:
        """The revisions recorded in the version table; empty when it does not exist yet."""
        rows = self.table_rows(project.version_table_schema, project.version_table,
                               ("version_num",))
        return tuple(sorted(str(r[0]) for r in rows))
