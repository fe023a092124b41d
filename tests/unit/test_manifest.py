"""The heads manifest goes stale on any change that could change the heads."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest

from migration_job.project.manifest import (
    fresh_heads,
    fresh_manifest,
    manifest_path,
    write_manifest,
)
from tests.support.job import REPO


@pytest.fixture
def project(tmp_path: Path) -> tuple[tuple[Path, ...], Path]:
    """A copy of the example project, with a pyproject.toml beside its alembic.ini, and a
    manifest for head 0005."""
    shutil.copy(REPO / "alembic.ini", tmp_path / "alembic.ini")
    (tmp_path / "pyproject.toml").write_text('[tool.alembic]\nscript_location = "migrations"\n')
    shutil.copytree(REPO / "migrations", tmp_path / "migrations",
                    ignore=shutil.ignore_patterns("__pycache__", "*.json"))
    config = (tmp_path / "alembic.ini", tmp_path / "pyproject.toml")
    scripts = tmp_path / "migrations"
    write_manifest(config, scripts, ["0005"], [str(scripts / "versions")], recursive=False)
    return config, scripts


class TestFreshness:
    """Fresh until a revision file, alembic.ini or the manifest itself changes."""

    def test_fresh(self, project: tuple[tuple[Path, ...], Path]) -> None:
        assert fresh_heads(*project) == ("0005",)

    def test_added_revision(self, project: tuple[tuple[Path, ...], Path]) -> None:
        config, scripts = project
        (scripts / "versions" / "0006_new.py").write_text("revision = '0006'\n")
        assert fresh_heads(config, scripts) is None

    def test_edited_revision(self, project: tuple[tuple[Path, ...], Path]) -> None:
        config, scripts = project
        edited = scripts / "versions" / "0005_add_employee_active.py"
        edited.write_text(edited.read_text().replace('"0004"', '"0003"'))
        assert fresh_heads(config, scripts) is None

    def test_removed_revision(self, project: tuple[tuple[Path, ...], Path]) -> None:
        config, scripts = project
        (scripts / "versions" / "0005_add_employee_active.py").unlink()
        assert fresh_heads(config, scripts) is None

    @pytest.mark.parametrize("which", [0, 1])
    def test_edited_config(self, project: tuple[tuple[Path, ...], Path], which: int) -> None:
        config, scripts = project
        config[which].write_text(config[which].read_text() + "\n# changed\n")
        assert fresh_heads(config, scripts) is None

    @pytest.mark.parametrize("content", ["", "{", '{"format": 1}', '{"format": 99}', "[]"])
    def test_broken_manifest_is_ignored(self, project: tuple[tuple[Path, ...], Path],
                                        content: str) -> None:
        config, scripts = project
        manifest_path(scripts).write_text(content)
        assert fresh_heads(config, scripts) is None

    def test_missing_manifest(self, project: tuple[tuple[Path, ...], Path]) -> None:
        config, scripts = project
        manifest_path(scripts).unlink()
        assert fresh_heads(config, scripts) is None


class TestChecksums:
    """The manifest records each revision's file and sha256 (MIGRATE_VERIFY at head), and a
    manifest written before it did still gives the heads, without them."""

    def test_recorded(self, tmp_path: Path) -> None:
        shutil.copy(REPO / "alembic.ini", tmp_path / "alembic.ini")
        shutil.copytree(REPO / "migrations", tmp_path / "migrations",
                        ignore=shutil.ignore_patterns("__pycache__", "*.json"))
        config, scripts = (tmp_path / "alembic.ini",), tmp_path / "migrations"
        files = {path.name[:4]: str(path) for path in (scripts / "versions").glob("0*.py")}
        write_manifest(config, scripts, ["0005"], [str(scripts / "versions")], False, files)
        manifest = fresh_manifest(config, scripts)
        assert manifest is not None
        sums = manifest.sums(config[0])
        assert sums is not None
        assert sorted(sums) == sorted(files)
        for revision, (path, sha) in sums.items():
            assert Path(path).resolve() == Path(files[revision]).resolve()
            assert sha == hashlib.sha256(Path(path).read_bytes()).hexdigest()

    def test_older_manifest_has_none(self, project: tuple[tuple[Path, ...], Path]) -> None:
        config, scripts = project
        document = json.loads(manifest_path(scripts).read_text())
        del document["revisions"]
        manifest_path(scripts).write_text(json.dumps(document))
        manifest = fresh_manifest(config, scripts)
        assert manifest is not None
        assert manifest.heads == ("0005",)
        assert manifest.sums(config[0]) is None
