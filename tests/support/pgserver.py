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
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import psycopg2
from psycopg2.extensions import connection

from tests.support.queries import run_once

if TYPE_CHECKING:
    from tests.support.network import Namespace

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
    """One initdb'd cluster in a temporary directory, listening on 127.0.0.1:port, or inside a
    network namespace on its address (tests/support/network.py), for partitions."""

    def __init__(self, password: str = PASSWORD, max_connections: int = 300,
                 netns: Namespace | None = None) -> None:
        self.bindir = find_bindir()
        self.password = password
        self.port = free_port()
        self.netns = netns
        self.host = netns.address if netns is not None else "127.0.0.1"
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
        command = [*prefix, *args]
        if self.netns is not None:
            command = self.netns.command(*command)
        subprocess.run(command, check=True, capture_output=True, cwd=self.base)

    def _initdb(self) -> None:
        pwfile = self.base / "pwfile"
        pwfile.write_text(self.password)
        if self._as_postgres:
            shutil.chown(pwfile, "postgres", "postgres")
        self._run(str(self.bindir / "initdb"), "-D", str(self.data), "-U", "postgres",
                  "--auth=scram-sha-256", f"--pwfile={pwfile}", "-E", "UTF8",
                  "--locale=C", "--no-sync")
        pwfile.unlink()
        if self.netns is not None:
            with (self.data / "pg_hba.conf").open("a") as hba:
                hba.write(f"host all all {self.netns.subnet} scram-sha-256\n")

    def start(self) -> PostgresServer:
        """Start and wait until it accepts connections.

        fsync=off is safe here: only an OS crash loses unsynced data, and the tests crash
        PostgreSQL, never the OS. synchronous_commit stays on, so every commit survives a kill.
        """
        options = (f"-p {self.port} -c listen_addresses={self.host} "
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
        return f"{scheme}://postgres:{secret}@{self.host}:{port or self.port}/{database}"

    def connect(self, database: str = "postgres") -> connection:
        """An autocommit superuser connection for the test's own checks."""
        conn = psycopg2.connect(host=self.host, port=self.port, user="postgres",
                                password=self.password, dbname=database,
                                application_name="test-harness")
        conn.autocommit = True
        return conn

    def scalar(self, query: str, database: str = "postgres") -> Any:
        """The first value of a query run directly on this server (never through a pooler)."""
        return run_once(self.connect(database), query)

    def create_database(self, name: str) -> str:
        """Create a database and return its URL."""
        run_once(self.connect(), f'CREATE DATABASE "{name}"')
        return self.url(name)


@contextmanager
def running_server() -> Iterator[PostgresServer]:
    """A started server, destroyed afterwards."""
    server = PostgresServer().start()
    try:
        yield server
    finally:
        server.destroy()


def _conninfo_value(value: str) -> str:
    """A value for a libpq keyword/value connection string, quoted and escaped."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def allow_replication(server: PostgresServer) -> None:
    """Make sure pg_hba.conf lets the superuser open replication connections from 127.0.0.1.

    initdb already writes such a line (`host replication all 127.0.0.1/32 <auth>`); this only
    adds one (and reloads) for a pg_hba.conf that lacks it.
    """
    hba = server.data / "pg_hba.conf"
    for line in hba.read_text().splitlines():
        fields = line.split("#", 1)[0].split()
        if fields[:2] == ["host", "replication"] and fields[3:4] == ["127.0.0.1/32"]:
            return
    with hba.open("a") as out:
        out.write("host    replication     all             127.0.0.1/32            "
                  "scram-sha-256\n")
    conn = server.connect()
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT pg_reload_conf()")
    finally:
        conn.close()


class StandbyServer(PostgresServer):
    """A hot standby of a running PostgresServer, streaming from it, on its own free port.

    Made with `pg_basebackup -R` (which writes standby.signal and primary_conninfo), so it
    holds everything the primary had when it was made and replays what the primary writes
    after. Its url() and connect() point at the standby; it is read-only for everyone.
    """

    def __init__(self, primary: PostgresServer) -> None:
        self.primary = primary
        # A hot standby refuses to start with fewer connections than its primary allows.
        super().__init__(password=primary.password, max_connections=primary.max_connections)

    def _initdb(self) -> None:
        """Instead of initdb: a base backup of the primary, set up to stream from it."""
        allow_replication(self.primary)
        conninfo = (f"host=127.0.0.1 port={self.primary.port} user=postgres "
                    f"password={_conninfo_value(self.primary.password)}")
        self._run(str(self.bindir / "pg_basebackup"), "-d", conninfo, "-D", str(self.data),
                  "-R", "-X", "stream", "-c", "fast", "--no-sync")

    def start(self, timeout: float = 60) -> StandbyServer:
        """Start and wait until it accepts read-only connections as a standby."""
        super().start()
        deadline = time.monotonic() + timeout
        while True:
            try:
                if self.scalar("SELECT pg_is_in_recovery()") is True:
                    return self
                raise RuntimeError(f"{self.data} started, but not as a standby")
            except psycopg2.OperationalError:
                if time.monotonic() >= deadline:
                    raise
                time.sleep(0.1)

    def catch_up(self, timeout: float = 60) -> None:
        """Wait until the standby has replayed everything the primary has written so far."""
        primary = self.primary.connect()
        try:
            with primary.cursor() as cur:
                cur.execute("SELECT pg_current_wal_lsn()::text")
                row = cur.fetchone()
        finally:
            primary.close()
        assert row is not None
        target = str(row[0])
        deadline = time.monotonic() + timeout
        standby = self.connect()
        try:
            with standby.cursor() as cur:
                while True:
                    cur.execute("SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", (target,))
                    done = cur.fetchone()
                    if done is not None and done[0] is True:
                        return
                    if time.monotonic() >= deadline:
                        raise TimeoutError(f"standby did not replay up to {target} "
                                           f"within {timeout}s")
                    time.sleep(0.05)
        finally:
            standby.close()


@contextmanager
def running_standby(primary: PostgresServer) -> Iterator[StandbyServer]:
    """A started hot standby of a running server, destroyed afterwards."""
    standby = StandbyServer(primary)
    try:
        yield standby.start()
    finally:
        standby.destroy()
