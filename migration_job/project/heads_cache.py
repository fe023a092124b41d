"""The head read from source, kept between runs, keyed by a fingerprint of what decided it.

Reading every revision file with `ast` costs about 0.15 ms a file; even opening and reading
each one costs a warm no-op more than the rest of its file work. So the fingerprint covers the
reader's format, the configuration files (their content) and every file Alembic would load by
its real path and its status: size, modification and change times in nanoseconds, inode and
device. Any change to any of them (an added, removed, renamed or edited revision, another
working directory for relative locations) is a miss and the files are read again. Writing a
file sets its change time to the clock's now, and no call sets it back, so an edit that keeps
all of that status takes setting the system clock back (or two writes within one tick of the
file system's clock, with a run between them): the trade Python's own bytecode cache makes on
size and modification time, with the change time and inode added. Where the cache folder
(Settings.heads_cache) cannot be written the job simply reads the files on every run.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from migration_job.log import log
from migration_job.project.script_files import Declined, revision_files

if TYPE_CHECKING:
    from migration_job.project import Project

# Bumped whenever the reader's rules change, so that no cached verdict outlives them.
READER_FORMAT = b"migration-job source heads 4"


class SourceHistory(NamedTuple):
    """What the revision files say for certain: the one head, each revision's file, and each
    file's sha256 (what MIGRATE_VERIFY compares with the applied-history table's)."""

    head: str
    files: dict[str, str]
    checksums: dict[str, str]

    def sums(self) -> dict[str, tuple[str, str]]:
        """Revision -> (its file, the file's sha256)."""
        return {revision: (path, self.checksums[revision])
                for revision, path in self.files.items() if revision in self.checksums}


def cached_source_head(project: Project, folder: Path | None) -> SourceHistory:
    """The project's one head and revision files: from the cache in `folder` when the
    fingerprint matches, else read from source (and cached there). Raises Declined when the
    reader is not certain."""
    files = revision_files(project)
    # Status first, content after: a file written in between is a miss on the next run.
    fingerprint = _fingerprint(project, files)
    entry = _entry(project, folder) if folder is not None else None
    if entry is not None:
        cached = _cached(entry, fingerprint)
        if cached is not None:
            return cached
    contents = [_read(path) for path in files]
    # Only on a miss: the reader (ast and its patterns) costs a warm run more than the rest.
    from migration_job.project.revision_source import read_revision
    from migration_job.project.source_heads import single_head

    revisions = [read_revision(path, source)
                 for path, source in zip(files, contents, strict=True)]
    found = SourceHistory(
        single_head(revisions),
        {one.revision: path for one, path in zip(revisions, files, strict=True)},
        {one.revision: hashlib.sha256(content).hexdigest()
         for one, content in zip(revisions, contents, strict=True)})
    if entry is not None:
        _store(entry, fingerprint, found)
    return found


def _read(path: str) -> bytes:
    try:
        with open(path, "rb") as file:
            return file.read()
    except OSError as error:
        raise Declined(f"cannot read {path}: {error.strerror}") from None


def _fingerprint(project: Project, files: list[str]) -> str:
    digest = hashlib.sha256(READER_FORMAT)
    for config in project.config_files:
        digest.update(b"\0" + str(config.resolve()).encode() + b"\0" + _read(str(config)))
    digest.update(b"".join(map(_status, files)))
    return digest.hexdigest()


def _status(path: str) -> bytes:
    """A file's real path and status, as one piece of the fingerprint."""
    try:
        found = os.stat(path)
    except OSError as error:
        raise Declined(f"cannot read {path}: {error.strerror}") from None
    return b"\0%s\0%d %d %d %d %d" % (path.encode(errors="surrogateescape"), found.st_size,
                                      found.st_mtime_ns, found.st_ctime_ns, found.st_ino,
                                      found.st_dev)


def _entry(project: Project, folder: Path) -> Path:
    """The cache file for this project: one per configuration file."""
    name = hashlib.sha256(str(project.config_path.resolve()).encode()).hexdigest()[:32]
    return folder / f"heads-{name}.json"


def _cached(entry: Path, fingerprint: str) -> SourceHistory | None:
    try:
        document = json.loads(entry.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(document, dict) or document.get("fingerprint") != fingerprint:
        return None
    head, files, sums = document.get("head"), document.get("files"), document.get("checksums")
    if not isinstance(head, str) or not isinstance(files, dict) or not isinstance(sums, dict):
        return None
    return SourceHistory(head, {str(revision): str(path) for revision, path in files.items()},
                         {str(revision): str(sha) for revision, sha in sums.items()})


def _store(entry: Path, fingerprint: str, found: SourceHistory) -> None:
    """Write the entry atomically; a cache that cannot be written is only a slower next run."""
    import tempfile  # only when writing: most runs find the entry

    try:
        entry.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile("w", dir=entry.parent, delete=False,
                                         suffix=".tmp", encoding="utf-8") as temporary:
            json.dump({"fingerprint": fingerprint, "head": found.head, "files": found.files,
                       "checksums": found.checksums}, temporary)
        os.replace(temporary.name, entry)
    except OSError as error:
        log.debug("heads_cache_not_written", f"could not write the heads cache {entry}: "
                  f"{error.strerror}")
