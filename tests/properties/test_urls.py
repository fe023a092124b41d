"""Generated URLs of every engine: whatever the URL, the job exits with a documented code (never
1), prints no traceback, ends with a readable line, and never prints the password."""

from __future__ import annotations

import itertools
import sqlite3
from contextlib import closing
from pathlib import Path
from urllib.parse import quote

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.faults.servers import Servers
from tests.properties.behaviour import assert_well_behaved
from tests.properties.inprocess import run_in_process
from tests.properties.strategies import (
    QUERY_KEYS,
    GeneratedUrl,
    awkward_text,
    passwords,
    server_urls,
    sqlite_paths,
)
from tests.support.mariadbserver import USER as MARIADB_USER
from tests.support.pgserver import PASSWORD, free_port
from tests.support.projects import make_sqlite_project

# Query parameters PyMySQL reads as a charset's name or a file's (test_mariadb_unknown_...).
MYSQL_FILE_PARAMETERS = ("charset", "ssl_ca", "ssl_cert", "ssl_key")
CHARSETS = ("utf8", "utf8mb4", "latin1", "ascii", "binary")
# Nothing listens here: every URL that parses is refused at once (MIGRATE_WAIT_TIMEOUT=0).
DEAD_PORT = free_port()
_numbers = itertools.count()
# In-process runs at a dead port take milliseconds: many more examples for the same time.
MANY = settings(max_examples=150)
commands = st.sampled_from([("wait",), ("status",), ("status", "--json"), ("check",)])
log_formats = st.sampled_from(["json", "text"])


def run_with(case: GeneratedUrl, command: tuple[str, ...], log_format: str, via_flag: bool,
             scratch: Path, **libpq: str) -> None:
    """Run `command` on the URL (from the environment, or the flag) and check the output."""
    argv = (*command, "--database-url", case.url) if via_flag else command
    env = {"MIGRATE_WAIT_TIMEOUT": "0", "MIGRATE_LOG_FORMAT": log_format, **libpq}
    if not via_flag:
        env["DATABASE_URL"] = case.url
    result = run_in_process(*argv, env=env, termination_log=scratch / "termination")
    assert_well_behaved(result, f"{argv} with DATABASE_URL={case.url!r}",
                        secrets=(case.password,) if case.password else (),
                        json_lines=log_format == "json")


class TestUrlsNobodyAnswers:
    """PostgreSQL and MySQL/MariaDB URLs aimed at a port where nothing listens."""

    @MANY
    @given(case=server_urls("postgresql", "127.0.0.1", DEAD_PORT, portless=True),
           command=commands, log_format=log_formats, via_flag=st.booleans())
    def test_postgresql(self, case: GeneratedUrl, command: tuple[str, ...], log_format: str,
                        via_flag: bool, scratch: Path) -> None:
        run_with(case, command, log_format, via_flag, scratch, PGHOST="127.0.0.1",
                 PGPORT=str(DEAD_PORT))

    @MANY
    @given(case=server_urls("mariadb", "127.0.0.1", DEAD_PORT, latin1=True,
                            keys=tuple(k for k in QUERY_KEYS["mariadb"]
                                       if k not in MYSQL_FILE_PARAMETERS)),
           command=commands, log_format=log_formats, via_flag=st.booleans())
    def test_mariadb(self, case: GeneratedUrl, command: tuple[str, ...], log_format: str,
                     via_flag: bool, scratch: Path) -> None:
        run_with(case, command, log_format, via_flag, scratch)

    @given(key=st.sampled_from(MYSQL_FILE_PARAMETERS),
           value=awkward_text(latin1=True).filter(lambda c: c.lower() not in CHARSETS))
    def test_mariadb_unknown_charset_or_missing_file(self, key: str, value: str,
                                                     scratch: Path) -> None:
        case = GeneratedUrl(f"mysql://app:pw@127.0.0.1:{DEAD_PORT}/db?{key}="
                            f"{quote(value, safe='')}", None)
        run_with(case, ("wait",), "json", False, scratch)

    @given(password=passwords().filter(lambda p: any(ord(c) > 0xFF for c in p)),
           encoded=st.booleans())
    def test_mariadb_password_beyond_latin1(self, password: str, encoded: bool,
                                            scratch: Path) -> None:
        written = quote(password, safe="") if encoded else password
        case = GeneratedUrl(f"mysql://app:{written}@127.0.0.1:{DEAD_PORT}/db", password)
        run_with(case, ("wait",), "json", False, scratch)


class TestRealServers:
    """On a real server: its own refusals (authentication failed, no such database) never
    bring the password along, and with the right password the reading commands go on
    past the connection, where other code reads the URL again."""

    @given(data=st.data(), command=commands)
    def test_postgresql(self, data: st.DataObject, command: tuple[str, ...], servers: Servers,
                        scratch: Path) -> None:
        server = servers.pg()
        case = data.draw(server_urls("postgresql", server.host, server.port, user="postgres",
                                     portless=True,
                                     secret=st.one_of(st.just(PASSWORD), passwords())))
        run_with(case, command, "json", False, scratch, PGHOST=server.host,
                 PGPORT=str(server.port))

    @pytest.mark.parametrize("command", ["status", "check"])
    def test_postgresql_empty_port(self, command: str, servers: Servers,
                                   scratch: Path) -> None:
        server = servers.pg()
        case = GeneratedUrl(server.url().replace(f":{server.port}/", ":/"), PASSWORD)
        run_with(case, (command,), "json", False, scratch, PGPORT=str(server.port))

    @given(data=st.data())
    def test_mariadb(self, data: st.DataObject, servers: Servers, scratch: Path) -> None:
        server = servers.mariadb()
        case = data.draw(server_urls("mariadb", "127.0.0.1", server.port, user=MARIADB_USER,
                                     latin1=True))
        run_with(case, ("wait",), "json", False, scratch)


class TestSqlitePaths:
    """A SQLite URL whose file name has awkward characters migrates one file, the one the
    URL names (the job's lock, its reads and Alembic's writes agree), or fails cleanly."""

    @given(name=sqlite_paths(), query=st.sampled_from(["", "?mode=rwc", "?timeout=5",
                                                       "?uri=true", "?nonsense=1"]),
           absolute=st.booleans())
    def test_one_file(self, name: str, query: str, absolute: bool, scratch: Path) -> None:
        folder = scratch / f"sqlite{next(_numbers)}"
        config = make_sqlite_project(folder / "project")
        (folder / "data").mkdir()
        path = (folder / "data" / name) if absolute else Path("data") / name
        url = f"sqlite:///{path}{query}"
        result = run_in_process("upgrade", env={"DATABASE_URL": url,
                                                "ALEMBIC_CONFIG": str(config),
                                                "MIGRATE_WAIT_TIMEOUT": "0"},
                                termination_log=scratch / "termination", cwd=folder)
        assert_well_behaved(result, f"upgrade of {url!r}")
        databases = [p for p in (folder / "data").iterdir()
                     if not p.name.endswith(".migration-lock")]
        assert len(databases) <= 1, f"{url!r} split into {sorted(p.name for p in databases)}"
        if result.code == 0:
            assert databases, f"{url!r}: exit 0 and no database file"
            with closing(sqlite3.connect(databases[0])) as db:
                assert db.execute("SELECT version_num FROM alembic_version").fetchall() == \
                    [("0003",)], f"{url!r}: {databases[0].name} is not the migrated file"
