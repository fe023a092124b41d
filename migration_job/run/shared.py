"""What a fleet reads once, before it forks a process per target, and hands to each child
explicitly: the project, the heads known without Alembic, the fleet's one spare connection,
and the history once the parent has read it (until then, how a child asks for it)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from migration_job.alembic_env.revision_graph import History
    from migration_job.project import Project
    from migration_job.run.heads import KnownHeads
    from migration_job.settings import Settings


class SpareConnection(Protocol):
    """A semaphore shared by the processes of a fleet: the one connection the whole fleet may
    open beside its targets' sessions, which the children's revision watches take turns with."""

    def acquire(self, block: bool = True, timeout: float | None = None) -> bool:
        """Take it; False when another process held it past `timeout` (or, not blocking,
        held it at all)."""

    def release(self) -> None:
        """Give it back."""


class Shared:
    """Read once by the fleet's parent; each forked child gets its copy with the fork."""

    def __init__(self, project: Project, known: KnownHeads, spare: SpareConnection) -> None:
        self.project = project
        self.known = known
        self.spare = spare
        # Read by the parent when the first child finds work pending (a fleet at head never
        # needs Alembic).
        self.history: History | None = None
        # In a child forked before the history was read: asks the parent for it (it raises:
        # the child's run stops, and the parent starts the target again once it is read).
        self.ask_for_history: Callable[[], None] | None = None

    def load_history(self, settings: Settings) -> History:
        """The history the parent read, pointed at this child's target; else ask for it."""
        if self.history is None and self.ask_for_history is not None:
            self.ask_for_history()
        from migration_job.alembic_env.revision_graph import load_history, reuse_history

        if self.history is None:
            return load_history(settings)
        return reuse_history(self.history, settings)
