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
    lines = result.stderr.splitlines()
    if log_format == "json":
        assert result.events[0]["event"] == "database_ready"
        assert result.events[0]["job_version"] == __version__
        assert not [e for e in result.events[1:] if "job_version" in e]
    else:
        assert f"INFO    migration-job {__version__}: connected to sqlite" in lines[0], lines
        assert not [line for line in lines[1:] if "migration-job" in line]


@pytest.mark.parametrize("log_format", ["json", "text"])
def test_a_configuration_error_stays_one_line_and_carries_the_version(
        log_format: str, tmp_path: Path) -> None:
    """Found before the settings are loaded, or once the run started (an unusable alembic.ini):
    the error is the run's one line, and its first."""
    (tmp_path / "alembic.ini").write_text("[loggers]\n")
    for env in ({"MIGRATE_TARGET": " "},
                {"DATABASE_URL": f"sqlite:///{tmp_path / 'app.db'}",
                 "ALEMBIC_CONFIG": str(tmp_path / "alembic.ini")}):
        result = run_job(env=job_env(MIGRATE_LOG_FORMAT=log_format, **env))
        assert result.code == 2, result.stderr
        (line,) = result.stderr.splitlines()
        if log_format == "json":
            assert result.events[0]["event"] == "configuration_error"
            assert result.events[0]["job_version"] == __version__
        else:
            assert f"ERROR   migration-job {__version__}: " in line, line
