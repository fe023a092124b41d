"""A Flask-Migrate project runs unmodified with FLASK_APP (issue 10, points 3 and 6).

The project is made as a user makes it: an application package with a factory, models and
`Migrate(app, db)`, then the pinned Flask-Migrate's own `flask db init` and `flask db migrate`
(real subprocesses, FLASK_APP set) against a throwaway SQLite file. The job then migrates a
real PostgreSQL database, a MariaDB database and a SQLite file with FLASK_APP and DATABASE_URL
only; the app's own SQLALCHEMY_DATABASE_URI names yet another file, which nothing may touch.

Each generated revision also writes a row to the `applied` table (added to its upgrade(), as
users adjust generated revisions): once per application, and on PostgreSQL and MariaDB
whether it ran on the very session that holds the job's lock (MIGRATE_LOCK_KEY).
"""

from __future__ import annotations

import itertools
import os
import re
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import Database
from tests.support.job import ENTRYPOINT, OUTPUTS, Result, job_env, parse_events, run_job
from tests.support.mariadbserver import MariaDBServer
from tests.support.projects import make_sqlite_project

LOCK_KEY = "4242"
_numbers = itertools.count()
MODELS = '''\
from flask_sqlalchemy import SQLAlchemy

db = SQLAlchemy()


class Customer(db.Model):
    id = db.Column(db.Integer, primary_key=True)
    name = db.Column(db.String(80), nullable=False)


class Applied(db.Model):
    """The test's bookkeeping: one row per revision applied."""

    id = db.Column(db.Integer, primary_key=True)
    revision = db.Column(db.String(32), nullable=False)
    holds_lock = db.Column(db.Integer, nullable=False)
'''
# The second `flask db migrate` finds this model new.
PURCHASE_MODEL = '''

class Purchase(db.Model):
    id = db.Column(db.Integer, primary_key=True)
    customer_id = db.Column(db.Integer, db.ForeignKey("customer.id"), nullable=False)
    total = db.Column(db.Integer, nullable=False, server_default="0")
'''
APP = '''\
import os

from flask import Flask
from flask_migrate import Migrate

from shop.models import db


def create_app():
    app = Flask(__name__)
    app.config["SQLALCHEMY_DATABASE_URI"] = os.environ.get("SHOP_DATABASE_URI",
                                                           "sqlite:///shop-dev.db")
    db.init_app(app)
    Migrate(app, db{directory})
    return app


def broken_app():
    raise RuntimeError("the shop's settings are missing")


def plain_app():
    return Flask(__name__)


def leaky_app():
    raise RuntimeError("cannot reach " + os.environ["DATABASE_URL"])
'''
# Flask's other FLASK_APP forms: a file, and a module whose import fails.
WSGI = "from shop import create_app\n\napp = create_app()\n"
BROKEN_IMPORT = "import shop_settings_module_that_is_not_there  # noqa\n"
# Appended to each generated upgrade(): a row per application; on PostgreSQL, 1 when the
# revision runs on the session that holds the job's lock (the key the test sets).
RECORD = '''
    # Added by the test: a row each time this revision runs; 1 when it runs on the session
    # that holds the job's lock (the key the test sets), on the servers that can tell.
    import os
    from alembic import context
    holds = 1
    bind = None if context.is_offline_mode() else op.get_bind()
    key = os.environ.get("MIGRATE_LOCK_KEY", "")
    if bind is not None and bind.dialect.name == "postgresql":
        holds = bind.exec_driver_sql(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted"
            " AND objsubid = 1 AND classid = 0 AND objid::bigint = %(key)s"
            " AND pid = pg_backend_pid()", {"key": int(key)}).scalar()
    elif bind is not None and bind.dialect.name in ("mysql", "mariadb"):
        holds = bind.exec_driver_sql("SELECT IS_USED_LOCK(%s) = CONNECTION_ID()",
                                     ("migration-job:" + key,)).scalar()
    op.execute(f"INSERT INTO applied (revision, holds_lock) VALUES ('{revision}', {holds})")
'''
TABLES = {"customer", "purchase", "applied", "alembic_version"}


@dataclass
class FlaskProject:
    """A Flask application with its Flask-Migrate migrations, in its own folder."""

    root: Path
    directory: str
    revisions: list[str]  # in the order they apply

    @property
    def head(self) -> str:
        return self.revisions[-1]

    @property
    def app_database(self) -> Path:
        """The file the app's own SQLALCHEMY_DATABASE_URI names: the job never touches it."""
        return self.root / "app-own.db"

    def env(self, url: str, flask_app: str = "shop:create_app", **more: str) -> dict[str, str]:
        """The job's environment: FLASK_APP and DATABASE_URL (no ALEMBIC_CONFIG)."""
        return job_env(DATABASE_URL=url, FLASK_APP=flask_app, MIGRATE_LOCK_KEY=LOCK_KEY,
                       SHOP_DATABASE_URI=f"sqlite:///{self.app_database}", **more)

    def run(self, url: str, *args: str, flask_app: str = "shop:create_app",
            **more: str) -> Result:
        """The job, in the project's folder as `flask db` runs there."""
        return run_job(*args, env=self.env(url, flask_app, **more), cwd=self.root)


def flask(root: Path, env: dict[str, str], *args: str) -> None:
    """The `flask` command, as a developer runs it in the project's folder."""
    done = subprocess.run([sys.executable, "-m", "flask", *args], cwd=root, env=env,
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, f"flask {' '.join(args)}:\n{done.stdout}\n{done.stderr}"


def record_applications(versions: Path, known: list[str]) -> str:
    """Add RECORD to the revision `flask db migrate` just wrote; return its id."""
    for path in versions.glob("*.py"):
        text = path.read_text()
        match = re.search(r"^revision = '(\w+)'", text, re.MULTILINE)
        assert match is not None
        if match.group(1) not in known:
            path.write_text(text.replace("\n\ndef downgrade():", RECORD + "\n\ndef downgrade():"))
            return match.group(1)
    raise AssertionError(f"no new revision in {versions}")


def generate(root: Path, directory: str) -> FlaskProject:
    """Write the application, then make its migrations with the real `flask db` commands."""
    package = root / "shop"
    package.mkdir(parents=True)
    argument = "" if directory == "migrations" else f", directory={directory!r}"
    (package / "__init__.py").write_text(APP.replace("{directory}", argument))
    (package / "models.py").write_text(MODELS)
    (root / "wsgi.py").write_text(WSGI)
    (root / "broken.py").write_text(BROKEN_IMPORT)
    scratch = root / "generate.db"
    env = {**os.environ, "FLASK_APP": "shop:create_app",
           "SHOP_DATABASE_URI": f"sqlite:///{scratch}"}
    flask(root, env, "db", "init")
    versions = root / directory / "versions"
    revisions: list[str] = []
    flask(root, env, "db", "migrate", "-m", "customers")
    revisions.append(record_applications(versions, revisions))
    flask(root, env, "db", "upgrade")  # autogenerate compares with a database at head
    with open(package / "models.py", "a") as models:
        models.write(PURCHASE_MODEL)
    flask(root, env, "db", "migrate", "-m", "purchases")
    revisions.append(record_applications(versions, revisions))
    scratch.unlink()
    return FlaskProject(root, directory, revisions)


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], FlaskProject]:
    """Projects made once per module (per migrations directory), copied by each test."""
    cache: dict[str, FlaskProject] = {}

    def make(directory: str) -> FlaskProject:
        if directory not in cache:
            cache[directory] = generate(tmp_path_factory.mktemp(f"flask-{directory}"),
                                        directory)
        return cache[directory]

    return make


def copy_of(template: FlaskProject, tmp_path: Path) -> FlaskProject:
    root = tmp_path / "project"
    shutil.copytree(template.root, root, ignore=shutil.ignore_patterns("__pycache__"))
    return FlaskProject(root, template.directory, template.revisions)


@pytest.fixture
def project(made: Callable[[str], FlaskProject], tmp_path: Path) -> FlaskProject:
    """A fresh copy of the project with Flask-Migrate's default directory, migrations/."""
    return copy_of(made("migrations"), tmp_path)


class Target:
    """A database the job migrates, seen by the test."""

    url: str

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        raise NotImplementedError

    def tables(self) -> set[str]:
        raise NotImplementedError

    def revisions(self) -> list[str]:
        return sorted(str(row[0]) for row in self.query("SELECT version_num FROM alembic_version"))

    def applied(self) -> list[tuple[str, int]]:
        """(revision, holds_lock) for each time a revision ran."""
        return sorted((str(r), int(h)) for r, h in
                      self.query("SELECT revision, holds_lock FROM applied"))


class PostgresTarget(Target):
    def __init__(self, database: Database) -> None:
        self.database = database
        self.url = database.url

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        return self.database.query(sql)

    def tables(self) -> set[str]:
        return {str(row[0]) for row in self.query(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}


class SqliteTarget(Target):
    def __init__(self, path: Path) -> None:
        self.path = path
        self.url = f"sqlite:///{path}"

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        with closing(sqlite3.connect(self.path)) as connection:
            return connection.execute(sql).fetchall()

    def tables(self) -> set[str]:
        return {str(row[0]) for row in self.query(
            "SELECT name FROM sqlite_master WHERE type = 'table'")}


class MariaDBTarget(Target):
    def __init__(self, server: MariaDBServer, name: str) -> None:
        self.server = server
        self.name = name
        self.url = server.create_database(name)

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        with closing(self.server.connect(self.name)) as connection, connection.cursor() as cursor:
            cursor.execute(sql)
            return list(cursor.fetchall())

    def tables(self) -> set[str]:
        return {str(row[0]) for row in self.query("SHOW TABLES")}


@pytest.fixture(params=["postgresql", "sqlite", "mariadb"])
def target(request: pytest.FixtureRequest, tmp_path: Path) -> Target:
    """A fresh database: of the session's PostgreSQL or MariaDB server, or a SQLite file."""
    if request.param == "postgresql":
        return PostgresTarget(request.getfixturevalue("database"))
    if request.param == "mariadb":
        return MariaDBTarget(request.getfixturevalue("mariadb"), f"flask{next(_numbers)}")
    return SqliteTarget(tmp_path / "shop.db")


def test_migrates_the_database_url_and_reruns_as_a_no_op(project: FlaskProject,
                                                         target: Target) -> None:
    first = project.run(target.url)
    assert first.code == 0, first.stderr
    assert target.tables() >= TABLES
    assert target.revisions() == [project.head]
    assert target.applied() == sorted((revision, 1) for revision in project.revisions)
    assert first.event("upgrade_finished")["applied"] == project.revisions
    # The app's own database URL is not where the job migrates.
    assert not project.app_database.exists()

    again = project.run(target.url)
    assert again.code == 0, again.stderr
    assert "already_at_target" in again.names()
    assert "lock_acquired" not in again.names()
    assert len(target.applied()) == len(project.revisions)


def test_four_runners_at_once_apply_each_revision_once(project: FlaskProject,
                                                      target: Target) -> None:
    env = project.env(target.url, MIGRATE_LOCK_TIMEOUT="120")
    runners = [subprocess.Popen([sys.executable, str(ENTRYPOINT)], env=env, cwd=project.root,
                                text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
               for _ in range(4)]
    outcomes = [(runner.wait(timeout=300), *runner.communicate()) for runner in runners]
    for code, stdout, stderr in outcomes:
        OUTPUTS.extend([stdout, stderr])
        assert code == 0, stderr
    # Each revision once, and (PostgreSQL) on the session that held the lock.
    assert target.applied() == sorted((revision, 1) for revision in project.revisions)
    assert target.revisions() == [project.head]
    upgraded = [stderr for _, _, stderr in outcomes
                if any(e.get("event") == "upgrade_finished" for e in parse_events(stderr))]
    assert len(upgraded) == 1
    if isinstance(target, PostgresTarget):
        assert target.database.advisory_locks() == 0


def test_a_custom_migrations_directory_is_found(made: Callable[[str], FlaskProject],
                                               tmp_path: Path) -> None:
    """`Migrate(app, db, directory="db_migrations")`: its alembic.ini, its revisions."""
    project = copy_of(made("db_migrations"), tmp_path)
    assert not (project.root / "migrations").exists()
    target = SqliteTarget(tmp_path / "shop.db")
    result = project.run(target.url)
    assert result.code == 0, result.stderr
    assert target.revisions() == [project.head]
    assert target.tables() >= TABLES


@pytest.mark.parametrize("flask_app", ["shop", "shop:create_app()", "wsgi.py", "wsgi:app"])
def test_flask_app_forms_flask_accepts(project: FlaskProject, tmp_path: Path,
                                       flask_app: str) -> None:
    """A package (its create_app found by Flask), a factory call, a file, a module's app."""
    target = SqliteTarget(tmp_path / "shop.db")
    result = project.run(target.url, flask_app=flask_app)
    assert result.code == 0, result.stderr
    assert target.revisions() == [project.head]


def test_manifest_keeps_the_no_op_off_the_history(project: FlaskProject,
                                                  tmp_path: Path) -> None:
    """`manifest` writes into the Migrate directory; a run at head then reads no revision."""
    target = SqliteTarget(tmp_path / "shop.db")
    written = project.run(target.url, "manifest")
    assert written.code == 0, written.stderr
    assert written.stdout.strip() == str(project.root / "migrations" / "heads.manifest.json")
    assert project.run(target.url).code == 0
    again = project.run(target.url)
    assert again.code == 0, again.stderr
    assert again.event("already_at_target")["via"] == "manifest"


def test_every_run_of_env_py_has_the_application(project: FlaskProject, tmp_path: Path) -> None:
    """Offline SQL, -x arguments (env.py reads the version) and a downgrade all run env.py,
    which needs current_app."""
    target = SqliteTarget(tmp_path / "shop.db")
    sql = project.run(target.url, "sql", "--from", "base")
    assert sql.code == 0, sql.stderr
    assert "CREATE TABLE customer" in sql.stdout
    assert not target.path.exists() or "customer" not in target.tables()

    upgraded = project.run(target.url, MIGRATE_X_ARGS="tenant=shop")
    assert upgraded.code == 0, upgraded.stderr
    assert target.revisions() == [project.head]

    down = project.run(target.url, "downgrade", project.revisions[0])
    assert down.code == 0, down.stderr
    assert target.revisions() == [project.revisions[0]]
    assert "purchase" not in target.tables()


@pytest.mark.parametrize(("flask_app", "says"), [
    ("no_such_module", "Could not import 'no_such_module'"),
    ("broken", "ModuleNotFoundError: No module named 'shop_settings_module_that_is_not_there'"),
    ("shop:broken_app", "RuntimeError: the shop's settings are missing"),
    ("shop:no_such_factory", "Failed to find attribute 'no_such_factory'"),
    ("shop:plain_app", "has no Flask-Migrate extension"),
    ("shop:leaky_app", "RuntimeError: cannot reach"),
])
def test_a_bad_flask_app_exits_2_with_one_line(project: FlaskProject, database: Database,
                                               flask_app: str, says: str) -> None:
    result = project.run(database.url, flask_app=flask_app)
    assert result.code == 2, result.stderr
    assert len(result.stderr.splitlines()) == 1, result.stderr
    event = result.event("configuration_error")
    assert event["message"].startswith(f"configuration error: FLASK_APP={flask_app}")
    assert says in event["message"]
    assert "Traceback" not in result.stderr
    # An error that quotes DATABASE_URL is masked (the session's guard checks every output).
    assert database.server.password not in result.stderr


def test_no_flask_db_init_exits_2_naming_the_directory(project: FlaskProject,
                                                       tmp_path: Path) -> None:
    shutil.rmtree(project.root / "migrations")
    result = project.run(SqliteTarget(tmp_path / "shop.db").url)
    assert result.code == 2, result.stderr
    message = result.event("configuration_error")["message"]
    assert f"{project.root / 'migrations'} has no alembic.ini" in message
    assert "flask db init" in message


def test_run_elsewhere_says_where_flask_db_finds_the_directory(project: FlaskProject,
                                                              tmp_path: Path) -> None:
    """Flask-Migrate resolves `migrations` from the working directory, so does the job."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    target = SqliteTarget(tmp_path / "shop.db")
    result = run_job(env=project.env(target.url, flask_app=str(project.root / "wsgi.py")),
                     cwd=elsewhere)
    assert result.code == 2, result.stderr
    message = result.event("configuration_error")["message"]
    assert f"run the job in {project.root}" in message


@pytest.mark.parametrize("named", [True, False], ids=["ALEMBIC_CONFIG", "working-directory"])
def test_an_alembic_project_wins_over_flask_app(tmp_path: Path, named: bool) -> None:
    """A Flask app on plain Alembic, FLASK_APP set for the app's own sake: as before, the
    Alembic project named (or in the working directory) is migrated and the app is not built."""
    config = make_sqlite_project(tmp_path / "plain")
    target = SqliteTarget(tmp_path / "plain.db")
    more = {"ALEMBIC_CONFIG": str(config)} if named else {}
    result = run_job(env=job_env(DATABASE_URL=target.url, FLASK_APP="shop:broken_app", **more),
                     cwd=config.parent)
    assert result.code == 0, result.stderr
    assert target.revisions() == ["0003"]


MULTIDB_APP = '''\
from flask import Flask
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy

db = SQLAlchemy()


class Customer(db.Model):
    id = db.Column(db.Integer, primary_key=True)


class Event(db.Model):
    __bind_key__ = "audit"
    id = db.Column(db.Integer, primary_key=True)


def create_app():
    import os

    app = Flask(__name__)
    app.config["SQLALCHEMY_DATABASE_URI"] = os.environ["MAIN_URI"]
    app.config["SQLALCHEMY_BINDS"] = {"audit": os.environ["AUDIT_URI"]}
    db.init_app(app)
    Migrate(app, db)
    return app
'''


def test_a_multi_database_project_is_refused_at_once(tmp_path: Path) -> None:
    """`flask db init --multidb`: its env.py migrates the audit bind's database too, which the
    job has not locked: refused before the database is even waited for (exit 2); an env.py
    edited past that check asks for the bind's engine: refused too, before any revision."""
    root = tmp_path / "multidb"
    root.mkdir()
    (root / "multidb_app.py").write_text(MULTIDB_APP)
    uris = {"MAIN_URI": f"sqlite:///{tmp_path / 'main-gen.db'}",
            "AUDIT_URI": f"sqlite:///{tmp_path / 'audit-gen.db'}"}
    env = {**os.environ, "FLASK_APP": "multidb_app:create_app", **uris}
    flask(root, env, "db", "init", "--multidb")
    flask(root, env, "db", "migrate", "-m", "both")
    target = SqliteTarget(tmp_path / "shop.db")
    result = run_job(env=job_env(DATABASE_URL=target.url, FLASK_APP="multidb_app:create_app",
                                 **uris), cwd=root)
    assert result.code == 2, result.stderr
    assert "multi-database project" in result.event("configuration_error")["message"]
    assert result.names() == ["configuration_error"]

    env_py = root / "migrations" / "env.py"
    env_py.write_text(env_py.read_text().replace("'SQLALCHEMY_BINDS'", "'SQLALCHEMY_' + 'BINDS'"))
    edited = run_job(env=job_env(DATABASE_URL=target.url, FLASK_APP="multidb_app:create_app",
                                 **uris), cwd=root)
    assert edited.code == 2, edited.stderr
    assert "bind 'audit'" in edited.event("configuration_error")["message"]
    assert "revision_started" not in edited.names()
    assert "customer" not in target.tables()


class TestDriversForEnvPy:
    """The job's engine for Flask-Migrate's synchronous env.py takes the URL's driver: psycopg 3
    runs the revisions off the lock's session, behind its guards; an async-only driver exits 2
    (issue 10, point 1)."""

    def test_psycopg_3(self, project: FlaskProject, database: Database) -> None:
        result = project.run(database.url.replace("postgresql://", "postgresql+psycopg://"))
        assert result.code == 0, result.stderr
        # Each revision once, on psycopg 3's own connection (not the lock's psycopg2 session).
        assert PostgresTarget(database).applied() == sorted(
            (revision, 0) for revision in project.revisions)
        assert database.advisory_locks() == 0

    def test_asyncpg_exits_2(self, project: FlaskProject, database: Database) -> None:
        result = project.run(database.url.replace("postgresql://", "postgresql+asyncpg://"))
        assert result.code == 2, result.stderr
        assert "env.py is synchronous, but the driver it got (asyncpg)" in \
            result.events[-1]["message"]
        assert "Traceback" not in result.stderr
        assert database.revisions() == []
