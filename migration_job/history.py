"""The project's revision history, through Alembic's Config and ScriptDirectory."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from alembic.config import Config
from alembic.script import ScriptDirectory
from alembic.util import CommandError

from migration_job.config import Settings
from migration_job.errors import HistoryError
from migration_job.manifest import write_manifest


def alembic_config(settings: Settings) -> Config:
    """Alembic's Config for the project, with the job's URL in sqlalchemy.url.

    The URL goes through ConfigParser interpolation, so a '%' in it (an URL-encoded password)
    is doubled; otherwise '%40' in a password would be read as an interpolation and fail.
    """
    config = Config(str(settings.alembic_config))
    if settings.database_url is not None:
        config.set_main_option("sqlalchemy.url", settings.database_url.replace("%", "%%"))
    elif not config.get_main_option("sqlalchemy.url"):
        config.set_main_option("sqlalchemy.url", "postgresql+psycopg2://")
    return config


def load_scripts(config: Config) -> ScriptDirectory:
    """The ScriptDirectory; a missing or unreadable versions folder is a history problem."""
    try:
        scripts = ScriptDirectory.from_config(config)
        scripts.get_heads()  # reads every revision file now, so errors surface before any change
    except CommandError as error:
        raise HistoryError(f"cannot read the migration history: {error}") from None
    locations = config.get_version_locations_list() or [os.path.join(scripts.dir, "versions")]
    missing = [location for location in locations if not os.path.isdir(location)]
    if missing:
        raise HistoryError(f"the versions folder {missing[0]} is missing; "
                           "is ALEMBIC_CONFIG pointing at the right project?")
    return scripts


class History(NamedTuple):
    """A project's Alembic Config and ScriptDirectory, loaded and checked."""

    config: Config
    scripts: ScriptDirectory

    def plan(self, current: tuple[str, ...], target: str) -> Plan:
        """See `plan`."""
        return plan(self.scripts, current, target)


def load_history(settings: Settings) -> History:
    """Config plus every revision file read (errors in them surface now, exit 7)."""
    config = alembic_config(settings)
    return History(config, load_scripts(config))


@dataclass(frozen=True)
class Plan:
    """Where the database is and where the target is."""

    current: tuple[str, ...]
    heads: tuple[str, ...]
    target: tuple[str, ...]
    pending: tuple[str, ...] = field(default=())

    @property
    def at_target(self) -> bool:
        """Whether nothing is left to apply."""
        return set(self.current) == set(self.target)


def plan(scripts: ScriptDirectory, current: tuple[str, ...], target: str) -> Plan:
    """Check the history against the database and list what an upgrade would apply.

    Raises HistoryError for multiple heads (with target 'head'), a database revision the
    project does not know (typically after rolling the image back), or an unknown target.
    """
    heads = tuple(sorted(scripts.get_heads()))
    if target == "head" and len(heads) > 1:
        raise HistoryError(f"the history has {len(heads)} heads ({', '.join(heads)}); "
                           "merge them with `alembic merge heads` or set MIGRATE_TARGET=heads")
    for revision in current:
        if _lookup(scripts, revision) is None:
            raise HistoryError(
                f"the database is at revision {revision}, which this project does not know "
                "(was the image rolled back to an older release?); "
                "deploy a release that contains it")
    try:
        target_revisions = tuple(sorted(
            r.revision for r in scripts.get_revisions(target) if r is not None))
    except CommandError as error:
        raise HistoryError(f"target revision {target!r} is not in the history: {error}") from None
    if not target_revisions and target not in ("base",):
        raise HistoryError(f"target revision {target!r} is not in the history")
    try:
        pending = tuple(
            r.revision for r in reversed(list(
                scripts.iterate_revisions(target, current or "base", implicit_base=True)))
        )
    except CommandError as error:
        raise HistoryError(f"cannot go from {current or 'base'} to {target}: {error}") from None
    return Plan(current=current, heads=heads, target=target_revisions, pending=pending)


def _lookup(scripts: ScriptDirectory, revision: str) -> object | None:
    try:
        return scripts.get_revision(revision)
    except CommandError:
        return None


def record_manifest(history: History) -> Path:
    """Write the heads manifest for the fast path (see migration_job.manifest)."""
    config, scripts = history
    assert config.config_file_name is not None
    folders = config.get_version_locations_list() or [os.path.join(scripts.dir, "versions")]
    folders += [os.path.dirname(script.path) for script in scripts.walk_revisions()]
    recursive = bool(config.get_alembic_boolean_option("recursive_version_locations"))
    return write_manifest(Path(config.config_file_name), Path(scripts.dir), scripts.get_heads(),
                          folders, recursive)
