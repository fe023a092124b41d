"""A throwaway PostgreSQL server that a test owns: it can stop, kill and restart it.

pytest-postgresql's executor runs initdb as the current user, which PostgreSQL refuses
for root (CI runs as root), so this starts the server binaries itself, as the `postgres`
system user when run as root.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

import psycopg2
from psycopg2.extensions import connection

# Every character that URL and Alembic-config handling tends to break on.
PASSWORD = "p@ss:w%rd/#?&x"


def _children(pid: int) -> list[int]:
    """Direct children of a process, from /proc."""
    found = []
    for status in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            if int(status.read_text().rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(status.parent.name))
    return found


def find_bindir() -> Path:
    """PG_BINDIR, else the newest /usr/lib/postgresql/*/bin, else pg_config's."""
    if os.environ.get("PG_BINDIR"):
        return Path(os.environ["PG_BINDIR"])
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin"),
                        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0)
    if candidates:
        return candidates[-1]
    return Path(subprocess.check_output(["pg_config", "--bindir"], text=True).strip())


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class PostgresServer:
    """One initdb'd cluster in a temporary directory, listening on 127.0.0.1:port."""

    def __init__(self, password: str = PASSWORD, max_connections: int = 300) -> None:
        self.bindir = find_bindir()
        self.password = password
        self.port = free_port()
        self.base = Path(tempfile.mkdtemp(prefix="mj-pg-"))
        self.data = self.base / "data"
        self.logfile = self.base / "server.log"
        self.max_connections = max_connections
        self._as_postgres = os.geteuid() == 0
        if self._as_postgres:
            shutil.chown(self.base, "postgres", "postgres")
        self._initdb()

    def _run(self, *args: str) -> None:
        prefix = ["runuser", "-u", "postgres", "--"] if self._as_postgres else []
        subprocess.run([*prefix, *args], check=True, capture_output=True, cwd=self.base)

    def _initdb(self) -> None:
        pwfile = self.base / "pwfile"
        pwfile.write_text(self.password)
        if self._as_postgres:
            shutil.chown(pwfile, "postgres", "postgres")
        self._run(str(self.bindir / "initdb"), "-D", str(self.data), "-U", "postgres",
                  "--auth=scram-sha-256", f"--pwfile={pwfile}", "-E", "UTF8",
                  "--locale=C", "--no-sync")
        pwfile.unlink()

    def start(self) -> PostgresServer:
        """Start and wait until it accepts connections.

        fsync=off is safe here: only an OS crash loses unsynced data, and the tests crash
        PostgreSQL, never the OS. synchronous_commit stays on, so every commit survives a kill.
        """
        options = (f"-p {self.port} -c listen_addresses=127.0.0.1 "
                   f"-c unix_socket_directories={self.base} -c fsync=off "
                   f"-c full_page_writes=off "
                   f"-c max_connections={self.max_connections}")
        self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-l", str(self.logfile),
                  "-w", "-t", "60", "-o", options, "start")
        return self

    def stop(self) -> None:
        """Fast shutdown (rolls back open transactions)."""
        if self.pid() is not None:
            self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "fast",
                      "-w", "stop")

    def pid(self) -> int | None:
        """The postmaster's pid, if running."""
        pidfile = self.data / "postmaster.pid"
        if not pidfile.exists():
            return None
        return int(pidfile.read_text().splitlines()[0])

    def kill(self) -> None:
        """SIGKILL the postmaster and its backends at once, as a node or container loss does."""
        pid = self.pid()
        if pid is None:
            return
        family = [pid, *_children(pid)]
        for member in family:
            with contextlib.suppress(ProcessLookupError):
                os.kill(member, signal.SIGKILL)
        # Gone, not just dead: the server's next start refuses while even a zombie holds the pid.
        deadline = time.monotonic() + 30
        while any(Path(f"/proc/{m}").exists() for m in family) and time.monotonic() < deadline:
            time.sleep(0.05)

    def destroy(self) -> None:
        """Stop (or kill) and remove everything."""
        try:
            self.stop()
        except subprocess.CalledProcessError:
            self.kill()
        shutil.rmtree(self.base, ignore_errors=True)

    def url(self, database: str = "postgres", *, scheme: str = "postgresql",
            password: str | None = None, port: int | None = None) -> str:
        """A URL with the password URL-encoded, as users must write it."""
        secret = quote(self.password if password is None else password, safe="")
        return f"{scheme}://postgres:{secret}@127.0.0.1:{port or self.port}/{database}"

    def connect(self, database: str = "postgres") -> connection:
        """An autocommit superuser connection for the test's own checks."""
        conn = psycopg2.connect(host="127.0.0.1", port=self.port, user="postgres",
                                password=self.password, dbname=database,
                                application_name="test-harness")
        conn.autocommit = True
        return conn

    def create_database(self, name: str) -> str:
        """Create a database and return its URL."""
        conn = self.connect()
        try:
            with conn.cursor() as cur:
                cur.execute(f'CREATE DATABASE "{name}"')
        finally:
            conn.close()
        return self.url(name)


@contextmanager
def running_server() -> Iterator[PostgresServer]:
    """A started server, destroyed afterwards."""
    server = PostgresServer().start()
    try:
        yield server
    finally:
        server.destroy()
