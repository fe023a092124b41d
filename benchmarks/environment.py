"""What the benchmark ran on: machine, versions, date, and the code that was measured."""

from __future__ import annotations

import hashlib
import os
import platform
import subprocess
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path


@dataclass(frozen=True)
class Environment:
    """Facts printed at the top of BENCHMARKS.md."""

    date: str
    cores: int
    cpu_model: str
    ram_gib: float
    kernel: str
    os_name: str
    python: str
    alembic: str
    sqlalchemy: str
    psycopg2: str
    matplotlib: str
    pymysql: str
    postgresql: str
    dbmate: str
    commit: str


def usable_cores() -> int:
    """CPUs this process may run on (what a CPU limit or cpuset leaves)."""
    return len(os.sched_getaffinity(0))


def _first_match(path: str, prefix: str) -> str:
    try:
        for line in Path(path).read_text().splitlines():
            if line.startswith(prefix):
                return line.split(":", 1)[1].strip() if ":" in line else line.split("=", 1)[1]
    except OSError:
        pass
    return "unknown"


def _output(argv: list[str], cwd: Path | None = None) -> str:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False,
                              cwd=cwd)
    except OSError:
        return "unknown"
    return done.stdout.strip() or done.stderr.strip() or "unknown"


def _version(distribution: str) -> str:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "not installed"


def describe_code(repo: Path) -> str:
    """The commit measured, and whether the work tree had uncommitted changes (read-only git)."""
    commit = _output(["git", "rev-parse", "--short", "HEAD"], cwd=repo)
    dirty = _output(["git", "status", "--porcelain", "--untracked-files=no"], cwd=repo)
    if dirty not in ("", "unknown"):
        return f"{commit} (with uncommitted changes)"
    return commit


def code_fingerprint(repo: Path) -> str:
    """sha256 of the job's code (entrypoint.py and migration_job/), to notice edits mid-run."""
    digest = hashlib.sha256()
    for path in [repo / "entrypoint.py", *sorted((repo / "migration_job").rglob("*.py"))]:
        digest.update(str(path.relative_to(repo)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:12]


def collect(repo: Path, postgres_bin: Path, dbmate: Path) -> Environment:
    """Gather everything; unknown facts say 'unknown' rather than failing the run."""
    meminfo = _first_match("/proc/meminfo", "MemTotal")
    ram_kib = float(meminfo.split()[0]) if meminfo != "unknown" else 0.0
    os_name = _first_match("/etc/os-release", "PRETTY_NAME").strip('"')
    return Environment(
        date=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        cores=usable_cores(),
        cpu_model=_first_match("/proc/cpuinfo", "model name"),
        ram_gib=round(ram_kib / 1024 / 1024, 1),
        kernel=platform.release(),
        os_name=os_name,
        python=platform.python_version() + f" ({sys.executable})",
        alembic=_version("alembic"),
        sqlalchemy=_version("sqlalchemy"),
        psycopg2=_version("psycopg2-binary") if _version("psycopg2") == "not installed"
        else _version("psycopg2"),
        matplotlib=_version("matplotlib"),
        pymysql=_version("PyMySQL"),
        postgresql=_output([str(postgres_bin / "postgres"), "--version"]),
        dbmate=_output([str(dbmate), "--version"]),
        commit=describe_code(repo),
    )
