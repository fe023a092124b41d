"""fleet's inputs, generated: names queries (on a PostgreSQL and a SQLite catalog) and targets
files. Whatever they hold, fleet keeps the output contract and prints no password. Each
example runs the real job as a process (fleet forks a process per target)."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path
from urllib.parse import quote

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.faults.servers import Servers
from tests.properties.behaviour import assert_well_behaved
from tests.properties.strategies import GeneratedUrl, awkward_text, server_urls
from tests.support.job import job_env, run_job
from tests.support.pgserver import free_port

DEAD_PORT = free_port()
TEMPLATE_PASSWORD = "tmpl-Secr3t#pw"
# Every target is refused at once (nothing listens there; MIGRATE_WAIT_TIMEOUT=0).
TEMPLATE = (f"postgresql://app:{quote(TEMPLATE_PASSWORD, safe='')}@127.0.0.1:{DEAD_PORT}/"
            "tenant_{name}")
TENANTS = ("acme", "b%2", "c'd", "é", "x/y")
FEW = settings(max_examples=10)


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


names_queries = st.one_of(
    st.lists(awkward_text(), max_size=3).map(
        lambda names: " UNION ALL ".join(f"SELECT {_literal(n)}" for n in names) or "SELECT 1"),
    awkward_text().map(lambda pattern: f"SELECT name FROM tenants WHERE name LIKE "
                                       f"{_literal(pattern)}"),
    st.sampled_from(["SELECT name FROM tenants", "SELECT NULL", "SELECT 42", "SELECT", "",
                     "SELECT name FROM no_such_table", "SELECT 1/0", "SELECT name, 1 FROM tenants",
                     "SELECT name FROM tenants WHERE false", "SELECT '  '",
                     "SELECT name FROM tenants; SELECT 1"]))

# SQL's own '%' (a LIKE pattern, a literal), which psycopg2 must not take for a placeholder.
percent_queries = st.one_of(
    awkward_text().map(lambda p: "SELECT name FROM tenants WHERE name LIKE "
                                 + _literal(p + "%")),
    awkward_text().map(lambda p: "SELECT " + _literal(p + "%")))


@pytest.fixture(scope="module")
def catalogs(servers: Servers, scratch: Path) -> dict[str, str]:
    """A catalog database with a tenants table, on PostgreSQL and in a SQLite file."""
    server = servers.pg()
    url = server.create_database("catalog")
    conn = server.connect("catalog")
    with conn.cursor() as cur:
        cur.execute("CREATE TABLE tenants (name text)")
        cur.executemany("INSERT INTO tenants VALUES (%s)", [(t,) for t in TENANTS])
    conn.close()
    path = scratch / "catalog.db"
    with closing(sqlite3.connect(path)) as db, db:
        db.execute("CREATE TABLE tenants (name text)")
        db.executemany("INSERT INTO tenants VALUES (?)", [(t,) for t in TENANTS])
    return {"postgresql": url, "sqlite": f"sqlite:///{path}"}


def run_fleet(context: str, secrets: tuple[str, ...], **env: str) -> None:
    """fleet with `env`, two targets at a time, each tried once."""
    result = run_job("fleet", env=job_env(MIGRATE_WAIT_TIMEOUT="0", MIGRATE_CONCURRENCY="2",
                                          **env), timeout=120)
    assert_well_behaved(result, context, secrets=secrets)


class TestNamesQueries:
    """MIGRATE_TARGET_NAMES_QUERY as written, its names filled into a URL template."""

    @FEW
    @given(query=names_queries, catalog=st.sampled_from(["postgresql", "sqlite"]))
    def test_query(self, query: str, catalog: str, catalogs: dict[str, str]) -> None:
        if catalog == "postgresql":
            query = query.replace("%", "")  # test_percent_on_postgresql
        run_fleet(f"names query {query!r} on the {catalog} catalog", (TEMPLATE_PASSWORD,),
                  DATABASE_URL=catalogs[catalog], MIGRATE_TARGET_URL_TEMPLATE=TEMPLATE,
                  MIGRATE_TARGET_NAMES_QUERY=query)

    @FEW
    @given(query=percent_queries)
    def test_percent_on_postgresql(self, query: str, catalogs: dict[str, str]) -> None:
        run_fleet(f"names query {query!r}", (TEMPLATE_PASSWORD,),
                  DATABASE_URL=catalogs["postgresql"], MIGRATE_TARGET_URL_TEMPLATE=TEMPLATE,
                  MIGRATE_TARGET_NAMES_QUERY=query)

    @pytest.mark.parametrize(("catalog", "query"), [
        ("sqlite", "; ;"), ("sqlite", "UPDATE tenants SET name = name WHERE 0"),
        ("postgresql", "UPDATE tenants SET name = name WHERE false")])
    def test_no_result_set(self, catalog: str, query: str, catalogs: dict[str, str]) -> None:
        run_fleet(f"names query {query!r} on the {catalog} catalog", (TEMPLATE_PASSWORD,),
                  DATABASE_URL=catalogs[catalog], MIGRATE_TARGET_URL_TEMPLATE=TEMPLATE,
                  MIGRATE_TARGET_NAMES_QUERY=query)


@st.composite
def targets_files(draw: st.DrawFn, folder: Path) -> tuple[str, tuple[str, ...]]:
    """A targets file's text: URLs of every engine, comments, blanks, junk, duplicates; and
    the passwords in it."""
    urls: list[GeneratedUrl] = draw(st.lists(st.one_of(
        server_urls("postgresql", "127.0.0.1", DEAD_PORT),
        server_urls("mariadb", "127.0.0.1", DEAD_PORT, latin1=True),
        st.just(GeneratedUrl(f"sqlite:///{folder}/not-mounted/app.db", None))),
        max_size=3))
    lines = [u.url for u in urls]
    lines += draw(st.lists(st.one_of(st.just(""), st.just("   "),
                                     awkward_text().map(lambda t: "# " + t), awkward_text()),
                           max_size=2))
    twice: bool = draw(st.booleans())
    if lines and twice:
        lines.append(lines[0])  # the same target twice
    ordered = draw(st.permutations(lines))
    return "\n".join(ordered), tuple(u.password for u in urls if u.password)


class TestTargetsFiles:
    """MIGRATE_TARGETS_FILE with whatever lines."""

    @FEW
    @given(data=st.data())
    def test_file(self, data: st.DataObject, scratch: Path) -> None:
        text, secrets = data.draw(targets_files(scratch))
        targets = scratch / "targets"
        targets.write_text(text)
        run_fleet(f"targets file {text!r}", secrets, MIGRATE_TARGETS_FILE=str(targets))
