"""The MySQL/MariaDB engine's URL reading, names and verdict on errors, without a server.

The errors are PyMySQL's own exception types carrying the numbers the server sends; the
integration tests (test_mariadb.py) see the same numbers come from a real server.
"""

from __future__ import annotations

import sys
import time

import pymysql
import pytest
import sqlalchemy
from alembic.config import Config

from migration_job.alembic_env.env_drivers import driver_mismatch
from migration_job.engines.locking import derive_lock_key
from migration_job.engines.mysql import errors as mysql_errors
from migration_job.engines.mysql.connection import LendableConnection
from migration_job.engines.mysql.engine import ENGINE
from migration_job.engines.mysql.lock import lock_name
from migration_job.engines.mysql.unfinished import table_name
from migration_job.engines.mysql.url import connect_arguments
from migration_job.errors import ConfigError


class TestUrls:
    """The URL's parts become PyMySQL's arguments, decoded; unknown parameters are refused."""

    def test_parts_are_decoded(self) -> None:
        arguments = connect_arguments("mysql+pymysql://app:p%40ss%2Fw@db.internal/app%2Dx")
        assert arguments == {"host": "db.internal", "port": 3306, "user": "app",
                             "password": "p@ss/w", "database": "app-x"}

    def test_parameters_pass_on_typed(self) -> None:
        arguments = connect_arguments("mariadb+pymysql://app@h:3307/app?unix_socket=/run/m.sock"
                                      "&ssl_ca=/ca.pem&ssl_verify_cert=true&charset=utf8mb4")
        assert arguments["port"] == 3307
        assert arguments["unix_socket"] == "/run/m.sock"
        assert arguments["ssl_ca"] == "/ca.pem"
        assert arguments["ssl_verify_cert"] is True
        assert arguments["charset"] == "utf8mb4"

    def test_unknown_parameter_is_a_configuration_error(self) -> None:
        with pytest.raises(ConfigError, match="'local_infile' is not supported"):
            ENGINE.check_url("mysql+pymysql://app@h/app?local_infile=1")


class TestNames:
    """MySQL limits lock and table names to 64 characters; distinct inputs stay distinct."""

    @pytest.mark.parametrize("key", [-(2**63), 2**63 - 1, 0])
    def test_lock_name_fits(self, key: int) -> None:
        assert len(lock_name(key)) <= 64

    def test_lock_names_differ_by_database_and_table(self) -> None:
        names = {lock_name(derive_lock_key(database, "", table))
                 for database in ("app", "billing") for table in ("alembic_version", "other")}
        assert len(names) == 4

    def test_unfinished_table_beside_the_version_table(self) -> None:
        assert table_name("alembic_version") == "alembic_version_unfinished"

    def test_long_version_tables_stay_within_64_and_distinct(self) -> None:
        first, second = table_name("v" * 60 + "1"), table_name("v" * 60 + "2")
        assert len(first) <= 64
        assert len(second) <= 64
        assert first != second


def error(number: int, message: str = "") -> pymysql.err.OperationalError:
    """The exception PyMySQL raises for a server error number."""
    return pymysql.err.OperationalError(number, message)


class TestErrors:
    """Refusals fail at once with advice; the rest is waited for; lost sessions are told apart."""

    @pytest.mark.parametrize(("number", "advice"), [
        (1045, "user and password"), (1049, "create the database"), (1044, "grant"),
        (1130, "from the job's host"),
    ])
    def test_refusals_are_permanent(self, number: int, advice: str) -> None:
        assert not ENGINE.is_transient(error(number))
        assert advice in ENGINE.rejection_advice(error(number))

    @pytest.mark.parametrize("number", [2003, 2002, 2013, 1040, 1203])
    def test_not_there_yet_is_transient(self, number: int) -> None:
        assert ENGINE.is_transient(error(number))

    @pytest.mark.parametrize("number", [2006, 2013, 1927, 1053])
    def test_lost_sessions(self, number: int) -> None:
        assert ENGINE.is_connection_lost(error(number))

    def test_closed_connection_is_lost(self) -> None:
        assert ENGINE.is_connection_lost(pymysql.err.InterfaceError(0, ""))

    def test_failed_statement_is_not_lost(self) -> None:
        failed = pymysql.err.ProgrammingError(1146, "Table 'app.nope' doesn't exist")
        assert not ENGINE.is_connection_lost(failed)
        assert ENGINE.failure_advice(failed) is None

    def test_denied_statement(self) -> None:
        assert ENGINE.is_permission_denied(error(1142, "CREATE command denied"))

    def test_lock_wait_is_not_the_migrations_fault(self) -> None:
        advice = ENGINE.failure_advice(error(1205, "Lock wait timeout exceeded"))
        assert advice is not None
        assert "another session" in advice

    def test_no_reply_in_time_is_a_lost_session_worth_waiting_for(self) -> None:
        # As PyMySQL raises it when its read timeout passes, and as the job words it.
        try:
            try:
                raise TimeoutError("timed out")
            except TimeoutError:
                raise error(2013, "Lost connection to MySQL server during query (timed out)")  # noqa: B904
        except pymysql.err.OperationalError as timed_out:
            raw = timed_out
        worded = mysql_errors.no_reply(3.0, "a statement")
        for lost in (raw, worded):
            assert mysql_errors.is_no_reply(lost)
            assert ENGINE.is_connection_lost(lost)
            assert ENGINE.is_transient(lost)
        assert "did not answer a statement within 3 s" in str(worded)
        assert not mysql_errors.is_no_reply(error(2013, "Lost connection to MySQL server"))


class TestEnvPyDrivers:
    """An env.py that builds its own engine: the tutorial's MySQL URLs get PyMySQL, a driver
    that is not installed is a configuration error naming it."""

    def test_mysqldb_urls_load_pymysql(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.delitem(sys.modules, "MySQLdb", raising=False)  # restored afterwards
        ENGINE.name_process()
        for url in ("mysql://app@h/app", "mysql+mysqldb://app@h/app", "mariadb://app@h/app"):
            engine = sqlalchemy.create_engine(url)
            assert engine.dialect.loaded_dbapi.__name__ == "pymysql"

    @pytest.mark.parametrize(("url", "named"), [
        ("postgresql+pg8000://app@h/app", "postgresql+pg8000"),
        ("mysql+mysqlconnector://app@h/app", "mysql+mysqlconnector"),
    ])
    def test_driver_not_installed(self, url: str, named: str) -> None:
        with pytest.raises(ModuleNotFoundError) as caught:
            sqlalchemy.create_engine(url)
        mismatch = driver_mismatch(caught.value, Config())
        assert isinstance(mismatch, ConfigError)
        assert f"({named}://)" in str(mismatch)

    def test_other_module_env_py_needs(self) -> None:
        mismatch = driver_mismatch(ModuleNotFoundError("No module named 'app'", name="app"),
                                   Config())
        assert isinstance(mismatch, ConfigError)
        assert "No module named 'app'" in str(mismatch)

    def test_a_module_of_the_jobs_own_stays_a_bug(self) -> None:
        missing = ModuleNotFoundError("No module named 'migration_job.nope'",
                                      name="migration_job.nope")
        assert driver_mismatch(missing, Config()) is None


class TestUrlChecks:
    """A URL PyMySQL cannot use is a configuration error naming the part to fix."""

    @pytest.mark.parametrize(("url", "named"), [
        ("mysql+pymysql://app:pw@h:3306", "names no database"),
        ("mysql+pymysql://app:pw@h:3306/", "names no database"),
        ("mysql+pymysql://app@h/app?charset=nonsense", "charset"),
        ("mysql+pymysql://app@h/app?ssl_ca=/nonexistent/ca.pem", "ssl_ca"),
        ("mysql+pymysql://app@h/app?ssl_cert=/nonexistent/c.pem", "ssl_cert"),
        ("mysql+pymysql://app@h/app?ssl_key=/nonexistent/k.pem", "ssl_key"),
        # PyMySQL encodes a password as latin-1 (UnicodeEncodeError beyond it).
        ("mysql+pymysql://app:pw\u20ac@h/app", "beyond latin-1"),
        ("mysql+pymysql://app:pw%E2%82%AC@h/app", "beyond latin-1"),
    ])
    def test_refused(self, url: str, named: str) -> None:
        with pytest.raises(ConfigError, match=named):
            ENGINE.check_url(url)

    def test_usable_urls_pass(self) -> None:
        ENGINE.check_url("mysql+pymysql://app:p%C3%A9@h/app")  # é is latin-1
        ENGINE.check_url("mysql+pymysql://app:pw@h:3306/app?charset=utf8mb4"
                         "&ssl_ca=/etc/ssl/certs/ca-certificates.crt&ssl_verify_cert=true")

    def test_the_server_not_knowing_the_charset_is_a_refusal(self) -> None:
        assert not ENGINE.is_transient(error(1115, "Unknown character set: 'utf32'"))


class TestReplyBounds:
    """A phase's bound on the session's replies ends with the phase."""

    def test_each_phase_gives_the_standing_bound_back(self) -> None:
        connection = LendableConnection(host="127.0.0.1", defer_connect=True,
                                        read_timeout=7.0, write_timeout=7.0)
        with connection.answered_by(time.monotonic() + 300):
            assert connection.reply_by is not None
            connection.reply_within(0.5)  # as the lock's last poll sets it
        assert connection.reply_timeout == 7.0
        assert not connection.reply_by
        with connection.answered_within(None):
            assert connection.reply_timeout is None
        assert connection.reply_timeout == 7.0
