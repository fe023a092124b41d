"""A throwaway MariaDB server that a test owns: it can stop, kill and restart it.

The model is pgserver.py: the test starts the server binaries itself (Debian's
`mariadb-server` package, which scripts/test installs where it is missing), on a free port of
127.0.0.1 with its own data directory and socket, never touching a server the machine already
runs. When run as root the server runs as the `mysql` system user, as mariadbd refuses root.

Authentication is real: `root` has PASSWORD (the same awkward one as the PostgreSQL servers),
so a wrong password is refused as it would be on a user's server.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pymysql
from pymysql.connections import Connection
from pymysql.cursors import Cursor

from tests.support.pgserver import PASSWORD, free_port
from tests.support.queries import run_once

USER = "root"
SYSTEM_USER = "mysql"


def find_program(name: str) -> str:
    """A MariaDB server program on PATH or in /usr/sbin (not on a non-root user's PATH)."""
    for candidate in (shutil.which(name), f"/usr/sbin/{name}", f"/usr/bin/{name}"):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise FileNotFoundError(f"{name} is missing: install Debian's 'mariadb-server' package "
                            "(scripts/test does so when run as root)")


def _sql_string(value: str) -> str:
    """A single-quoted SQL string literal (for the bootstrap file, where nothing binds)."""
    return "'" + value.replace("\\", "\\\\").replace("'", "''") + "'"


def _quote_name(name: str) -> str:
    """A backquoted identifier."""
    return "`" + name.replace("`", "``") + "`"


class MariaDBServer:
    """A data directory made by mariadb-install-db in a temporary directory, on 127.0.0.1:port."""

    def __init__(self, password: str = PASSWORD, max_connections: int = 300) -> None:
        self.mariadbd = find_program("mariadbd")
        self.install_db = find_program("mariadb-install-db")
        self.password = password
        self.port = free_port()
        self.max_connections = max_connections
        self.base = Path(tempfile.mkdtemp(prefix="mj-mariadb-"))
        self.data = self.base / "data"
        self.socket = self.base / "mariadbd.sock"
        self.pidfile = self.base / "mariadbd.pid"
        self.logfile = self.base / "server.log"
        self._as_system_user = os.geteuid() == 0
        self._process: subprocess.Popen[bytes] | None = None
        self.logfile.touch()
        if self._as_system_user:
            shutil.chown(self.base, SYSTEM_USER, SYSTEM_USER)
            shutil.chown(self.logfile, SYSTEM_USER, SYSTEM_USER)
        try:
            self._install()
        except BaseException:
            shutil.rmtree(self.base, ignore_errors=True)
            raise

    def _user(self) -> dict[str, Any]:
        """subprocess arguments that run a program as the system user when we are root.

        Set by subprocess itself (not runuser), so the child it starts is mariadbd itself.
        """
        if not self._as_system_user:
            return {}
        return {"user": SYSTEM_USER, "group": SYSTEM_USER, "extra_groups": []}

    def options(self) -> list[str]:
        """mariadbd's options, shared by the bootstrap and the server (--no-defaults first).

        innodb_flush_log_at_trx_commit=2 and no doublewrite buffer are safe here for the reason
        fsync=off is in pgserver.py: every commit is written to the OS at once, so it survives
        a kill of the server; only an OS crash (which the tests never cause) loses it.
        Native AIO is off so that many servers on one machine never run out of AIO contexts.
        """
        return [
            "--no-defaults",
            f"--datadir={self.data}",
            f"--socket={self.socket}",
            f"--pid-file={self.pidfile}",
            f"--log-error={self.logfile}",
            f"--tmpdir={self.base}",
            "--skip-name-resolve",
            "--skip-log-bin",
            "--character-set-server=utf8mb4",
            "--innodb-buffer-pool-size=32M",
            "--innodb-log-file-size=16M",
            "--innodb-flush-log-at-trx-commit=2",
            "--skip-innodb-doublewrite",
            "--innodb-use-native-aio=0",
        ]

    def command(self) -> list[str]:
        """The full mariadbd command line start() runs."""
        return [
            self.mariadbd, *self.options(),
            f"--port={self.port}",
            "--bind-address=127.0.0.1",
            f"--max-connections={self.max_connections}",
        ]

    def _install(self) -> None:
        """The system tables, then `root` with the password on the socket and on 127.0.0.1.

        mariadb-install-db makes root@localhost, @127.0.0.1, @::1 and @hostname without a
        password; the extra file (run in bootstrap mode, hence FLUSH PRIVILEGES to load the
        grant tables first) keeps the first two, with the password, and drops the rest.
        """
        secret = _sql_string(self.password)
        init = self.base / "init.sql"
        init.write_text(
            "FLUSH PRIVILEGES;\n"
            "DELETE FROM mysql.global_priv WHERE user = 'root' "
            "AND host NOT IN ('localhost', '127.0.0.1');\n"
            "DELETE FROM mysql.proxies_priv WHERE user = 'root' "
            "AND host NOT IN ('localhost', '127.0.0.1');\n"
            "FLUSH PRIVILEGES;\n"
            f"ALTER USER root@localhost IDENTIFIED BY {secret};\n"
            f"ALTER USER root@'127.0.0.1' IDENTIFIED BY {secret};\n")
        if self._as_system_user:
            shutil.chown(init, SYSTEM_USER, SYSTEM_USER)
        options = [o for o in self.options()
                   if not o.startswith(("--no-defaults", "--log-error", "--pid-file"))]
        try:
            subprocess.run(
                [self.install_db, "--no-defaults", "--auth-root-authentication-method=normal",
                 "--skip-test-db", f"--extra-file={init}", *options],
                check=True, capture_output=True, cwd=self.base, **self._user())
        except subprocess.CalledProcessError as error:
            raise RuntimeError(f"mariadb-install-db failed:\n{error.stdout.decode()}"
                               f"{error.stderr.decode()}") from error
        finally:
            init.unlink()

    def start(self, timeout: float = 60) -> MariaDBServer:
        """Start and wait (polling, at most `timeout` seconds) until it accepts connections."""
        if self.pid() is not None:
            raise RuntimeError(f"the server in {self.data} is already running")
        with self.logfile.open("ab") as log:
            self._process = subprocess.Popen(
                self.command(), stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                cwd=self.base, start_new_session=True, **self._user())
        deadline = time.monotonic() + timeout
        while True:
            code = self._process.poll()
            if code is not None:
                raise RuntimeError(f"mariadbd exited with {code} while starting; "
                                   f"the end of {self.logfile}:\n{self.log_tail()}")
            try:
                self.connect(connect_timeout=5).close()
                return self
            except pymysql.err.OperationalError:
                if time.monotonic() >= deadline:
                    self.kill()
                    raise TimeoutError(f"mariadbd accepted no connection within {timeout}s; "
                                       f"the end of {self.logfile}:\n{self.log_tail()}") from None
                time.sleep(0.05)

    def log_tail(self, lines: int = 20) -> str:
        """The last lines of the server's log."""
        return "\n".join(self.logfile.read_text(errors="replace").splitlines()[-lines:])

    def pid(self) -> int | None:
        """mariadbd's pid, if it runs."""
        if self._process is None or self._process.poll() is not None:
            return None
        return self._process.pid

    def stop(self, timeout: float = 60) -> None:
        """A normal shutdown (SIGTERM): open transactions roll back, connections are closed."""
        process = self._process
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self) -> None:
        """SIGKILL the server, as a node or container loss does, and wait until it is gone.

        mariadbd is one process (its sessions are threads), and it is this process's own
        child, so wait() both sees it die and reaps it: no zombie keeps its pid or port.
        """
        process = self._process
        if process is None or process.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        process.wait(30)

    def destroy(self) -> None:
        """Stop (or kill) and remove everything."""
        try:
            self.stop()
        finally:
            self.kill()
            shutil.rmtree(self.base, ignore_errors=True)

    def url(self, database: str, scheme: str = "mysql+pymysql", *,
            password: str | None = None, port: int | None = None) -> str:
        """A URL with the password URL-encoded, as users must write it."""
        secret = quote(self.password if password is None else password, safe="")
        return f"{scheme}://{USER}:{secret}@127.0.0.1:{port or self.port}/{database}"

    def connect(self, database: str | None = None, *, password: str | None = None,
                connect_timeout: float = 10) -> Connection[Cursor]:
        """An autocommit connection as `root` over TCP, for the test's own checks."""
        return pymysql.connect(
            host="127.0.0.1", port=self.port, user=USER,
            password=self.password if password is None else password,
            database=database, autocommit=True, connect_timeout=connect_timeout,
            program_name="test-harness")

    def scalar(self, query: str, *params: Any, database: str | None = None) -> Any:
        """The first value of a query run on this server."""
        return run_once(self.connect(database), query, params or None)

    def create_database(self, name: str) -> str:
        """Create a database and return its URL."""
        run_once(self.connect(), f"CREATE DATABASE {_quote_name(name)}")
        return self.url(name)


@contextmanager
def running_mariadb() -> Iterator[MariaDBServer]:
    """A started server, destroyed afterwards."""
    server = MariaDBServer()
    try:
        yield server.start()
    finally:
        server.destroy()
