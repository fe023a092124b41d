"""Container start to exit (issue 12), side by side in one run, with the database at head.

The job's image, the same image without its heads manifest, the derived-image example
(examples/your-project) and plain `alembic upgrade head` in an image of its own on the same
base, against one PostgreSQL of the benchmark's own (containers on the host's network reach it
on 127.0.0.1); `python3 -c pass` in that image is the floor a container start costs. Measured
from the host: `docker run --rm` wall time, and `docker create` and `docker start -a` of a
created container apart. Then the images' sizes, what each layer adds, and what the venv is
made of.

    .venv/bin/python -m benchmarks.container_start [--rounds 11]

Writes benchmarks/work/container_start.json and the "Container start to exit" section of
BENCHMARKS.md (between its markers; `benchmarks/run` keeps that section when it rewrites the
rest).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import secrets
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from typing import Any

from benchmarks import container_images as images
from benchmarks import container_report
from benchmarks.environment import describe_code
from benchmarks.image_contents import contents
from benchmarks.world import WORK
from tests.support.pgserver import PostgresServer

EXAMPLE, YOURS = "example", "your_project"


@dataclass(frozen=True)
class Contender:
    """One way to run a no-op at head in a container."""

    name: str
    image: str
    command: tuple[str, ...]
    database: str
    # The plain-Alembic contender on the same project, for the ratio.
    baseline: str | None = None


PLAIN, PLAIN_YOURS, FLOOR = ("plain `alembic upgrade head`",
                             "plain `alembic upgrade head`, your-project",
                             "floor: `python3 -c pass`")
CONTENDERS = (
    Contender("the job's image (`upgrade`)", images.JOB, (), EXAMPLE, PLAIN),
    Contender("the job's image without its manifest", images.NO_MANIFEST, (), EXAMPLE, PLAIN),
    Contender(PLAIN, images.PLAIN, ("alembic", "-c", "/app/alembic.ini", "upgrade", "head"),
              EXAMPLE),
    Contender("derived image, your-project (`upgrade`)", images.YOUR_PROJECT, (), YOURS,
              PLAIN_YOURS),
    Contender(PLAIN_YOURS, images.PLAIN,
              ("alembic", "-c", "/project/alembic.ini", "upgrade", "head"), YOURS),
    Contender(FLOOR, images.PLAIN, ("python3", "-c", "pass"), EXAMPLE),
)


def docker_timed(*args: str) -> tuple[float, str]:
    """Run `docker ARGS` to completion: its wall time in seconds and its output; raise if it
    exits non-zero."""
    started = time.perf_counter()
    done = subprocess.run(["docker", *args], capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"`docker {' '.join(args[:4])} ...` exited {done.returncode}:\n"
                           f"{(done.stdout + done.stderr)[-2000:]}")
    return elapsed, done.stdout


def run_options(contender: Contender, server: PostgresServer) -> list[str]:
    """`docker run`/`create` options and arguments: the host's network, the URL, the image."""
    return ["--network", "host", "-e", f"DATABASE_URL={server.url(contender.database)}",
            contender.image, *contender.command]


def one_round(contender: Contender, server: PostgresServer) -> dict[str, float]:
    """`docker run --rm`, then `docker create` and `docker start -a` apart: seconds each."""
    run, _ = docker_timed("run", "--rm", *run_options(contender, server))
    name = f"container-bench-{uuid.uuid4().hex[:8]}"
    create, _ = docker_timed("create", "--name", name, *run_options(contender, server))
    try:
        start, _ = docker_timed("start", "-a", name)
    finally:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True, check=False)
    return {"run": run, "create": create, "start": start}


def measure(server: PostgresServer, rounds: int) -> dict[str, dict[str, list[float]]]:
    """One warm-up round, then `rounds` rounds, the order rotating by one each round."""
    samples: dict[str, dict[str, list[float]]] = {
        c.name: {"run": [], "create": [], "start": []} for c in CONTENDERS}
    for number in range(rounds + 1):
        shift = number % len(CONTENDERS)
        for contender in CONTENDERS[shift:] + CONTENDERS[:shift]:
            found = one_round(contender, server)
            if number > 0:
                for key, seconds in found.items():
                    samples[contender.name][key].append(seconds)
        print(f"    round {number}/{rounds}{' (warm-up)' if number == 0 else ''}", flush=True)
    return samples


def at_head(server: PostgresServer) -> None:
    """Create both databases and migrate each to its project's head with the job's images."""
    for database, image in ((EXAMPLE, images.JOB), (YOURS, images.YOUR_PROJECT)):
        server.create_database(database)
        docker_timed("run", "--rm", "--network", "host",
                     "-e", f"DATABASE_URL={server.url(database)}", image, "upgrade")
        docker_timed("run", "--rm", "--network", "host",
                     "-e", f"DATABASE_URL={server.url(database)}", image, "check")


def sizes(base: str) -> dict[str, Any]:
    """Each image's size, the layers it adds on what it is built from, and the venvs' contents."""
    below = {images.JOB: base, images.NO_MANIFEST: images.JOB,
             images.YOUR_PROJECT: images.JOB, images.PLAIN: base}
    return {"base": images.image_size(base),
            "images": {image: {"size": images.image_size(image), "below": under,
                               "layers": [dataclasses.asdict(layer)
                                          for layer in images.added_layers(image, under)]}
                       for image, under in below.items()},
            "venv": {image: dataclasses.asdict(contents(image, "/opt/venv"))
                     for image in (images.JOB, images.PLAIN)}}


def run(rounds: int) -> dict[str, Any]:
    """Build, migrate both databases to head, measure, read the sizes."""
    started = time.monotonic()
    results: dict[str, Any] = {"rounds": rounds, "load_before": os.getloadavg(),
                               "cores": os.cpu_count(), "commit": describe_code(images.REPO)}
    print("==> base image and builds", flush=True)
    base = images.python_image()
    images.build_all(base)
    results["base_image"] = base
    results["base_python"] = images.docker("run", "--rm", base, "python3", "--version").strip()
    results["docker"] = images.docker("version", "-f", "{{.Server.Version}}").strip()
    server = PostgresServer(password=secrets.token_hex(12)).start()
    try:
        at_head(server)
        print(f"==> {len(CONTENDERS)} contenders, {rounds} rounds", flush=True)
        results["samples"] = measure(server, rounds)
    finally:
        server.destroy()
    print("==> sizes", flush=True)
    results["sizes"] = sizes(base)
    results["load_after"] = os.getloadavg()
    results["runtime_s"] = time.monotonic() - started
    return results


def main() -> int:
    """Run, save and write the section."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=11)
    parser.add_argument("--no-write", action="store_true", help="leave BENCHMARKS.md alone")
    parser.add_argument("--keep-images", action="store_true",
                        help="leave the benchmark's images in the engine")
    args = parser.parse_args()
    try:
        results = run(args.rounds)
    finally:
        if not args.keep_images:
            images.remove_all()
    WORK.mkdir(parents=True, exist_ok=True)
    (WORK / "container_start.json").write_text(json.dumps(results, indent=1))
    text = container_report.section(results, {c.name: c.baseline for c in CONTENDERS}, FLOOR,
                                    images.NAMES)
    print(text)
    if not args.no_write:
        container_report.SECTION.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
