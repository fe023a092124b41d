"""The heads manifest: lets a no-op run skip Alembic when the database is already at head.

Alembic executes every revision file to learn the heads, which costs more than the rest of a
no-op run together. The manifest records the heads once (at image build, or with the
`manifest` command) together with the folders Alembic read them from and a fingerprint of
alembic.ini and of the name and content of every revision file in those folders. A manifest
whose fingerprint no longer matches is ignored, so an added, removed or edited revision always
takes the full path: the fast path never skips pending work.

It also records each revision's file and that file's sha256, so that a run at head verifies
the applied revisions' files (MIGRATE_VERIFY) against the applied-history table without
hashing them again: a fresh fingerprint means the same bytes.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import NamedTuple

MANIFEST_NAME = "heads.manifest.json"
FORMAT_VERSION = 2


class Manifest(NamedTuple):
    """What the manifest file says."""

    heads: tuple[str, ...]
    folders: tuple[str, ...]  # relative to alembic.ini's folder
    recursive: bool
    fingerprint: str
    # revision -> (its file, relative to alembic.ini's folder; the file's sha256); empty in a
    # manifest written before they were recorded.
    revisions: dict[str, tuple[str, str]]

    def sums(self, config_file: Path) -> dict[str, tuple[str, str]] | None:
        """revision -> (its file, the file's sha256), or None when they were not recorded."""
        if not self.revisions:
            return None
        root = os.path.dirname(os.path.realpath(config_file))
        return {revision: (os.path.join(root, relative), sha)
                for revision, (relative, sha) in self.revisions.items()}


def manifest_path(script_location: Path) -> Path:
    """Where a project's manifest lives: beside its env.py."""
    return script_location / MANIFEST_NAME


def _revision_files(root: str, folders: Iterable[str], recursive: bool) -> list[str]:
    """Revision files as paths relative to `root` (plain strings: this runs on every start)."""
    files: list[str] = []
    for folder in folders:
        base = os.path.join(root, folder)
        if not os.path.isdir(base):
            continue
        if recursive:
            for parent, _, names in os.walk(base):
                relative = os.path.relpath(parent, root)
                files.extend(f"{relative}/{n}" for n in names if n.endswith(".py"))
        else:
            files.extend(f"{folder}/{n}" for n in os.listdir(base) if n.endswith(".py"))
    return sorted(files)


def fingerprint(config_files: tuple[Path, ...], folders: Iterable[str], recursive: bool) -> str:
    """sha256 over the configuration (alembic.ini, pyproject.toml) and every revision file's
    path and content; paths are relative to the first configuration file's folder."""
    root = os.path.dirname(os.path.abspath(config_files[0]))
    digest = hashlib.sha256()
    for config_file in config_files:
        digest.update(config_file.read_bytes() + b"\0")
    for relative in _revision_files(root, folders, recursive):
        with open(os.path.join(root, relative), "rb") as revision:
            digest.update(b"\0" + relative.encode() + b"\0" + revision.read())
    return digest.hexdigest()


def write_manifest(config_files: tuple[Path, ...], script_location: Path, heads: Iterable[str],
                   folders: Iterable[str], recursive: bool,
                   files: Mapping[str, str] | None = None) -> Path:
    """Record the heads, the folders, the fingerprint and (`files`: revision -> its file)
    each revision's file and sha256; returns the file written."""
    root = config_files[0].resolve().parent
    relative = sorted({os.path.relpath(Path(f).resolve(), root) for f in folders})
    revisions = {revision: [os.path.relpath(Path(path).resolve(), root), _sha256(path)]
                 for revision, path in sorted((files or {}).items())}
    document = {"format": FORMAT_VERSION, "heads": sorted(heads), "folders": relative,
                "recursive": recursive,
                "fingerprint": fingerprint(config_files, relative, recursive),
                "revisions": revisions}
    path = manifest_path(script_location)
    path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    return path


def read_manifest(script_location: Path) -> Manifest | None:
    """The manifest as written, or None if missing or unreadable."""
    try:
        document = json.loads(manifest_path(script_location).read_text(encoding="utf-8"))
        if document["format"] != FORMAT_VERSION:
            return None
        return Manifest(heads=tuple(sorted(str(h) for h in document["heads"])),
                        folders=tuple(str(f) for f in document["folders"]),
                        recursive=bool(document["recursive"]),
                        fingerprint=str(document["fingerprint"]),
                        revisions={str(revision): (str(relative), str(sha))
                                   for revision, (relative, sha)
                                   in document.get("revisions", {}).items()})
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def fresh_manifest(config_files: tuple[Path, ...], script_location: Path) -> Manifest | None:
    """The manifest if it still matches the project, else None."""
    manifest = read_manifest(script_location)
    if manifest is None:
        return None
    try:
        current = fingerprint(config_files, manifest.folders, manifest.recursive)
    except OSError:
        return None
    return manifest if current == manifest.fingerprint else None


def fresh_heads(config_files: tuple[Path, ...],
                script_location: Path) -> tuple[str, ...] | None:
    """The recorded heads if the manifest still matches the project, else None."""
    manifest = fresh_manifest(config_files, script_location)
    return manifest.heads if manifest is not None else None


def _sha256(path: str) -> str:
    with open(path, "rb") as file:
        return hashlib.sha256(file.read()).hexdigest()
