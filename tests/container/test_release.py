"""Release hygiene of the image: its version everywhere the job reports one, and its OCI labels."""

from __future__ import annotations

import json
from datetime import datetime

import pytest

from migration_job import __version__
from tests.container.conftest import REPO, Database
from tests.container.engine import docker

pytestmark = pytest.mark.container
OCI = "org.opencontainers.image."


def labels(image: str) -> dict[str, str]:
    """The image's labels."""
    found: dict[str, str] = json.loads(docker("image", "inspect", image).stdout)[0]["Config"][
        "Labels"]
    return found


def test_history_table_records_the_image_s_version(image: str, database: Database) -> None:
    """The image runs the package from /app, not installed: job_version must not say
    'unknown' there."""
    upgrade = database.run(image, "upgrade")
    assert upgrade.code == 0, upgrade.stderr
    recorded = database.query("SELECT DISTINCT job_version FROM alembic_version_history")
    assert recorded == labels(image)[f"{OCI}version"]


def test_version_flag_first_log_line_and_label_agree(image: str, database: Database) -> None:
    version = docker("run", "--rm", image, "--version").stdout
    assert version == f"migration-job {labels(image)[f'{OCI}version']}\n"
    status = database.run(image, "status")
    assert status.code == 0, status.stderr
    first = json.loads(status.stderr.splitlines()[0])  # stdout has status's own output
    assert f"migration-job {first['job_version']}\n" == version


def test_oci_labels_are_set_at_build_time(image: str,
                                          image_build_args: dict[str, str]) -> None:
    found = labels(image)
    assert found[f"{OCI}version"] == image_build_args["VERSION"]
    assert found[f"{OCI}revision"] == image_build_args["REVISION"]
    assert len(found[f"{OCI}revision"]) == 40  # the tests run from a git checkout
    assert found[f"{OCI}created"] == image_build_args["CREATED"]
    assert datetime.fromisoformat(found[f"{OCI}created"]).tzinfo is not None
    assert found[f"{OCI}licenses"] == "MIT"
    assert found[f"{OCI}source"].startswith("https://")
    assert found[f"{OCI}base.name"] == image_build_args["PYTHON_IMAGE"]


def test_dockerfile_s_default_version_is_the_package_s() -> None:
    """A plain `docker build .` labels the image with the package's version too."""
    assert f"\nARG VERSION={__version__}\n" in (REPO / "Dockerfile").read_text()
