"""SQLAlchemy's Engine events, switched on for a block: how the job sees every statement that
any engine sends while revisions run (its own and those of an env.py's own engine)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any


@contextmanager
def listening(listeners: Iterable[tuple[str, Callable[..., Any]]]) -> Iterator[None]:
    """Within the block, each (event name, listener) listens on every SQLAlchemy Engine."""
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    pairs = list(listeners)
    for name, listener in pairs:
        event.listen(Engine, name, listener)
    try:
        yield
    finally:
        for name, listener in pairs:
            event.remove(Engine, name, listener)
