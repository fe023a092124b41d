"""The project's revision history, through Alembic's Config and ScriptDirectory."""

from __future__ import annotations

import os
import re
import traceback
from argparse import Namespace
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from alembic.config import Config
from alembic.script import ScriptDirectory
from alembic.script.revision import RevisionError
from alembic.util import CommandError

from migration_job.engines import env_url
from migration_job.errors import ConfigError, HistoryError
from migration_job.project.manifest import write_manifest
from migration_job.settings import Settings

# Alembic's own pattern for a relative revision ([branch@][revision]+N or -N), used with
# .match() as Alembic uses it, so that the job refuses exactly what Alembic would read so.
RELATIVE_TARGET = re.compile(r"(?:(.+?)@)?(\w+)?((?:\+|-)\d+)")
# What an env.py that runs asyncio says (Alembic's async templates say the first and last).
ASYNC_ENV = re.compile(r"\basync_engine_from_config\b|\bcreate_async_engine\b|\basyncio\.run\(")
# Alembic's errors that a history (not a bug) causes.
ALEMBIC_ERRORS = (CommandError, RevisionError)


def alembic_config(settings: Settings) -> Config:
    """Alembic's Config for the project (its sqlalchemy.url set by `point_env_at_database`)."""
    if settings.flask_app is not None:
        from migration_job.settings.flask_app import alembic_config as flask_migrate_config

        return flask_migrate_config(settings)
    return Config(settings.ini_config, toml_file=settings.toml_config,
                  ini_section=settings.ini_section,
                  cmd_opts=Namespace(x=list(settings.x_arguments)))


def point_env_at_database(config: Config, settings: Settings, scripts: ScriptDirectory) -> None:
    """Put the job's database in sqlalchemy.url, with the driver env.py gets
    (engines.env_url: the one the URL names, else one that fits env.py).

    The URL goes through ConfigParser interpolation, so a '%' in it (an URL-encoded password)
    is doubled; otherwise '%40' in a password would be read as an interpolation and fail.
    Without a URL (libpq's PG* variables) a sqlalchemy.url of the project's own stands.
    """
    if settings.given_url is None and config.get_main_option("sqlalchemy.url"):
        return
    # Flask-Migrate's env.py gets the job's own (synchronous) engine for this URL.
    runs_asyncio = settings.flask_app is None and env_runs_asyncio(scripts.env_py_location)
    url = env_url(settings.given_url, runs_asyncio)
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))


def env_runs_asyncio(env_py: str) -> bool:
    """Whether the project's env.py runs its migrations through asyncio (Alembic's async
    templates), read from its source: such an env.py needs an async driver."""
    try:
        with open(env_py, encoding="utf-8") as file:
            return ASYNC_ENV.search(file.read()) is not None
    except (OSError, UnicodeDecodeError):
        return False  # Alembic reports a missing or unreadable env.py itself


def load_scripts(config: Config) -> ScriptDirectory:
    """The ScriptDirectory, every revision file read: a file that cannot be, or a missing
    versions folder, is a history problem."""
    try:
        scripts = ScriptDirectory.from_config(config)
    except ALEMBIC_ERRORS as error:
        raise HistoryError(f"cannot read the migration history: {error}") from None
    folders = version_folders(config, scripts)
    missing = [folder for folder in folders if not os.path.isdir(folder)]
    if missing:
        raise HistoryError(f"the versions folder {missing[0]} is missing; "
                           "is ALEMBIC_CONFIG pointing at the right project?")
    read_revision_files(scripts, folders)
    return scripts


def version_folders(config: Config, scripts: ScriptDirectory) -> list[str]:
    """The folders Alembic reads revision files from."""
    return config.get_version_locations_list() or [os.path.join(scripts.dir, "versions")]


def read_revision_files(scripts: ScriptDirectory, folders: Iterable[str]) -> None:
    """Import every revision file now, so that a broken one stops the job before any change.

    Raises HistoryError naming the file and line; an error raised elsewhere stays a bug.
    """
    try:
        scripts.get_heads()
    except ALEMBIC_ERRORS as error:
        raise HistoryError(f"cannot read the migration history: {error}") from None
    except Exception as error:
        failure = _revision_file_failure(error, folders)
        if failure is None:
            raise
        raise HistoryError(f"cannot load the revision file {failure}; fix the file "
                           "(nothing was applied)") from None


def _revision_file_failure(error: Exception, folders: Iterable[str]) -> str | None:
    """'FILE, line N: Type: message' when importing a revision file raised; else None."""
    roots = [os.path.realpath(folder) for folder in folders]

    def in_versions(path: str) -> bool:
        if path.startswith("<"):  # importlib's own frames: <frozen importlib._bootstrap>
            return False
        real = os.path.realpath(path)
        return any(os.path.commonpath([real, root]) == root for root in roots)

    places = [(frame.filename, frame.lineno) for frame in traceback.extract_tb(error.__traceback__)]
    reason = str(error)
    if isinstance(error, SyntaxError) and error.filename:
        # The compiler ran no line of the file it rejects: the place is on the error itself.
        places.append((error.filename, error.lineno))
        reason = str(error.msg)
    revision_file = next((place for place in places if in_versions(place[0])), None)
    if revision_file is None:
        return None
    if places[-1] != revision_file:  # it failed in a module the revision file imports
        reason += f" (in {places[-1][0]}, line {places[-1][1]})"
    return f"{revision_file[0]}, line {revision_file[1]}: {type(error).__name__}: {reason}"


class History(NamedTuple):
    """A project's Alembic Config and ScriptDirectory, loaded and checked."""

    config: Config
    scripts: ScriptDirectory

    def plan(self, current: tuple[str, ...], target: str) -> Plan:
        """See `plan`."""
        return plan(self.scripts, current, target)

    def heads(self) -> tuple[str, ...]:
        """The project's head revision(s), sorted."""
        return tuple(sorted(self.scripts.get_heads()))


def load_history(settings: Settings) -> History:
    """Config plus every revision file read (errors in them surface now, exit 7)."""
    config = alembic_config(settings)
    scripts = load_scripts(config)
    point_env_at_database(config, settings, scripts)
    if settings.flask_app is not None:
        from migration_job.settings.flask_app import run_env_in_app_context

        # Flask-Migrate's env.py needs the application (current_app) whenever it runs.
        run_env_in_app_context(settings.flask_app, config, scripts)
    return History(config, scripts)


def reuse_history(history: History, settings: Settings) -> History:
    """A history read before (a fleet's, read once), pointed at this run's database."""
    config, scripts = history
    point_env_at_database(config, settings, scripts)
    return history


@dataclass(frozen=True)
class Plan:
    """Where the database is and where the target is."""

    current: tuple[str, ...]
    heads: tuple[str, ...]
    target: tuple[str, ...]
    pending: tuple[str, ...] = field(default=())

    @property
    def at_target(self) -> bool:
        """Whether nothing is left to apply (`plan` refused a database past the target)."""
        return not self.pending


def plan(scripts: ScriptDirectory, current: tuple[str, ...], target: str) -> Plan:
    """Check the history against the database and list what an upgrade would apply.

    Raises ConfigError for a relative target, and HistoryError for multiple heads (with
    target 'head'), a database revision the project does not know (typically after rolling
    the image back), an unknown target, or a target the database is already past.
    """
    refuse_relative(target)
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
    target_revisions = resolve(scripts, target)
    if set(current) == set(target_revisions):
        # The usual run: skip walking the history (milliseconds for 1,000 revisions).
        return Plan(current=current, heads=heads, target=target_revisions)
    wanted = ancestry(scripts, target_revisions)
    refuse_going_down(scripts, current, target, target_revisions, wanted)
    applied = set(ancestry(scripts, current))
    pending = tuple(revision for revision in wanted if revision not in applied)
    return Plan(current=current, heads=heads, target=target_revisions, pending=pending)


def refuse_relative(target: str) -> None:
    """A relative target ('-1', '+2', 'head-1') is a configuration error.

    It moves with the database: every retry, and every replica that takes the lock after
    another, would go one step further, so the run could never be repeated safely.
    """
    if RELATIVE_TARGET.match(target):
        raise ConfigError(f"MIGRATE_TARGET={target!r} is a relative revision; upgrade, check "
                          "and status need an absolute one (a revision id, head or heads), "
                          "so that every run aims at the same revision")


def resolve(scripts: ScriptDirectory, target: str) -> tuple[str, ...]:
    """The revision ids a target names ('head', a branch label, a partial id...)."""
    try:
        revisions = tuple(sorted(
            r.revision for r in scripts.get_revisions(target) if r is not None))
    except ALEMBIC_ERRORS as error:
        raise HistoryError(f"target revision {target!r} is not in the history: {error}") from None
    if not revisions and target != "base":
        raise HistoryError(f"target revision {target!r} is not in the history")
    return revisions


def start_from(scripts: ScriptDirectory, given: str) -> tuple[str, ...]:
    """The revision ids `--from REV` names (`base`: none, an empty database); HistoryError
    naming REV when this project does not hold it."""
    if given == "base":
        return ()
    try:
        found = tuple(sorted(r.revision for r in scripts.get_revisions(given) if r is not None))
    except ALEMBIC_ERRORS as error:
        raise HistoryError(f"--from {given} is not a revision of this project "
                           f"({str(error).strip()}); pass a revision id, or base") from None
    if not found:
        raise HistoryError(f"--from {given} is not a revision of this project; pass a "
                           "revision id, or base")
    return found


def ancestry(scripts: ScriptDirectory, revisions: tuple[str, ...]) -> list[str]:
    """The revisions and all they depend on, in the order an upgrade applies them."""
    try:
        found = scripts.iterate_revisions(revisions, "base")
        return [r.revision for r in reversed(list(found))]
    except ALEMBIC_ERRORS as error:
        raise HistoryError(f"cannot follow the history below {', '.join(revisions)}: "
                           f"{error}") from None


def refuse_going_down(scripts: ScriptDirectory, current: tuple[str, ...], target: str,
                      target_revisions: tuple[str, ...], wanted: list[str]) -> None:
    """Upgrade only adds revisions: a database past the target, or on a branch the target
    does not contain, is a history problem, not something to 'upgrade' away."""
    for revision in current:
        if revision in wanted:
            continue
        below = ancestry(scripts, (revision,))
        if all(r in below for r in target_revisions):
            raise HistoryError(
                f"the database is at {revision}, ahead of the target {target!r}; upgrade "
                f"never goes down: to go back, run `downgrade {target}`, or set "
                "MIGRATE_TARGET=head to stay")
        raise HistoryError(
            f"the database is at {revision}, on a branch the target {target!r} does not "
            "contain; set MIGRATE_TARGET to a revision that contains it, or heads")


def _lookup(scripts: ScriptDirectory, revision: str) -> object | None:
    try:
        return scripts.get_revision(revision)
    except CommandError:
        return None


def record_manifest(history: History) -> Path:
    """Write the heads manifest for the fast path (see migration_job.project.manifest)."""
    config, scripts = history
    files = tuple(Path(name) for name in (config.config_file_name, config.toml_file_name)
                  if name is not None)
    folders = version_folders(config, scripts)
    revisions = list(scripts.walk_revisions())
    folders += [os.path.dirname(script.path) for script in revisions]
    recursive = bool(config.get_alembic_boolean_option("recursive_version_locations"))
    return write_manifest(files, Path(scripts.dir), scripts.get_heads(), folders, recursive,
                          {script.revision: script.path for script in revisions})
