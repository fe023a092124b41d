"""`fleet`: the single-database story on many databases, a few at a time, sharded by pod.

The story: read the targets, keep this shard's share, read the history once, migrate each
target in a forked process (fleet_workers), one result line per target, a summary line.
"""

from __future__ import annotations

import gc
import time
import traceback
from typing import TYPE_CHECKING

from migration_job.errors import FleetIncomplete, Interrupted, JobError
from migration_job.fleet.report import counts, incomplete_message, report_result, summarise
from migration_job.fleet.targets import Target, fleet_targets, shard_of
from migration_job.fleet.workers import FleetRun
from migration_job.log import log

if TYPE_CHECKING:
    from migration_job.run.shared import Shared
    from migration_job.settings import Settings


def run_fleet(settings: Settings) -> tuple[int, str]:
    """Run the fleet; its exit code and summary (cli writes the termination message)."""
    try:
        return 0, fleet(settings)
    except JobError as error:
        log.error(error.event, str(error), exit_code=error.exit_code)
        return error.exit_code, str(error)
    except Exception as error:  # noqa: BLE001  (exit 1 with the traceback: a bug)
        message = f"unexpected error: {type(error).__name__}: {error}"
        log.error("internal_error", f"{message}; this is a bug, the traceback follows",
                  exit_code=1, traceback=traceback.format_exc())
        return 1, message


def fleet(settings: Settings) -> str:
    """Migrate this shard's targets; the summary, or FleetIncomplete / Interrupted."""
    assert settings.fleet is not None
    shards = settings.fleet.shards
    shard = f"shard {settings.fleet.shard_index + 1}/{shards}"
    every = fleet_targets(settings)
    mine = shard_of(every, settings.fleet)
    log.configure(log_format=settings.log_format, level=settings.log_level,
                  secrets=(*settings.secrets, *(s for t in every for s in t.secrets)))
    log.info("fleet_started", f"{shard}: {len(mine)} of {len(every)} target(s), "
             f"{settings.fleet.concurrency} at a time", targets=len(mine), total=len(every),
             shard=settings.fleet.shard_index, shards=shards,
             concurrency=settings.fleet.concurrency)
    import_machinery(mine)
    shared = read_once(settings)
    started = time.monotonic()
    run = FleetRun(settings, mine, shared, lambda: load_history_once(settings, mine[0], shared))
    results = run.run(report_result)
    summary = summarise(shard, results, time.monotonic() - started)
    if run.signal_number is not None:
        raise Interrupted(f"{summary}; interrupted: every running target was stopped (its "
                          "line says what it left)", 128 + run.signal_number)
    if any(result.exit_code != 0 for result in results):
        raise FleetIncomplete(incomplete_message(summary, results))
    log.info("fleet_finished", summary, **counts(results))
    return summary


def import_machinery(targets: list[Target]) -> None:
    """Import, once, what every child runs on the fast path (Alembic waits for work)."""
    from migration_job import engines
    from migration_job.commands import upgrade  # noqa: F401
    from migration_job.run import blocker_watch, interruption, worker  # noqa: F401

    for target in targets:
        engines.engine_for(target.url)


def read_once(settings: Settings) -> Shared:
    """Read the project and the heads known without Alembic once, for every child to share
    (each would read the configuration, the manifest or the revision files again)."""
    import multiprocessing

    from migration_job.project import project_for
    from migration_job.run.heads import known_heads
    from migration_job.run.shared import Shared

    found = project_for(settings)
    # The fleet's connection budget: a session per running target, plus this one spare, which
    # the children watching who blocks their revisions take turns with.
    shared = Shared(found, known_heads(settings, found),
                    multiprocessing.get_context("fork").Semaphore(1))
    # Out of the collector's reach: its passes would write to every object the children
    # share, copying the parent's memory page by page into each of them.
    gc.freeze()
    return shared


def load_history_once(settings: Settings, target: Target, shared: Shared) -> None:
    """Read the history for every child to share (the first child with work asks for it).

    A history that cannot be read stops the fleet here (exit 7): every target with work
    pending would fail the same way.
    """
    from migration_job.alembic_env import migrate  # noqa: F401
    from migration_job.alembic_env import revision_graph as history

    started = time.monotonic()
    shared.history = history.load_history(settings._replace(
        database_url=target.url, given_url=target.given_url))
    gc.freeze()
    elapsed_ms = round((time.monotonic() - started) * 1000, 1)
    log.info("fleet_history_loaded", f"read the history once for every target in "
             f"{elapsed_ms:.0f} ms", duration_ms=elapsed_ms)
