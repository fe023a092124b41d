"""The head of an Alembic project read from its revision files' source, without Alembic.

Gives one head only when certain that Alembic's ScriptDirectory would load exactly these
revisions and find exactly this head with no error: every file read literally
(migration_job.project.revision_source), every down_revision and depends_on an id that exists,
branch labels that clash with nothing, no cycle, one head. Anything else raises Declined and
Alembic reads the history: the fast path may then cost time, never skip work or hide a
history problem. (A revision file that parses but would fail to import is not seen here: at
head no revision runs, and the first one that does runs through Alembic.)
"""

from __future__ import annotations

from collections.abc import Iterable

from migration_job.project.revision_source import RevisionIds
from migration_job.project.script_files import Declined


def single_head(revisions: Iterable[RevisionIds]) -> str:
    """The one head of these revisions, checked as Alembic's RevisionMap checks them."""
    by_id: dict[str, RevisionIds] = {}
    for one in revisions:
        if one.revision in by_id:
            raise Declined(f"revision {one.revision} is present more than once")
        by_id[one.revision] = one
    if not by_id:
        raise Declined("the project has no revisions")
    _refuse_clashing_labels(by_id)
    below: set[str] = set()
    for one in by_id.values():
        for named in one.down_revisions + one.depends_on:
            if named not in by_id:
                raise Declined(f"revision {one.revision} names {named}, which is not a "
                               "revision id in the project")
        below.update(one.down_revisions)
    _refuse_cycles(by_id)
    heads = sorted(set(by_id) - below)
    if len(heads) != 1:
        raise Declined(f"{len(heads)} heads ({', '.join(heads)})")
    return heads[0]


def _refuse_clashing_labels(by_id: dict[str, RevisionIds]) -> None:
    labels: set[str] = set()
    for one in by_id.values():
        for label in one.branch_labels:
            if label in labels or label in by_id:
                raise Declined(f"branch label {label} is used twice")
            labels.add(label)


def _refuse_cycles(by_id: dict[str, RevisionIds]) -> None:
    """Kahn's walk over down_revision and depends_on edges: what it cannot reach is a cycle."""
    waiting = {rev: len(one.down_revisions) + len(one.depends_on) for rev, one in by_id.items()}
    above: dict[str, list[str]] = {rev: [] for rev in by_id}
    for rev, one in by_id.items():
        for named in one.down_revisions + one.depends_on:
            above[named].append(rev)
    ready = [rev for rev, count in waiting.items() if count == 0]
    reached = 0
    while ready:
        rev = ready.pop()
        reached += 1
        for child in above[rev]:
            waiting[child] -= 1
            if waiting[child] == 0:
                ready.append(child)
    if reached != len(by_id):
        raise Declined("the revisions form a cycle")
