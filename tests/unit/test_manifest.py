"""The heads manifest goes stale on any change that could change the heads."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from migration_job.project.manifest import fresh_heads, manifest_path, write_manifest
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
