"""The template corpus (issue 10, point 6): a project from every template the pinned Alembic
lists (`alembic list_templates`), with two revisions made by `alembic revision`, migrated by 4
runners at once on each engine: all exit 0 and each revision is applied once, or the job
refuses at once (exit 2) as the README documents. When Alembic adds a template, the corpus
grows by itself: a template this file does not know fails until its outcome is decided.
"""

from __future__ import annotations

import itertools
import re
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from contextlib import closing
from pathlib import Path

import pytest

from tests.support.job import Result, RunningJob, job_env
from tests.support.mariadbserver import MariaDBServer
from tests.support.pgserver import PostgresServer

RUNNERS = 4
ALEMBIC = [sys.executable, "-m", "alembic"]
ENGINES = ("postgresql", "sqlite", "mariadb")
# What the job does with each template on each engine: None runs it; a string is the start of
# the one-line refusal (exit 2) the README documents.
MULTIDB = "is a multi-database project"
ASYNC_DRIVER = "env.py runs asyncio, but the driver it got"
OUTCOMES: dict[str, dict[str, str | None]] = {
    "generic": dict.fromkeys(ENGINES),
    "pyproject": dict.fromkeys(ENGINES),
    "async": {"postgresql": None, "sqlite": ASYNC_DRIVER, "mariadb": ASYNC_DRIVER},
    "pyproject_async": {"postgresql": None, "sqlite": ASYNC_DRIVER, "mariadb": ASYNC_DRIVER},
    "multidb": dict.fromkeys(ENGINES, MULTIDB),
}
# Each revision's body: an audit row proves it ran once; 0001 creates the audit table.
BODIES = {
    "0001": ['op.execute("CREATE TABLE corpus_audit (revision varchar(8))")',
             "op.execute(\"INSERT INTO corpus_audit VALUES ('0001')\")"],
    "0002": ['op.execute("CREATE TABLE corpus_items (id integer PRIMARY KEY)")',
             "op.execute(\"INSERT INTO corpus_audit VALUES ('0002')\")"],
}
_numbers = itertools.count()


def listed_templates() -> list[str]:
    """The templates the pinned Alembic lists."""
    listing = subprocess.run([*ALEMBIC, "list_templates"], capture_output=True, text=True,
                             check=True, timeout=60).stdout
    return sorted(re.findall(r"^(\w+) - ", listing, re.MULTILINE))


def make_project(root: Path, template: str) -> Path:
    """`alembic init -t TEMPLATE`, two `alembic revision`s with bodies; returns the config."""
    root.mkdir(parents=True)
    subprocess.run([*ALEMBIC, "init", "-t", template, "migrations"], cwd=root, check=True,
                   capture_output=True, timeout=60)
    for rev in ("0001", "0002"):
        subprocess.run([*ALEMBIC, "revision", "--rev-id", rev, "-m", f"corpus {rev}"],
                       cwd=root, check=True, capture_output=True, timeout=60)
        source = next((root / "migrations" / "versions").glob(f"{rev}_*.py"))
        body = "".join(f"    {line}\n" for line in BODIES[rev])
        text = source.read_text()
        # The first `pass` after `def upgrade` is its body (multidb: the first engine's).
        start = text.index("    pass\n", text.index("def upgrade"))
        source.write_text(text[:start] + body + text[start + len("    pass\n"):])
    pyproject = root / "pyproject.toml"
    return pyproject if pyproject.exists() and not (root / "alembic.ini").exists() \
        else root / "alembic.ini"


@pytest.fixture(scope="module")
def urls(pg: PostgresServer, mariadb: MariaDBServer,
         tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], str]:
    """A fresh database's URL on an engine."""
    def fresh(engine: str) -> str:
        name = f"corpus_{next(_numbers)}"
        if engine == "postgresql":
            return pg.create_database(name)
        if engine == "mariadb":
            return mariadb.create_database(name)
        return f"sqlite:///{tmp_path_factory.mktemp('corpus')}/{name}.db"
    return fresh


def audit(url: str, pg: PostgresServer, mariadb: MariaDBServer) -> str | None:
    """The audit rows a database holds, in order, comma-separated."""
    name = url.rsplit("/", 1)[1]
    query = "SELECT group_concat(revision ORDER BY revision) FROM corpus_audit"
    if url.startswith("sqlite"):
        with closing(sqlite3.connect(url.split("///", 1)[1])) as connection:
            rows = connection.execute("SELECT revision FROM corpus_audit ORDER BY revision")
            return ",".join(r[0] for r in rows)
    if url.startswith("postgresql"):
        return str(pg.scalar("SELECT string_agg(revision, ',' ORDER BY revision) "
                             "FROM corpus_audit", database=name))
    return str(mariadb.scalar(query, database=name))


def test_every_listed_template_has_a_decided_outcome() -> None:
    assert listed_templates() == sorted(OUTCOMES), \
        "the pinned Alembic lists other templates: decide and document their outcome"


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("template", sorted(OUTCOMES))
def test_four_runners_on_a_template_project(template: str, engine: str, tmp_path: Path,
                                            urls: Callable[[str], str], pg: PostgresServer,
                                            mariadb: MariaDBServer) -> None:
    config = make_project(tmp_path / template, template)
    url = urls(engine)
    if engine == "mariadb":
        url = url.replace("mysql+pymysql://", "mysql://")
    env = job_env(DATABASE_URL=url, ALEMBIC_CONFIG=str(config))
    runners = [RunningJob(env=env) for _ in range(RUNNERS)]
    results: list[Result] = [runner.finish() for runner in runners]
    refusal = OUTCOMES[template][engine]
    if refusal is not None:
        assert {r.code for r in results} == {2}, results[0].stderr
        assert all(refusal in r.stderr for r in results), results[0].stderr
        return
    failed = [r for r in results if r.code != 0]
    assert not failed, failed[0].stderr
    assert audit(url, pg, mariadb) == "0001,0002"
