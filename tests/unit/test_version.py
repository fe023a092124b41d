"""The job's version: `--version`, and the first line of every run."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from migration_job import __version__
from tests.support.job import REPO, job_env, run_job

PYPROJECT_VERSION = tomllib.loads((REPO / "pyproject.toml").read_text())["project"].get(
    "version")


def test_the_package_version_is_the_one_pyproject_builds() -> None:
    """pyproject.toml reads the version from the package, so an install and the image (which
    runs the package from /app without installing it) report the same one."""
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert pyproject["tool"]["setuptools"]["dynamic"]["version"] == {
        "attr": "migration_job.__version__"}
    assert PYPROJECT_VERSION is None
    assert __version__.count(".") == 2


def test_version_flag_prints_the_version_and_exits_0() -> None:
    result = run_job("--version", env=job_env())
    assert result.code == 0, result.stderr
    assert result.stdout == f"migration-job {__version__}\n"
    assert result.stderr == ""


@pytest.mark.parametrize("log_format", ["json", "text"])
def test_first_line_of_a_run_names_the_version(log_format: str, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'app.db'}"
    result = run_job("status", env=job_env(DATABASE_URL=url, MIGRATE_LOG_FORMAT=log_format,
                                           ALEMBIC_CONFIG=str(REPO / "alembic.ini")))
    assert result.code == 0, result.stderr
    first = result.stderr.splitlines()[0]
    assert f"migration-job {__version__}" in first, first
    if log_format == "json":
        assert result.events[0]["event"] == "job_started"
        assert result.events[0]["job_version"] == __version__
        assert result.events[0]["command"] == "status"


def test_a_configuration_error_line_carries_the_version() -> None:
    """The one line of a configuration error is also the run's first: it carries the version."""
    result = run_job(env=job_env(MIGRATE_TARGET=" "))
    assert result.code == 2
    assert [e["event"] for e in result.events] == ["configuration_error"]
    assert result.events[0]["job_version"] == __version__
