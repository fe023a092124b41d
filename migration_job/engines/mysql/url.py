"""MySQL and MariaDB URLs: PyMySQL's arguments, and what the job checks before connecting.

A URL PyMySQL cannot use fails inside the driver with whatever it happens to raise (a file
not found, a None without an encoding, "No database selected" at the first query); checked
here first, each is a configuration error that says which part of the URL to fix (exit 2).
Messages name the part, never quote the URL: any part of it may be a piece of the password.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from pymysql.charset import charset_by_name

from migration_job.errors import ConfigError

DEFAULT_PORT = 3306
# URL query parameters the job passes on to PyMySQL (SQLAlchemy's pymysql dialect takes the
# same ones), and how to read each.
QUERY_PARAMETERS: dict[str, Callable[[str], object]] = {
    "charset": str,
    "unix_socket": str,
    "ssl_ca": str,
    "ssl_cert": str,
    "ssl_key": str,
    "ssl_verify_cert": lambda value: value.lower() in ("1", "true", "yes"),
    "ssl_verify_identity": lambda value: value.lower() in ("1", "true", "yes"),
}
FORM = "mysql://USER:PASSWORD@HOST:PORT/DATABASE"


def connect_arguments(url: str) -> dict[str, Any]:
    """PyMySQL's arguments for a (normalised) mysql:// or mariadb:// URL."""
    parts = urlsplit(url)
    arguments: dict[str, Any] = {
        "host": parts.hostname or "localhost",
        "port": parts.port or DEFAULT_PORT,
        "user": unquote(parts.username) if parts.username else None,
        "password": unquote(parts.password) if parts.password else "",
        "database": unquote(parts.path.lstrip("/")) or None,
    }
    for name, value in parse_qsl(parts.query, keep_blank_values=True):
        arguments[name] = QUERY_PARAMETERS[name](value)
    return arguments


def check_url(url: str) -> None:
    """Raise ConfigError for a URL PyMySQL cannot migrate through: an unknown parameter, a
    password it cannot encode, no database, a character set PyMySQL does not know, TLS files
    it cannot read."""
    for name, _ in parse_qsl(urlsplit(url).query, keep_blank_values=True):
        if name not in QUERY_PARAMETERS:
            raise ConfigError(f"DATABASE_URL parameter {name!r} is not supported for "
                              f"MySQL/MariaDB; supported: {', '.join(QUERY_PARAMETERS)}")
    arguments = connect_arguments(url)
    if not _latin1(arguments["password"]):
        raise ConfigError("DATABASE_URL's password has a character beyond latin-1, which "
                          "PyMySQL cannot send (it encodes passwords as latin-1, whatever "
                          "the charset): give the MySQL/MariaDB user a password of latin-1 "
                          "characters")
    if arguments["database"] is None:
        raise ConfigError(f"DATABASE_URL names no database, which MySQL/MariaDB needs (the "
                          f"version table lives in it): write it after the port, {FORM}")
    if "charset" in arguments and charset_by_name(arguments["charset"]) is None:
        raise ConfigError("DATABASE_URL parameter charset names a character set PyMySQL does "
                          "not know; use utf8mb4 (the default), or leave it out")
    _check_tls_files(arguments)


def _latin1(text: str) -> bool:
    try:
        text.encode("latin-1")
    except UnicodeEncodeError:
        return False
    return True


def _check_tls_files(arguments: dict[str, Any]) -> None:
    """Each TLS file the URL names can be read (what is in it, PyMySQL checks on connect)."""
    for name in ("ssl_ca", "ssl_cert", "ssl_key"):
        if name not in arguments:
            continue
        try:
            with open(arguments[name], "rb"):
                pass
        except OSError as error:
            raise ConfigError(f"DATABASE_URL parameter {name}: the file cannot be read "
                              f"({error.strerror or error}); mount it where the URL says, or "
                              "fix the path") from None
