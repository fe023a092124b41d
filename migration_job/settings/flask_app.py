"""Flask-Migrate projects: the application FLASK_APP names, its migrations directory, and its
application context around every run of env.py (issue 10, point 3).

Flask-Migrate keeps alembic.ini inside its migrations directory, whose path (relative to the
working directory) the app's `Migrate(app, db, directory=...)` holds, and names that directory
the script location itself (`Migrate.get_config`). Its env.py reads the database from
`current_app`'s Flask-SQLAlchemy engine and ignores the connection and URL the job offers.

So the job builds the application with Flask's own loader (`ScriptInfo`, as the `flask`
command does), asks the Migrate extension for the directory and for the Alembic Config, and
runs env.py inside the application context, showing it, for that run only, an extension whose
`db` answers with an engine for the URL the job hands env.py (DATABASE_URL): env.py migrates
the database the job waited for and locked, and its connections get the lock's session like
those of any env.py's own engine. The app's own SQLALCHEMY_DATABASE_URI is not used.

Flask is imported only when FLASK_APP names the project: it is the application's dependency,
installed with it, not the job's.
"""

from __future__ import annotations

import copy
import os
import sysconfig
import traceback
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from migration_job.errors import ConfigError
from migration_job.masking import Masker

if TYPE_CHECKING:
    from alembic.config import Config
    from alembic.script import ScriptDirectory
    from flask import Flask
    from sqlalchemy import Engine

    from migration_job.settings import Settings

INI_NAME = "alembic.ini"
MULTIPLE_DATABASES = ("each of its revisions changes every database of the app's binds at "
                      "once, which one DATABASE_URL, one lock and one version table cannot "
                      "cover; migrate it with `flask db upgrade`, or split it into one project "
                      "per database (nothing was applied)")
# Applications built in this process, by working directory and FLASK_APP: the configuration
# step builds it, the worker's runs of env.py use the same one.
_APPS: dict[tuple[str, str], Flask] = {}


def migrations_ini(flask_app: str, secrets: tuple[str, ...] = ()) -> Path:
    """The alembic.ini in the migrations directory of the app FLASK_APP names (absolute).

    Builds the application (once per process). Anything that stops it, or an app without a
    Flask-Migrate extension or without `flask db init` done, is a ConfigError of one line
    (the secrets masked: an app's error may quote its configuration).
    """
    try:
        directory = migrations_directory(flask_app, application(flask_app))
    except ConfigError as error:
        raise ConfigError(Masker(secrets)(str(error))) from None
    ini = directory / INI_NAME
    if not ini.is_file():
        raise ConfigError(_no_ini(flask_app, directory))
    if _migrates_every_bind(directory):
        raise ConfigError(f"FLASK_APP={flask_app}: {directory} is a multi-database project "
                          f"(flask db init --multidb): {MULTIPLE_DATABASES}")
    return ini


def _migrates_every_bind(directory: Path) -> bool:
    """Whether env.py is Flask-Migrate's multi-database template (it reads the app's
    SQLALCHEMY_BINDS to migrate each bind's database too). A cheap text test, on every
    start; should an edited env.py pass it, asking for a bind's engine is refused anyway."""
    try:
        return "SQLALCHEMY_BINDS" in (directory / "env.py").read_text(errors="replace")
    except OSError:
        return False  # Alembic reports a missing env.py


def application(flask_app: str) -> Flask:
    """The Flask application FLASK_APP names, built as `flask` builds it (once per process)."""
    key = (os.getcwd(), flask_app)
    if key not in _APPS:
        _APPS[key] = _load(flask_app)
    return _APPS[key]


def _load(flask_app: str) -> Flask:
    try:
        from flask.cli import NoAppException, ScriptInfo
    except ImportError:
        raise ConfigError(f"FLASK_APP={flask_app} is set, but Flask is not installed where the "
                          "job runs: install the application and its dependencies (Flask, "
                          "Flask-SQLAlchemy, Flask-Migrate) beside the job, or unset "
                          "FLASK_APP") from None
    try:
        return ScriptInfo(app_import_path=flask_app).load_app()
    except NoAppException as error:
        raise ConfigError(f"FLASK_APP={flask_app} cannot be loaded: "
                          f"{_no_app(error)}") from None
    except (Exception, SystemExit) as error:  # noqa: BLE001  (the app's own code failed)
        raise ConfigError(f"FLASK_APP={flask_app} cannot be loaded: building the application "
                          f"raised {_one_line(error)}{_where(error)}; fix the application or "
                          "its configuration") from None


def migrations_directory(flask_app: str, app: Flask) -> Path:
    """The directory the app's Migrate extension was created with, resolved as Flask-Migrate
    resolves it: from the working directory."""
    extension = app.extensions.get("migrate")
    if extension is None or not hasattr(extension, "migrate"):
        raise ConfigError(f"FLASK_APP={flask_app}: the application {app.name!r} has no "
                          "Flask-Migrate extension (app.extensions['migrate']): create it with "
                          "Migrate(app, db), or point ALEMBIC_CONFIG at the project's "
                          "alembic.ini")
    if getattr(extension, "db", None) is None:
        raise ConfigError(f"FLASK_APP={flask_app}: the application {app.name!r} created its "
                          "Migrate extension without a Flask-SQLAlchemy object: use "
                          "Migrate(app, db)")
    return Path(str(extension.directory)).resolve()


def _no_ini(flask_app: str, directory: Path) -> str:
    """Why there is no alembic.ini in `directory`, and where one might be instead."""
    message = (f"FLASK_APP={flask_app}: the migrations directory {directory} has no "
               f"{INI_NAME}; create it with `flask db init`")
    app = application(flask_app)
    relative = Path(str(app.extensions["migrate"].directory))
    if relative.is_absolute():
        return message
    # The folder `flask db` was run in is usually the app's, or a parent of its package's.
    root = Path(app.root_path)
    found = next((folder for folder in (root, *root.parents)
                  if (folder / relative / INI_NAME).is_file()), None)
    if found is not None:
        message += (f"; the job finds the directory from the working directory "
                    f"({os.getcwd()}), as `flask db` does: run the job in {found} "
                    "(docker run -w, WORKDIR)")
    return message


def alembic_config(settings: Settings) -> Config:
    """The Alembic Config that Flask-Migrate builds (`Migrate.get_config`: the directory's
    alembic.ini, script_location set to the directory, -x arguments, the app's
    `@migrate.configure` callbacks), inside the application context as `flask db` runs it."""
    assert settings.flask_app is not None
    app = application(settings.flask_app)
    migrate = app.extensions["migrate"].migrate
    with app.app_context():
        config: Config = migrate.get_config(str(settings.alembic_config.parent),
                                             x_arg=list(settings.x_arguments))
    return config


def run_env_in_app_context(flask_app: str, config: Config, scripts: ScriptDirectory) -> None:
    """Make every run of env.py (upgrade, downgrade, offline SQL, `alembic current`) run in the
    application context, with the job's engine behind the Migrate extension's `db`."""
    app = application(flask_app)
    run_env = scripts.run_env

    def run_env_in_context() -> None:
        import sqlalchemy
        from sqlalchemy.pool import NullPool

        # The URL the job hands env.py, as Alembic's generic env.py would build its engine.
        url = config.get_main_option("sqlalchemy.url")
        assert url is not None
        engine = sqlalchemy.create_engine(url, poolclass=NullPool)
        extension = app.extensions["migrate"]
        stand_in = copy.copy(extension)
        stand_in.db = JobDatabase(extension.db, engine)
        try:
            with app.app_context():
                app.extensions["migrate"] = stand_in
                run_env()
        finally:
            app.extensions["migrate"] = extension
            # env.py writes its engine's URL into sqlalchemy.url; the next run starts afresh.
            config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
            engine.dispose()

    scripts.run_env = run_env_in_context  # type: ignore[method-assign]


class JobDatabase:
    """The app's Flask-SQLAlchemy object as env.py sees it during a run: its metadata and
    everything else as they are, but its engine is the job's.

    Flask-Migrate's env.py asks `db.get_engine()` (Flask-SQLAlchemy 2, Alchemical), then
    `db.engine` (Flask-SQLAlchemy 3); its multi-database template also asks for each bind's
    engine, another database the job has not locked: refused (exit 2).
    """

    def __init__(self, db: Any, engine: Engine) -> None:
        self._db = db
        self._engine = engine

    def __getattr__(self, name: str) -> Any:
        return getattr(self._db, name)

    @property
    def engine(self) -> Engine:
        """The job's engine."""
        return self._engine

    @property
    def engines(self) -> Mapping[str | None, Engine]:
        """The default bind's engine: the job's."""
        return JobEngines(self._engine)

    def get_engine(self, app: object = None, bind: str | None = None,
                   bind_key: str | None = None) -> Engine:
        """The job's engine for the default bind; another bind is refused."""
        return self.engines[bind if bind is not None else bind_key]


class JobEngines(Mapping[str | None, "Engine"]):
    """`db.engines` with only the default bind, the job's engine; another bind is refused."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def __getitem__(self, key: str | None) -> Engine:
        if key is None:
            return self._engine
        raise ConfigError(
            f"env.py asked for the engine of the bind {key!r}, a database of the app's "
            f"other than DATABASE_URL, like a multi-database project: {MULTIPLE_DATABASES}")

    def __iter__(self) -> Iterator[str | None]:
        return iter((None,))

    def __len__(self) -> int:
        return 1


def _no_app(error: BaseException) -> str:
    """Flask's NoAppException in one line; an import error inside the module by its cause."""
    cause = error.__context__
    if isinstance(cause, ImportError) and "an ImportError was raised" in str(error):
        return f"importing it raised {_one_line(cause)}{_where(cause)}"
    message = " ".join(str(error).split())
    if message.startswith("Could not import"):
        message += (f" from {os.getcwd()}: run the job in the application's folder, as `flask` "
                    "runs, or make the application importable (PYTHONPATH)")
    return message


def _one_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return f"{type(error).__name__}: {lines[0]}" if lines else type(error).__name__


def _where(error: BaseException) -> str:
    """' (in FILE, line N)': the deepest frame in the application's own files, else the
    deepest of all."""
    frames = traceback.extract_tb(error.__traceback__)
    if isinstance(error, SyntaxError) and error.filename:
        return f" (in {error.filename}, line {error.lineno})"
    if not frames:
        return ""
    libraries = {sysconfig.get_path(name) for name in ("stdlib", "platstdlib", "purelib",
                                                        "platlib")}
    libraries = {os.path.realpath(path) for path in libraries if path}

    def in_libraries(filename: str) -> bool:
        real = os.path.realpath(filename)
        return filename.startswith("<") or any(real.startswith(path + os.sep)
                                               for path in libraries)

    own = [frame for frame in frames if not in_libraries(frame.filename)]
    frame = (own or frames)[-1]
    return f" (in {frame.filename}, line {frame.lineno})"
