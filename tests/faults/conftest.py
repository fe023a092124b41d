"""The fault matrix's shared servers, for the whole session (started on first use)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.faults.servers import Servers


@pytest.fixture(scope="session")
def servers() -> Iterator[Servers]:
    """One PostgreSQL and one MariaDB server for every cell that needs no server of its own."""
    shared = Servers()
    yield shared
    shared.close()
