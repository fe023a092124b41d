"""Which file a SQLite URL names, decoded exactly as SQLAlchemy's pysqlite dialect decodes it.

The job opens the database with sqlite3 before SQLAlchemy is imported (the fast path must not
import it), and SQLAlchemy opens it again for the revisions: both must reach one file. So the
URL is read here by SQLAlchemy's own rules (`sqlalchemy.engine.url._parse_url`, then
`SQLiteDialect_pysqlite.create_connect_args`), which tests/unit/test_sqlite_url.py proves
equal to SQLAlchemy's for generated URLs: the path percent-decoded once, the query split by
`parse_qsl`, and with `uri=true` the path handed to SQLite as a URI filename (which SQLite
percent-decodes once more).
"""

from __future__ import annotations

import os
import re
from typing import NamedTuple
from urllib.parse import parse_qsl, quote, unquote

from migration_job.errors import ConfigError

# SQLAlchemy's URL pattern (sqlalchemy/engine/url.py, _parse_url), unchanged.
SQLALCHEMY_URL = re.compile(
    r"""
        (?P<name>[\w\+]+)://
        (?:
            (?P<username>[^:/]*)
            (?::(?P<password>[^@]*))?
        @)?
        (?:
            (?:
                \[(?P<ipv6host>[^/\?]+)\] |
                (?P<ipv4host>[^/:\?]+)
            )?
            (?::(?P<port>[^/\?]*))?
        )?
        (?:/(?P<database>[^\?]*))?
        (?:\?(?P<query>.*))?
        """,
    re.X,
)
# The query parameters the pysqlite dialect passes to sqlite3.connect, with their types.
DRIVER_PARAMETERS = {"uri": bool, "timeout": float, "isolation_level": str, "detect_types": int,
                     "check_same_thread": bool, "cached_statements": int}
MEMORY = ":memory:"
TRUE, FALSE = ("true", "yes", "on", "y", "t", "1"), ("false", "no", "off", "n", "f", "0")
FORMS = "sqlite:///relative/path.db, sqlite:////absolute/path.db or sqlite:///file:PATH?uri=true"


class Target(NamedTuple):
    """What sqlite3.connect gets: the filename and whether SQLite reads it as a URI."""

    filename: str
    uri: bool

    @property
    def path(self) -> str | None:
        """The absolute path of the database file; None for an in-memory or temporary one."""
        if not (self.uri and self.filename.startswith("file:")):
            plain = self.filename not in (MEMORY, "")
            return os.path.abspath(self.filename) if plain else None
        path, parameters = sqlite_uri(self.filename)
        if path in (MEMORY, "") or parameters.get("mode") == "memory":
            return None
        return os.path.abspath(path)

    @property
    def parameters(self) -> dict[str, str]:
        """The SQLite URI's own parameters (mode, cache, vfs, immutable, ...)."""
        return sqlite_uri(self.filename)[1] if self.uri and self.filename.startswith(
            "file:") else {}

    def without_creating(self) -> Target:
        """The same file as a URI with mode=rw: opened read-write, never created (a URI's
        mode=ro stays)."""
        path = self.path
        assert path is not None, "an in-memory database has no file to create"
        parameters = {**self.parameters}
        if parameters.get("mode") != "ro":
            parameters["mode"] = "rw"
        query = "&".join(f"{quote(key, safe='')}={quote(value, safe='')}"
                         for key, value in parameters.items())
        return Target(f"file://{quote(path)}?{query}", True)


def sqlite_uri(filename: str) -> tuple[str, dict[str, str]]:
    """The path and parameters of a `file:` URI filename, read by SQLite's rules
    (sqlite3ParseUri): an authority of '' or 'localhost' only, %HH decoded in each part."""
    rest, _, _ = filename[len("file:"):].partition("#")
    rest, _, query = rest.partition("?")
    if rest.startswith("//"):
        authority, slash, rest = rest[2:].partition("/")
        if authority not in ("", "localhost"):
            raise ConfigError(f"DATABASE_URL's SQLite URI names the host {authority!r}; "
                              "a database file is local: use file:/path or file:///path")
        rest = slash + rest
    parameters = {}
    for pair in filter(None, query.split("&")):
        key, _, value = pair.partition("=")
        parameters[_octets(key)] = _octets(value)
    return _octets(rest), parameters


def _octets(text: str) -> str:
    """%HH sequences decoded as SQLite decodes them; the result must be UTF-8 without NUL."""
    try:
        decoded = unquote(text, errors="strict")
    except UnicodeDecodeError:
        raise ConfigError("DATABASE_URL's SQLite URI decodes to bytes that are not UTF-8; "
                          "percent-encode the path's UTF-8") from None
    if "\0" in decoded:
        raise ConfigError("DATABASE_URL's SQLite URI contains %00, which SQLite cuts the "
                          "name at; remove it")
    return decoded


def connect_target(url: str) -> Target:
    """The filename and URI flag SQLAlchemy's pysqlite dialect gives sqlite3.connect for
    `url`; ConfigError where SQLAlchemy would refuse the URL."""
    found = SQLALCHEMY_URL.match(url)
    if found is None:
        raise ConfigError(f"DATABASE_URL is not a SQLite URL SQLAlchemy can read; use {FORMS}")
    if any(found.group(part) is not None
           for part in ("username", "password", "ipv6host", "ipv4host", "port")):
        raise ConfigError(f"a SQLite DATABASE_URL names no user, host or port; use {FORMS}")
    database = found.group("database")
    query = _query(found.group("query"))
    driver = {key: _coerce(key, query[key]) for key in DRIVER_PARAMETERS if key in query}
    uri = bool(driver.get("uri", False))
    others = {key: value for key, value in query.items() if key not in DRIVER_PARAMETERS}
    if not uri:
        if others:
            raise ConfigError(f"DATABASE_URL has SQLite URI parameters ({', '.join(others)}) "
                              "without uri=true: SQLAlchemy would ignore them; add uri=true "
                              "(sqlite:///file:PATH?...&uri=true) or remove them")
        filename = unquote(database) if database else MEMORY
        return Target(filename if filename == MEMORY else os.path.abspath(filename), False)
    if database is None:
        raise ConfigError(f"DATABASE_URL with uri=true names no file; use {FORMS}")
    filename = unquote(database)
    if others:
        filename += "?" + "&".join(f"{key}={others[key]}" for key in sorted(others))
    return Target(filename, True)


def _query(text: str | None) -> dict[str, str]:
    """The query as SQLAlchemy reads it (blank values dropped); a repeated key is refused."""
    query: dict[str, str] = {}
    for key, value in parse_qsl(text or ""):
        if key in query:
            raise ConfigError(f"DATABASE_URL repeats the query parameter {key!r}; give it once")
        query[key] = value
    return query


def _coerce(key: str, value: str) -> object:
    """A driver parameter's value, converted as SQLAlchemy converts it (coerce_kw_type)."""
    wanted = DRIVER_PARAMETERS[key]
    try:
        if wanted is bool:
            word = value.strip().lower()
            if word not in TRUE + FALSE:
                raise ValueError(value)
            return word in TRUE
        return wanted(value)
    except ValueError:
        raise ConfigError(f"DATABASE_URL's {key}={value!r} is not a valid "
                          f"{wanted.__name__}") from None
