"""FLASK_APP as the project (a Flask-Migrate application), without a database: which project
the settings name, the directory found, and the engine env.py is shown."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import sqlalchemy

from migration_job.errors import ConfigError
from migration_job.project import project_for
from migration_job.settings.flask_app import JobDatabase
from migration_job.settings.load import load_settings

APP = '''\
from flask import Flask
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy

db = SQLAlchemy()


def create_app():
    app = Flask(__name__)
    app.config["SQLALCHEMY_DATABASE_URI"] = "sqlite:///never-opened.db"
    db.init_app(app)
    Migrate(app, db, directory="{directory}")
    return app
'''


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An application's folder as the working directory; sys.path restored afterwards."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    return tmp_path


def make_app(folder: Path, directory: str = "migrations") -> str:
    """An app module (named after the test's folder, so each test imports its own) with its
    Flask-Migrate directory holding an alembic.ini as `flask db init` writes it; its FLASK_APP."""
    module = f"flask_app_{abs(hash(folder))}"
    (folder / f"{module}.py").write_text(APP.replace("{directory}", directory))
    (folder / directory).mkdir(parents=True)
    (folder / directory / "alembic.ini").write_text("[alembic]\n")
    return f"{module}:create_app"


def test_flask_app_names_the_migrate_directory(folder: Path) -> None:
    settings = load_settings({}, {"DATABASE_URL": "sqlite:///job.db",
                                  "FLASK_APP": make_app(folder, "db/migrations")})
    assert settings.alembic_config == folder.resolve() / "db" / "migrations" / "alembic.ini"
    assert settings.toml_config is None
    project = project_for(settings)
    # Flask-Migrate's alembic.ini names no script_location: its directory is it.
    assert project.script_location == folder.resolve() / "db" / "migrations"
    assert project.config_files == (settings.alembic_config,)


def test_alembic_config_wins_and_the_app_is_not_built(folder: Path) -> None:
    ini = folder / "elsewhere.ini"
    ini.write_text("[alembic]\nscript_location = m\n")
    settings = load_settings({}, {"DATABASE_URL": "sqlite:///job.db", "ALEMBIC_CONFIG": str(ini),
                                  "FLASK_APP": "module_that_does_not_exist"})
    assert settings.flask_app is None
    assert settings.alembic_config == ini


def test_an_alembic_ini_in_the_working_directory_wins(folder: Path) -> None:
    (folder / "alembic.ini").write_text("[alembic]\nscript_location = m\n")
    settings = load_settings({}, {"DATABASE_URL": "sqlite:///job.db",
                                  "FLASK_APP": "module_that_does_not_exist"})
    assert settings.flask_app is None


def test_an_ini_section_does_not_apply(folder: Path) -> None:
    with pytest.raises(ConfigError, match="MIGRATE_INI_SECTION=other"):
        load_settings({"name": "other"}, {"DATABASE_URL": "sqlite:///job.db",
                                          "FLASK_APP": "module_that_is_never_imported"})


def test_an_error_quoting_the_password_is_masked(folder: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    (folder / "leaky_app_module.py").write_text(
        "import os\nraise RuntimeError(os.environ['LEAK'])\n")
    url = "postgresql://app:s3cr%40t@db/app"
    monkeypatch.setenv("LEAK", url)
    with pytest.raises(ConfigError) as raised:
        load_settings({}, {"DATABASE_URL": url, "FLASK_APP": "leaky_app_module"})
    assert "s3cr" not in str(raised.value)
    assert "RuntimeError: postgresql://app:***@db/app (in " in str(raised.value)


def test_env_py_gets_the_job_engine_for_the_default_bind_only() -> None:
    engine = sqlalchemy.create_engine("sqlite:///job.db")

    class FlaskSqlAlchemy:
        metadata = sqlalchemy.MetaData()
        engine = "the app's own"

    db = JobDatabase(FlaskSqlAlchemy(), engine)
    assert db.engine is engine
    assert db.get_engine() is engine
    assert db.engines.get(None) is engine
    assert db.metadata is FlaskSqlAlchemy.metadata
    # The multi-database template's other binds are other databases: refused.
    with pytest.raises(ConfigError, match="bind 'audit'"):
        db.get_engine(bind="audit")
    with pytest.raises(ConfigError, match="multi-database"):
        db.engines.get("audit")
