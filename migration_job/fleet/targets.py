"""The fleet's targets: read from a file or a template and names, and this shard's share.

A target's shard is the SHA-256 of its identity (the job's URL for it, with the password
masked) modulo the number of shards: every pod computes the same split from the same list,
whatever its order, with no coordinator, and rotating a password moves no tenant.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple
from urllib.parse import quote

from migration_job.errors import ConfigError
from migration_job.masking import Masker
from migration_job.settings.fleet import NAME_PLACEHOLDER
from migration_job.settings.load import normalize_url

if TYPE_CHECKING:
    from migration_job.settings import Settings
    from migration_job.settings.fleet import FleetSettings


class Target(NamedTuple):
    """One database of the fleet."""

    # As given (env.py gets its driver from it) and with the job's driver spelled out.
    given_url: str
    url: str
    secrets: tuple[str, ...]

    @property
    def shown(self) -> str:
        """The URL with its password masked: for output, and the target's identity."""
        return Masker(self.secrets)(self.given_url)

    def shard(self, shards: int) -> int:
        """Which of `shards` shards migrates this target."""
        digest = hashlib.sha256(self.shown.encode("utf-8")).digest()
        return int.from_bytes(digest[:8], "big") % shards


def fleet_targets(settings: Settings) -> list[Target]:
    """Every target of the fleet, in the order given; the same database twice is an error
    (its password differs, or it is a mistake: either way, which one is meant?)."""
    fleet = settings.fleet
    assert fleet is not None
    if fleet.targets_file is not None:
        urls = [(f"{fleet.targets_file}, line {n}", url)
                for n, url in _lines(fleet.targets_file, "MIGRATE_TARGETS_FILE")]
    else:
        urls = _from_template(settings, fleet)
    targets: dict[str, tuple[str, Target]] = {}
    for where, url in urls:
        try:
            target = Target(url, *normalize_url(url))
        except ConfigError as error:
            raise ConfigError(f"{where}: {error}") from None
        if target.shown in targets:
            raise ConfigError(f"{where}: the same database as {targets[target.shown][0]}")
        targets[target.shown] = (where, target)
    return [target for _, target in targets.values()]


def shard_of(targets: Iterable[Target], fleet: FleetSettings) -> list[Target]:
    """The targets this process migrates."""
    return [t for t in targets if t.shard(fleet.shards) == fleet.shard_index]


def _from_template(settings: Settings, fleet: FleetSettings) -> list[tuple[str, str]]:
    """The template filled in with each name (URL-encoded, so a name cannot change the URL)."""
    assert fleet.url_template is not None
    if fleet.names_file is not None:
        names = [name for _, name in _lines(fleet.names_file, "MIGRATE_TARGET_NAMES_FILE")]
    else:
        names = _queried_names(settings, fleet)
    return [(f"MIGRATE_TARGET_URL_TEMPLATE with name {name!r}",
             fleet.url_template.replace(NAME_PLACEHOLDER, quote(name, safe="")))
            for name in names]


def _lines(path: Path, variable: str) -> list[tuple[int, str]]:
    """(line number, text) of each line that is neither blank nor a # comment."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        reason = getattr(error, "strerror", None) or type(error).__name__
        raise ConfigError(f"{variable}={path} cannot be read: {reason}") from None
    return [(n, line.strip()) for n, line in enumerate(text.splitlines(), 1)
            if line.strip() and not line.strip().startswith("#")]


def _queried_names(settings: Settings, fleet: FleetSettings) -> list[str]:
    """The first column of MIGRATE_TARGET_NAMES_QUERY, run on DATABASE_URL (the catalog)."""
    if settings.database_url is None:
        raise ConfigError("MIGRATE_TARGET_NAMES_QUERY runs on DATABASE_URL: set it "
                          "(or DATABASE_URL_FILE) to the catalog database")
    from migration_job.fleet.catalog import query_names

    assert fleet.names_query is not None
    return query_names(settings, fleet.names_query)
