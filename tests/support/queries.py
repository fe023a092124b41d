"""One statement on a connection of its own: the test servers' shared way to ask and act."""

from __future__ import annotations

from typing import Any


def run_once(connection: Any, statement: str, params: Any = None) -> Any:
    """Run `statement` on a fresh DB-API connection, close it, return the first value (or None)."""
    try:
        with connection.cursor() as cursor:
            cursor.execute(statement, params)
            row = cursor.fetchone() if cursor.description else None
    finally:
        connection.close()
    return None if row is None else row[0]
