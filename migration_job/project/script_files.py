"""Which revision files Alembic would load for a project, found without importing Alembic.

Mirrors alembic.script.base (ScriptDirectory.from_config, _version_locations,
_load_revisions, Script._list_py_dir and _from_path, Alembic 1.20) for the settings it can
follow exactly; for any other (sourceless, package resources, version_locations in
pyproject.toml, a separator Alembic refuses, a symlink, a folder it cannot list) it returns
a reason to decline instead of a list: the caller then lets Alembic read the history.
"""

from __future__ import annotations

import os
import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from migration_job.project import Project

# Alembic's _only_source_rev_file, used with .match() as Alembic does.
SOURCE_REVISION_FILE = re.compile(r"(?!\.\#|__init__)(.*\.py)$")
# Alembic's legacy splitting of version_locations when no path_separator is configured.
LEGACY_SPLIT = re.compile(r", *|(?: +)")
SEPARATORS = {"space": " ", "newline": "\n", "os": os.pathsep, ":": ":", ";": ";"}


class Declined(Exception):
    """The reader is not certain to see what Alembic sees; the message says why."""


def revision_files(project: Project) -> list[str]:
    """The files Alembic would load as revisions, in its order; raises Declined."""
    ini = dict(project.ini_loading)
    toml = dict(project.toml_loading)
    if _flag(ini, toml, "sourceless"):
        raise Declined("sourceless = true (revisions may be .pyc files)")
    recursive = _flag(ini, toml, "recursive_version_locations")
    files: list[str] = []
    seen: set[str] = set()
    for folder in _version_locations(project, ini, toml):
        if not os.path.isdir(folder):
            raise Declined(f"the versions folder {folder} is missing")
        # Nothing below a folder is a symbolic link (_listed declines them): real paths then
        # follow from the folder's, as Alembic's Path.resolve() gives them.
        for real in _listed(os.path.realpath(folder), recursive):
            if real in seen:
                raise Declined(f"{real} is listed twice (overlapping version_locations)")
            seen.add(real)
            files.append(real)
    return files


def _flag(ini: dict[str, str], toml: dict[str, object], name: str) -> bool:
    """Alembic's get_alembic_boolean_option: the ini's word if it says one, else TOML's bool."""
    if name in ini:
        return ini[name] == "true"
    value = toml.get(name, False)
    if not isinstance(value, bool):
        raise Declined(f"{name} in [tool.alembic] is not a boolean")
    return value


def _version_locations(project: Project, ini: dict[str, str],
                       toml: dict[str, object]) -> list[str]:
    """Alembic's version folders, absolute (a relative one is read from the working directory,
    as Alembic's Path.absolute() does)."""
    written = ini.get("version_locations", "")
    if not written:
        if "version_locations" in toml:
            raise Declined("version_locations in [tool.alembic]")
        return [os.path.join(_script_directory(project), "versions")]
    locations = _split(written, ini)
    for location in locations:
        if not os.path.isabs(location) and ":" in location:
            raise Declined(f"version location {location!r} is a package resource")
    return [os.path.abspath(location) for location in locations]


def _script_directory(project: Project) -> str:
    written = project.location_as_written
    if not written:
        raise Declined(f"script_location {str(project.script_location)!r} is a package "
                       "resource or set by Flask-Migrate")
    alembic_sees = os.path.abspath(written)
    if alembic_sees != os.path.abspath(project.script_location):
        raise Declined(f"script_location {written!r} is relative and the working directory "
                       "is not the configuration's folder")
    return alembic_sees


def _split(written: str, ini: dict[str, str]) -> list[str]:
    """Alembic's get_version_locations_list for an ini value."""
    for name in ("path_separator", "version_path_separator"):
        if name in ini:
            if ini[name] not in SEPARATORS:
                raise Declined(f"{name} = {ini[name]!r} is not one Alembic accepts")
            return [x.strip() for x in written.split(SEPARATORS[ini[name]]) if x]
    return LEGACY_SPLIT.split(written)


def _listed(folder: str, recursive: bool) -> list[str]:
    """Script._list_py_dir then _from_path's file name filter: each folder's files sorted,
    then its subfolders in name order (recursive only), __pycache__ folders skipped."""
    paths: list[str] = []
    try:
        with os.scandir(folder) as entries:
            found = list(entries)
    except OSError as error:
        raise Declined(f"cannot list {folder}: {error.strerror}") from None
    folders: list[str] = []
    for entry in sorted(found, key=lambda e: e.name):
        if entry.is_symlink():
            raise Declined(f"{entry.path} is a symbolic link")
        if entry.is_dir():
            folders.append(entry.path)
        elif SOURCE_REVISION_FILE.match(entry.name):
            if "\n" in entry.name:
                raise Declined(f"{entry.path!r} has a newline in its name")
            paths.append(entry.path)
    if folder.endswith("__pycache__"):
        # Alembic skips such a folder's files but, walking on, would read its subfolders.
        if folders:
            raise Declined(f"{folder} has subfolders")
        return []
    if recursive:
        for sub in folders:
            paths.extend(_listed(sub, recursive))
    return paths
