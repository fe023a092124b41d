"""An applied-history table the job cannot read: its SELECT revoked from the job's role
(exit 4 where the command needs it) or altered by hand, a column renamed (exit 7). status
and check still report the revision and warn; upgrade, downgrade, stamp and history refuse
with one line before changing anything, unless the history is turned off. On PostgreSQL,
MariaDB and SQLite alike."""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import Database
from tests.support.job import Result, job_env, run_job
from tests.support.mariadbserver import MariaDBServer
from tests.support.projects import make_mysql_project, make_project, make_sqlite_project

HISTORY = "alembic_version_history"
RENAME_CHECKSUM = f"ALTER TABLE {HISTORY} RENAME COLUMN checksum TO checksum_before"
# Each fault: its exit code where a command needs the table, and a word its line says.
FAULTS = {"revoked": (4, "grant"), "renamed": (7, "checksum")}
_roles = itertools.count()


def assert_refused(result: Result, code: int, *fragments: str) -> str:
    """Exit `code` with one readable last line (history_unreadable), no traceback."""
    assert result.code == code, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    last = result.events[-1]
    assert last["event"] == "history_unreadable", result.stderr
    for fragment in (HISTORY, *fragments):
        assert fragment in last["message"], last["message"]
    return str(last["message"])


def warned(result: Result) -> str:
    """The history_unreadable warning's message (fails the test without one)."""
    event = result.event("history_unreadable")
    assert event["level"] == "warning", event
    assert HISTORY in event["message"], event
    return str(event["message"])


@dataclass
class Broken:
    """A database at 0004 of a project whose head is 0005, its history table broken."""

    env: dict[str, str]
    code: int
    word: str
    revisions: Callable[[], list[str]]

    def run(self, *args: str, **overrides: str) -> Result:
        """Run the job on it as its role."""
        return run_job(*args, env={**self.env, **overrides})


@contextmanager
def role_owning(database: Database) -> Iterator[str]:
    """A login role that owns what the job creates in the database (not a superuser, so a
    REVOKE binds it); dropped with what it owns afterwards."""
    role = f"history_owner_{next(_roles)}"
    database.query(f"CREATE ROLE {role} LOGIN PASSWORD %s", database.server.password)
    database.query(f'GRANT CREATE ON DATABASE "{database.name}" TO {role}')
    database.query(f"GRANT CREATE ON SCHEMA public TO {role}")
    try:
        yield role
    finally:
        database.query(f"DROP OWNED BY {role}")
        database.query(f"DROP ROLE {role}")


@pytest.fixture(params=list(FAULTS))
def broken(request: pytest.FixtureRequest, database: Database,
           tmp_path: Path) -> Iterator[Broken]:
    """PostgreSQL: migrated to 0004 by the role, then the table's SELECT revoked from it, or
    a column renamed."""
    with role_owning(database) as role:
        config = make_project(tmp_path)
        env = job_env(DATABASE_URL=database.url.replace("//postgres:", f"//{role}:", 1),
                      ALEMBIC_CONFIG=str(config))
        assert run_job("--target", "0004", env=env).code == 0
        fault = request.param
        database.query(f"REVOKE SELECT ON {HISTORY} FROM {role}" if fault == "revoked"
                       else RENAME_CHECKSUM)
        yield Broken(env, *FAULTS[fault], database.revisions)


class TestReadOnlyCommands:
    """status and check answer from the version table and say the history cannot be read."""

    def test_status_reports_the_revision(self, broken: Broken) -> None:
        shown = broken.run("status", "--json")
        assert shown.code == 0, shown.stderr
        assert "Traceback" not in shown.stderr
        status = json.loads(shown.stdout)
        assert (status["current"], status["pending"]) == (["0004"], ["0005"])
        assert status["history_unfinished"] is None
        assert status["changed"] is None
        assert HISTORY in status["history_error"]
        assert broken.word in warned(shown).lower()
        text = broken.run("status")
        assert text.code == 0, text.stderr
        assert f"history: cannot read the applied-history table {HISTORY}" in text.stdout

    def test_check_judges_the_revision(self, broken: Broken) -> None:
        pending = broken.run("check")
        assert pending.code == 8, pending.stderr
        assert pending.events[-1]["event"] == "migrations_pending"
        warned(pending)
        at_target = broken.run("check", "--target", "0004")
        assert at_target.code == 0, at_target.stderr
        warned(at_target)

    def test_check_at_head_without_alembic(self, broken: Broken) -> None:
        """The readiness probe's path: heads from the revision files, checksums read on the
        job's own session."""
        versions = Path(broken.env["ALEMBIC_CONFIG"]).parent / "migrations" / "versions"
        next(versions.glob("0005_*.py")).unlink()
        at_head = broken.run("check")
        assert at_head.code == 0, at_head.stderr
        assert at_head.event("already_at_target")["via"] == "revision files"
        warned(at_head)

    def test_check_cannot_verify_under_verify_fail(self, broken: Broken) -> None:
        """MIGRATE_VERIFY=fail asks check to prove no applied file changed: it cannot."""
        message = assert_refused(broken.run("check", MIGRATE_VERIFY="fail"), broken.code,
                                 broken.word)
        assert "MIGRATE_VERIFY" in message


class TestChangingCommands:
    """upgrade, downgrade, stamp and history need the table: refused before any change."""

    def test_upgrade_refuses_before_applying(self, broken: Broken, database: Database) -> None:
        message = assert_refused(broken.run(), broken.code, broken.word)
        assert "nothing was changed" in message
        assert broken.revisions() == ["0004"]
        assert "0005" not in [r[0] for r in database.query("SELECT revision FROM "
                                                           "migration_audit")]
        assert database.advisory_locks() == 0

    def test_upgrade_refuses_with_verification_off(self, broken: Broken) -> None:
        """The history is still on: the run would record nothing."""
        assert_refused(broken.run(MIGRATE_VERIFY="off"), broken.code, broken.word)
        assert broken.revisions() == ["0004"]

    def test_upgrade_without_the_history(self, broken: Broken) -> None:
        """MIGRATE_HISTORY=off: nothing to record; a warning where verification is asked."""
        upgraded = broken.run(MIGRATE_HISTORY="off")
        assert upgraded.code == 0, upgraded.stderr
        warned(upgraded)
        assert broken.revisions() == ["0005"]

    def test_downgrade_and_stamp_refuse(self, broken: Broken) -> None:
        assert_refused(broken.run("downgrade", "0003"), broken.code, broken.word)
        assert_refused(broken.run("stamp", "0005", "--replace"), broken.code, broken.word)
        assert broken.revisions() == ["0004"]

    def test_an_unknown_revision_stays_a_history_problem(self, broken: Broken,
                                                         database: Database) -> None:
        """Only the history could show the database is ahead of this image: without it, the
        revision is one this project does not know (exit 7), for upgrade and check alike."""
        database.query("UPDATE alembic_version SET version_num = 'feedface'")
        for args in ((), ("check",)):
            result = broken.run(*args)
            assert result.code == 7, result.stderr
            assert result.events[-1]["event"] == "history_error", result.stderr
            warned(result)

    def test_history_command_refuses(self, broken: Broken) -> None:
        assert_refused(broken.run("history"), broken.code, broken.word)
        assert_refused(broken.run("history", "--json"), broken.code, broken.word)


def assert_same_answers(broken: Broken, head: list[str]) -> None:
    """What the PostgreSQL tests show, on another engine (a database one revision behind)."""
    status = broken.run("status", "--json")
    assert status.code == 0, status.stderr
    assert json.loads(status.stdout)["history_error"]
    warned(status)
    check = broken.run("check")
    assert check.code == 8, check.stderr
    warned(check)
    assert_refused(broken.run(), broken.code, broken.word)
    assert_refused(broken.run("history"), broken.code, broken.word)
    assert broken.revisions() != head
    upgraded = broken.run(MIGRATE_HISTORY="off", MIGRATE_VERIFY="off")
    assert upgraded.code == 0, upgraded.stderr
    assert broken.revisions() == head


@dataclass
class MariaDatabase:
    """A database on the session's MariaDB server, migrated to 0002 of a project at 0003."""

    server: MariaDBServer
    name: str
    env: dict[str, str]

    def query(self, statement: str, *params: str) -> Any:
        """The first value of a statement run as root."""
        return self.server.scalar(statement, *params, database=self.name)

    def revisions(self) -> list[str]:
        """What alembic_version says."""
        return [str(self.query("SELECT version_num FROM alembic_version"))]

    def user_without(self, privilege: str) -> dict[str, str]:
        """The job's environment as a user with every privilege the job needs on the
        database, except `privilege` on the history table. MariaDB cannot revoke one table of
        a database grant: the other tables get `privilege` one by one."""
        user = f"history_user_{next(_roles)}"
        self.query(f"CREATE USER '{user}'@'%%' IDENTIFIED BY %s", self.server.password)
        privileges = {"SELECT", "INSERT", "UPDATE", "DELETE", "CREATE", "ALTER", "DROP", "INDEX"}
        self.query(f"GRANT {', '.join(sorted(privileges - {privilege}))} ON `{self.name}`.* "
                   f"TO '{user}'@'%'")
        # The job creates the unfinished table while a revision runs: a grant outlives the
        # table it names, but needs it to exist when granted.
        self.query("CREATE TABLE alembic_version_unfinished (id int)")
        for table in ("alembic_version", "alembic_version_unfinished", "items",
                      "migration_audit"):
            self.query(f"GRANT {privilege} ON `{self.name}`.`{table}` TO '{user}'@'%'")
        self.query("DROP TABLE alembic_version_unfinished")
        return {**self.env, "DATABASE_URL": self.env["DATABASE_URL"].replace(
            "//root:", f"//{user}:", 1)}


@pytest.fixture
def maria(mariadb: MariaDBServer, request: pytest.FixtureRequest,
          tmp_path: Path) -> MariaDatabase:
    """A fresh MariaDB database at 0002, its project's head 0003."""
    name = f"history_{next(_roles)}_{request.node.name.lower()}"[:60]
    name = "".join(c if c.isalnum() else "_" for c in name)
    mariadb.create_database(name)
    env = job_env(DATABASE_URL=mariadb.url(name),
                  ALEMBIC_CONFIG=str(make_mysql_project(tmp_path)))
    assert run_job("--target", "0002", env=env).code == 0
    return MariaDatabase(mariadb, name, env)


@pytest.mark.parametrize("fault", list(FAULTS))
def test_mariadb(fault: str, maria: MariaDatabase) -> None:
    env = maria.env
    if fault == "revoked":
        env = maria.user_without("SELECT")
    else:
        maria.query(RENAME_CHECKSUM)
    assert_same_answers(Broken(env, *FAULTS[fault], maria.revisions), ["0003"])


def test_mariadb_history_not_writable(maria: MariaDatabase) -> None:
    """Readable but not writable: the revision does not start, and no unfinished record is
    left behind to refuse the next run (exit 10) though nothing ran."""
    broken = Broken(maria.user_without("INSERT"), 4, "grant", maria.revisions)
    for _ in range(2):
        message = assert_refused(broken.run(), 4, "write to", "grant")
        assert "revision 0003 did not start" in message
    assert maria.revisions() == ["0002"]
    assert maria.query("SELECT count(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = "
                       "%s AND TABLE_NAME = 'alembic_version_unfinished'", maria.name) == 0


def test_sqlite(tmp_path: Path) -> None:
    """No privileges on a file: only an altered table."""
    path = tmp_path / "app.db"
    env = job_env(DATABASE_URL=f"sqlite:///{path}",
                  ALEMBIC_CONFIG=str(make_sqlite_project(tmp_path / "project")))
    assert run_job("--target", "0002", env=env).code == 0
    import sqlite3
    from contextlib import closing

    def query(statement: str) -> list[Any]:
        with closing(sqlite3.connect(path)) as connection, connection:
            return connection.execute(statement).fetchall()

    query(RENAME_CHECKSUM)
    assert_same_answers(
        Broken(env, *FAULTS["renamed"], lambda: [r[0] for r in query(
            "SELECT version_num FROM alembic_version")]), ["0003"])


def test_sqlite_check_at_head_reads_the_columns_it_names(tmp_path: Path) -> None:
    """The readiness probe's path reads on the job's own sqlite3 connection: a renamed column
    must fail there too, not read as its own name (SQLite takes a double-quoted name that is
    no column for a string), which made every applied file look changed (exit 11)."""
    path = tmp_path / "app.db"
    env = job_env(DATABASE_URL=f"sqlite:///{path}", MIGRATE_VERIFY="fail",
                  ALEMBIC_CONFIG=str(make_sqlite_project(tmp_path / "project")))
    assert run_job(env=env).code == 0
    import sqlite3
    from contextlib import closing

    with closing(sqlite3.connect(path)) as connection, connection:
        connection.execute(RENAME_CHECKSUM)
    assert_refused(run_job("check", env=env), 7, "checksum")
