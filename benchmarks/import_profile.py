"""Where the job's no-op time goes: `python -X importtime` of it, folded two ways."""

from __future__ import annotations

import statistics
from collections import Counter
from dataclasses import dataclass

from benchmarks.histories import History
from benchmarks.measure import Command, run_once
from benchmarks.world import Bench, output_file


@dataclass
class ImportProfile:
    """`python -X importtime` of the job's no-op run, medians over a few runs.

    `by_importer_ms`: cumulative time of each import the program itself started (depth 0 in
    the importtime tree: the entry point's own imports and site's), i.e. who caused what.
    `by_package_ms`: self time summed per top-level package, i.e. where the time is spent.
    """

    size: int
    total_ms: float
    modules: int
    by_importer_ms: dict[str, float]
    by_package_ms: dict[str, float]
    heavy_imported: list[str]


def _medians(runs: list[Counter[str]]) -> dict[str, float]:
    """Per key, the median over runs (a key missing from a run counts as 0), largest first."""
    keys = set().union(*runs)
    medians = {k: statistics.median(run.get(k, 0) / 1000 for run in runs) for k in keys}
    return dict(sorted(medians.items(), key=lambda kv: -kv[1]))


def import_profile(bench: Bench, history: History | None = None,
                   url: str | None = None) -> ImportProfile:
    """Run the job at head with -X importtime and fold the tree two ways.

    PostgreSQL's largest history unless another engine's `history` and `url` are given.
    """
    if history is None or url is None:
        size = max(bench.profile.sizes)
        history, url = bench.histories[size], bench.url(f"alembic_{size}")
    size = history.size
    base = bench.job(history, url)
    command = Command("job -X importtime", (base.argv[0], "-X", "importtime", *base.argv[1:]),
                      base.env, base.cwd)
    by_package: list[Counter[str]] = []
    by_importer: list[Counter[str]] = []
    counts: list[int] = []
    for _ in range(bench.profile.importtime_runs):
        out = output_file(f"importtime-{history.dialect}")
        run_once(command, out)
        packages: Counter[str] = Counter()
        importers: Counter[str] = Counter()
        modules = 0
        for line in out.read_text(errors="replace").splitlines():
            if not line.startswith("import time:") or "self [us]" in line:
                continue
            self_us, cumulative_us, name = line.removeprefix("import time:").split("|", 2)
            module = name.strip()
            packages[module.split(".")[0]] += int(self_us)
            if len(name) - len(name.lstrip()) <= 1:  # depth 0: one space after the bar
                importers[module] += int(cumulative_us)
            modules += 1
        by_package.append(packages)
        by_importer.append(importers)
        counts.append(modules)
    package_ms = _medians(by_package)
    heavy = {"alembic", "sqlalchemy", "mako", "tenacity"}
    return ImportProfile(size=size,
                         total_ms=statistics.median(sum(c.values()) / 1000 for c in by_package),
                         modules=int(statistics.median(counts)),
                         by_importer_ms=_medians(by_importer), by_package_ms=package_ms,
                         heavy_imported=sorted(heavy & set(package_ms)))
