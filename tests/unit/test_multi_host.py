"""libpq's multi-host URL (host1:port1,host2:port2): accepted, handed to libpq as written, and
to SQLAlchemy (env.py, the job's own engine) in the form it reads."""

from __future__ import annotations

import pytest
from sqlalchemy.dialects.postgresql import psycopg, psycopg2
from sqlalchemy.engine import make_url

from migration_job.engines import env_url, sqlalchemy_url
from migration_job.errors import ConfigError
from migration_job.settings.load import load_settings, normalize_url

PASSWORD = "p@ss/w:rd"
MULTI = ("postgresql://app:p%40ss%2Fw%3Ard@db-a:5432,db-b:5433/app"
         "?target_session_attrs=read-write")


def settings_for(url: str) -> object:
    return load_settings({}, {"DATABASE_URL": url, "MIGRATE_TERMINATION_LOG": ""})


class TestAccepted:
    """The multi-host form is a valid URL: libpq gets it as written, the password is masked."""

    def test_libpq_gets_every_host(self) -> None:
        settings = load_settings({}, {"DATABASE_URL": MULTI, "MIGRATE_TERMINATION_LOG": ""})
        assert settings.libpq_dsn == MULTI

    def test_password_masked_raw_and_encoded(self) -> None:
        _, secrets = normalize_url(MULTI)
        assert PASSWORD in secrets
        assert "p%40ss%2Fw%3Ard" in secrets

    @pytest.mark.parametrize("hosts", ["db-a:5432,db-b", "db-a,db-b:5433", "db-a,db-b",
                                       "[::1]:5432,[::2]:5433"])
    def test_ports_optional_per_host(self, hosts: str) -> None:
        normalize_url(f"postgresql://app@{hosts}/app")

    @pytest.mark.parametrize("hosts", ["db-a:5432,db-b:notaport", "db-a:99999,db-b:5432"])
    def test_each_port_checked(self, hosts: str) -> None:
        with pytest.raises(ConfigError, match="malformed"):
            normalize_url(f"postgresql://app@{hosts}/app")

    def test_mysql_takes_one_host(self) -> None:
        with pytest.raises(ConfigError, match="several hosts"):
            normalize_url("mysql://app:pw@db-a:3306,db-b:3306/app")

    def test_asyncpg_needs_every_port(self) -> None:
        with pytest.raises(ConfigError, match="port"):
            normalize_url("postgresql+asyncpg://app:pw@db-a:5432,db-b/app")


class TestSqlalchemyForm:
    """SQLAlchemy reads several hosts from the query (?host=h1:p1&host=h2:p2): env.py and the
    job's own engine get that form, which connects to the same hosts as libpq's."""

    @pytest.mark.parametrize("dialect", [psycopg2.dialect, psycopg.dialect])
    def test_env_url_reaches_every_host(self, dialect: type) -> None:
        settings = load_settings({}, {"DATABASE_URL": MULTI, "MIGRATE_TERMINATION_LOG": ""})
        url = make_url(env_url(settings.given_url, async_env=False))
        _, arguments = dialect().create_connect_args(url)
        assert arguments["host"] == "db-a,db-b"
        assert arguments["port"] == "5432,5433"
        assert arguments["target_session_attrs"] == "read-write"
        assert arguments["password"] == PASSWORD
        assert arguments["dbname"] == "app"

    def test_job_engine_url_is_the_same_database(self) -> None:
        settings = load_settings({}, {"DATABASE_URL": MULTI, "MIGRATE_TERMINATION_LOG": ""})
        job = make_url(sqlalchemy_url(settings.database_url))
        env = make_url(env_url(settings.given_url, async_env=False))
        assert job == env

    def test_one_host_unchanged(self) -> None:
        url = "postgresql+psycopg2://app:pw@db-a:5432/app?sslmode=require"
        assert sqlalchemy_url(url) == url
