"""env.py's PostgreSQL drivers besides psycopg2 (asyncpg, psycopg 3), without a server: which
env.py runs asyncio, the name their connections carry, and the verdict on their errors.

The errors are the drivers' own exception types (and SQLAlchemy's adaptation of asyncpg's)
carrying the SQLSTATE the server sends; tests/integration/test_drivers.py sees the same come
from a real server.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import alembic
import asyncpg
import psycopg
import psycopg2
import pytest
from alembic.config import Config
from sqlalchemy.dialects.postgresql.asyncpg import AsyncAdapt_asyncpg_dbapi
from sqlalchemy.exc import InvalidRequestError, MissingGreenlet

from migration_job.alembic_env.env_drivers import driver_mismatch
from migration_job.alembic_env.revision_graph import env_runs_asyncio
from migration_job.engines import application_name
from migration_job.engines.postgres.drivers import name_connection
from migration_job.engines.postgres.engine import ENGINE
from migration_job.errors import ConfigError

TEMPLATES = Path(alembic.__file__).parent / "templates"


class TestAsyncEnvPy:
    """An env.py runs asyncio as Alembic's async templates write it; the others do not."""

    @pytest.mark.parametrize("template", sorted(p.name for p in TEMPLATES.iterdir()
                                                if (p / "env.py").is_file()))
    def test_alembic_templates(self, template: str) -> None:
        assert env_runs_asyncio(str(TEMPLATES / template / "env.py")) == ("async" in template)

    def test_an_env_py_of_its_own(self, tmp_path: Path) -> None:
        env = tmp_path / "env.py"
        env.write_text("from sqlalchemy.ext.asyncio import create_async_engine\n")
        assert env_runs_asyncio(str(env))
        env.write_text("import asyncio\nfrom sqlalchemy import engine_from_config\n")
        assert not env_runs_asyncio(str(env))

    def test_missing_env_py_is_left_to_alembic(self, tmp_path: Path) -> None:
        assert not env_runs_asyncio(str(tmp_path / "env.py"))


class TestApplicationName:
    """Every PostgreSQL driver's connection carries the job's name, whatever the URL said."""

    def test_asyncpg_gets_it_in_server_settings(self) -> None:
        cparams: dict[str, object] = {"server_settings": {"search_path": "app"}}
        name_connection("asyncpg", cparams)
        assert cparams["server_settings"] == {"search_path": "app",
                                              "application_name": application_name()}

    @pytest.mark.parametrize("driver", ["psycopg", "psycopg2"])
    def test_libpq_drivers_get_it_as_an_argument(self, driver: str) -> None:
        cparams: dict[str, object] = {"application_name": "from-the-url"}
        name_connection(driver, cparams)
        assert cparams["application_name"] == application_name()


def adapted(error: Exception) -> Exception:
    """asyncpg's error as SQLAlchemy's asyncpg dialect raises it (DBAPIError.orig)."""
    mapping = {asyncpg.exceptions.SyntaxOrAccessError: AsyncAdapt_asyncpg_dbapi.ProgrammingError,
               asyncpg.exceptions.PostgresError: AsyncAdapt_asyncpg_dbapi.Error}
    cls: Any = next(v for k, v in mapping.items() if isinstance(error, k))
    translated: Exception = cls(str(error), error)
    translated.__cause__ = error
    return translated


LOST = [
    pytest.param(psycopg.errors.AdminShutdown("terminating connection"), id="psycopg-57P01"),
    pytest.param(psycopg.OperationalError("server closed the connection unexpectedly"),
                 id="psycopg-libpq"),
    pytest.param(asyncpg.exceptions.ConnectionDoesNotExistError("closed mid-operation"),
                 id="asyncpg-08003"),
    pytest.param(adapted(asyncpg.exceptions.ConnectionDoesNotExistError("closed")),
                 id="asyncpg-adapted-08003"),
    pytest.param(asyncpg.exceptions.AdminShutdownError("terminating"), id="asyncpg-57P01"),
    pytest.param(ConnectionResetError(104, "Connection reset by peer"), id="socket"),
    pytest.param(psycopg2.OperationalError("server closed the connection"), id="psycopg2"),
]
FAILED_STATEMENTS = [
    pytest.param(psycopg.errors.UndefinedTable("no such table"), id="psycopg"),
    pytest.param(psycopg.errors.QueryCanceled("canceling statement"), id="psycopg-cancel"),
    pytest.param(asyncpg.exceptions.UndefinedTableError("no such table"), id="asyncpg"),
    pytest.param(adapted(asyncpg.exceptions.UndefinedTableError("x")), id="asyncpg-adapted"),
]
NO_PRIVILEGE = [
    pytest.param(psycopg.errors.InsufficientPrivilege("permission denied"), id="psycopg"),
    pytest.param(asyncpg.exceptions.InsufficientPrivilegeError("denied"), id="asyncpg"),
    pytest.param(adapted(asyncpg.exceptions.InsufficientPrivilegeError("denied")),
                 id="asyncpg-adapted"),
]


class TestErrorVerdicts:
    """A lost session is exit 3, a missing privilege exit 4, anything else exit 6, for every
    driver env.py may use."""

    @pytest.mark.parametrize("error", LOST)
    def test_connection_lost(self, error: Exception) -> None:
        assert ENGINE.is_connection_lost(error)
        assert not ENGINE.is_permission_denied(error)

    @pytest.mark.parametrize("error", FAILED_STATEMENTS + NO_PRIVILEGE)
    def test_a_failed_statement_is_no_lost_session(self, error: Exception) -> None:
        assert not ENGINE.is_connection_lost(error)

    @pytest.mark.parametrize("error", NO_PRIVILEGE)
    def test_permission_denied(self, error: Exception) -> None:
        assert ENGINE.is_permission_denied(error)

    @pytest.mark.parametrize("error", FAILED_STATEMENTS)
    def test_other_failures_are_the_migration_s(self, error: Exception) -> None:
        assert not ENGINE.is_permission_denied(error)


def config_with(url: str) -> Config:
    config = Config()
    config.set_main_option("sqlalchemy.url", url)
    return config


class TestDriverMismatch:
    """env.py that cannot use the driver it got is a configuration error (exit 2)."""

    def test_async_env_py_with_a_synchronous_driver(self) -> None:
        error = InvalidRequestError("The asyncio extension requires an async driver to be "
                                    "used. The loaded 'psycopg2' is not async.")
        mismatch = driver_mismatch(error, config_with("postgresql+psycopg2://db/app"))
        assert isinstance(mismatch, ConfigError)
        assert "env.py runs asyncio, but the driver it got (psycopg2) is not async" in str(mismatch)

    def test_synchronous_env_py_with_an_async_driver(self) -> None:
        error = MissingGreenlet("greenlet_spawn has not been called")
        mismatch = driver_mismatch(error, config_with("postgresql+asyncpg://db/app"))
        assert isinstance(mismatch, ConfigError)
        assert "env.py is synchronous, but the driver it got (asyncpg)" in str(mismatch)

    def test_missing_greenlet_in_an_async_env_py_stays_env_py_s_bug(self) -> None:
        error = MissingGreenlet("greenlet_spawn has not been called")
        assert driver_mismatch(error, config_with("postgresql+psycopg://db/app")) is None

    def test_other_errors_are_not_about_drivers(self) -> None:
        assert driver_mismatch(ValueError("x"), config_with("postgresql+asyncpg://")) is None
