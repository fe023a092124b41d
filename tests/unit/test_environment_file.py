"""environment.yml (the conda install path) pins what requirements.lock pins for the image."""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable
from typing import Any

import yaml

from tests.support.job import REPO

# name[extras]==version, and an environment marker after ';' (the lock keeps them).
PIN = re.compile(r"([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[A-Za-z0-9,._-]+\])?==([^\s;\\]+)"
                 r"(?:\s*;.*)?")


def normalized(name: str) -> str:
    """A distribution name as pip compares them (PEP 503)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def pins(specs: Iterable[str], source: str) -> dict[str, str]:
    """name -> version of `name==version` specs; any other form is a failure naming it."""
    found: dict[str, str] = {}
    for spec in specs:
        match = PIN.fullmatch(spec.strip())
        assert match, f"{source}: {spec!r} is not pinned as name==version"
        found[normalized(match[1])] = match[2]
    return found


def lock_pins() -> dict[str, str]:
    """Every package requirements.lock pins (the lines that start a requirement)."""
    lines = (REPO / "requirements.lock").read_text().splitlines()
    return pins((line.removesuffix("\\") for line in lines if PIN.match(line)),
                "requirements.lock")


def pyproject_pins() -> dict[str, str]:
    """pyproject.toml's runtime dependencies (what `pip install .` asks for)."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    return pins(project["dependencies"], "pyproject.toml")


def environment() -> dict[str, Any]:
    """environment.yml as conda reads it."""
    document = yaml.safe_load((REPO / "environment.yml").read_text())
    assert isinstance(document, dict), "environment.yml is not a mapping"
    return document


def environment_pip_pins() -> dict[str, str]:
    """The pins of environment.yml's `pip:` section."""
    sections = [d["pip"] for d in environment()["dependencies"] if isinstance(d, dict)]
    assert len(sections) == 1, "environment.yml needs exactly one `pip:` section"
    return pins(sections[0], "environment.yml")


def disagreements(left: tuple[str, dict[str, str]], right: tuple[str, dict[str, str]]) -> str:
    """One line per package the two sources pin differently (or only one of them pins)."""
    (left_name, left_pins), (right_name, right_pins) = left, right
    return "\n".join(f"  {name}: {left_name} {left_pins.get(name, 'has no pin')}, "
                     f"{right_name} {right_pins.get(name, 'has no pin')}"
                     for name in sorted(left_pins.keys() | right_pins.keys())
                     if left_pins.get(name) != right_pins.get(name))


class TestEnvironmentFile:
    """conda's environment.yml installs the image's versions: every lock pin, nothing else."""

    def test_pip_section_pins_exactly_the_lock(self) -> None:
        differ = disagreements(("environment.yml", environment_pip_pins()),
                               ("requirements.lock", lock_pins()))
        assert not differ, ("environment.yml and requirements.lock disagree; copy the lock's "
                            f"versions into environment.yml's pip section:\n{differ}")

    def test_python_is_the_image_s_default_base(self) -> None:
        image = re.search(r"^ARG PYTHON_IMAGE=python:(\d+\.\d+)",
                          (REPO / "Dockerfile").read_text(), re.MULTILINE)
        assert image, "Dockerfile has no python:X.Y default for PYTHON_IMAGE"
        assert f"python={image[1]}" in environment()["dependencies"], (
            f"environment.yml should ask for python={image[1]}, the image's default base")


class TestTopLevelPins:
    """pyproject.toml, requirements.in and requirements.lock pin one version of each
    runtime dependency."""

    def test_pyproject_pins_what_requirements_in_pins(self) -> None:
        lines = (REPO / "requirements.in").read_text().splitlines()
        wanted = [line for line in lines if line.strip() and not line.startswith("#")]
        differ = disagreements(("pyproject.toml", pyproject_pins()),
                               ("requirements.in", pins(wanted, "requirements.in")))
        assert not differ, f"pyproject.toml and requirements.in disagree:\n{differ}"

    def test_the_lock_holds_each_top_level_pin(self) -> None:
        top = pyproject_pins()
        locked = {name: version for name, version in lock_pins().items() if name in top}
        differ = disagreements(("pyproject.toml", top), ("requirements.lock", locked))
        assert not differ, f"requirements.lock is stale (run scripts/lock):\n{differ}"
