"""Who blocks the revisions, noted while they wait: once the lock timeout has ended a wait,
the server no longer says who held the lock. A look of the revision watch's thread
(revision_watch.py), over its session."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from migration_job.engines.blocking import describe_all
from migration_job.log import log

if TYPE_CHECKING:
    from migration_job.engines import Session
    from migration_job.engines.blocking import Blocker
    from migration_job.settings import Settings

# How many times per DDL lock timeout the watch looks: a wait that lasts the whole timeout
# is seen at least once; bounded, so that a long timeout still names its blocker promptly.
# Without a DDL lock timeout it still looks every MAX_LOOK_EVERY_S: the looks are how the
# revision watch hears that the server still answers (revision_watch.py).
LOOKS_PER_TIMEOUT = 4
MAX_LOOK_EVERY_S = 1.0
# Never more often: InnoDB refreshes INNODB_TRX (MySQL's and MariaDB's list of open
# transactions, which names the blockers) only after 0.1 s without a reader, so a watch that
# looked faster would read one stale copy for ever.
MIN_LOOK_EVERY_S = 0.25


class BlockerWatch:
    """Asks, every `every` seconds while revisions run, who blocks this process's statements."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        timeout = settings.ddl_lock_timeout
        self.every = max(MIN_LOOK_EVERY_S, min(timeout / LOOKS_PER_TIMEOUT, MAX_LOOK_EVERY_S)
                         ) if timeout > 0 else MAX_LOOK_EVERY_S
        self.seen: tuple[Blocker, ...] = ()
        # Transactions a statement waits to end (no DDL lock timeout applies to that wait):
        # since when each was seen, and those already logged.
        self.waited_since: dict[int, float] = {}
        self.reported: set[int] = set()

    def take(self) -> tuple[Blocker, ...]:
        """The blockers seen last since the previous take."""
        seen, self.seen = self.seen, ()
        return seen

    def look(self, session: Session) -> None:
        """Ask once, over `session` (a second one), who blocks this process's statements."""
        found = session.blockers()
        if found:
            self.seen = found
        self._report_long_waits(found)

    def _report_long_waits(self, found: tuple[Blocker, ...]) -> None:
        """Log, once each, the transactions a statement has waited to end for longer than the
        DDL lock timeout (it does not apply to such a wait: postgres/concurrently.py)."""
        now = time.monotonic()
        waited = {b.pid: b for b in found if b.transaction_wait}
        self.waited_since = {pid: self.waited_since.get(pid, now) for pid in waited}
        long = [b for pid, b in waited.items() if pid not in self.reported
                and now - self.waited_since[pid] >= self.settings.ddl_lock_timeout]
        if not long:
            return
        self.reported.update(b.pid for b in long)
        log.warning("revision_waiting", f"a revision's statement that runs CONCURRENTLY waits "
                    f"for older transactions to end: {describe_all(tuple(long))}. It blocks no "
                    "query meanwhile, so the DDL lock timeout does not apply; it goes on once "
                    "they end (end them, or bound the wait with MIGRATE_STATEMENT_TIMEOUT)",
                    blockers=[b.fields() for b in long])
