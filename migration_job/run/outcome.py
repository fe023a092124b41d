"""How a run that had nothing to do says so: the summary and its already_at_target event."""

from __future__ import annotations

from typing import TYPE_CHECKING

from migration_job.log import log

if TYPE_CHECKING:
    from migration_job.alembic_env.revision_graph import Plan
    from migration_job.run.heads import KnownHeads


def at_known_head(current: tuple[str, ...], known: KnownHeads, reason: str) -> str:
    """Log and summarise a run whose heads, known without Alembic, showed it at head."""
    summary = f"database at {describe(current)}: already at head ({known.via}), {reason}"
    log.info("already_at_target", summary, revision=describe(current), via=known.via)
    return summary


def at_target(found: Plan, reason: str) -> str:
    """Log and summarise a run that had nothing to do."""
    summary = f"database at {describe(found.target)}: {reason}"
    log.info("already_at_target", summary, revision=describe(found.target))
    return summary


def describe(revisions: tuple[str, ...]) -> str:
    """Revisions for humans: 'base' when there are none."""
    return ", ".join(revisions) if revisions else "base"
