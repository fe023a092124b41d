"""A throwaway PgBouncer that a test owns, in front of a PostgresServer.

It runs Debian's `pgbouncer` binary (run as the `postgres` system user when the tests run as
root: PgBouncer refuses to run as root) with an ini file of its own in a temporary directory.
Apart from where it listens, how it authenticates, the pool mode and the pool sizes, every
setting is PgBouncer's stock default: in particular no `ignore_startup_parameters`, so a
client that sends startup parameters PgBouncer does not know (such as `options`, which libpq
sends for PGOPTIONS) is refused, as it is by a PgBouncer installed with its defaults.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Literal

import psycopg2

from tests.support.pgserver import PostgresServer, free_port

PoolMode = Literal["session", "transaction", "statement"]


def find_pgbouncer() -> str | None:
    """The pgbouncer binary: PGBOUNCER, else on PATH, else Debian's /usr/sbin/pgbouncer."""
    if os.environ.get("PGBOUNCER"):
        return os.environ["PGBOUNCER"]
    found = shutil.which("pgbouncer")
    if found:
        return found
    return "/usr/sbin/pgbouncer" if Path("/usr/sbin/pgbouncer").exists() else None


def _quoted(value: str) -> str:
    """A value for PgBouncer's auth_file: double-quoted, inner double quotes doubled."""
    return '"' + value.replace('"', '""') + '"'


class PgBouncer:
    """One PgBouncer process listening on 127.0.0.1:port, pooling every database of `server`."""

    def __init__(self, server: PostgresServer, pool_mode: PoolMode = "session",
                 default_pool_size: int = 20, max_client_conn: int = 200) -> None:
        binary = find_pgbouncer()
        if binary is None:
            raise RuntimeError("pgbouncer is not installed (Debian: apt-get install pgbouncer; "
                               "scripts/test installs it)")
        self.binary = binary
        self.server = server
        self.pool_mode = pool_mode
        self.port = free_port()
        self.base = Path(tempfile.mkdtemp(prefix="mj-pgbouncer-"))
        self.ini = self.base / "pgbouncer.ini"
        self.auth_file = self.base / "userlist.txt"
        self.logfile = self.base / "pgbouncer.log"
        self.process: subprocess.Popen[bytes] | None = None
        self._as_postgres = os.geteuid() == 0
        self.auth_file.write_text(f"{_quoted('postgres')} {_quoted(server.password)}\n")
        self.auth_file.chmod(0o600)
        # Stock settings except these: where to listen and log, how to authenticate (the plain
        # password in auth_file lets PgBouncer do SCRAM with the client and with the server),
        # the pool mode under test, and pool sizes that fit the tests.
        self.ini.write_text(
            "[databases]\n"
            f"* = host=127.0.0.1 port={server.port}\n"
            "\n"
            "[pgbouncer]\n"
            "listen_addr = 127.0.0.1\n"
            f"listen_port = {self.port}\n"
            f"unix_socket_dir = {self.base}\n"
            f"logfile = {self.logfile}\n"
            f"pidfile = {self.base / 'pgbouncer.pid'}\n"
            "auth_type = scram-sha-256\n"
            f"auth_file = {self.auth_file}\n"
            "admin_users = postgres\n"
            f"pool_mode = {pool_mode}\n"
            f"default_pool_size = {default_pool_size}\n"
            f"max_client_conn = {max_client_conn}\n"
        )
        if self._as_postgres:
            for path in (self.base, self.ini, self.auth_file):
                shutil.chown(path, "postgres", "postgres")

    def start(self, timeout: float = 30) -> PgBouncer:
        """Start it and wait (polling, up to `timeout` seconds) until it accepts clients."""
        command = [self.binary, str(self.ini)]
        with (self.base / "stderr.log").open("ab") as stderr:
            if self._as_postgres:
                self.process = subprocess.Popen(
                    command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                    stderr=stderr, cwd=self.base, user="postgres", group="postgres",
                    extra_groups=[])
            else:
                self.process = subprocess.Popen(
                    command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                    stderr=stderr, cwd=self.base)
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"pgbouncer exited with {self.process.returncode}:\n"
                                   f"{self.log()}")
            try:
                # The admin console answers without opening a server connection.
                conn = psycopg2.connect(host="127.0.0.1", port=self.port, user="postgres",
                                        password=self.server.password, dbname="pgbouncer",
                                        connect_timeout=2)
                conn.close()
                return self
            except psycopg2.OperationalError:
                if time.monotonic() >= deadline:
                    self.stop()
                    raise RuntimeError(f"pgbouncer did not accept connections within "
                                       f"{timeout}s:\n{self.log()}") from None
                time.sleep(0.05)

    def log(self) -> str:
        """What PgBouncer logged so far (its log file and its stderr)."""
        parts = []
        for path in (self.logfile, self.base / "stderr.log"):
            with contextlib.suppress(OSError):
                parts.append(path.read_text(errors="replace"))
        return "".join(parts)

    def stop(self, timeout: float = 10) -> None:
        """SIGTERM (closes every client and server connection at once), SIGKILL if it lingers."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=timeout)

    def destroy(self) -> None:
        """Stop and remove everything."""
        self.stop()
        shutil.rmtree(self.base, ignore_errors=True)

    def url(self, database: str = "postgres", *, scheme: str = "postgresql") -> str:
        """The server's URL for `database`, aimed at PgBouncer instead."""
        return self.server.url(database, scheme=scheme, port=self.port)

    def admin(self, command: str) -> list[tuple[object, ...]]:
        """Run an admin console command (SHOW POOLS, SHOW SERVERS...) and return its rows."""
        conn = psycopg2.connect(host="127.0.0.1", port=self.port, user="postgres",
                                password=self.server.password, dbname="pgbouncer")
        conn.autocommit = True
        try:
            with conn.cursor() as cur:
                cur.execute(command)
                return list(cur.fetchall()) if cur.description else []
        finally:
            conn.close()


@contextmanager
def running_pgbouncer(server: PostgresServer,
                      pool_mode: PoolMode = "session") -> Iterator[PgBouncer]:
    """A started PgBouncer in front of a running server, destroyed afterwards."""
    bouncer = PgBouncer(server, pool_mode)
    try:
        yield bouncer.start()
    finally:
        bouncer.destroy()
