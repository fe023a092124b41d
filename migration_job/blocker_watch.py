"""Who blocks the revisions, noted while they wait: once the lock timeout has ended a wait,
the server no longer says who held the lock."""

from __future__ import annotations

import threading
from types import TracebackType
from typing import TYPE_CHECKING

from migration_job.errors import first_line
from migration_job.log import log

if TYPE_CHECKING:
    from migration_job.config import Settings
    from migration_job.engines import Session
    from migration_job.engines.blocking import Blocker

# How many times per DDL lock timeout the watch looks: a wait that lasts the whole timeout
# is seen at least once; bounded, so that a long timeout still names its blocker promptly.
LOOKS_PER_TIMEOUT = 4
MAX_LOOK_EVERY_S = 1.0


class BlockerWatch:
    """A thread that asks, over a session of its own, who blocks this process's statements.

    The session opens only once a revision has run for a first interval: revisions that
    never wait cost nothing.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.every = min(settings.ddl_lock_timeout / LOOKS_PER_TIMEOUT, MAX_LOOK_EVERY_S)
        self.seen: tuple[Blocker, ...] = ()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="blocker-watch", daemon=True)

    def __enter__(self) -> BlockerWatch:
        self._thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self._stop.set()
        self._thread.join()

    def take(self) -> tuple[Blocker, ...]:
        """The blockers seen last since the previous take."""
        seen, self.seen = self.seen, ()
        return seen

    def _watch(self) -> None:
        session: Session | None = None
        engine = self.settings.engine
        try:
            while not self._stop.wait(self.every):
                try:
                    session = session or engine.connect(self.settings, timeout=3)
                    found = session.blockers()
                except engine.errors as error:
                    log.debug("blocker_watch_failed",
                              f"could not ask who blocks the revisions: {first_line(error)}")
                    session = None
                    continue
                if found:
                    self.seen = found
        finally:
            if session is not None:
                session.close()
