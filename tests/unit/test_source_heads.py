"""The source reader against Alembic's own ScriptDirectory: the same head, or it declines."""

from __future__ import annotations

import os
import random
import warnings
from pathlib import Path

import pytest
from alembic.config import Config
from alembic.script import ScriptDirectory

from migration_job.project import read_project
from migration_job.project.heads_cache import cached_source_head
from migration_job.project.script_files import Declined
from tests.support.history_corpus import write_project

SEED = 20261203
PROJECTS = 150


def alembic_heads(ini: Path) -> list[str] | None:
    """The heads Alembic finds, or None when it cannot load the history or warns about it
    (a duplicate revision, a missing one: its util.warn); deprecations are no verdict."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("error", UserWarning)
        try:
            return sorted(ScriptDirectory.from_config(Config(str(ini))).get_heads())
        except Exception:  # noqa: BLE001  (any failure of Alembic's is a history it refuses)
            return None


def reader_head(ini: Path) -> str | None:
    """The reader's head (no cache), or None when it declines."""
    try:
        return cached_source_head(read_project(ini), None).head
    except Declined:
        return None


class TestDifferential:
    """Over a seeded corpus of odd histories the reader agrees with Alembic or declines."""

    def test_never_disagrees(self, tmp_path: Path) -> None:
        rng = random.Random(SEED)  # noqa: S311  (a reproducible corpus, not a secret)
        answered = 0
        for number in range(PROJECTS):
            ini = write_project(tmp_path / f"p{number}", rng)
            head = reader_head(ini)
            if head is None:
                continue
            answered += 1
            assert alembic_heads(ini) == [head], f"project p{number} ({ini})"
        # A reader that declined everything would pass the loop: it must answer most plain ones.
        assert answered >= PROJECTS // 4, answered


def project_with(tmp_path: Path, revisions: dict[str, str], ini_extra: str = "") -> Path:
    """A project whose versions folder holds these files; returns its alembic.ini."""
    versions = tmp_path / "migrations" / "versions"
    versions.mkdir(parents=True)
    for name, text in revisions.items():
        (versions / name).write_text(text)
    ini = tmp_path / "alembic.ini"
    ini.write_text(f"[alembic]\nscript_location = %(here)s/migrations\n{ini_extra}")
    return ini


FIRST = "revision = 'a1'\ndown_revision = None\n"
SECOND = "revision = 'b2'\ndown_revision = 'a1'\n"


class TestDeclines:
    """Shapes the reader cannot be sure of: it declines (Alembic then reads the history)."""

    @pytest.mark.parametrize("second", [
        "revision = f'b{2}'\ndown_revision = 'a1'\n",
        "revision = 'b2'\ndown_revision = ('a' + '1')\n",
        "revision = 'b2'\ndown_revision = 'a1'\nif True:\n    down_revision = None\n",
        "revision = 'b2'\ndown_revision = 'a1'\nvars()['revision'] = 'c3'\n",
        "revision = 'b2'\ndown_revision = 'a1'\nimport sys\nsys.modules[__name__].revision = 'c'\n",
        "revision = 'b2'\n",
        "revision = 'b-2'\ndown_revision = 'a1'\n",
        "revision = 'b2'\ndown_revision = 'a1'\ndepends_on = 'labelled'\n",
        "revision = 'b2'\ndown_revision = 'a1'\ndef broken(:\n",
        "revision = 'b2'; globals()['revision'] = 'c3'\ndown_revision = 'a1'\n",
        "revision = 'b2'\ndown_revision = 'a1'\nx = \"it's\" + globals()['y']\n",
        "revision = 'b2'\ndown_revision = 'a1'\nx = f'{globals().update(revision=1)}'\n",
        "revision: globals().get('x') or str = 'b2'\ndown_revision = 'a1'\n",
        "revision = 'b2'\ndown_revision = 'a1'\n\uff52evision = 'c3'\n",
        "revision = 'b2'\ndown_revision = 'a1'\nx = 'a\\'' + vars()['y']\n",
        "revision = 'b2'\ndown_revision = 'a1'\nfrom os import \\\n    *\n",
    ], ids=["f-string", "expression", "rebound", "vars", "sys.modules", "no down_revision",
            "odd id", "depends on a label", "syntax error", "shared line", "quote in string",
            "code in f-string", "annotation", "NFKC identifier", "escaped quote",
            "star import"])
    def test_unreadable_revision(self, tmp_path: Path, second: str) -> None:
        ini = project_with(tmp_path, {"a1_first.py": FIRST, "b2_second.py": second})
        assert reader_head(ini) is None

    @pytest.mark.parametrize("ini_extra", [
        "sourceless = true\n",
        "version_locations = pkg.module:versions\n",
        "version_locations = %(here)s/migrations/versions\npath_separator = comma\n",
    ], ids=["sourceless", "package resource", "unknown separator"])
    def test_settings_it_does_not_follow(self, tmp_path: Path, ini_extra: str) -> None:
        ini = project_with(tmp_path, {"a1_first.py": FIRST, "b2_second.py": SECOND}, ini_extra)
        assert reader_head(ini) is None

    def test_reads_the_plain_history(self, tmp_path: Path) -> None:
        ini = project_with(tmp_path, {"a1_first.py": FIRST, "b2_second.py": SECOND})
        assert reader_head(ini) == "b2"


class TestCache:
    """The cache answers only for the exact files it read; unwritable, it is only skipped."""

    def test_edit_after_a_cached_read_is_seen(self, tmp_path: Path) -> None:
        ini = project_with(tmp_path, {"a1_first.py": FIRST, "b2_second.py": SECOND})
        cache = tmp_path / "cache"
        assert cached_source_head(read_project(ini), cache).head == "b2"
        assert list((tmp_path / "cache").iterdir())
        (tmp_path / "migrations" / "versions" / "c3_third.py").write_text(
            "revision = 'c3'\ndown_revision = 'b2'\n")
        assert cached_source_head(read_project(ini), cache).head == "c3"

    def test_same_size_and_time_in_a_new_file_is_seen(self, tmp_path: Path) -> None:
        """The fingerprint is the files' status, not their content: a revision file replaced
        by one of the same size with its modification time set back (as a checkout or a copy
        may) is still a miss, and the new content's checksum is the one cached."""
        ini = project_with(tmp_path, {"a1_first.py": FIRST, "b2_second.py": SECOND})
        cache = tmp_path / "cache"
        first = cached_source_head(read_project(ini), cache)
        target = tmp_path / "migrations" / "versions" / "b2_second.py"
        before = target.stat()
        edited = SECOND.replace("b2", "c3")
        assert len(edited) == len(SECOND)
        assert edited != SECOND
        replacement = target.with_suffix(".new")
        replacement.write_text(edited)
        os.utime(replacement, ns=(before.st_atime_ns, before.st_mtime_ns))
        os.replace(replacement, target)
        again = cached_source_head(read_project(ini), cache)
        assert again.head == "c3"
        assert again.checksums["c3"] != first.checksums["b2"]

    def test_cached_verdict_is_used(self, tmp_path: Path) -> None:
        ini = project_with(tmp_path, {"a1_first.py": FIRST, "b2_second.py": SECOND})
        cache = tmp_path / "cache"
        assert cached_source_head(read_project(ini), cache).head == "b2"
        entry = next((tmp_path / "cache").iterdir())
        entry.write_text(entry.read_text().replace('"b2"', '"from-cache"'))
        assert cached_source_head(read_project(ini), cache).head == "from-cache"

    def test_unwritable_cache_still_reads(self, tmp_path: Path) -> None:
        ini = project_with(tmp_path, {"a1_first.py": FIRST, "b2_second.py": SECOND})
        blocker = tmp_path / "not-a-folder"
        blocker.write_text("")
        assert cached_source_head(read_project(ini), blocker).head == "b2"
