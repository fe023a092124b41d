"""The physical floor of a no-op check, per engine: its driver only.

`python driver_floor.py ENGINE HEAD` with DATABASE_URL set (ENGINE: postgresql, sqlite or
mysql): start Python, import the engine's driver (psycopg2, sqlite3, PyMySQL), connect, read
alembic_version, compare it with the constant HEAD, exit 0 when equal (else 1). Nothing a real
job could skip. (benchmarks/floor.py is the PostgreSQL one, kept for the issue-4 tables.)
"""

import os
import sys


def current(engine: str, url: str) -> list[str]:
    """alembic_version's rows through the engine's driver."""
    query = "SELECT version_num FROM alembic_version"
    if engine == "sqlite":
        import sqlite3

        lite = sqlite3.connect(url.split(":///", 1)[1])
        try:
            return [str(row[0]) for row in lite.execute(query).fetchall()]
        finally:
            lite.close()
    if engine == "mysql":
        from urllib.parse import unquote, urlsplit

        import pymysql

        parts = urlsplit(url)
        my = pymysql.connect(host=parts.hostname, port=parts.port or 3306,
                             user=unquote(parts.username or ""),
                             password=unquote(parts.password or ""),
                             database=parts.path.lstrip("/"))
        try:
            with my.cursor() as cursor:
                cursor.execute(query)
                return [str(row[0]) for row in cursor.fetchall()]
        finally:
            my.close()
    import psycopg2

    pg = psycopg2.connect(url)
    try:
        with pg.cursor() as cursor:
            cursor.execute(query)
            return [str(row[0]) for row in cursor.fetchall()]
    finally:
        pg.close()


def main() -> int:
    """Exit 0 when the database is at the head given as the second argument."""
    engine, head = sys.argv[1], sys.argv[2]
    return 0 if current(engine, os.environ["DATABASE_URL"]) == [head] else 1


if __name__ == "__main__":
    raise SystemExit(main())
