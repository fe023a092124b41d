"""The `fleet` command's options: where the targets come from, how many at once, which shard."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import NamedTuple

from migration_job.errors import ConfigError

DEFAULT_CONCURRENCY = 4
# Each target in flight holds one server connection and one process: beyond this, a typo.
MAX_CONCURRENCY = 64
NAME_PLACEHOLDER = "{name}"


class FleetSettings(NamedTuple):
    """Validated fleet options (Settings.fleet); exactly one source of targets is set."""

    # MIGRATE_TARGETS_FILE: one URL a line.
    targets_file: Path | None
    # MIGRATE_TARGET_URL_TEMPLATE: a URL with {name}, filled in from the names below.
    url_template: str | None
    # MIGRATE_TARGET_NAMES_FILE: one name a line.
    names_file: Path | None
    # MIGRATE_TARGET_NAMES_QUERY: SQL run on DATABASE_URL; its first column is the names.
    names_query: str | None
    # MIGRATE_CONCURRENCY: targets migrated at once, each in its own process.
    concurrency: int
    # JOB_COMPLETION_INDEX and MIGRATE_SHARDS: this process takes the targets whose identity
    # hashes to shard_index modulo shards.
    shard_index: int
    shards: int
    # MIGRATE_FLEET_FAIL_FAST=1: start no further target after the first failure.
    fail_fast: bool


def load_fleet_settings(env: Mapping[str, str]) -> FleetSettings:
    """Read and check the fleet's variables."""
    targets_file = _path(env, "MIGRATE_TARGETS_FILE")
    template = env.get("MIGRATE_TARGET_URL_TEMPLATE", "").strip() or None
    names_file = _path(env, "MIGRATE_TARGET_NAMES_FILE")
    names_query = env.get("MIGRATE_TARGET_NAMES_QUERY", "").strip() or None
    if (targets_file is None) == (template is None):
        raise ConfigError("fleet needs its targets: set MIGRATE_TARGETS_FILE, or "
                          "MIGRATE_TARGET_URL_TEMPLATE with names (not both)")
    if template is not None:
        if NAME_PLACEHOLDER not in template:
            raise ConfigError("MIGRATE_TARGET_URL_TEMPLATE has no {name} placeholder")
        if (names_file is None) == (names_query is None):
            raise ConfigError("MIGRATE_TARGET_URL_TEMPLATE needs its names from exactly one of "
                              "MIGRATE_TARGET_NAMES_FILE and MIGRATE_TARGET_NAMES_QUERY")
    elif names_file is not None or names_query is not None:
        raise ConfigError("MIGRATE_TARGET_NAMES_FILE and MIGRATE_TARGET_NAMES_QUERY go with "
                          "MIGRATE_TARGET_URL_TEMPLATE, not with MIGRATE_TARGETS_FILE")
    shards = _integer(env, "MIGRATE_SHARDS", 1, 1, 100_000)
    shard_index = _integer(env, "JOB_COMPLETION_INDEX", 0, 0, shards - 1)
    fail_fast = env.get("MIGRATE_FLEET_FAIL_FAST", "0").strip().lower()
    if fail_fast not in ("0", "1", "false", "true", ""):
        raise ConfigError(f"MIGRATE_FLEET_FAIL_FAST={fail_fast!r} is not 0 or 1")
    return FleetSettings(
        targets_file=targets_file, url_template=template, names_file=names_file,
        names_query=names_query,
        concurrency=_integer(env, "MIGRATE_CONCURRENCY", DEFAULT_CONCURRENCY, 1, MAX_CONCURRENCY),
        shard_index=shard_index, shards=shards, fail_fast=fail_fast in ("1", "true"))


def _path(env: Mapping[str, str], name: str) -> Path | None:
    value = env.get(name, "").strip()
    return Path(value) if value else None


def _integer(env: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    """An integer variable within [low, high]."""
    text = env.get(name, "").strip()
    if not text:
        return default
    try:
        value = int(text, 10)
    except ValueError:
        raise ConfigError(f"{name}={text!r} is not an integer") from None
    if not low <= value <= high:
        raise ConfigError(f"{name}={value} is out of range: {low} to {high}")
    return value
