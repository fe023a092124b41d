"""`plan`: the pending revisions as a Markdown summary for a pull request, or as JSON.

From the database's revision, or offline from `--from REV`. Each revision: its id, message and
file, the SQL it would run (Alembic's offline mode, collapsed per revision), and whether it
runs statements outside a transaction (`autocommit_block`). Pending work is not an error here.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from migration_job.review.pending import pending
from migration_job.run import outcome

if TYPE_CHECKING:
    from migration_job.run.interruption import Interruption
    from migration_job.settings import Settings

def plan(settings: Settings, interruption: Interruption) -> str:
    """Print the plan (Markdown, or JSON with --json); exit 0 whenever it could plan."""
    from migration_job.review.lint import lint_section

    found = pending(settings, interruption)
    revisions = found.revisions
    document = {"from": list(found.current), "source": found.source,
                "target": list(found.target), "pending": revisions,
                "outside_transaction": [r["revision"] for r in revisions
                                        if r["outside_transaction"]],
                "lint": lint_section(settings, revisions)}
    print(json.dumps(document) if settings.json_output else markdown(document))
    return f"{len(revisions)} revision(s) pending from {outcome.describe(found.current)}"


def markdown(document: dict[str, Any]) -> str:
    """The plan as a pull-request comment."""
    from migration_job.review.lint import markdown_findings, markdown_summary

    pending = document["pending"]
    target = ", ".join(document["target"]) or "base"
    if not pending:
        return (f"## Migration plan\n\nNo pending revisions: {document['source']} is already "
                f"at {target}.\n")
    lines = [f"## Migration plan: {len(pending)} pending revision(s)", "",
             f"From {document['source']} to {target}.", ""]
    if document["outside_transaction"]:
        lines += ["**Runs outside a transaction** (`autocommit_block`): "
                  + ", ".join(f"`{r}`" for r in document["outside_transaction"])
                  + ". A failure there cannot be rolled back as a whole.", ""]
    lines += markdown_summary(document["lint"])
    for revision in pending:
        lines += [f"### `{revision['revision']}` {revision['message']}", "",
                  f"File: `{revision['file']}`", "",
                  *markdown_findings(document["lint"], revision["revision"]),
                  "<details><summary>SQL</summary>", "", "```sql",
                  revision["sql"] or "-- (no SQL)", "```", "", "</details>", ""]
    return "\n".join(lines)
