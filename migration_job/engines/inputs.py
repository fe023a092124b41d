"""What an engine reads of the job's settings and project: the few fields it needs, as
protocols, so that engines depend on no module above them (Settings and Project fit both)."""

from __future__ import annotations

from typing import Protocol


class ConnectionSettings(Protocol):
    """How to reach the database and how long to wait for it."""

    @property
    def command(self) -> str: ...
    @property
    def database_url(self) -> str | None: ...
    @property
    def libpq_dsn(self) -> str: ...
    @property
    def wait_timeout(self) -> float: ...
    @property
    def lock_timeout(self) -> float: ...


class VersionTable(Protocol):
    """Where the project keeps its version table."""

    @property
    def version_table(self) -> str: ...
    @property
    def version_table_schema(self) -> str | None: ...
