"""The revision watch in a fleet's child shares the fleet's one spare connection: a look that
finds another child holding it waits its turn instead of being skipped (a child that only
tried could miss its blocker for a whole DDL lock timeout while the others' looks kept the
spare busy)."""

from __future__ import annotations

import threading
from collections.abc import Callable

from migration_job.run.revision_watch import RevisionWatch
from migration_job.run.wait import wait_for_database
from migration_job.settings.load import load_settings
from tests.integration.conftest import Database


class HeldByAnotherChild:
    """The fleet's spare as a child sees it when another child holds it: taken only by
    waiting, once the test lets go of it."""

    def __init__(self) -> None:
        self.free = threading.Event()
        self.taken = 0
        self.released = 0
        self.on_release: Callable[[], None] | None = None

    def acquire(self, block: bool = True, timeout: float | None = None) -> bool:
        if not block or not self.free.wait(timeout):
            return False
        self.taken += 1
        return True

    def release(self) -> None:
        self.released += 1
        if self.on_release is not None:
            self.on_release()


def test_a_look_waits_for_the_spare(database: Database) -> None:
    settings = load_settings({}, {"DATABASE_URL": database.url, "MIGRATE_TERMINATION_LOG": "",
                                  "MIGRATE_DDL_LOCK_TIMEOUT": "2s"})
    session = wait_for_database(settings)
    spare = HeldByAnotherChild()
    try:
        watch = RevisionWatch(settings, session, spare)
        look = threading.Thread(target=watch._look, args=(None, True, False))
        look.start()
        spare.free.set()  # the other child's look ended
        look.join()
    finally:
        session.close()
    assert (spare.taken, spare.released) == (1, 1)
    assert watch.silent_since is None  # the server answered the look


def test_a_look_hands_the_spare_on_once_its_session_has_ended(database: Database) -> None:
    """The next child's look must not count beside a backend still exiting."""
    settings = load_settings({}, {"DATABASE_URL": database.url, "MIGRATE_TERMINATION_LOG": "",
                                  "MIGRATE_DDL_LOCK_TIMEOUT": "2s"})
    session = wait_for_database(settings)
    observer = database.server.connect(database.name)
    spare = HeldByAnotherChild()
    left_at_release: list[int] = []

    def count_the_looks_sessions() -> None:
        with observer.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = "
                           "current_database() AND pid NOT IN (pg_backend_pid(), %s)",
                           (session.connection.get_backend_pid(),))  # type: ignore[attr-defined]
            left_at_release.append(cursor.fetchall()[0][0])

    spare.on_release = count_the_looks_sessions
    spare.free.set()
    try:
        RevisionWatch(settings, session, spare)._look(None, True, False)
    finally:
        session.close()
        observer.close()
    assert left_at_release == [0]
