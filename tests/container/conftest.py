"""Session fixtures: a Docker engine, base images, the job's image, a PostgreSQL container on a
network of the tests' own, and a fresh database (with its URL in a secret file) per test."""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

import pytest
from alembic.config import Config
from alembic.script import ScriptDirectory

from migration_job import __version__
from tests.container.engine import docker, job_result, no_engine, wait_for
from tests.support.job import Result
from tests.support.pgserver import PASSWORD

REPO = Path(__file__).resolve().parents[2]
RUN_ID = uuid.uuid4().hex[:8]
IMAGE = os.environ.get("MIGRATION_JOB_TEST_IMAGE", "migration-job:test")
DB_USER = "mj"
URL_MOUNT = "/run/secrets/database_url"
# `docker run` options of a locked-down orchestrator: any UID in group 0, nothing writable.
LOCKED_DOWN = ("--read-only", "--tmpfs=/tmp", "--user", "12345:0", "--cap-drop", "ALL",
               "--security-opt", "no-new-privileges")
# The example project's revisions, read from the repository the image is built from.
_SCRIPTS = ScriptDirectory.from_config(Config(str(REPO / "alembic.ini")))
REVISIONS = sorted(s.revision for s in _SCRIPTS.walk_revisions())
HEAD = _SCRIPTS.get_current_head()
SLOW = "9999slow"
# Added on top of the example project in a derived image: writes, then sleeps in its transaction.
SLOW_REVISION = f'''"""Test-only: a revision that takes ten minutes."""
from alembic import op

revision = "{SLOW}"
down_revision = "{HEAD}"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("CREATE TABLE slow_marker (id int)")
    op.execute("INSERT INTO migration_audit (revision, direction) VALUES ('{SLOW}', 'upgrade')")
    op.execute("SELECT pg_sleep(600)")


def downgrade() -> None:
    op.execute("DROP TABLE slow_marker")
'''


@pytest.fixture(scope="session")
def engine() -> None:
    """A working engine: started with scripts/docker-engine if need be, else skip (fail in CI).
    With DOCKER_HOST set, that engine is used as it is."""
    if shutil.which("docker") and docker("info", check=False).returncode == 0:
        return
    if os.environ.get("DOCKER_HOST"):
        no_engine(f"`docker info` fails for DOCKER_HOST={os.environ['DOCKER_HOST']}")
    setup = subprocess.run([str(REPO / "scripts" / "docker-engine")], capture_output=True,
                           text=True, timeout=900, check=False)
    if setup.returncode != 0 or docker("info", check=False).returncode != 0:
        no_engine(f"`docker info` fails and scripts/docker-engine said:\n"
                  f"{setup.stdout}{setup.stderr}".strip())


@pytest.fixture(scope="session")
def base_images(engine: None) -> dict[str, str]:
    """PYTHON_IMAGE, POSTGRES_IMAGE and MARIADB_IMAGE: from the environment, else
    scripts/base-images."""
    names = ("PYTHON_IMAGE", "POSTGRES_IMAGE", "MARIADB_IMAGE")
    if all(os.environ.get(n) for n in names):
        return {n: os.environ[n] for n in names}
    done = subprocess.run([str(REPO / "scripts" / "base-images")], capture_output=True,
                          text=True, timeout=1200, check=False)
    assert done.returncode == 0, f"scripts/base-images failed:\n{done.stderr}"
    found = dict(line.split("=", 1) for line in done.stdout.splitlines() if "=" in line)
    return {n: found[n] for n in names}


def release_labels() -> dict[str, str]:
    """The build arguments a release passes for the image's OCI labels: the package's version,
    the commit, and the build time (RFC 3339, UTC)."""
    commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True,
                            text=True, check=False).stdout.strip()
    return {"VERSION": __version__, "REVISION": commit or "unknown",
            "CREATED": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")}


@pytest.fixture(scope="session")
def image_build_args(base_images: dict[str, str]) -> dict[str, str]:
    """What the session's image was built with."""
    return {"PYTHON_IMAGE": base_images["PYTHON_IMAGE"], **release_labels()}


@pytest.fixture(scope="session")
def image(image_build_args: dict[str, str]) -> str:
    """The job's image, built from the repository with plain `docker build`."""
    args = [f"--build-arg={name}={value}" for name, value in image_build_args.items()]
    docker("build", "-q", *args, "-t", IMAGE, str(REPO))
    return IMAGE


@pytest.fixture(scope="session")
def slow_image(image: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The job's image plus one slow revision after the example project's head."""
    context = tmp_path_factory.mktemp("slow-image")
    (context / f"{SLOW}_slow.py").write_text(SLOW_REVISION)
    (context / "Dockerfile").write_text(
        f"FROM {image}\nCOPY {SLOW}_slow.py /app/migrations/versions/\n")
    tag = f"migration-job:slow-{RUN_ID}"
    docker("build", "-q", "-t", tag, str(context))
    yield tag
    docker("rmi", "-f", tag, check=False)


@pytest.fixture(scope="session")
def network(engine: None) -> Iterator[str]:
    """A user-defined network of the tests' own: the only place containers talk to."""
    name = f"mjtest-{RUN_ID}"
    docker("network", "create", name)
    yield name
    docker("network", "rm", name, check=False)


@dataclass
class PgContainer:
    """The PostgreSQL container the job's containers migrate."""

    name: str
    network: str

    def psql(self, sql: str, database: str = DB_USER) -> str:
        """Run SQL as the superuser over the local socket; unaligned, tuples only."""
        return docker("exec", self.name, "psql", "-v", "ON_ERROR_STOP=1", "-U", DB_USER,
                      "-d", database, "-Atc", sql).stdout.strip()

    def ready(self) -> bool:
        """Whether the server accepts TCP connections (not just the init-time socket)."""
        running = docker("inspect", "-f", "{{.State.Running}}", self.name).stdout.strip()
        assert running == "true", docker("logs", self.name).stderr
        return docker("exec", self.name, "pg_isready", "-q", "-h", "127.0.0.1", "-U", DB_USER,
                      check=False).returncode == 0


@pytest.fixture(scope="session")
def pg(network: str, base_images: dict[str, str]) -> Iterator[PgContainer]:
    """One PostgreSQL container (POSTGRES_IMAGE) for the session, on the tests' network."""
    server = PgContainer(f"mjtest-db-{RUN_ID}", network)
    docker("run", "-d", "--name", server.name, "--network", network,
           "-e", f"POSTGRES_USER={DB_USER}", "-e", f"POSTGRES_PASSWORD={PASSWORD}",
           "-e", f"POSTGRES_DB={DB_USER}", base_images["POSTGRES_IMAGE"])
    try:
        wait_for("PostgreSQL to accept connections", server.ready, timeout=120)
        yield server
    finally:
        docker("rm", "-f", "-v", server.name, check=False)


@dataclass
class Database:
    """A test's own database, and the secret file holding its URL."""

    pg: PgContainer
    name: str
    url_file: Path

    def query(self, sql: str) -> str:
        """Run SQL in this database."""
        return self.pg.psql(sql, self.name)

    def applications(self) -> dict[str, int]:
        """How often each revision was applied, from the example project's audit table."""
        rows = self.query("SELECT revision, count(*) FROM migration_audit "
                          "WHERE direction = 'upgrade' GROUP BY revision")
        return {rev: int(n) for rev, n in (r.split("|") for r in rows.splitlines())}

    def revisions(self) -> list[str]:
        """What alembic_version says."""
        return sorted(self.query("SELECT version_num FROM alembic_version").split())

    def advisory_locks(self) -> int:
        """Advisory locks held in this database by anyone."""
        return int(self.query("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND "
                              "database = (SELECT oid FROM pg_database "
                              "WHERE datname = current_database())"))

    def docker_args(self) -> list[str]:
        """`docker run` options: the tests' network and the URL as a read-only secret file."""
        return ["--network", self.pg.network, "-v", f"{self.url_file}:{URL_MOUNT}:ro",
                "-e", f"DATABASE_URL_FILE={URL_MOUNT}", "-e", "MIGRATE_LOG_FORMAT=json"]

    def run(self, image: str, *args: str, options: tuple[str, ...] = ()) -> Result:
        """`docker run --rm` the image against this database and wait for it."""
        done = docker("run", "--rm", *self.docker_args(), *options, image, *args, check=False)
        return job_result(done.returncode, done.stdout, done.stderr)


@pytest.fixture
def database(pg: PgContainer, tmp_path: Path) -> Database:
    """A new, empty database; its URL (with a password full of URL specials) in a file."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    pg.psql(f'CREATE DATABASE "{name}"')
    url_file = tmp_path / "database_url"
    password = quote(PASSWORD, safe="")
    url_file.write_text(f"postgresql://{DB_USER}:{password}@{pg.name}:5432/{name}\n")
    url_file.chmod(0o644)  # the job runs as an arbitrary non-root UID
    return Database(pg, name, url_file)
