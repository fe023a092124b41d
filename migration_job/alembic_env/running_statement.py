"""The statement a revision runs now, as SQLAlchemy hands it to the driver: known in-process,
without asking the server (SQLite has nobody to ask)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from migration_job.engines.blocking import query_line
from migration_job.engines.sqlalchemy_events import listening

# A password a revision sets (CREATE ROLE ... PASSWORD '...', IDENTIFIED BY '...', SET PASSWORD
# FOR 'u'@'h' = '...'): the log masks the job's own secrets only. Every string literal after the
# word is masked.
_PASSWORD_WORD = re.compile(r"\b(PASSWORD|IDENTIFIED)\b", re.IGNORECASE)
_LITERAL = re.compile(r"'(?:[^']|'')*'")


def shown(statement: str) -> str:
    """A statement's first line for the log, any password literal in it masked."""
    word = _PASSWORD_WORD.search(statement)
    if word is not None:
        statement = statement[:word.end()] + _LITERAL.sub("'***'", statement[word.end():])
    return query_line(statement)


class RunningStatement:
    """Within `watching()`, the first line of the statement that runs now, if any."""

    def __init__(self) -> None:
        self.line: str | None = None

    @contextmanager
    def watching(self) -> Iterator[None]:
        """Follow every SQLAlchemy engine's statements (env.py's own included) in the block."""
        def started(connection: Any, cursor: Any, statement: str, *rest: Any) -> None:
            if connection.dialect.paramstyle in ("format", "pyformat"):
                # As the server gets it: SQLAlchemy doubled each '%' for the driver, and a
                # secret spelled so would escape the log's mask.
                statement = statement.replace("%%", "%")
            self.line = shown(statement)

        def ended(*args: Any) -> None:
            self.line = None

        listeners = (("before_cursor_execute", started), ("after_cursor_execute", ended),
                     ("handle_error", ended))
        try:
            with listening(listeners):
                yield
        finally:
            self.line = None
