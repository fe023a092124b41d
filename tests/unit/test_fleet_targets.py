"""fleet: its options, its targets file, and the shard each target belongs to."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from migration_job.errors import ConfigError
from migration_job.fleet.targets import Target, fleet_targets, shard_of
from migration_job.settings.fleet import load_fleet_settings
from migration_job.settings.load import load_settings

URLS = [f"postgresql://app:s%40cret{n}@db{n % 3}:5432/tenant_{n}" for n in range(200)]


def targets_from(tmp_path: Path, text: str, **env: str) -> list[Target]:
    """The fleet's targets for a targets file holding `text`."""
    path = tmp_path / "targets"
    path.write_text(text)
    settings = load_settings({"command": "fleet"}, {"MIGRATE_TARGETS_FILE": str(path),
                                                    "MIGRATE_TERMINATION_LOG": "", **env})
    return fleet_targets(settings)


class TestTargetsFile:
    """One URL a line; comments and blank lines ignored; every line checked up front."""

    def test_comments_and_blanks_are_ignored(self, tmp_path: Path) -> None:
        found = targets_from(tmp_path, f"# tenants\n\n  {URLS[0]}  \n# {URLS[1]}\n{URLS[2]}\n")
        assert [t.given_url for t in found] == [URLS[0], URLS[2]]
        assert found[0].shown == "postgresql://app:***@db0:5432/tenant_0"

    def test_a_trivial_password_is_masked_only_as_the_password(self, tmp_path: Path) -> None:
        found = targets_from(tmp_path, "postgresql://app:a@database.example:5432/tenant_a\n")
        assert found[0].shown == "postgresql://app:***@database.example:5432/tenant_a"

    def test_a_bad_line_is_named_without_its_password(self, tmp_path: Path) -> None:
        with pytest.raises(ConfigError, match=r"targets, line 2: .*malformed") as caught:
            targets_from(tmp_path, f"{URLS[0]}\nnot a url p4ssw0rd\n")
        assert "p4ssw0rd" not in str(caught.value)

    def test_the_same_database_twice_is_refused(self, tmp_path: Path) -> None:
        other_password = URLS[0].replace("s%40cret0", "rotated")
        with pytest.raises(ConfigError, match=r"line 3: the same database as .*line 1"):
            targets_from(tmp_path, f"{URLS[0]}\n{URLS[1]}\n{other_password}\n")


class TestSharding:
    """A target's shard depends on its URL without the password, and on nothing else."""

    def test_shards_are_disjoint_and_cover_every_target(self) -> None:
        targets = [Target(url, url, (url.split(":")[2].split("@")[0],)) for url in URLS]
        shares = [shard_of(targets, load_fleet_settings(
            {"MIGRATE_TARGETS_FILE": "x", "MIGRATE_SHARDS": "4",
             "JOB_COMPLETION_INDEX": str(i)})) for i in range(4)]
        assert sorted(t.given_url for share in shares for t in share) == sorted(URLS)
        assert all(30 < len(share) < 70 for share in shares)

    def test_the_shard_survives_reordering_and_password_rotation(self) -> None:
        secret = "s%40cret7"
        target = Target(URLS[7], URLS[7], (secret,))
        rotated = URLS[7].replace(secret, "n3w")
        assert Target(rotated, rotated, ("n3w",)).shard(4) == target.shard(4)
        shuffled = URLS[::-1][70:] + URLS[::-1][:70]

        def share(urls: list[str]) -> set[str]:
            settings = load_fleet_settings({"MIGRATE_TARGETS_FILE": "x", "MIGRATE_SHARDS": "3",
                                            "JOB_COMPLETION_INDEX": "1"})
            return {t.given_url for t in shard_of(
                [Target(u, u, (u.split(":")[2].split("@")[0],)) for u in urls], settings)}
        assert share(URLS) == share(shuffled)

    def test_the_documented_rule(self) -> None:
        """SHA-256 of the URL with the password masked, first 8 bytes big-endian, modulo."""
        import hashlib

        target = Target(URLS[0], URLS[0], ("s%40cret0",))
        digest = hashlib.sha256(b"postgresql://app:***@db0:5432/tenant_0").digest()
        assert target.shard(5) == int.from_bytes(digest[:8], "big") % 5


class TestOptions:
    """Each misconfiguration is one line and exit 2."""

    @pytest.mark.parametrize(("env", "complaint"), [
        ({}, "fleet needs its targets"),
        ({"MIGRATE_TARGETS_FILE": "t", "MIGRATE_TARGET_URL_TEMPLATE": "x{name}"}, "not both"),
        ({"MIGRATE_TARGET_URL_TEMPLATE": "postgresql://h/db"}, "no {name} placeholder"),
        ({"MIGRATE_TARGET_URL_TEMPLATE": "postgresql://h/{name}"}, "exactly one of"),
        ({"MIGRATE_TARGETS_FILE": "t", "MIGRATE_TARGET_NAMES_FILE": "n"}, "go with"),
        ({"MIGRATE_TARGETS_FILE": "t", "MIGRATE_CONCURRENCY": "0"}, "out of range: 1 to 64"),
        ({"MIGRATE_TARGETS_FILE": "t", "MIGRATE_CONCURRENCY": "four"}, "not an integer"),
        ({"MIGRATE_TARGETS_FILE": "t", "MIGRATE_SHARDS": "4", "JOB_COMPLETION_INDEX": "4"},
         "JOB_COMPLETION_INDEX=4 is out of range: 0 to 3"),
        ({"MIGRATE_TARGETS_FILE": "t", "MIGRATE_FLEET_FAIL_FAST": "yes"}, "not 0 or 1"),
    ])
    def test_refused(self, env: dict[str, str], complaint: str) -> None:
        with pytest.raises(ConfigError, match=complaint.replace("{", r"\{")):
            load_fleet_settings(env)

    def test_defaults(self) -> None:
        fleet = load_fleet_settings({"MIGRATE_TARGETS_FILE": "t"})
        assert (fleet.concurrency, fleet.shard_index, fleet.shards, fleet.fail_fast) == (
            4, 0, 1, False)

    def test_names_query_needs_the_catalog_url(self, tmp_path: Path) -> None:
        settings = load_settings({"command": "fleet"}, {
            "MIGRATE_TARGET_URL_TEMPLATE": "postgresql://h/{name}",
            "MIGRATE_TARGET_NAMES_QUERY": "SELECT 1", "MIGRATE_TERMINATION_LOG": ""})
        with pytest.raises(ConfigError, match="runs on DATABASE_URL"):
            fleet_targets(settings)


class TestNamesQuery:
    """MIGRATE_TARGET_NAMES_QUERY on a SQLite catalog."""

    def names(self, tmp_path: Path, query: str) -> list[str]:
        catalog = tmp_path / "catalog.db"
        with closing(sqlite3.connect(catalog)) as db, db:
            db.execute("CREATE TABLE tenants (name text)")
            db.executemany("INSERT INTO tenants VALUES (?)", [("acme",), ("beta",), (None,)])
        settings = load_settings({"command": "fleet"}, {
            "DATABASE_URL": f"sqlite:///{catalog}", "MIGRATE_WAIT_TIMEOUT": "0",
            "MIGRATE_TARGET_URL_TEMPLATE": "postgresql://h/{name}",
            "MIGRATE_TARGET_NAMES_QUERY": query, "MIGRATE_TERMINATION_LOG": ""})
        return [t.given_url for t in fleet_targets(settings)]

    def test_the_first_column_names_the_targets(self, tmp_path: Path) -> None:
        assert self.names(tmp_path, "SELECT name FROM tenants ORDER BY name") == [
            "postgresql://h/acme", "postgresql://h/beta"]

    @pytest.mark.parametrize("query", ["; ;", "UPDATE tenants SET name = name WHERE 0"])
    def test_no_result_set_is_a_configuration_error(self, tmp_path: Path, query: str) -> None:
        with pytest.raises(ConfigError, match="returned no result set"):
            self.names(tmp_path, query)
