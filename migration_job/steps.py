"""Steps every command shares: connect after waiting, the heads known without Alembic, the
outcome lines."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from typing import TYPE_CHECKING, NamedTuple

from migration_job.errors import DatabaseUnreachable, first_line
from migration_job.log import log
from migration_job.manifest import fresh_manifest
from migration_job.wait import wait_for_database

if TYPE_CHECKING:
    from migration_job.config import Settings
    from migration_job.engines import Session
    from migration_job.heads_cache import SourceHistory
    from migration_job.history import History, Plan
    from migration_job.interruption import Interruption
    from migration_job.project import Project


@contextmanager
def connected(settings: Settings, interruption: Interruption) -> Iterator[Session]:
    """A ready session, after waiting for the database; a lost session exits 3."""
    engine = settings.engine
    session = wait_for_database(settings, sleep=interruption.sleep)
    with closing(session):
        log.info("database_ready", f"connected to {session.describe()}",
                 server_version=session.server_version)
        try:
            yield session
        except engine.errors as error:
            if not engine.is_connection_lost(error):
                raise
            raise DatabaseUnreachable(
                f"lost the connection to the database ({first_line(error)}) before any "
                "revision ran; nothing was changed; run the job again") from None


def refuse_unfinished(session: Session, project: Project, current: tuple[str, ...]) -> None:
    """With the lock held: exit 10 while a revision that did not finish awaits repair.

    A record whose revision did finish (the version table moved on; only deleting the record
    was lost) is cleared.
    """
    unfinished = session.unfinished_log(project)
    found = unfinished.find() if unfinished is not None else None
    if unfinished is None or found is None:
        return
    if not found.finished_after_all(current):
        raise found.refusal()
    unfinished.clear(found.revision)
    log.info("unfinished_record_cleared", f"revision {found.revision} had finished after all "
             "(the version table moved on): cleared its unfinished record",
             revision=found.revision)


def awaits_repair(session: Session, project: Project) -> bool:
    """Whether a revision is recorded as unfinished (or running now): no fast path then."""
    unfinished = session.unfinished_log(project)
    return unfinished is not None and unfinished.find() is not None


# Called before the history is loaded: a fleet's child that has none asks its parent for it
# instead (migration_job.fleet_workers), so that Alembic is loaded once per fleet.
BEFORE_LOADING_HISTORY: list[Callable[[], None]] = []


def load_history(settings: Settings) -> History:
    """The project's Alembic history (the first import of Alembic and SQLAlchemy)."""
    for hook in BEFORE_LOADING_HISTORY:
        hook()
    from migration_job.history import load_history as load

    return load(settings)


class KnownHeads(NamedTuple):
    """The heads known without Alembic, and how (None: only Alembic can tell)."""

    revisions: tuple[str, ...] | None
    via: str = ""
    # Each revision's file, when the revision files were read (not with a manifest).
    files: dict[str, str] | None = None
    # revision -> (its file, the file's sha256), from the manifest or the heads cache: what
    # MIGRATE_VERIFY compares at head without hashing the files again.
    sums: dict[str, tuple[str, str]] | None = None

    def unknown(self, current: tuple[str, ...]) -> bool:
        """Whether the revision files, read, hold none of some revision of the database."""
        return self.files is not None and any(r not in self.files for r in current)


# Set by `fleet` before it forks a process per target: each reuses the heads known once.
KNOWN: list[KnownHeads] = []


def known_heads(settings: Settings, project: Project) -> KnownHeads:
    """The heads, without Alembic, when they can decide this run's target for certain: from
    a fresh manifest, else read from the revision files' source (migration_job.source_heads).

    None (never a guess) for a target other than head, -x arguments, Flask-Migrate, several
    heads, or anything the reader is not certain of: the full path decides and reports.
    """
    if KNOWN:
        return KNOWN[0]
    if settings.target not in ("head", "heads") or settings.x_arguments:
        return KnownHeads(None)
    manifest = fresh_manifest(project.config_files, project.script_location)
    if manifest is not None:
        heads = manifest.heads
        # several heads: the full path explains the problem (exit 7)
        single = settings.target == "heads" or len(heads) == 1
        return KnownHeads(heads if single else None, "manifest",
                          sums=manifest.sums(project.config_files[0]))
    if settings.flask_app:
        return KnownHeads(None)  # Flask-Migrate's configuration is its app's, not a file's
    found = source_history(settings, project)
    if found is None:
        return KnownHeads(None)
    return KnownHeads((found.head,), "revision files", found.files, found.sums())


def source_history(settings: Settings, project: Project) -> SourceHistory | None:
    """The head and each revision's file, read from the revision files' source (cached); None
    when the reader is not certain."""
    from migration_job.heads_cache import cached_source_head
    from migration_job.script_files import Declined

    try:
        return cached_source_head(project, settings.heads_cache)
    except Declined as reason:
        log.debug("heads_not_read", f"reading the full history: the revision files do not "
                  f"say the head for certain ({reason})", reason=str(reason))
        return None


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
