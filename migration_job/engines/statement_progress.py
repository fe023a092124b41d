"""How far a running statement got, in the server's own figures (an index build, a table copy)."""

from __future__ import annotations

from typing import NamedTuple


class StatementProgress(NamedTuple):
    """What the server says of one statement of this process's while it runs."""

    # The server's name for what the statement does now ('building index: scanning table').
    phase: str
    # Units done and in all ('blocks', 'tuples', ...); None where the server does not count
    # this phase, or (total) does not know the end.
    done: int | None = None
    total: int | None = None
    unit: str = ""
    # 0-100 where the server gives a percentage itself rather than counts (MariaDB).
    server_percent: float | None = None

    @property
    def percent(self) -> float | None:
        """How much of the phase is done, 0-100; None when the server does not say."""
        if self.server_percent is not None:
            return min(max(self.server_percent, 0.0), 100.0)
        if self.done is None or not self.total:
            return None
        return min(max(100.0 * self.done / self.total, 0.0), 100.0)


def counted(phase: str, done: object, total: object, unit: str) -> StatementProgress:
    """A phase counted in `unit`, when the server set a total; else the phase alone."""
    if not isinstance(total, int) or total <= 0 or not isinstance(done, int):
        return StatementProgress(phase)
    return StatementProgress(phase, done, total, unit)
