"""What the applied-history table tells: the history command, and what status and check
report from it (revisions that started and never finished, files changed since they ran)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from migration_job.project import project_for
from migration_job.run.audit import recorded_history
from migration_job.run.wait import connected

if TYPE_CHECKING:

    from migration_job.applied_history.recorder import Row
    from migration_job.run.interruption import Interruption
    from migration_job.settings import Settings

def history(settings: Settings, interruption: Interruption) -> str:
    """Print the applied-history table: each revision applied, reverted or stamped."""
    project = project_for(settings)
    with connected(settings, interruption):
        pass  # the database answers: read the table
    rows = recorded_history(settings, project)
    if settings.json_output:
        print(json.dumps([row._asdict() for row in rows]))
    else:
        print("\n".join(map(describe_row, rows)) or "no history recorded yet")
    return f"{len(rows)} history row(s)"


def describe_row(row: Row) -> str:
    """One row as a line of text."""
    duration = "" if row.duration_ms is None else f" in {row.duration_ms:.0f} ms"
    return (f"{row.started_at}  {row.direction:<9} {row.revision:<14} "
            f"{row.outcome or 'UNFINISHED'}{duration}  {row.runner_host} pid {row.runner_pid}"
            f"  job {row.job_version}  deploy {row.deploy_ref or '-'}  "
            f"sha256 {(row.checksum or '-')[:12]}")
