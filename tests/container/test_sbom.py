"""The image's SBOM: CycloneDX JSON at /app/sbom.cdx.json, exactly the lock's packages."""

from __future__ import annotations

import json
from typing import Any

import pytest
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator
from packaging.requirements import Requirement

from tests.container.conftest import REPO
from tests.container.engine import docker
from tests.unit.test_environment_file import normalized

pytestmark = pytest.mark.container
SBOM = "/app/sbom.cdx.json"
# Every distribution in the job's venv, as the image's own Python sees them.
LIST_INSTALLED = ("import importlib.metadata as m, json; print(json.dumps(sorted("
                  "[d.metadata['Name'], d.version] for d in m.distributions())))")


@pytest.fixture(scope="module")
def sbom_text(image: str) -> str:
    """The SBOM file as the image ships it."""
    return docker("run", "--rm", "--entrypoint", "cat", image, SBOM).stdout


@pytest.fixture(scope="module")
def sbom(sbom_text: str) -> dict[str, Any]:
    """The SBOM, parsed."""
    document: dict[str, Any] = json.loads(sbom_text)
    return document


def lock_requirements_for_the_image() -> dict[str, str]:
    """name -> version of requirements.lock's pins whose environment marker holds on Linux
    CPython, as in the image (the lock is universal: tzdata, for one, is Windows-only)."""
    pins: dict[str, str] = {}
    for line in (REPO / "requirements.lock").read_text().splitlines():
        if line and not line[0].isspace():
            requirement = Requirement(line.removesuffix("\\").strip())
            if requirement.marker is None or requirement.marker.evaluate(
                    {"sys_platform": "linux", "implementation_name": "cpython"}):
                pins[normalized(requirement.name)] = str(requirement.specifier).removeprefix("==")
    return pins


def components(sbom: dict[str, Any]) -> dict[str, str]:
    """name -> version of the SBOM's components."""
    return {normalized(c["name"]): c["version"] for c in sbom["components"]}


def test_sbom_is_valid_cyclonedx_json(sbom_text: str, sbom: dict[str, Any]) -> None:
    assert sbom["bomFormat"] == "CycloneDX"
    assert sbom["specVersion"] == "1.6"
    error = JsonStrictValidator(SchemaVersion.V1_6).validate_str(sbom_text)
    assert error is None, error


def test_sbom_lists_exactly_the_lock_s_packages(sbom: dict[str, Any]) -> None:
    expected = lock_requirements_for_the_image()
    assert len(expected) >= 10
    assert components(sbom) == expected
    for component in sbom["components"]:
        name, version = normalized(component["name"]), component["version"]
        assert component["purl"] == f"pkg:pypi/{name}@{version}", component


def test_sbom_is_what_the_image_has_installed(image: str, sbom: dict[str, Any]) -> None:
    """Nothing more (the generator and pip stay in the build stage), nothing less."""
    installed = json.loads(docker("run", "--rm", "--entrypoint", "python3", image, "-c",
                                  LIST_INSTALLED).stdout)
    assert {normalized(name): version for name, version in installed} == components(sbom)
    generator = docker("run", "--rm", "--entrypoint", "ls", image, "/opt/sbom", check=False)
    assert generator.returncode != 0, generator.stdout


def test_sbom_names_the_job_and_its_version(image: str, sbom: dict[str, Any]) -> None:
    version = json.loads(docker("image", "inspect", image).stdout)[0]["Config"]["Labels"][
        "org.opencontainers.image.version"]
    root = sbom["metadata"]["component"]
    assert (root["name"], root["version"], root["type"]) == ("migration-job", version,
                                                             "application")
    tools = [t["name"] for t in sbom["metadata"]["tools"]["components"]]
    assert "cyclonedx-py" in tools
