"""How a run learns the heads: without Alembic when the manifest or the revision files say
them for certain (the fast path), else from the full history Alembic reads."""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

from migration_job.log import log
from migration_job.project.manifest import fresh_manifest

if TYPE_CHECKING:
    from migration_job.alembic_env.revision_graph import History
    from migration_job.project import Project
    from migration_job.project.heads_cache import SourceHistory
    from migration_job.settings import Settings


def load_history(settings: Settings) -> History:
    """The project's Alembic history (the first import of Alembic and SQLAlchemy)."""
    from migration_job.alembic_env.revision_graph import load_history as load

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


def known_heads(settings: Settings, project: Project) -> KnownHeads:
    """The heads, without Alembic, when they can decide this run's target for certain: from
    a fresh manifest, else read from the revision files' source (project.source_heads).

    None (never a guess) for a target other than head, -x arguments, Flask-Migrate, several
    heads, or anything the reader is not certain of: the full path decides and reports.
    """
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
    from migration_job.project.heads_cache import cached_source_head
    from migration_job.project.script_files import Declined

    try:
        return cached_source_head(project, settings.heads_cache)
    except Declined as reason:
        log.debug("heads_not_read", f"reading the full history: the revision files do not "
                  f"say the head for certain ({reason})", reason=str(reason))
        return None
