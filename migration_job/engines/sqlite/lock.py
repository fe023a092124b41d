"""SQLite's migration lock: an operating-system file lock beside the database, polled.

flock(2) belongs to the open file, so the kernel releases it when the job closes the file or
dies (SIGKILL included): a dead runner never blocks the next one. It serialises processes on
one host only: flock on a network file system does not reach other machines reliably.
The file is never deleted: a runner that still holds the old file open would hold a lock
that a new file with the same name does not know about.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from migration_job.engines.locking import Holder, PolledLock
from migration_job.engines.naming import application_name
from migration_job.errors import LockLost

if TYPE_CHECKING:
    from migration_job.engines import Session


class FileLock(PolledLock):
    """flock(LOCK_EX | LOCK_NB) on `<database>.migration-lock`, which names its holder."""

    def __init__(self, session: Session, path: str, key: int,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        super().__init__(key, sleep)
        self.session = session
        self.path = path
        self.fd: int | None = None
        # Whether our descriptor took the flock (and wrote the holder line).
        self.mine = False

    def revision_gate(self) -> None:
        """No transaction-level lock: the revisions run on the lock's own connection, and each
        checks the lock before it commits."""

    def _try(self) -> bool:
        if self.fd is None:
            self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        line = json.dumps({"pid": os.getpid(), "host": os.uname().nodename,
                           "application_name": application_name(),
                           "since": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, (line + "\n").encode(), 0)
        self.mine = True
        return True

    def verify(self) -> None:
        """Raise LockLost unless our descriptor is open, still the file's, and locked."""
        if not self.held or self.fd is None or not self._same_file() or not self._locked():
            raise LockLost(f"the migration lock ({self.path}) is no longer held by this job; "
                           "stopped before committing, so that revision was rolled back; "
                           "run the job again")

    def _same_file(self) -> bool:
        assert self.fd is not None
        try:
            ours, named = os.fstat(self.fd), os.stat(self.path)
        except OSError:
            return False
        return (ours.st_dev, ours.st_ino) == (named.st_dev, named.st_ino)

    def _locked(self) -> bool:
        """Whether someone holds the file's lock: a second open file cannot take it."""
        try:
            probe = os.open(self.path, os.O_RDONLY)
        except OSError:
            return False
        try:
            fcntl.flock(probe, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(probe)  # a lock the probe took goes with it
        return False

    def _unlock(self) -> bool | None:
        if self.fd is None:
            return None
        held = self._same_file() and self._locked()
        self.close()
        return held

    def close(self) -> None:
        """Let go: the holder line first (it would name us), then the lock, with the file."""
        if self.fd is None:
            return
        fd, self.fd = self.fd, None
        if self.mine:
            self.mine = False
            os.ftruncate(fd, 0)
        os.close(fd)

    def holder(self) -> Holder | None:
        """The runner named in the lock file, while the file is locked."""
        if not self._locked():
            return None
        try:
            with open(self.path, encoding="utf-8") as file:
                line = json.loads(file.readline())
            return Holder(pid=int(line["pid"]), application_name=str(line["application_name"]),
                          client_addr=str(line["host"]), backend_start=str(line["since"]),
                          state="holding the lock file")
        except (OSError, ValueError, KeyError, TypeError):
            return Holder(pid=0, application_name="", client_addr=None,
                          backend_start="unknown", state="holding the lock file (no holder line)")
