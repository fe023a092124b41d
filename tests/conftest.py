"""Session-wide guard: the password never appears in anything a job printed."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import quote

import pytest

from tests.faults.servers import Servers
from tests.support.job import iter_outputs
from tests.support.pgserver import PASSWORD


@pytest.fixture(scope="session", autouse=True)
def password_never_printed() -> Iterator[None]:
    """Fails the session if any job output, in any test, contained the password."""
    yield
    leaks = [text for text in iter_outputs()
             if PASSWORD in text or quote(PASSWORD, safe="") in text]
    assert not leaks, f"password printed by a job:\n{leaks[0][:2000]}"


@pytest.fixture(scope="session")
def servers() -> Iterator[Servers]:
    """The fault matrix's and the property tests' PostgreSQL and MariaDB servers, started on
    first use (cells kill and restart them; tests/integration has servers of its own)."""
    shared = Servers()
    yield shared
    shared.close()
