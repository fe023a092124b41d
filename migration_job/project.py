"""The Alembic project as `alembic.ini` describes it, read without importing Alembic."""

from __future__ import annotations

import configparser
from pathlib import Path
from typing import NamedTuple

from migration_job.errors import ConfigError

# Alembic reads these from env.py's configure(); a project that changes them states them in
# alembic.ini too, so the job's fast path and lock key look at the same table.
VERSION_TABLE_OPTION = "version_table"
VERSION_SCHEMA_OPTION = "version_table_schema"


class Project(NamedTuple):
    """Where an Alembic project keeps its scripts and its version table."""

    config_path: Path
    script_location: Path
    version_table: str = "alembic_version"
    version_table_schema: str | None = None


def read_project(config_path: Path, section_name: str = "alembic") -> Project:
    """Parse alembic.ini's [alembic] section (or the one MIGRATE_INI_SECTION names) the way
    Alembic does (with %(here)s)."""
    here = str(config_path.resolve().parent)
    parser = configparser.ConfigParser(defaults={"here": here})
    try:
        parser.read(config_path, encoding="utf-8")
        section = parser[section_name]
        location = section.get("script_location", "").strip()
        table = section.get(VERSION_TABLE_OPTION, "alembic_version").strip()
        schema = section.get(VERSION_SCHEMA_OPTION, "").strip() or None
    except KeyError:
        raise ConfigError(f"ALEMBIC_CONFIG={config_path} is not a usable alembic.ini: it has "
                          f"no [{section_name}] section"
                          + ("" if section_name == "alembic" else " (MIGRATE_INI_SECTION)")
                          ) from None
    except (configparser.Error, UnicodeDecodeError) as error:
        raise ConfigError(f"ALEMBIC_CONFIG={config_path} is not a usable alembic.ini: "
                          f"{type(error).__name__}: {str(error).splitlines()[0]}") from None
    if not location:
        raise ConfigError(f"ALEMBIC_CONFIG={config_path} has no script_location in "
                          f"[{section_name}]")
    script_location = Path(location)
    if ":" in location and not script_location.is_absolute() and not location.startswith("."):
        # package:resource locations are resolved by Alembic itself; keep the text.
        return Project(config_path, script_location, table, schema)
    if not script_location.is_absolute():
        script_location = Path(here) / script_location
    return Project(config_path, script_location, table or "alembic_version", schema)
