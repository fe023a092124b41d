"""What a run of Alembic needs to know of the signals the job took (run.interruption
implements it): whether one came, a way to stop at a safe point, and where to say what it left."""

from __future__ import annotations

import threading
from typing import Protocol


class Signals(Protocol):
    """A stop asked for by a signal."""

    # Set once a signal came.
    requested: threading.Event
    # What the stop leaves behind, for the job's last line.
    left: str | None

    def check(self) -> None:
        """Raise Interrupted if a signal came."""
