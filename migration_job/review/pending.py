"""The pending revisions of a review: from the database's revision or `--from REV`, each
with its SQL from Alembic's offline mode, collapsed per revision (plan and lint read them)."""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from migration_job.errors import HistoryError, first_line
from migration_job.run import heads, outcome

if TYPE_CHECKING:
    from migration_job.alembic_env.revision_graph import History
    from migration_job.run.interruption import Interruption
    from migration_job.settings import Settings

# Alembic's offline output opens each revision's SQL with this comment.
RUNNING = re.compile(r"^-- Running upgrade (\S*) -> (\S+)$", re.MULTILINE)
# Where it opens and ends a transaction (one per revision on an engine with transactional DDL).
TRANSACTION = re.compile(r"^(BEGIN|COMMIT);$", re.MULTILINE)


class Pending(NamedTuple):
    """What an upgrade would apply, and from where."""

    current: tuple[str, ...]
    # How the start was found: "the database (0002)" or "--from 0002".
    source: str
    target: tuple[str, ...]
    # Each revision described (describe_revision), with its SQL under "sql".
    revisions: list[dict[str, Any]]


def pending(settings: Settings, interruption: Interruption) -> Pending:
    """The pending revisions with their SQL: from --from (offline) or the database's revision."""
    from migration_job.run.database import current_revisions

    history = heads.load_history(settings)
    current: tuple[str, ...]
    if settings.from_revision is not None:
        from migration_job.alembic_env.revision_graph import start_from

        # "base" is Alembic's name for an empty database, as `sql --from base` reads it.
        current = start_from(history.scripts, settings.from_revision)
        source = f"--from {settings.from_revision}"
    else:
        current = current_revisions(settings, interruption)
        source = f"the database ({outcome.describe(current)})"
    found = history.plan(current, settings.target)
    revisions = [describe_revision(history, revision) for revision in found.pending]
    sql = pending_sql(history, current, settings.target) if revisions else {}
    for revision in revisions:
        revision["sql"] = sql.get(revision["revision"], "")
    return Pending(current, source, found.target, revisions)


def describe_revision(history: History, revision: str) -> dict[str, Any]:
    """Id, message, file (relative to the project) and whether it leaves the transaction."""
    script = history.scripts.get_revision(revision)
    assert script is not None
    path = Path(script.path)
    try:
        shown = str(path.relative_to(Path(history.scripts.dir).parent))
    except ValueError:
        shown = str(path)
    source = path.read_text(encoding="utf-8", errors="replace")
    return {"revision": revision, "message": script.doc or "", "file": shown,
            "outside_transaction": "autocommit_block(" in source}


def pending_sql(history: History, current: tuple[str, ...], target: str) -> dict[str, str]:
    """Each pending revision's offline SQL, by revision."""
    from alembic.util import CommandError

    from migration_job.alembic_env.migrate import offline_sql

    if len(current) > 1:
        raise HistoryError("the database has several heads; pass --from REV")
    output = io.StringIO()
    try:
        offline_sql(history, current[0] if current else None, target, output)
    except CommandError as error:
        raise HistoryError(f"cannot render SQL: {first_line(error)}") from None
    text = output.getvalue()
    marks = list(RUNNING.finditer(text))
    return {mark.group(2): revision_sql(text, mark, following)
            for mark, following in zip(marks, [m.start() for m in marks[1:]] + [len(text)],
                                       strict=True)}


def revision_sql(text: str, mark: re.Match[str], end: int) -> str:
    """A revision's SQL as it runs, in its own transaction: Alembic writes the BEGIN that
    opens it before the revision's comment, at the end of what precedes it."""
    body = text[mark.end():end].strip().removesuffix("BEGIN;").rstrip()
    transaction = TRANSACTION.findall(text, 0, mark.start())
    return f"BEGIN;\n\n{body}" if transaction[-1:] == ["BEGIN"] else body
