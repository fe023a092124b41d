"""After a signal, a running revision starts nothing more that could commit.

A signal cancels the statement running on the server, but a revision interrupted in its own
Python code (between two statements) would run on: its next statement, or the COMMIT that
entering an `autocommit_block` issues, would commit work the job then reports as interrupted.
Here the revision's next statement, or its entering an autocommit_block, raises Interrupted
instead, inside the revision's body: its transaction rolls back as for any failure.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import TYPE_CHECKING, Any

from migration_job.engines.sqlalchemy_events import listening

if TYPE_CHECKING:
    from alembic.runtime.migration import MigrationContext

    from migration_job.alembic_env.progress import Progress
    from migration_job.alembic_env.signals import Signals


class SignalStop:
    """Stops the running revision at its next statement or autocommit_block after a signal,
    once: after that, the job's own clean-up (the applied-history row) runs freely."""

    def __init__(self, signals: Signals, progress: Progress) -> None:
        self.signals = signals
        self.progress = progress
        self.stopped = False

    def check(self) -> None:
        """Raise Interrupted if a signal came while a revision runs and it was not stopped yet."""
        if self.stopped or self.progress.running is None or not self.signals.requested.is_set():
            return
        self.stopped = True
        self.signals.check()

    def stand_down(self) -> None:
        """The revision has failed or stopped: what follows is the job's own clean-up."""
        self.stopped = True

    @contextmanager
    def watching_statements(self) -> Iterator[None]:
        """Within the block, check before each statement SQLAlchemy sends."""
        def before_statement(*_: Any) -> None:
            self.check()

        with listening([("before_cursor_execute", before_statement)]):
            yield

    def guard_autocommit_blocks(self, context: MigrationContext) -> None:
        """Check before the context's autocommit_block commits what the revision ran so far."""
        enter = context.autocommit_block

        @contextmanager
        def checked() -> Iterator[None]:
            self.check()
            block: AbstractContextManager[None] = enter()
            with block:
                yield

        context.autocommit_block = checked  # type: ignore[method-assign]
