"""The floor of the no-op's work, per engine: what the job does at head, written plainly.

`python work_floor.py ENGINE` with DATABASE_URL, ALEMBIC_CONFIG and MIGRATE_CACHE_DIR set, as
for the job. It does the work the job's no-op must do, with nothing else: start Python, read
alembic.ini with configparser (as Alembic does), list the versions folder and read each
revision file's status (the heads cache's fingerprint), read the cache's JSON, import the
engine's driver, connect, read alembic_version, compare it with the cached head, and read the
applied-history table's checksums to compare them with the cached ones (MIGRATE_VERIFY at
head). Exit 0 when the database is at the head and no checksum differs (else 1).

Set beside benchmarks/driver_floor.py (the driver alone), it splits the job's cost above the
driver's floor into the work itself and the job's own code (its modules, logs, threads, the
checks a plain script skips: a wait with retries, signals, the lock-free fast path's rules).
"""

import configparser
import json
import os
import sys
from pathlib import Path
from typing import Any

HISTORY_COLUMNS = "id, revision, outcome, checksum"


def versions_folder(ini: Path) -> Path:
    """The project's versions folder (script_location/versions, %(here)s expanded)."""
    parser = configparser.ConfigParser(defaults={"here": str(ini.parent)})
    parser.read(ini)
    return Path(parser.get("alembic", "script_location")) / "versions"


def statuses(folder: Path) -> list[tuple[int, ...]]:
    """Each revision file's status, as the heads cache's fingerprint reads it."""
    found: list[tuple[int, ...]] = []
    for name in sorted(os.listdir(folder)):
        if name.endswith(".py") and not name.startswith("__init__"):
            status = os.stat(folder / name)
            found.append((status.st_size, status.st_mtime_ns, status.st_ctime_ns,
                          status.st_ino, status.st_dev))
    return found


def cached() -> dict[str, object]:
    """The heads cache's entry (the job wrote it in the warm-up run)."""
    entries = sorted(Path(os.environ["MIGRATE_CACHE_DIR"]).glob("heads-*.json"),
                     key=lambda entry: entry.stat().st_mtime)
    document: dict[str, object] = json.loads(entries[-1].read_text(encoding="utf-8"))
    return document


def database_rows(engine: str, url: str,
                  history: str) -> tuple[list[str], list[tuple[object, ...]]]:
    """alembic_version's rows and the history table's checksums, through the engine's driver."""
    versions = "SELECT version_num FROM alembic_version"
    checksums = f"SELECT {HISTORY_COLUMNS} FROM {history}"
    if engine == "sqlite":
        import sqlite3

        lite = sqlite3.connect(url.split(":///", 1)[1])
        try:
            return ([str(row[0]) for row in lite.execute(versions).fetchall()],
                    lite.execute(checksums).fetchall())
        finally:
            lite.close()
    if engine == "mysql":
        from urllib.parse import unquote, urlsplit

        import pymysql

        parts = urlsplit(url)
        return _through(pymysql.connect(host=parts.hostname, port=parts.port or 3306,
                                        user=unquote(parts.username or ""),
                                        password=unquote(parts.password or ""),
                                        database=parts.path.lstrip("/")), versions, checksums)
    import psycopg2

    return _through(psycopg2.connect(url), versions, checksums)


def _through(connection: Any, versions: str,
             checksums: str) -> tuple[list[str], list[tuple[object, ...]]]:
    """Both reads on a DB-API connection, then close it."""
    try:
        with connection.cursor() as cursor:
            cursor.execute(versions)
            heads = [str(row[0]) for row in cursor.fetchall()]
            cursor.execute(checksums)
            return heads, list(cursor.fetchall())
    finally:
        connection.close()


def main() -> int:
    """Exit 0 when the database is at the cached head and no recorded checksum differs."""
    engine = sys.argv[1]
    folder = versions_folder(Path(os.environ["ALEMBIC_CONFIG"]))
    if not statuses(folder):
        return 1
    entry = cached()
    heads, rows = database_rows(engine, os.environ["DATABASE_URL"], "alembic_version_history")
    sums = entry["checksums"]
    assert isinstance(sums, dict)
    changed = [revision for _, revision, outcome, checksum in rows
               if outcome == "applied" and checksum and sums.get(revision) not in (None, checksum)]
    return 0 if heads == [entry["head"]] and not changed else 1


if __name__ == "__main__":
    raise SystemExit(main())
