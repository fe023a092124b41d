"""The images the container benchmark runs, built with the real Docker engine as the tests build
them, and what each of their layers adds.

The job's image and the derived-image example come from the repository's own Dockerfiles. The
plain-Alembic image is generated here, in a temporary folder: the same base, alembic, sqlalchemy
and psycopg2-binary hash-pinned from requirements.lock, and the same project files.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from benchmarks.measure import run_simple

REPO = Path(__file__).resolve().parent.parent
JOB, NO_MANIFEST, YOUR_PROJECT, PLAIN = ("migration-job:bench", "migration-job:bench-no-manifest",
                                         "migration-job:bench-your-project",
                                         "migration-job:bench-plain-alembic")
NAMES = {JOB: "the job's image", NO_MANIFEST: "the job's image without its manifest",
         YOUR_PROJECT: "derived image (your-project)", PLAIN: "plain Alembic's image"}
# What plain `alembic upgrade head` on PostgreSQL installs: these and their dependencies.
PLAIN_PACKAGES = ("alembic", "mako", "markupsafe", "sqlalchemy", "typing-extensions",
                  "psycopg2-binary")
PLAIN_DOCKERFILE = """\
ARG PYTHON_IMAGE
FROM ${PYTHON_IMAGE}
COPY requirements.txt /tmp/
RUN python3 -m venv /opt/venv \\
    && /opt/venv/bin/python -m pip install --no-cache-dir --disable-pip-version-check \\
        --require-hashes --only-binary=:all: -r /tmp/requirements.txt \\
    && /opt/venv/bin/python -m pip uninstall --yes --quiet pip setuptools
COPY project /project
COPY app /app
# Bytecode at build, as the job's image has it: a container never compiles at start.
RUN /opt/venv/bin/python -m compileall -q /app /project
ENV PYTHONDONTWRITEBYTECODE=1 PATH=/opt/venv/bin:$PATH
WORKDIR /app
"""
NO_MANIFEST_DOCKERFILE = """\
ARG JOB_IMAGE
FROM ${JOB_IMAGE}
USER root
RUN rm /app/migrations/heads.manifest.json
USER 10001:0
"""


@dataclass(frozen=True)
class Layer:
    """One layer of an image: the bytes it adds and the Dockerfile step that made it."""

    size: int
    step: str


def docker(*args: str) -> str:
    """`docker ARGS`'s output; raise with its output if it fails."""
    return run_simple(["docker", *args], timeout=900)


def python_image() -> str:
    """python:3.12-slim if present or pullable, else scripts/base-images' stand-in."""
    done = subprocess.run([str(REPO / "scripts" / "base-images")], capture_output=True,
                          text=True, timeout=1200, check=True)
    found = dict(line.split("=", 1) for line in done.stdout.splitlines() if "=" in line)
    return found["PYTHON_IMAGE"]


def plain_requirements(lock: str, names: tuple[str, ...] = PLAIN_PACKAGES) -> str:
    """The blocks of requirements.lock (a pin, its hashes, its `# via` lines) for `names`."""
    blocks = re.split(r"\n(?=\S)", lock)
    return "\n".join(b for b in blocks if re.split(r"[=\s;]", b, maxsplit=1)[0] in names) + "\n"


def build_all(base: str) -> None:
    """Build the job's image, the example derived from it, and the two throwaway images."""
    docker("build", "-q", "--build-arg", f"PYTHON_IMAGE={base}", "-t", JOB, str(REPO))
    docker("build", "-q", "--build-arg", f"MIGRATION_JOB_IMAGE={JOB}", "-t", YOUR_PROJECT,
           str(REPO / "examples" / "your-project"))
    with tempfile.TemporaryDirectory(prefix="container-bench-") as temp:
        context = Path(temp)
        (context / "Dockerfile").write_text(NO_MANIFEST_DOCKERFILE)
        docker("build", "-q", "--build-arg", f"JOB_IMAGE={JOB}", "-t", NO_MANIFEST, temp)
    build_plain(base)


def build_plain(base: str) -> None:
    """Plain Alembic's image: the same base, its packages hash-pinned, the same projects."""
    with tempfile.TemporaryDirectory(prefix="container-bench-") as temp:
        context = Path(temp)
        (context / "Dockerfile").write_text(PLAIN_DOCKERFILE)
        (context / "requirements.txt").write_text(
            plain_requirements((REPO / "requirements.lock").read_text()))
        skip = shutil.ignore_patterns("__pycache__", "heads.manifest.json")
        shutil.copytree(REPO / "examples" / "your-project", context / "project", ignore=skip)
        for name in ("migrations", "app"):
            shutil.copytree(REPO / name, context / "app" / name, ignore=skip)
        shutil.copy(REPO / "alembic.ini", context / "app")
        docker("build", "-q", "--build-arg", f"PYTHON_IMAGE={base}", "-t", PLAIN, temp)


def remove_all() -> None:
    """Remove the benchmark's images (the base images stay)."""
    subprocess.run(["docker", "rmi", "-f", JOB, NO_MANIFEST, YOUR_PROJECT, PLAIN],
                   capture_output=True, check=False)


def image_size(image: str) -> int:
    """The image's size in bytes, as `docker image inspect` gives it."""
    return int(docker("image", "inspect", "-f", "{{.Size}}", image))


def added_layers(image: str, below: str) -> list[Layer]:
    """The layers `image` adds on top of `below` that add bytes, oldest first."""
    history = docker("history", "--human=false", "--no-trunc", "--format",
                     "{{.Size}}\t{{.CreatedBy}}", image).splitlines()
    below_count = len(docker("history", "-q", below).split())
    layers = [Layer(int(size), short_step(step))
              for size, step in (line.split("\t", 1) for line in history[:-below_count])]
    return [layer for layer in reversed(layers) if layer.size > 0]


def short_step(created_by: str) -> str:
    """A Dockerfile step as `docker history` records it, shortened for a table cell."""
    step = re.sub(r"^\|\d+ (\S+=\S* )*", "", created_by)  # the build arguments in effect
    step = re.sub(r"^/bin/sh -c #\(nop\)\s*", "", step)
    step = re.sub(r"^/bin/sh -c ", "RUN ", step)
    step = re.sub(r"(dir|file):[0-9a-f]{64}", r" \1", step)  # docker records no space before
    step = re.sub(r"\s+", " ", step).strip()
    if not step.split(" ", 1)[0].isupper():
        step = f"RUN {step}"  # an exec-form RUN is recorded as its bare command
    return step if len(step) <= 90 else step[:87] + "..."
