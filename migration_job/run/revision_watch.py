"""One thread beside the running revisions: who blocks them (blocker_watch.py), how far the
running one got (progress_watch.py), both asked over one session of its own, and whether the
server still answers at all: behind a TCP proxy, whose kernel answers the job's keepalives, a
partition shows no other way while a revision's statement waits (README: Network partitions).

The session opens only when a look needs the server: revisions shorter than the first look
cost nothing, and neither does the heartbeat of an engine that reports no progress (SQLite).
In a fleet's child each look opens and closes a session under the fleet's one spare connection
(run/shared.py): it waits its turn while another child holds it, up to its own interval, and is
skipped only past that (a child that merely tried would miss its blocker whenever the other
children's looks kept the spare busy, and under load they could for a whole DDL lock timeout).
It hands the spare on once the server has ended its session (Session.close_and_wait): a
backend still exiting would count beside the next child's against the connection limit.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING, TypeVar

from migration_job.engines.statement_progress import StatementProgress
from migration_job.errors import first_line
from migration_job.log import log
from migration_job.run.blocker_watch import BlockerWatch
from migration_job.run.progress_watch import ProgressWatch

if TYPE_CHECKING:
    from contextlib import AbstractContextManager

    from migration_job.engines import Session
    from migration_job.engines.blocking import Blocker
    from migration_job.run.shared import SpareConnection
    from migration_job.settings import Settings

# How long the watch waits to connect: a server that does not answer costs a look, not a hang.
# (Each engine bounds its looks' queries the same.)
CONNECT_TIMEOUT_S = 3.0
# How long a fleet child's look waits for the server to end its session before it hands the
# spare connection on (a backend exits milliseconds after its client's goodbye).
SESSION_END_WAIT_S = 1.0
# How long the looks may go unanswered (each failing only once it had waited at least half
# its timeout: a refusal or reset is an answer) before the watch cuts the revisions' session.
SILENCE_LIMIT_S = 30.0
Result = TypeVar("Result")
Figures = tuple[StatementProgress, ...] | None


class RevisionWatch:
    """The watch's thread, running while revisions are applied (tries and retries alike):
    blockers (named when MIGRATE_DDL_LOCK_TIMEOUT is set; asked in any case, as the proof
    that the server answers), and progress when MIGRATE_PROGRESS_INTERVAL is set. It cuts
    `revisions` (the session the revisions run on) when the server has answered none of its
    looks for SILENCE_LIMIT_S."""

    def __init__(self, settings: Settings, revisions: Session,
                 spare: SpareConnection | None = None) -> None:
        self.settings = settings
        self.revisions = revisions
        # In a fleet's child: the fleet's one spare connection, taken for each look.
        self.spare = spare
        self.blockers = BlockerWatch(settings)
        self.progress = ProgressWatch(settings) if settings.progress_interval > 0 else None
        self.silent_since: float | None = None
        self._following: AbstractContextManager[None] | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="revision-watch", daemon=True)

    def __enter__(self) -> RevisionWatch:
        if self.progress is not None:
            self._following = self.progress.following()
            self._following.__enter__()
        self._thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        if self._following is not None:
            self._following.__exit__(kind, error, traceback)

    def take(self) -> tuple[Blocker, ...]:
        """The blockers seen last since the previous take."""
        return self.blockers.take()

    def attempts(self, attempt: Callable[[], Result]) -> Callable[[], Result]:
        """`attempt`, after whose end no revision counts as running (progress_watch.py)."""
        return self.progress.attempts(attempt) if self.progress is not None else attempt

    def _watch(self) -> None:
        session: Session | None = None
        blockers_every = self.blockers.every
        next_blockers = time.monotonic() + blockers_every
        try:
            while True:
                now = time.monotonic()
                wake = min(next_blockers, self.progress.next_due(now)
                           if self.progress is not None else math.inf)
                if self._stop.wait(max(0.0, wake - now)):
                    return
                now = time.monotonic()
                blockers_due = now >= next_blockers and self.settings.engine.has_server
                if now >= next_blockers:
                    next_blockers = now + blockers_every
                running = self.progress.due(now) if self.progress is not None else None
                figures_due = running is not None and self.settings.engine.reports_progress
                figures: Figures = None
                if blockers_due or figures_due:
                    session, figures = self._look(session, blockers_due, figures_due)
                if running is not None:
                    assert self.progress is not None
                    self.progress.report(running, figures)
        finally:
            if session is not None:
                session.close()

    def _look(self, session: Session | None, blockers: bool,
              figures: bool) -> tuple[Session | None, Figures]:
        """Ask what is due; the session to keep, and the figures (None when not asked or
        not answered)."""
        spare = self.spare
        if spare is None:
            return self._ask(session, blockers, figures)
        if not spare.acquire(timeout=self.blockers.every):
            return None, None
        try:
            opened, found = self._ask(None, blockers, figures)
            if opened is not None:
                # Until the server has ended it, the next child's session would count beside it.
                opened.close_and_wait(SESSION_END_WAIT_S)
            return None, found
        finally:
            spare.release()

    def _ask(self, session: Session | None, blockers: bool,
             figures: bool) -> tuple[Session | None, Figures]:
        """The looks over `session` (opened if None); after an error it is dropped, and the
        next look opens another."""
        engine = self.settings.engine
        started = time.monotonic()
        try:
            session = session or engine.connect(self.settings, timeout=CONNECT_TIMEOUT_S)
            if blockers:
                self.blockers.look(session)
            found = session.statement_progress() if figures else None
        except engine.errors as error:
            log.debug("revision_watch_failed", "could not ask the server about the running "
                      f"revisions: {first_line(error)}")
            waited = time.monotonic() - started
            self._heard(None if waited >= CONNECT_TIMEOUT_S / 2 else started)
            return None, None
        self._heard(started)
        return session, found

    def _heard(self, answered_at: float | None) -> None:
        """Note a look's answer (None: it got none); cut the revisions' session once the
        server has answered nothing for SILENCE_LIMIT_S."""
        if answered_at is not None:
            self.silent_since = None
            return
        now = time.monotonic()
        if self.silent_since is None:
            self.silent_since = now
        silent_s = now - self.silent_since
        if silent_s >= SILENCE_LIMIT_S:
            cut = self.revisions.sever()
            outcome = ("cut the session the revisions run on" if cut else
                       "this engine leaves the revisions' session to its own timeouts")
            log.warning("database_silent", f"the database has answered nothing for "
                        f"{silent_s:.0f} s (a network partition, or a proxy that lost the "
                        f"server?): {outcome}", silent_s=round(silent_s, 1), cut=cut)
            self._stop.set()
