"""The physical floor of a no-op check: psycopg2 only.

`python floor.py HEAD` with DATABASE_URL set: connect, read alembic_version, compare it with
the constant HEAD, exit 0 when equal (else 1). Nothing a real job could skip.
"""

import os
import sys

import psycopg2


def main() -> int:
    """Exit 0 when the database is at the head given as the only argument."""
    head = sys.argv[1]
    connection = psycopg2.connect(os.environ["DATABASE_URL"])
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT version_num FROM alembic_version")
            current = [str(row[0]) for row in cursor.fetchall()]
    finally:
        connection.close()
    return 0 if current == [head] else 1


if __name__ == "__main__":
    raise SystemExit(main())
