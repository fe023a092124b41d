"""Checksums and version skew, checked the same way on every engine."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from tests.support.job import Result
from tests.support.projects import revision


def changed_file_then_older_image(run: Callable[..., Result], versions: Path) -> None:
    """A revision 0004 after the project's 0003 is applied; then an applied file is edited
    (MIGRATE_VERIFY=fail: exit 11), and the image rolled back to 0003: exit 7 by default,
    accepted with MIGRATE_ON_NEWER_DATABASE=accept."""
    later = versions / "0004_later.py"
    later.write_text(revision("0004", "0003", "pass"))
    assert run().code == 0
    edited = next(versions.glob("0002*.py"))
    edited.write_text(edited.read_text() + "\n# edited after it ran\n")
    refused = run("check", MIGRATE_VERIFY="fail")
    assert refused.code == 11, refused.stderr
    assert refused.events[-1]["event"] == "verification_failed"
    assert "0002" in refused.events[-1]["message"]
    later.unlink()  # the older image
    newer = run(MIGRATE_VERIFY="off")
    assert newer.code == 7, newer.stderr
    assert newer.events[-1]["event"] == "newer_database"
    accepted = run(MIGRATE_VERIFY="off", MIGRATE_ON_NEWER_DATABASE="accept")
    assert accepted.code == 0, accepted.stderr
    assert accepted.event("newer_database_accepted")["revisions_ahead"] == 1
