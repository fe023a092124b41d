"""The end of a run: the summary line and the Kubernetes termination message."""

from __future__ import annotations

from pathlib import Path

from migration_job.log import log

TERMINATION_LOG_LIMIT = 4096


def write_termination_log(path: Path | None, exit_code: int, summary: str) -> None:
    """Write `exit N: summary` (scrubbed, at most 4 KiB) where Kubernetes reads it."""
    if path is None:
        return
    text = log.scrub(f"exit {exit_code}: {summary}\n").encode("utf-8")
    if len(text) > TERMINATION_LOG_LIMIT:
        text = text[: TERMINATION_LOG_LIMIT - 4] + b"...\n"
    try:
        path.write_bytes(text)
    except OSError as error:
        log.warning("termination_log_failed",
                    f"could not write the termination message to {path}: {error.strerror}")
