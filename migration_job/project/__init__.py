"""The Alembic project as its configuration describes it, read without importing Alembic.

The configuration is an alembic.ini section ([alembic], or the one -n names), a pyproject.toml
[tool.alembic] table, or both: as in Alembic, the ini's options win over the table's.
"""

from __future__ import annotations

import configparser
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from migration_job.errors import ConfigError

if TYPE_CHECKING:
    from migration_job.settings import Settings

# Alembic reads these from env.py's configure(); a project that changes them states them in
# its configuration too, so the job's fast path and lock key look at the same table.
VERSION_TABLE_OPTION = "version_table"
VERSION_SCHEMA_OPTION = "version_table_schema"
# Alembic's multidb template lists its databases here.
DATABASES_OPTION = "databases"
# What decides which revision files Alembic loads (migration_job.project.script_files reads them).
LOADING_OPTIONS = ("version_locations", "path_separator", "version_path_separator",
                   "recursive_version_locations", "sourceless")
OPTIONS = ("script_location", VERSION_TABLE_OPTION, VERSION_SCHEMA_OPTION, DATABASES_OPTION,
           *LOADING_OPTIONS)
MULTIPLE_DATABASES = ("is a multi-database project (`databases = {}`, Alembic's multidb "
                      "template): each of its revisions changes every database at once, "
                      "which one DATABASE_URL, one lock and one version table cannot cover; "
                      "migrate it with plain `alembic upgrade`, or split it into one project "
                      "per database")


class Project(NamedTuple):
    """Where an Alembic project keeps its scripts and its version table."""

    config_path: Path
    script_location: Path
    version_table: str = "alembic_version"
    version_table_schema: str | None = None
    # The pyproject.toml that holds part of the configuration, if it is not config_path.
    toml_path: Path | None = None
    # The loading options as the ini says them (strings) and as [tool.alembic] does (any type).
    ini_loading: tuple[tuple[str, str], ...] = ()
    toml_loading: tuple[tuple[str, object], ...] = ()
    # script_location as written: Alembic reads a relative one from the working directory.
    location_as_written: str = ""

    @property
    def config_files(self) -> tuple[Path, ...]:
        """Every file the configuration comes from (the manifest's fingerprint covers them)."""
        return (self.config_path,) if self.toml_path is None else (self.config_path,
                                                                   self.toml_path)

    def history_table(self, configured: str | None) -> str:
        """The applied-history table's name: MIGRATE_HISTORY_TABLE, else
        `<version_table>_history` (in the version table's schema)."""
        return configured or f"{self.version_table}_history"


def project_for(settings: Settings) -> Project:
    """The project the settings point at. Flask-Migrate keeps alembic.ini in its migrations
    directory and names that directory the script location itself (FLASK_APP)."""
    script_location = settings.alembic_config.parent if settings.flask_app else None
    return read_project(settings.ini_config, settings.toml_config, settings.ini_section,
                        script_location)


def read_project(ini: Path | None, toml: Path | None = None, section_name: str = "alembic",
                 script_location: Path | None = None) -> Project:
    """Read the options as Alembic does (with %(here)s: the folder of the file that says it);
    a `script_location` given wins over the configuration's, as Flask-Migrate's does."""
    named = ini or toml
    assert named is not None
    options: dict[str, str] = {}
    toml_loading: dict[str, object] = {}
    here = named.resolve().parent
    if toml is not None:
        options, toml_loading, here = _toml_options(toml)
    ini_loading: dict[str, str] = {}
    if ini is not None:
        ini_options = _ini_options(ini, section_name, required=toml is None)
        if ini_options.get("script_location"):
            here = ini.resolve().parent
        ini_loading = {n: v for n, v in ini_options.items() if n in LOADING_OPTIONS}
        options.update(ini_options)
    if options.get(DATABASES_OPTION):
        raise ConfigError(f"ALEMBIC_CONFIG={named} "
                          + MULTIPLE_DATABASES.format(options[DATABASES_OPTION]))
    if script_location is not None:
        options["script_location"] = str(script_location)
    location = options.get("script_location", "")
    if not location:
        where = f"[{section_name}]" if toml is None else f"[{section_name}] or [tool.alembic]"
        raise ConfigError(f"ALEMBIC_CONFIG={named} has no script_location in {where}")
    table = options.get(VERSION_TABLE_OPTION) or "alembic_version"
    schema = options.get(VERSION_SCHEMA_OPTION) or None
    extra = toml if ini is not None and toml is not None else None
    loading = (tuple(ini_loading.items()), tuple(toml_loading.items()))
    script_location = Path(location)
    if ":" in location and not script_location.is_absolute() and not location.startswith("."):
        # package:resource locations are resolved by Alembic itself; keep the text.
        return Project(named, script_location, table, schema, extra, *loading)
    if not script_location.is_absolute():
        script_location = here / script_location
    return Project(named, script_location, table, schema, extra, *loading, location)


def _ini_options(path: Path, section_name: str, required: bool) -> dict[str, str]:
    parser = configparser.ConfigParser(defaults={"here": str(path.resolve().parent)})
    try:
        parser.read(path, encoding="utf-8")
        if not parser.has_section(section_name):
            if not required:
                return {}
            hint = "" if section_name == "alembic" else " (MIGRATE_INI_SECTION)"
            raise ConfigError(f"ALEMBIC_CONFIG={path} is not a usable alembic.ini: it has no "
                              f"[{section_name}] section{hint}")
        section = parser[section_name]
        return {name: section[name].strip() for name in OPTIONS if name in section}
    except (configparser.Error, UnicodeDecodeError) as error:
        raise ConfigError(f"ALEMBIC_CONFIG={path} is not a usable alembic.ini: "
                          f"{type(error).__name__}: {str(error).splitlines()[0]}") from None


def _toml_options(path: Path) -> tuple[dict[str, str], dict[str, object], Path]:
    import tomllib

    here = path.resolve().parent
    try:
        with open(path, "rb") as file:
            table = tomllib.load(file).get("tool", {}).get("alembic", {})
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise ConfigError(f"{path} is not a usable pyproject.toml: {error}") from None
    options = {name: str(table[name]).replace("%(here)s", str(here)).strip()
               for name in OPTIONS if isinstance(table.get(name), str)}
    return options, {n: table[n] for n in LOADING_OPTIONS if n in table}, here
