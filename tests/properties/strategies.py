"""Generated inputs: database URLs of every engine (missing parts, odd characters, bad query
parameters), the passwords in them, and the lines of secret and targets files."""

from __future__ import annotations

from typing import NamedTuple
from urllib.parse import quote

from hypothesis import strategies as st

SCHEMES = {
    "postgresql": ("postgresql", "postgres", "postgresql+psycopg2", "postgresql+psycopg",
                   "postgresql+asyncpg", "postgresql+psycopg_async", "POSTGRESQL"),
    "mariadb": ("mysql", "mysql+pymysql", "mysql+mysqldb", "mariadb", "mariadb+pymysql",
                "mysql+mysqlconnector"),
}
UNSUPPORTED_SCHEMES = ("oracle", "mssql+pyodbc", "postgresql+pg8000", "http", "", "sqlite+foo",
                       "postgresql+", "+psycopg2")
QUERY_KEYS = {
    "postgresql": ("sslmode", "connect_timeout", "application_name", "options", "password",
                   "sslpassword", "target_session_attrs", "host", "port", "ssl", "nonsense"),
    "mariadb": ("charset", "ssl_ca", "ssl_verify_cert", "unix_socket", "password",
                "connect_timeout", "nonsense"),
}
# Characters that URL handling breaks on, and some that nobody expects.
AWKWARD = "@:/?#%&=+; \t'\"\\[]{}<>|^`~!$*,éß中\U0001f600"
# Environment variables cannot hold NUL; surrogates cannot be encoded. PyMySQL sends a user
# and password as latin-1 (a MySQL URL beyond it is a property of its own, test_urls.py).
ANY = st.characters(exclude_categories=["Cs"], exclude_characters="\x00")
LATIN1 = st.characters(max_codepoint=0xFF, exclude_characters="\x00")


def awkward_text(latin1: bool = False, min_size: int = 1,
                 max_size: int = 12) -> st.SearchStrategy[str]:
    """Text rich in the characters URL handling breaks on."""
    awkward = "".join(c for c in AWKWARD if not latin1 or ord(c) <= 0xFF)
    return st.text(st.one_of(st.sampled_from(awkward), LATIN1 if latin1 else ANY),
                   min_size=min_size, max_size=max_size)


def passwords(latin1: bool = False) -> st.SearchStrategy[str]:
    """A realistic password (at least 8 characters, one of them not a letter) or a short
    one."""
    return st.one_of(awkward_text(latin1, 8, 24).filter(lambda p: not p.isalpha()),
                     awkward_text(latin1, 1, 7))


class GeneratedUrl(NamedTuple):
    """A URL and the password written into it (None: none is)."""

    url: str
    password: str | None


def _part(draw: st.DrawFn, value: str) -> str:
    """The value URL-encoded (as users must), or as typed (as users often do)."""
    return quote(value, safe="") if draw(st.booleans()) else value


@st.composite
def server_urls(draw: st.DrawFn, engine: str, host: str, port: int, user: str | None = None,
                latin1: bool = False, keys: tuple[str, ...] | None = None,
                portless: bool = False,
                secret: st.SearchStrategy[str] | None = None) -> GeneratedUrl:
    """A URL of `engine` aimed at host:port, with generated parts (any may be missing); with
    latin1, its user and password are latin-1 text; `keys` are its query's (default: the
    engine's own and a few it does not know); with portless, the host or the whole
    authority may be missing too (libpq then reads PGHOST and PGPORT); `secret` draws the
    password instead of generated ones."""
    scheme = draw(st.one_of(st.sampled_from(SCHEMES[engine]),
                            st.sampled_from(UNSUPPORTED_SCHEMES)))
    password = draw(st.one_of(st.none(), passwords(latin1) if secret is None else secret))
    name = user if user is not None else draw(st.one_of(st.none(), awkward_text(latin1)))
    userinfo = ""
    if name is not None or password is not None:
        userinfo = _part(draw, name or "")
        if password is not None:
            userinfo += ":" + _part(draw, password)
        userinfo += "@"
    where = draw(st.sampled_from([f"{host}:{port}", f"{host}:x{port}", f"{host}:{port}{port}",
                                  *([host, ""] if portless else [])]))
    database = draw(st.one_of(st.just("/db"), st.just(""), st.just("/"),
                              awkward_text().map(lambda t: "/" + t)))
    pairs = draw(st.lists(st.tuples(st.sampled_from(keys or QUERY_KEYS[engine]),
                                    st.one_of(st.just(""), awkward_text(latin1))), max_size=3))
    query = ""
    if pairs:
        query = "?" + "&".join(f"{key}={_part(draw, value)}" for key, value in pairs)
        secret_values = [value for key, value in pairs if "password" in key]
        if secret_values and password is None:
            password = secret_values[0]
    return GeneratedUrl(f"{scheme}://{userinfo}{where}{database}{query}", password)


@st.composite
def sqlite_paths(draw: st.DrawFn) -> str:
    """A file name with awkward characters (no '/': it stays in the test's folder)."""
    stem = draw(st.text(st.one_of(st.sampled_from(" %#?&=+;'é中"), st.sampled_from(
        "abcxyz0129-_.")), min_size=1, max_size=10).filter(lambda s: s not in (".", "..")))
    return f"{stem}.db"


def file_contents(url: str) -> st.SearchStrategy[bytes]:
    """What a secret file may hold: the URL with blanks, line ends and junk around it, or
    junk alone (empty, binary, not UTF-8, huge)."""
    body = url.encode()
    return st.one_of(
        st.tuples(st.sampled_from([b"", b" ", b"\n", b"\t \r\n", b"\xef\xbb\xbf"]),
                  st.sampled_from([b"", b"\n", b"\r\n", b"  \n\n", b"\nsecond line\n"]))
        .map(lambda around: around[0] + body + around[1]),
        st.sampled_from([b"", b"\n", b"\x00" + body, body + b"\xff\xfe", body * 2,
                         b"x" * (70 * 1024), body.replace(b"://", b":/")]))
