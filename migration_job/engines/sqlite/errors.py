"""Which of sqlite3's errors are which (engines.shared_answers.ErrorKinds)."""

from __future__ import annotations

import sqlite3

# Errors that waiting will not fix, and what to do about each: fail at once (exit 4).
PERMANENT = {
    "mounted read-only": "remount it read-write, or point DATABASE_URL at a writable volume",
    "cannot write the database file": "give the job's user write permission on the file "
                                      "(chown or chmod)",
    "cannot write the database's directory": "let the job's user write to the database's "
                                             "directory (SQLite writes its journal beside the "
                                             "file)",
    "unable to open database file": "check that the path names a file the job's user can "
                                    "create and write, not a directory",
    "file is not a database": "DATABASE_URL points at a file that is not a SQLite database",
    "not a directory": "a part of the database's path is a file, not a directory",
}


def advice(error: BaseException) -> str | None:
    """What to do about an error waiting will not fix; None for any other."""
    text = str(error).lower()
    return next((said for marker, said in PERMANENT.items() if marker in text), None)


def is_transient(error: BaseException) -> bool:
    """A missing directory, a busy database: worth waiting for."""
    return isinstance(error, sqlite3.Error) and advice(error) is None


def rejection_advice(error: BaseException) -> str:
    """What to do about an error waiting will not fix."""
    return advice(error) or "check the path in DATABASE_URL and its permissions"


def is_connection_lost(error: BaseException) -> bool:
    """Only a closed connection is lost: nothing else can end a session to a file."""
    return isinstance(error, sqlite3.ProgrammingError) and "closed" in str(error).lower()


def is_permission_denied(error: BaseException) -> bool:
    """A write to a file or directory the job's user may not write."""
    return "readonly database" in str(error).lower()


def is_lock_timeout(error: BaseException) -> bool:
    """No DDL lock timeout here: a busy database is reported as such (failure_advice)."""
    return False


def is_statement_timeout(error: BaseException) -> bool:
    """SQLite has no statement timeout."""
    return False
