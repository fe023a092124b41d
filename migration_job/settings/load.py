"""Settings loaded: the only reader of the environment, and every validation done up front."""

from __future__ import annotations

import math
import os
import re
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

from migration_job import engines
from migration_job.errors import ConfigError
from migration_job.settings import Settings
from migration_job.settings.commands import COMMANDS, DEFAULT_COMMAND

if TYPE_CHECKING:
    from migration_job.settings.fleet import FleetSettings

LOG_FORMATS = ("text", "json")
# Short enough that the application's queries queued behind a blocked ALTER wait no longer
# than a typical request timeout; long enough for a busy table's short transactions to end.
DEFAULT_DDL_LOCK_TIMEOUT = "2s"
DEFAULT_DDL_LOCK_RETRIES = "5"
# Often enough to tell a slow build from a hang, rarely enough to keep a long one's log short.
DEFAULT_PROGRESS_INTERVAL = "10s"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
VERIFY_MODES = ("warn", "fail", "off")
NEWER_DATABASE_MODES = ("fail", "accept")
DEFAULT_ALEMBIC_CONFIG = Path(__file__).resolve().parents[2] / "alembic.ini"
PYPROJECT = "pyproject.toml"
KUBERNETES_TERMINATION_LOG = Path("/dev/termination-log")
# libpq variables that say where to connect when no URL is given.
LIBPQ_TARGET_VARIABLES = ("PGHOST", "PGHOSTADDR", "PGPORT", "PGDATABASE", "PGUSER", "PGSERVICE")
# What the deploy says it is, in the order asked: the job's own variable, then CI systems'.
DEPLOY_REF_VARIABLES = ("MIGRATE_DEPLOY_REF", "GITHUB_SHA", "CI_COMMIT_SHA")
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
# A URL is a few hundred bytes: anything much larger is the wrong file, not a secret.
URL_FILE_LIMIT = 64 * 1024
# libpq URL query parameters whose values are secrets.
SECRET_PARAMETERS = ("password", "sslpassword")
MALFORMED_URL = ("DATABASE_URL is malformed; expected "
                 "postgresql://USER:PASSWORD@HOST:PORT/DATABASE")
UNENCODED_CHARACTERS = ("DATABASE_URL has an '@' after a '/', '#' or '?': URL-encode those in the "
                      "password (/ as %2F, # as %23, ? as %3F, @ as %40)")

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}
# A URL scheme as SQLAlchemy writes them: RFC 3986's letters, digits, '+', '-' and '.', and '_'
# (a driver such as psycopg_async).
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.\-_]*")
# A query parameter's value, where an '@' is data rather than the end of a password.
_QUERY_VALUE = re.compile(r"\?[^#]*=")
_FILE_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"),
               (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
               (stat.S_ISSOCK, "a socket"))


class UrlError(ConfigError):
    """An unusable DATABASE_URL; carries the URL's secrets so that they can be masked anyway."""

    def __init__(self, message: str, secrets: tuple[str, ...]) -> None:
        super().__init__(message)
        self.secrets = secrets


def parse_duration(name: str, text: str) -> float:
    """Seconds from '90', '90s', '500ms', '5m' or '1h'; anything else is a ConfigError."""
    match = _DURATION.match(text)
    if match is None:
        raise ConfigError(f"{name}={text!r} is not a duration: use seconds (90) or 90s, 5m, 1h")
    seconds = float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    if not math.isfinite(seconds):
        raise ConfigError(f"{name}={text!r} is not a finite duration")
    return seconds


def parse_count(name: str, text: str) -> int:
    """A whole number, zero or more."""
    if not text.strip().isdigit():
        raise ConfigError(f"{name}={text!r} is not a whole number (0 or more)")
    return int(text.strip())


def parse_lock_key(text: str) -> int:
    """A signed 64-bit integer, as pg_advisory_lock(bigint) takes it."""
    try:
        key = int(text.strip(), 10)
    except ValueError:
        raise ConfigError(f"MIGRATE_LOCK_KEY={text!r} is not an integer") from None
    if not INT64_MIN <= key <= INT64_MAX:
        raise ConfigError(f"MIGRATE_LOCK_KEY={text!r} does not fit in a signed 64-bit integer")
    return key


def normalize_url(url: str) -> tuple[str, tuple[str, ...]]:
    """Check a URL and return it with the driver the job ships spelled out, plus its secrets.

    Error messages never quote the URL: any part of it may be a piece of the password.
    """
    secrets = url_secrets(url)
    try:
        _check_url(url)
        normalized = engines.job_url(url)
        engines.engine_for(normalized).check_url(normalized)
    except ConfigError as error:
        raise UrlError(str(error), secrets) from None
    return normalized, secrets


def _check_url(url: str) -> None:
    """Raise ConfigError, quoting only the scheme, if `url` is unusable."""
    scheme, separator, rest = url.partition("://")
    if not _SCHEME.fullmatch(scheme) or not separator:
        raise ConfigError(MALFORMED_URL)
    engines.sqlalchemy_scheme(scheme.lower())  # raises for a scheme or driver not supported
    if _password_not_encoded(rest):
        raise ConfigError(UNENCODED_CHARACTERS)
    hosts = _hosts(rest)
    if len(hosts) > 1:
        _check_several_hosts(scheme.lower(), hosts)
    if any(host.endswith(":") for host in hosts):
        # libpq reads HOST:/ as the default port, SQLAlchemy (env.py's URL) as no number.
        raise ConfigError(f"{MALFORMED_URL} (the port after the host's ':' is empty: write "
                          "the port, or leave out the ':' for the default one)")
    try:
        # urlsplit takes no '_' in a scheme (postgresql+psycopg_async): it reads the rest. It
        # raises ValueError on a malformed port, and on characters that read as delimiters.
        urlsplit(f"db://{rest}")
        for host in hosts:
            urlsplit(f"db://{host}").port  # noqa: B018
    except ValueError:
        raise ConfigError(f"{MALFORMED_URL} (the port is not a number up to 65535)") from None


def _hosts(rest: str) -> list[str]:
    """Each HOST[:PORT] of the authority: libpq's URLs list several, comma-separated."""
    return rest[:engines.authority_end(rest)].rpartition("@")[2].split(",")


def _check_several_hosts(scheme: str, hosts: list[str]) -> None:
    """Several hosts: libpq's form (PostgreSQL only); asyncpg needs each one's port."""
    if engines.SCHEMES[scheme].engine != "postgres":
        raise ConfigError(f"{MALFORMED_URL} (several hosts, comma-separated, work on "
                          "PostgreSQL only)")
    if engines.SCHEMES[scheme].env == "postgresql+asyncpg" and not all(
            urlsplit(f"db://{host}").port for host in hosts):
        raise ConfigError(f"{MALFORMED_URL} (asyncpg needs the port of each of several hosts)")


def _password_not_encoded(rest: str) -> bool:
    """Whether a '/', '#' or '?' in the password cut the authority short.

    An '@' after the authority's end, other than in a query parameter's value, is where the
    user meant the password to end; libpq and SQLAlchemy would each split such a URL differently.
    """
    end = engines.authority_end(rest)
    at = rest.find("@", end)
    return at >= 0 and _QUERY_VALUE.search(rest, end, at) is None


def url_secrets(url: str) -> tuple[str, ...]:
    """Every part of `url` that may be a password, raw and URL-decoded, to be masked."""
    rest = url.split("://", 1)[-1]
    found = {*_userinfo_passwords(rest), *_query_passwords(rest)}
    found |= {unquote(secret) for secret in found}
    return tuple(sorted(secret for secret in found if secret))


def _userinfo_passwords(rest: str) -> list[str]:
    """The text between 'user:' and each later '@', however the password was (mis)encoded.

    One of these is the password whichever '@' the user meant to end it; the others are
    longer stretches of the URL, harmless to mask.
    """
    colon = rest.find(":")
    if colon < 0 or colon > engines.authority_end(rest):
        return []
    return [rest[colon + 1:at] for at in range(colon + 1, len(rest)) if rest[at] == "@"]


def _query_passwords(rest: str) -> list[str]:
    """Values of `password=` (and `sslpassword=`) query parameters, which libpq accepts."""
    values = []
    for parameter in re.split(r"[?&]", rest)[1:]:
        key, _, value = parameter.partition("=")
        if unquote(key) in SECRET_PARAMETERS:
            values.append(value)
    return values


def _read_url_file(path: str) -> str:
    """The trimmed URL from a secret file: a regular file of at most URL_FILE_LIMIT bytes."""
    _check_url_file(path)
    try:
        # Non-blocking, so that a file swapped for a FIFO after the check cannot hang us.
        with os.fdopen(os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC), "rb") as file:
            data = file.read(URL_FILE_LIMIT + 1) or b""
        text = data.decode("utf-8").strip()
    except (OSError, UnicodeDecodeError) as error:
        reason = getattr(error, "strerror", None) or type(error).__name__
        raise ConfigError(f"DATABASE_URL_FILE={path} cannot be read: {reason}") from None
    if len(data) > URL_FILE_LIMIT:
        raise ConfigError(_too_large(path))
    if not text:
        raise ConfigError(f"DATABASE_URL_FILE={path} is empty")
    return text


def _check_url_file(path: str) -> None:
    """Refuse, before opening it, anything but a regular file of a sane size."""
    try:
        status = os.stat(path)
    except OSError as error:
        raise ConfigError(f"DATABASE_URL_FILE={path} cannot be read: {error.strerror}") from None
    if not stat.S_ISREG(status.st_mode):
        kind = next((name for test, name in _FILE_KINDS if test(status.st_mode)), "a special file")
        raise ConfigError(f"DATABASE_URL_FILE={path} is {kind}, not a regular file; "
                          "point it at the file that holds the URL")
    if status.st_size > URL_FILE_LIMIT:
        raise ConfigError(_too_large(path))


def _too_large(path: str) -> str:
    """The message for a URL file over the limit."""
    return (f"DATABASE_URL_FILE={path} is larger than {URL_FILE_LIMIT // 1024} KiB; "
            "it should hold only the URL")


def _resolve_url(flag: str | None, env: Mapping[str, str], required: bool) -> str | None:
    if flag:
        return flag
    url, url_file = env.get("DATABASE_URL", ""), env.get("DATABASE_URL_FILE", "")
    if url and url_file:
        raise ConfigError("DATABASE_URL and DATABASE_URL_FILE are both set; set only one")
    if url_file:
        return _read_url_file(url_file)
    if url:
        return url
    if not required or any(env.get(name) for name in LIBPQ_TARGET_VARIABLES):
        return None
    raise ConfigError("no database configured: set DATABASE_URL, DATABASE_URL_FILE "
                      "or libpq's PGHOST/PGDATABASE variables")


def _choice(name: str, value: str, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise ConfigError(f"{name}={value!r} is not one of: {', '.join(choices)}")
    return value


def heads_cache_folder(env: Mapping[str, str]) -> Path | None:
    """MIGRATE_CACHE_DIR ('' disables it), else $XDG_CACHE_HOME or ~/.cache, /migration-job."""
    if "MIGRATE_CACHE_DIR" in env:
        return Path(env["MIGRATE_CACHE_DIR"]) if env["MIGRATE_CACHE_DIR"] else None
    base = env.get("XDG_CACHE_HOME") or (
        os.path.join(env["HOME"], ".cache") if env.get("HOME") else "")
    return Path(base) / "migration-job" if base else None


def termination_log_path(env: Mapping[str, str]) -> Path | None:
    """Where the termination message goes; None for nowhere.

    MIGRATE_TERMINATION_LOG wins ('' disables it), else /dev/termination-log when writable.
    """
    if "MIGRATE_TERMINATION_LOG" in env:
        configured = env["MIGRATE_TERMINATION_LOG"]
        return Path(configured) if configured else None
    if os.access(KUBERNETES_TERMINATION_LOG, os.W_OK):
        return KUBERNETES_TERMINATION_LOG
    return None


def load_settings(options: Mapping[str, object], env: Mapping[str, str]) -> Settings:
    """Merge command-line options (which win) with environment variables and validate all."""

    def pick(option: str, variable: str, default: str) -> str:
        value = options.get(option)
        if value is not None:
            return str(value)
        return env.get(variable) or default

    command = _choice("command", str(options.get("command") or DEFAULT_COMMAND), tuple(COMMANDS))
    raw_url = _resolve_url(_optional_str(options.get("database_url")), env,
                           required=COMMANDS[command].needs_database)
    database_url, secrets = normalize_url(raw_url) if raw_url is not None else (None, ())
    if env.get("PGPASSWORD"):
        secrets = (*secrets, env["PGPASSWORD"])
    named_config = pick("config", "ALEMBIC_CONFIG", "")
    alembic_config, toml_config = locate_project(named_config)
    ini_section = pick("name", "MIGRATE_INI_SECTION", "alembic").strip()
    if not ini_section:
        raise ConfigError("MIGRATE_INI_SECTION is empty; name the alembic.ini section")
    flask_app = _flask_app(env, named_config, alembic_config, ini_section)
    target = pick("target", "MIGRATE_TARGET", "head").strip()
    if not target:
        raise ConfigError("MIGRATE_TARGET is empty; use head or a revision id")
    lock_key_text = pick("lock_key", "MIGRATE_LOCK_KEY", "")
    settings = Settings(
        command=command,
        database_url=database_url,
        alembic_config=alembic_config,
        target=target,
        wait_timeout=parse_duration(
            "MIGRATE_WAIT_TIMEOUT", pick("wait_timeout", "MIGRATE_WAIT_TIMEOUT", "60")),
        lock_timeout=parse_duration(
            "MIGRATE_LOCK_TIMEOUT", pick("lock_timeout", "MIGRATE_LOCK_TIMEOUT", "300")),
        lock_key=parse_lock_key(lock_key_text) if lock_key_text else None,
        log_format=_choice(
            "MIGRATE_LOG_FORMAT", pick("log_format", "MIGRATE_LOG_FORMAT", "text").lower(),
            LOG_FORMATS),
        log_level=_choice(
            "MIGRATE_LOG_LEVEL", pick("log_level", "MIGRATE_LOG_LEVEL", "INFO").upper(),
            LOG_LEVELS),
        termination_log=termination_log_path(env),
        json_output=bool(options.get("json")),
        from_revision=_optional_str(options.get("from_revision")),
        replace=bool(options.get("replace")),
        secrets=secrets,
        x_arguments=_x_arguments(options.get("x"), env.get("MIGRATE_X_ARGS", "")),
        ini_section=ini_section,
        toml_config=toml_config,
        given_url=raw_url,
        lint_exclude=tuple(env.get("MIGRATE_LINT_EXCLUDE", "").replace(",", " ").split()),
        squawk=env.get("MIGRATE_LINT_SQUAWK") or None,
        record_history=_switch("MIGRATE_HISTORY", env.get("MIGRATE_HISTORY", "on")),
        history_table=env.get("MIGRATE_HISTORY_TABLE", "").strip() or None,
        deploy_ref=next((env[name].strip() for name in DEPLOY_REF_VARIABLES
                         if env.get(name, "").strip()), None),
        ddl_lock_timeout=parse_duration("MIGRATE_DDL_LOCK_TIMEOUT", pick(
            "ddl_lock_timeout", "MIGRATE_DDL_LOCK_TIMEOUT", DEFAULT_DDL_LOCK_TIMEOUT)),
        ddl_lock_retries=parse_count("MIGRATE_DDL_LOCK_RETRIES", pick(
            "ddl_lock_retries", "MIGRATE_DDL_LOCK_RETRIES", DEFAULT_DDL_LOCK_RETRIES)),
        statement_timeout=parse_duration("MIGRATE_STATEMENT_TIMEOUT", pick(
            "statement_timeout", "MIGRATE_STATEMENT_TIMEOUT", "0")),
        progress_interval=parse_duration("MIGRATE_PROGRESS_INTERVAL", pick(
            "progress_interval", "MIGRATE_PROGRESS_INTERVAL", DEFAULT_PROGRESS_INTERVAL)),
        fleet=_fleet_settings(env) if command == "fleet" else None,
        heads_cache=heads_cache_folder(env),
        verify=_choice("MIGRATE_VERIFY", env.get("MIGRATE_VERIFY", "warn").strip().lower(),
                       VERIFY_MODES),
        on_newer_database=_choice(
            "MIGRATE_ON_NEWER_DATABASE",
            env.get("MIGRATE_ON_NEWER_DATABASE", "fail").strip().lower(), NEWER_DATABASE_MODES),
    )
    if flask_app is None:
        return settings
    # Last, once everything else is valid: this builds the application (the user's code).
    from migration_job.settings.flask_app import migrations_ini

    return settings._replace(alembic_config=migrations_ini(flask_app, secrets),
                             toml_config=None, flask_app=flask_app)


def _fleet_settings(env: Mapping[str, str]) -> FleetSettings:
    from migration_job.settings.fleet import load_fleet_settings

    return load_fleet_settings(env)


def locate_project(named: str) -> tuple[Path, Path | None]:
    """The project's configuration file, and the pyproject.toml that holds [tool.alembic].

    ALEMBIC_CONFIG may name an alembic.ini (a pyproject.toml beside it with [tool.alembic]
    counts too) or a pyproject.toml (an alembic.ini beside it counts too). Unset, the job
    looks where Alembic's own command does (./alembic.ini and ./pyproject.toml), then at the
    example project beside the job.
    """
    if not named:
        here_ini, here_toml = Path("alembic.ini"), _alembic_toml(Path("pyproject.toml"))
        if here_ini.is_file():
            return here_ini.resolve(), here_toml
        if here_toml is not None:
            return here_toml, here_toml
        return DEFAULT_ALEMBIC_CONFIG, _alembic_toml(DEFAULT_ALEMBIC_CONFIG.with_name(PYPROJECT))
    path = Path(named)
    if not path.is_file():
        raise ConfigError(f"ALEMBIC_CONFIG={path} is not a file; point it at your project's "
                          f"alembic.ini or {PYPROJECT}")
    if path.name == PYPROJECT:
        if _alembic_toml(path) is None:
            raise ConfigError(f"ALEMBIC_CONFIG={path} has no [tool.alembic] table")
        ini = path.with_name("alembic.ini")
        return (ini.resolve(), path.resolve()) if ini.is_file() else (path.resolve(),) * 2
    return path, _alembic_toml(path.with_name(PYPROJECT))


def _flask_app(env: Mapping[str, str], named_config: str, located: Path,
               ini_section: str) -> str | None:
    """FLASK_APP when it names the project: a Flask-Migrate project, used when no Alembic
    project is named (ALEMBIC_CONFIG) or in the working directory, where the job would
    otherwise migrate its own example. Flask-Migrate reads only [alembic]."""
    flask_app = env.get("FLASK_APP", "").strip()
    if not flask_app or named_config or located != DEFAULT_ALEMBIC_CONFIG:
        return None
    if ini_section != "alembic":
        raise ConfigError(f"MIGRATE_INI_SECTION={ini_section} (-n) does not apply to a "
                          "Flask-Migrate project (FLASK_APP): Flask-Migrate reads [alembic]")
    return flask_app


def _alembic_toml(path: Path) -> Path | None:
    """The file, if it is a pyproject.toml with a [tool.alembic] table (a cheap text test:
    this runs on every start; the project reader parses it)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    return path.resolve() if re.search(r"^\s*\[tool\.alembic", text, re.MULTILINE) else None


def _x_arguments(flags: object, variable: str) -> tuple[str, ...]:
    """-x flags win over MIGRATE_X_ARGS (space-separated KEY=VALUE pairs), as the URL does."""
    values = [str(v) for v in flags] if isinstance(flags, list) and flags else variable.split()
    empty = [v for v in values if not v.strip() or v.startswith("=")]
    if empty:
        raise ConfigError(f"-x {empty[0]!r} is not KEY=VALUE or a word (MIGRATE_X_ARGS)")
    return tuple(values)


def _switch(name: str, value: str) -> bool:
    """on/off (also true/false, yes/no, 1/0)."""
    word = value.strip().lower()
    if word in ("on", "true", "yes", "1"):
        return True
    if word in ("off", "false", "no", "0"):
        return False
    raise ConfigError(f"{name}={value!r} is not on or off")


def _optional_str(value: object) -> str | None:
    return None if value is None else str(value)
