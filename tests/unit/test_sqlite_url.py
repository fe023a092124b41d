"""The job's SQLite URL decoder against SQLAlchemy's own, and its paths against SQLite's."""

from __future__ import annotations

import os
import sqlite3
import tempfile
import warnings
from contextlib import closing
from pathlib import Path
from urllib.parse import quote

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st
from sqlalchemy.dialects.sqlite.pysqlite import SQLiteDialect_pysqlite
from sqlalchemy.engine import make_url

from migration_job.engines.sqlite.url import DRIVER_PARAMETERS, Target, connect_target
from migration_job.errors import ConfigError

# Characters that URLs and file names get wrong: spaces, '%', '+', '?', '#', '&', '=', ':',
# non-ASCII, and plain letters.
TRICKY = st.sampled_from([*"ab z%+?#&=:;@é漢-_.", "%20", "%25", "%2B", "%3F", "%C3%A9",
                          "%2520", "%zz", "%", ":memory:"])
NAMES = st.lists(TRICKY, min_size=0, max_size=8).map("".join)
KEYS = st.sampled_from([*DRIVER_PARAMETERS, "mode", "cache", "vfs", "immutable", "nolock",
                        "x", "uri"])
VALUES = st.sampled_from(["true", "false", "1", "0", "yes", "ro", "rw", "rwc", "memory",
                          "shared", "5", "2.5", "", "a b", "a%26mode%3Dmemory", "é"])
QUERIES = st.lists(st.tuples(KEYS, VALUES), max_size=4).map(
    lambda pairs: "&".join(f"{k}={v}" for k, v in pairs))


@st.composite
def sqlite_urls(draw: st.DrawFn) -> str:
    """sqlite:// URLs: relative, absolute, file: URIs, in-memory, with and without a query,
    and now and then a user, host or port that SQLite URLs must not have."""
    scheme = draw(st.sampled_from(["sqlite", "sqlite+pysqlite"]))
    authority = draw(st.sampled_from([""] * 12 + ["user@", "host", ":0", "@"]))
    start = draw(st.sampled_from(["", "/", "//", "/file:", "/file:/", "/file://localhost/",
                                  "/file://elsewhere/", "/file:///"]))
    path = draw(st.lists(NAMES, min_size=0, max_size=3).map("/".join))
    extra = draw(st.one_of(st.just(""), st.just("timeout=5"), QUERIES))
    query = "&".join(filter(None, [extra, draw(st.sampled_from(["uri=true", ""]))]))
    return f"{scheme}://{authority}{start}{path}" + (f"?{query}" if query or draw(
        st.booleans()) else "")


def sqlalchemy_target(url: str) -> tuple[tuple[str, bool] | None, bool]:
    """What SQLAlchemy's pysqlite dialect gives sqlite3.connect (None: it refuses the URL),
    and whether it warned that it ignores query parameters."""
    with warnings.catch_warnings(record=True) as warned:
        warnings.simplefilter("always")
        try:
            cargs, cparams = SQLiteDialect_pysqlite().create_connect_args(make_url(url))
        except Exception:  # noqa: BLE001  (any refusal of SQLAlchemy's counts as one)
            return None, bool(warned)
    if not isinstance(cargs[0], str):
        return None, bool(warned)  # sqlite3.connect(None) fails: a refusal too
    return (cargs[0], bool(cparams.get("uri", False))), bool(warned)


class TestSameAsSqlalchemy:
    """For every generated URL the job opens what SQLAlchemy opens, or refuses the URL."""

    @settings(max_examples=2000, deadline=None)
    @given(sqlite_urls())
    def test_decoder_matches_sqlalchemy(self, url: str) -> None:
        theirs, ignored_parameters = sqlalchemy_target(url)
        try:
            ours = connect_target(url)
        except ConfigError:
            # Refused where SQLAlchemy refuses too, or would silently ignore a parameter
            # (SQLite URI parameters without uri=true), or would see a repeated key, or
            # where the URL has an authority at all (SQLAlchemy takes an empty user or port 0).
            keys = [pair.split("=", 1)[0] for pair in url.partition("?")[2].split("&")]
            authority = url.split("://", 1)[1].split("/", 1)[0].split("?", 1)[0]
            assert (theirs is None or ignored_parameters or len(keys) != len(set(keys))
                    or authority), url
            event("refused")
            return
        event("a SQLite URI" if ours.uri else "in memory" if ours.filename == ":memory:"
              else "a file")
        assert theirs == (ours.filename, ours.uri), url

    def test_examples(self) -> None:
        """The forms the README names, spelled out."""
        cwd = os.getcwd()
        for url, expected in [
            ("sqlite:///d/my%20app.db", (f"{cwd}/d/my app.db", False)),
            ("sqlite:////abs/a+b%25.db", ("/abs/a+b%.db", False)),
            ("sqlite:///file:d/x.db?mode=ro&uri=true", ("file:d/x.db?mode=ro", True)),
            ("sqlite://", (":memory:", False)),
        ]:
            assert sqlalchemy_target(url)[0] == expected
            assert tuple(connect_target(url))[:2] == expected


class TestPathIsSqlites:
    """Target.path is the file SQLite itself opens for the filename (PRAGMA database_list)."""

    @settings(max_examples=300, deadline=None)
    @given(name=st.lists(TRICKY, min_size=1, max_size=6).map("".join),
           uri=st.booleans(), encode=st.booleans(), query=QUERIES)
    def test_path_is_the_file_sqlite_opens(self, name: str, uri: bool, encode: bool,
                                           query: str) -> None:
        with tempfile.TemporaryDirectory(prefix=f"sqlite-url-{os.getpid()}-") as directory:
            spelled = quote(name) if encode else name
            filename = f"file:{directory}/{spelled}" if uri else f"{directory}/{name}"
            filename += f"?{query}" if uri and query else ""
            target = Target(filename, uri)
            try:
                expected = target.path
            except ConfigError:
                event("refused by the job")
                return  # a name the job refuses (%00, bytes that are not UTF-8)
            try:
                with closing(sqlite3.connect(filename, uri=uri)) as connection:
                    opened = connection.execute("PRAGMA database_list").fetchone()[2]
            except sqlite3.Error:
                event("refused by SQLite")
                return  # SQLite refuses it too (an unknown vfs, a bad mode)
            event("compared")
            assert (opened or None) == (os.path.realpath(expected) if expected else None), \
                filename
            if expected is not None:
                reopened = target.without_creating()
                with closing(sqlite3.connect(reopened.filename, uri=True)) as connection:
                    again = connection.execute("PRAGMA database_list").fetchone()[2]
                assert again == opened, reopened

    def test_without_creating_creates_nothing(self, tmp_path: Path) -> None:
        target = Target(str(tmp_path / "my app?.db"), False).without_creating()
        with pytest.raises(sqlite3.OperationalError, match="unable to open"):
            sqlite3.connect(target.filename, uri=True)
        assert list(tmp_path.iterdir()) == []
