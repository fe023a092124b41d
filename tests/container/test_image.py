"""The image itself: who it runs as, how big it is, and that it runs locked down."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.container.conftest import LOCKED_DOWN, REPO, REVISIONS, Database
from tests.container.engine import docker

pytestmark = pytest.mark.container


def test_image_runs_as_a_numeric_non_root_user_by_default(image: str) -> None:
    config = json.loads(docker("image", "inspect", image).stdout)[0]["Config"]
    assert config["User"] == "10001:0"
    assert config["Entrypoint"] == ["python3", "/app/entrypoint.py"]
    assert config["Cmd"] == ["upgrade"]
    assert config["Labels"]["org.opencontainers.image.title"] == "migration-job"
    whoami = docker("run", "--rm", "--entrypoint", "id", image, "-u").stdout.strip()
    assert whoami == "10001"


def test_code_is_readable_not_writable_for_an_arbitrary_uid_in_group_0(image: str) -> None:
    probe = ("import os, sys; paths = ['/app/entrypoint.py', '/app/migrations/versions', "
             "'/opt/venv/bin/python']; sys.exit(any(not os.access(p, os.R_OK) or "
             "os.access(p, os.W_OK) for p in paths))")
    docker("run", "--rm", "--user", "12345:0", "--entrypoint", "python3", image, "-c", probe)


def test_migrates_with_read_only_root_arbitrary_uid_and_no_capabilities(
        image: str, database: Database) -> None:
    upgrade = database.run(image, "upgrade", options=LOCKED_DOWN)
    assert upgrade.code == 0, upgrade.stderr
    assert upgrade.event("upgrade_finished")
    status = database.run(image, "status", options=LOCKED_DOWN)
    assert status.code == 0, status.stderr
    check = database.run(image, "check", options=LOCKED_DOWN)
    assert check.code == 0, check.stderr


def test_configuration_error_is_exit_code_2_through_the_entrypoint(image: str) -> None:
    done = docker("run", "--rm", "-e", "DATABASE_URL_FILE=/run/secrets/missing", image,
                  check=False)
    assert done.returncode == 2, done.stdout + done.stderr


def test_record_image_size(image: str, base_images: dict[str, str],
                           capsys: pytest.CaptureFixture[str]) -> None:
    """Not an assertion on size: prints it (and .cache/image-size.txt) for the README."""
    size = int(docker("image", "inspect", "-f", "{{.Size}}", image).stdout)
    base = int(docker("image", "inspect", "-f", "{{.Size}}", base_images["PYTHON_IMAGE"]).stdout)
    layers = docker("history", "--no-trunc", "--format", "{{.Size}}\t{{.CreatedBy}}", image).stdout
    base_layers = len(docker("history", "-q", base_images["PYTHON_IMAGE"]).stdout.split())
    added = [re.sub(r"/bin/sh -c #\(nop\)\s*|\S+:[0-9a-f]{64}\s*", "", line).strip()
             for line in layers.splitlines()[:-base_layers] if not line.startswith("0B")]
    report = (f"image {image} on {base_images['PYTHON_IMAGE']}: {size / 1e6:.1f} MB in total, "
              f"{(size - base) / 1e6:.1f} MB added by the project's layers:\n  "
              + "\n  ".join(added))
    out = Path(REPO / ".cache" / "image-size.txt")
    out.parent.mkdir(exist_ok=True)
    out.write_text(report + "\n")
    with capsys.disabled():
        print(f"\n{report}")
    assert size > base


def test_lint_runs_squawk_in_the_locked_down_image(image: str) -> None:
    """squawk is in the image, and the example project passes its own .squawk.toml."""
    done = docker("run", "--rm", *LOCKED_DOWN, "-e", "DATABASE_URL=postgresql://mj@127.0.0.1:1/x",
                  "-e", "MIGRATE_TERMINATION_LOG=", image, "lint", "--from", "0001", check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count(": clean\n") == len(REVISIONS) - 1
