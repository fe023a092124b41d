"""Settings: precedence, defaults and validation, without a database."""

from __future__ import annotations

from pathlib import Path

import pytest

from migration_job.engines import SCHEMES, env_url
from migration_job.errors import ConfigError
from migration_job.settings import load as config
from migration_job.settings.load import (
    DEFAULT_ALEMBIC_CONFIG,
    URL_FILE_LIMIT,
    load_settings,
    normalize_url,
    parse_duration,
    parse_lock_key,
    termination_log_path,
)

URL = "postgresql://app:s%40cret@db:5432/app"


class TestPrecedence:
    """Flags win over environment variables; defaults fill the rest."""

    def test_defaults(self) -> None:
        settings = load_settings({}, {"DATABASE_URL": URL, "MIGRATE_TERMINATION_LOG": ""})
        assert settings.command == "upgrade"
        assert settings.alembic_config == DEFAULT_ALEMBIC_CONFIG
        assert (settings.target, settings.wait_timeout, settings.lock_timeout) == ("head", 60, 300)
        assert (settings.log_format, settings.log_level) == ("text", "INFO")
        assert settings.lock_key is None
        assert settings.termination_log is None

    def test_flags_win(self) -> None:
        env = {"DATABASE_URL": URL, "MIGRATE_WAIT_TIMEOUT": "5", "MIGRATE_TARGET": "0002"}
        settings = load_settings({"wait_timeout": "7", "target": "0003",
                                  "database_url": "postgres://x@y/z"}, env)
        assert settings.wait_timeout == 7
        assert settings.target == "0003"
        assert settings.database_url == "postgresql+psycopg2://x@y/z"

    def test_url_file_is_read_and_trimmed(self, tmp_path: Path) -> None:
        secret = tmp_path / "url"
        secret.write_text(f"\n  {URL}  \n")
        settings = load_settings({}, {"DATABASE_URL_FILE": str(secret)})
        assert settings.libpq_dsn == URL

    def test_libpq_variables_stand_in_for_a_url(self) -> None:
        settings = load_settings({}, {"PGHOST": "db", "PGPASSWORD": "hunter2"})
        assert settings.database_url is None
        assert settings.libpq_dsn == ""
        assert "hunter2" in settings.secrets


class TestUrls:
    """The job connects with the driver it ships; the password is remembered, raw and
    encoded, to be masked."""

    @pytest.mark.parametrize("scheme", [
        "postgres", "postgresql", "postgresql+psycopg2", "postgresql+psycopg",
        "postgresql+psycopg_async", "postgresql+asyncpg", "PostgreSQL+AsyncPG",
    ])
    def test_postgresql_schemes_connect_the_job_through_psycopg2(self, scheme: str) -> None:
        url, secrets = normalize_url(f"{scheme}://app:s%40cret@db/app")
        assert url == "postgresql+psycopg2://app:s%40cret@db/app"
        assert set(secrets) == {"s%40cret", "s@cret"}

    @pytest.mark.parametrize(("scheme", "normalized"), [
        ("mysql", "mysql+pymysql"), ("mysql+pymysql", "mysql+pymysql"),
        ("mysql+mysqldb", "mysql+pymysql"), ("mariadb", "mariadb+pymysql"),
        ("mariadb+pymysql", "mariadb+pymysql"), ("MySQL", "mysql+pymysql"),
    ])
    def test_mysql_schemes_use_the_driver_the_job_ships(self, scheme: str,
                                                        normalized: str) -> None:
        url, secrets = normalize_url(f"{scheme}://app:s%40cret@db:3307/app?charset=utf8mb4")
        assert url == f"{normalized}://app:s%40cret@db:3307/app?charset=utf8mb4"
        assert set(secrets) == {"s%40cret", "s@cret"}

    @pytest.mark.parametrize(("url", "complaint"), [
        ("mssql://u:p@h/d", "scheme 'mssql'"),
        ("postgresql+pg8000://u@h/d", "driver 'postgresql[+]pg8000'.*postgresql[+]asyncpg://"),
        ("mysql+mysqlconnector://u@h/d", "driver"),
        # No async driver for MySQL, MariaDB or SQLite: the message names what works.
        ("mysql+aiomysql://u@h/d", "driver 'mysql[+]aiomysql'.*mysql[+]pymysql://.*gets pymysql"),
        ("mariadb+asyncmy://u@h/d", "driver 'mariadb[+]asyncmy'.*mariadb://"),
        ("sqlite+aiosqlite:///app.db", "driver 'sqlite[+]aiosqlite'.*sqlite://"),
        ("postgresql+asyncpg://u@h/d?ssl=yes", "ssl='yes' is not one of"),
        ("mysql://u@h/d?ssl_mode=REQUIRED", "parameter 'ssl_mode'"),
        ("db.example.com:5432", "malformed"),
        ("postgresql://u@h:notaport/d", "malformed"),
        ("postgresql+psycopg_async://u@h:notaport/d", "malformed"),
        ("postgresql+psyco pg://u@h/d", "malformed"),
        # libpq takes an empty port for its default; SQLAlchemy (env.py) fails on it.
        ("postgresql://u:pw@h:/d", "port after the host's ':' is empty"),
        ("postgresql://u:pw@[::1]:/d", "port after the host's ':' is empty"),
        ("postgresql://u:pw@h1:5432,h2:/d", "port after the host's ':' is empty"),
        ("mysql://u:pw@h:/d", "port after the host's ':' is empty"),
    ])
    def test_rejected(self, url: str, complaint: str) -> None:
        with pytest.raises(ConfigError, match=complaint):
            normalize_url(url)

    def test_an_asyncpg_query_is_read_as_libpq_reads_it_for_the_job(self) -> None:
        given = ("postgresql+asyncpg://app:s%40cret@db/app?ssl=verify-full"
                 "&prepared_statement_cache_size=0&command_timeout=60&target_session_attrs=any")
        settings = load_settings({}, {"DATABASE_URL": given})
        assert settings.libpq_dsn == ("postgresql://app:s%40cret@db/app?sslmode=verify-full"
                                      "&target_session_attrs=any")
        # env.py gets the query as written: asyncpg takes ssl=, not sslmode=.
        assert env_url(settings.given_url, async_env=True) == given


class TestDriversForEnvPy:
    """env.py gets the driver the URL names; a bare URL gets one that fits env.py."""

    @pytest.mark.parametrize(("scheme", "sync_env", "async_env"), [
        ("postgresql", "postgresql+psycopg2", "postgresql+psycopg_async"),
        ("postgres", "postgresql+psycopg2", "postgresql+psycopg_async"),
        ("postgresql+psycopg2", "postgresql+psycopg2", "postgresql+psycopg2"),
        ("postgresql+psycopg", "postgresql+psycopg", "postgresql+psycopg"),
        ("postgresql+psycopg_async", "postgresql+psycopg_async", "postgresql+psycopg_async"),
        ("postgresql+asyncpg", "postgresql+asyncpg", "postgresql+asyncpg"),
        ("POSTGRESQL+ASYNCPG", "postgresql+asyncpg", "postgresql+asyncpg"),
        ("mysql", "mysql+pymysql", "mysql+pymysql"),
        ("mysql+mysqldb", "mysql+pymysql", "mysql+pymysql"),
        ("mariadb", "mariadb+pymysql", "mariadb+pymysql"),
        ("sqlite", "sqlite+pysqlite", "sqlite+pysqlite"),
    ])
    def test_env_py_driver(self, scheme: str, sync_env: str, async_env: str) -> None:
        rest = "/app.db" if scheme == "sqlite" else "app:s%40cret@db/app"
        settings = load_settings({}, {"DATABASE_URL": f"{scheme}://{rest}"})
        assert env_url(settings.given_url, async_env=False) == f"{sync_env}://{rest}"
        assert env_url(settings.given_url, async_env=True) == f"{async_env}://{rest}"

    def test_without_a_url_env_py_reads_libpq_variables_through_a_libpq_driver(self) -> None:
        settings = load_settings({}, {"PGHOST": "db"})
        assert env_url(settings.given_url, async_env=False) == "postgresql+psycopg2://"
        assert env_url(settings.given_url, async_env=True) == "postgresql+psycopg_async://"

    def test_every_scheme_names_drivers_sqlalchemy_knows(self) -> None:
        from sqlalchemy.engine import make_url

        for scheme in SCHEMES.values():
            for driver in (scheme.sqlalchemy, scheme.env, scheme.async_env):
                assert make_url(f"{driver}://").get_dialect() is not None


class TestNumbers:
    """Durations and lock keys are parsed strictly: no silent defaults."""

    @pytest.mark.parametrize(("text", "seconds"),
                             [("90", 90), ("90s", 90), ("1.5", 1.5), ("500ms", 0.5),
                              ("5m", 300), ("1h", 3600), ("0", 0)])
    def test_durations(self, text: str, seconds: float) -> None:
        assert parse_duration("X", text) == seconds

    @pytest.mark.parametrize("text", ["", "abc", "-1", "1d", "5 minutes", "nan", "1e9999"])
    def test_bad_durations(self, text: str) -> None:
        with pytest.raises(ConfigError, match="X="):
            parse_duration("X", text)

    def test_lock_key_bounds(self) -> None:
        assert parse_lock_key(str(2**63 - 1)) == 2**63 - 1
        assert parse_lock_key(str(-(2**63))) == -(2**63)
        for bad in (str(2**63), "0x10", "1.0", "key"):
            with pytest.raises(ConfigError, match="MIGRATE_LOCK_KEY"):
                parse_lock_key(bad)

    def test_progress_interval(self) -> None:
        """Every 10 s by default; 0 turns it off; the flag wins."""
        env = {"DATABASE_URL": URL, "MIGRATE_TERMINATION_LOG": ""}
        assert load_settings({}, env).progress_interval == 10
        assert load_settings({}, {**env, "MIGRATE_PROGRESS_INTERVAL": "0"}).progress_interval == 0
        assert load_settings({"progress_interval": "500ms"},
                             {**env, "MIGRATE_PROGRESS_INTERVAL": "1m"}).progress_interval == 0.5
        with pytest.raises(ConfigError, match="MIGRATE_PROGRESS_INTERVAL="):
            load_settings({}, {**env, "MIGRATE_PROGRESS_INTERVAL": "-1"})

    def test_both_url_sources_is_an_error(self, tmp_path: Path) -> None:
        with pytest.raises(ConfigError, match="both set"):
            load_settings({}, {"DATABASE_URL": URL, "DATABASE_URL_FILE": str(tmp_path)})


class TestUrlFile:
    """DATABASE_URL_FILE must be a regular file of a sane size (FIFOs and devices: integration)."""

    def test_a_directory_is_refused_before_reading(self, tmp_path: Path) -> None:
        with pytest.raises(ConfigError, match="is a directory, not a regular file"):
            load_settings({}, {"DATABASE_URL_FILE": str(tmp_path)})

    def test_an_oversized_file_is_refused(self, tmp_path: Path) -> None:
        secret = tmp_path / "url"
        secret.write_text(URL + " " * URL_FILE_LIMIT)
        with pytest.raises(ConfigError, match="larger than 64 KiB"):
            load_settings({}, {"DATABASE_URL_FILE": str(secret)})

    def test_a_file_at_the_limit_is_read(self, tmp_path: Path) -> None:
        secret = tmp_path / "url"
        secret.write_text(URL + " " * (URL_FILE_LIMIT - len(URL)))
        assert secret.stat().st_size == URL_FILE_LIMIT
        assert load_settings({}, {"DATABASE_URL_FILE": str(secret)}).libpq_dsn == URL


class TestTerminationLogPath:
    """MIGRATE_TERMINATION_LOG wins; unset, Kubernetes' file is used only when writable."""

    def test_configured(self, tmp_path: Path) -> None:
        target = tmp_path / "term"
        assert termination_log_path({"MIGRATE_TERMINATION_LOG": str(target)}) == target

    def test_empty_disables(self) -> None:
        assert termination_log_path({"MIGRATE_TERMINATION_LOG": ""}) is None

    def test_default_only_when_writable(self, tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
        writable = tmp_path / "termination-log"
        writable.touch()
        monkeypatch.setattr(config, "KUBERNETES_TERMINATION_LOG", writable)
        assert termination_log_path({}) == writable
        monkeypatch.setattr(config, "KUBERNETES_TERMINATION_LOG", tmp_path / "no" / "such")
        assert termination_log_path({}) is None


class TestAppliedHistorySettings:
    """MIGRATE_HISTORY switches the table, MIGRATE_DEPLOY_REF falls back to CI's variables."""

    def test_defaults_and_fallbacks(self) -> None:
        base = {"DATABASE_URL": URL, "MIGRATE_TERMINATION_LOG": ""}
        settings = load_settings({}, {**base, "GITHUB_SHA": "abc", "CI_COMMIT_SHA": "def"})
        assert (settings.record_history, settings.history_table) == (True, None)
        assert settings.deploy_ref == "abc"
        own = load_settings({}, {**base, "MIGRATE_DEPLOY_REF": "v2", "GITHUB_SHA": "abc",
                                 "MIGRATE_HISTORY": "off", "MIGRATE_HISTORY_TABLE": "audit"})
        assert (own.deploy_ref, own.record_history, own.history_table) == ("v2", False, "audit")

    def test_history_switch_must_be_on_or_off(self) -> None:
        with pytest.raises(ConfigError, match="MIGRATE_HISTORY='sometimes' is not on or off"):
            load_settings({}, {"DATABASE_URL": URL, "MIGRATE_HISTORY": "sometimes"})

    @pytest.mark.parametrize("variable", ["MIGRATE_VERIFY", "MIGRATE_ON_NEWER_DATABASE"])
    def test_verify_and_newer_database_take_their_words_only(self, variable: str) -> None:
        settings = load_settings({}, {"DATABASE_URL": URL})
        assert (settings.verify, settings.on_newer_database) == ("warn", "fail")
        with pytest.raises(ConfigError, match=f"{variable}='maybe' is not one of"):
            load_settings({}, {"DATABASE_URL": URL, variable: "maybe"})
