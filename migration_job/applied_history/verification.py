"""Checksums: an applied revision whose file changed since it ran (MIGRATE_VERIFY).

The applied-history table keeps the sha256 of each revision's file when it ran; a file that
differs now no longer says what the database ran: a fix edited into an applied revision never
reaches the databases that ran it before.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, NamedTuple

from migration_job.errors import VerificationFailed
from migration_job.log import log

if TYPE_CHECKING:
    from alembic.script import ScriptDirectory

    from migration_job.engines import Session
    from migration_job.project import Project
    from migration_job.settings import Settings

# A row whose outcome says its revision (and the file's checksum then) is in the database.
IN_DATABASE = ("applied", "stamped")
# One that says it is not any more: reverted by a downgrade, or removed by a stamp.
OUT_OF_DATABASE = ("reverted", "removed")


class Changed(NamedTuple):
    """An applied revision whose file changed since it ran."""

    revision: str
    file: str


def changed_revisions(recorded: Iterable[tuple[object, ...]],
                      path_of: Callable[[str], str | None],
                      sums: Mapping[str, tuple[str, str]] | None = None) -> list[Changed]:
    """The revisions whose file differs from the checksum recorded when they last ran.

    `recorded` is (revision, outcome, checksum) per history row, oldest first; `path_of`
    gives a revision's file (None when this project does not know it); `sums`, when known
    (the heads manifest or cache), each revision's file and its sha256 now, so that no file
    is hashed again. A revision reverted (or removed by a stamp) since it ran, a merge
    point's stamp, or one this project does not know is not compared.
    """
    latest: dict[str, str] = {}
    for revision, outcome, checksum in recorded:
        if outcome in IN_DATABASE and checksum:
            latest[str(revision)] = str(checksum)
        elif outcome in OUT_OF_DATABASE:
            latest.pop(str(revision), None)
    changed = []
    for revision, checksum in latest.items():
        known = sums.get(revision) if sums is not None else None
        if known is not None:
            if known[1] != checksum:
                changed.append(Changed(revision, known[0]))
            continue
        path = path_of(revision) if "," not in revision else None
        if path is not None and checksum_of(path) != checksum:
            changed.append(Changed(revision, path))
    return changed


def checksum_of(path: str) -> str:
    """sha256 of a file, as the applied-history table records it."""
    with open(path, "rb") as file:
        return hashlib.sha256(file.read()).hexdigest()


def script_paths(scripts: ScriptDirectory) -> Callable[[str], str | None]:
    """A revision's file as Alembic found it (None for a revision it does not know)."""
    from alembic.util import CommandError

    def path_of(revision: str) -> str | None:
        try:
            script = scripts.get_revision(revision)
        except CommandError:
            return None
        return str(script.path) if script is not None else None

    return path_of


def recorded_checksums(session: Session, settings: Settings,
                       project: Project) -> list[tuple[object, ...]]:
    """(revision, outcome, checksum) of each history row, oldest first, on the job's session:
    only the columns compared (every no-op at head reads them, and the timestamps' parsing
    cost it more than the rest of the read)."""
    from migration_job.applied_history.access import recorded_rows

    return checksums_of(recorded_rows(session, settings, project,
                                      ("id", "revision", "outcome", "checksum")))


def checksums_of(rows: Iterable[Mapping[str, object]]) -> list[tuple[object, ...]]:
    """(revision, outcome, checksum) of each of the history's rows."""
    return [(row["revision"], row["outcome"], row["checksum"]) for row in rows]


def verify(settings: Settings, changed: list[Changed]) -> None:
    """Per MIGRATE_VERIFY: warn about changed files, or fail with exit 11."""
    if not changed or settings.verify == "off":
        return
    files = ", ".join(f"{c.revision} ({c.file})" for c in changed)
    message = (f"{len(changed)} applied revision file(s) changed since they ran: {files}; the "
               "database ran the earlier text. Restore the file and put the change in a new "
               "revision")
    if settings.verify == "fail":
        raise VerificationFailed(f"{message} (MIGRATE_VERIFY=fail; warn only reports it)")
    log.warning("revision_file_changed", message, revisions=[c.revision for c in changed])
