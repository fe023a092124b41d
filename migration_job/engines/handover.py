"""What every engine's handover shares: SQLAlchemy listeners on while a session is lent out."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Protocol

from migration_job.engines.sqlalchemy_events import listening

if TYPE_CHECKING:
    from sqlalchemy.engine import Dialect



class Lendable(Protocol):
    """A driver connection whose close() does nothing while `lendable`."""

    lendable: bool


@contextmanager
def lent(session: Lendable, listeners: Mapping[str, Callable[..., Any]],
         take_back: Callable[[], None]) -> Iterator[None]:
    """Within the block, `listeners` (SQLAlchemy Engine events by name) hand out `session`,
    which SQLAlchemy cannot close; afterwards `take_back()` restores the job's mode."""
    session.lendable = True
    try:
        with listening(listeners.items()):
            yield
    finally:
        session.lendable = False
        take_back()


def reaches(url: str, dialect: Dialect, cargs: Any, cparams: Mapping[str, Any],
            neutral: tuple[str, ...]) -> bool:
    """Whether a connection SQLAlchemy is about to open reaches the database `url` names:
    the same connect arguments, but for `neutral` ones that do not change the database."""
    from sqlalchemy.engine import make_url

    def target(args: Any, params: Mapping[str, Any]) -> tuple[list[Any], dict[str, Any]]:
        return list(args), {k: v for k, v in params.items() if k not in neutral}

    return target(cargs, cparams) == target(*dialect.create_connect_args(make_url(url)))
