"""The revisions of one Alembic run as they start and end: logged, timed, and known on
failure (which one ran, and whether part of it may have committed)."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from migration_job.log import log

if TYPE_CHECKING:
    from alembic.runtime.migration import MigrationStep


@dataclass
class Progress:
    """Logs each revision as it starts and ends; knows which one was running on failure."""

    verb: str = "upgrade"
    applied: list[tuple[str, float]] = field(default_factory=list)
    running: MigrationStep | None = None
    running_since: float = 0.0
    # Whether the running revision may have committed part of itself: on an engine without
    # transactional DDL, each DDL statement commits, and what ran before it; on PostgreSQL
    # what it ran in an autocommit_block (implicit_commits.py).
    committed: bool = False

    def track(self, steps: Iterable[MigrationStep]) -> Iterator[MigrationStep]:
        """Yield Alembic's steps; resuming after a yield means the step's transaction ended."""
        for step in steps:
            self.running, self.running_since = step, time.monotonic()
            self.committed = False
            revision = self.revision_of(step)
            log.info("revision_started", f"{self.verb} {revision} ({step.doc}): started",
                     revision=revision, direction=self.verb, description=step.doc)
            yield step
            duration_ms = (time.monotonic() - self.running_since) * 1000
            self.applied.append((revision, duration_ms))
            log.info("revision_applied",
                     f"{self.verb} {revision}: done in {duration_ms:.0f} ms",
                     revision=revision, direction=self.verb, duration_ms=round(duration_ms, 1))
            self.running, self.committed = None, False

    @staticmethod
    def revision_of(step: MigrationStep) -> str:
        """The revision a step applies (or removes, when downgrading)."""
        return ",".join(step.info.up_revision_ids)  # type: ignore[attr-defined]
