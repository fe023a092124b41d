"""MIGRATE_VERIFY at head: a run with nothing to do still compares the applied revisions'
files with the checksums the applied-history table recorded when they ran, without Alembic.

The files' sha256 come with the heads: from the heads manifest or the heads cache (a fresh
fingerprint means the same bytes), else hashed from the revision files read; the table's
checksums come from one query on the job's own session. `check` and `upgrade` share it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, NamedTuple

from migration_job.applied_history.access import refuse_or_go_on
from migration_job.applied_history.verification import changed_revisions, recorded_checksums, verify
from migration_job.errors import HistoryUnreadable
from migration_job.log import log

if TYPE_CHECKING:
    from migration_job.engines import Session
    from migration_job.project import Project
    from migration_job.run.heads import KnownHeads
    from migration_job.settings import Settings

# Why a run refuses when the history cannot be read under MIGRATE_VERIFY=fail.
UPGRADE_REFUSAL = ("the run at head cannot verify the applied revisions' files without it "
                   "(MIGRATE_VERIFY=fail)")


class FilesNow(NamedTuple):
    """The project's revision files as they are now: a revision's file, and (when known
    without hashing) revision -> (file, sha256)."""

    path_of: Callable[[str], str | None]
    sums: dict[str, tuple[str, str]] | None


class Recorded(NamedTuple):
    """(revision, outcome, checksum) per history row, or why the table could not be read."""

    rows: list[tuple[object, ...]]
    unreadable: HistoryUnreadable | None = None


def files_now(settings: Settings, project: Project, known: KnownHeads) -> FilesNow | None:
    """The revision files without Alembic (None: only Alembic can tell)."""
    if known.sums is not None:
        return FilesNow((known.files or {}).get, known.sums)
    if known.files is not None:
        return FilesNow(known.files.get, None)
    from migration_job.run.heads import source_history

    found = source_history(settings, project)  # a manifest written without its checksums
    return FilesNow(found.files.get, found.sums()) if found is not None else None


def read_recorded(session: Session, settings: Settings, project: Project) -> Recorded:
    """The table's checksums, on the job's session (one query; none without the table)."""
    try:
        return Recorded(recorded_checksums(session, settings, project))
    except HistoryUnreadable as error:
        return Recorded([], error)


def judge(settings: Settings, files: FilesNow, recorded: Recorded, refusal: str) -> None:
    """Warn about, or refuse (exit 11), changed files; a table that cannot be read warns, or
    under MIGRATE_VERIFY=fail refuses (exit 4 or 7) with `refusal`."""
    if recorded.unreadable is not None:
        refuse_or_go_on(recorded.unreadable, strict=settings.verify == "fail", refusal=refusal)
    verify(settings, changed_revisions(recorded.rows, files.path_of, files.sums))


def verify_at_head(session: Session, settings: Settings, project: Project,
                   known: KnownHeads) -> None:
    """An upgrade's no-op at head: verify the applied files (MIGRATE_VERIFY not off)."""
    if settings.verify == "off":
        return
    files = files_now(settings, project, known)
    if files is None:
        if settings.verify != "fail":
            # Only Alembic could tell (a manifest written without its checksums, files the
            # reader declines): a warning is not worth loading it on every run at head.
            log.debug("head_not_verified", "at head: the revision files' checksums are not "
                      "known without Alembic; MIGRATE_VERIFY=fail would load it to verify")
            return
        from migration_job.applied_history.verification import script_paths
        from migration_job.run.heads import load_history

        files = FilesNow(script_paths(load_history(settings).scripts), None)
    judge(settings, files, read_recorded(session, settings, project), UPGRADE_REFUSAL)
