"""Event output: one line per event, as text or JSON, with secrets scrubbed.

The job writes its own lines instead of going through `logging`, because a project's
`env.py` commonly calls `logging.config.fileConfig()`, which disables every logger it
does not name: the job's events would go silent exactly while migrations run.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from typing import IO, Any

from migration_job.masking import Masker

LEVELS = {"DEBUG": 10, "INFO": 20, "WARNING": 30, "ERROR": 40}
SILENT = 100  # above every level


class EventLog:
    """Writes events to a stream; every line passes through the secret scrubber."""

    def __init__(self) -> None:
        self.stream: IO[str] = sys.stderr
        self.json = False
        self.threshold = LEVELS["INFO"]
        self.masker = Masker(())
        # Fields every event carries (a fleet's tenant process: its target), shown first.
        self.context: dict[str, str] = {}
        # Called with every event's name and fields, whatever its level (a fleet's tenant
        # process collects the revisions it applied).
        self.observers: list[Callable[[str, dict[str, Any]], None]] = []
        # What the first line written carries (the job's version), then no line again.
        self.first_line: tuple[str, dict[str, str]] | None = None

    def configure(self, *, log_format: str, level: str, secrets: tuple[str, ...]) -> None:
        """Apply the settings; called once the configuration is known."""
        self.json = log_format == "json"
        self.threshold = LEVELS[level]
        # Each secret also as JSON spells it, for the line-level pass over encoded lines.
        self.masker = Masker(form for secret in secrets if secret
                             for form in (secret, json.dumps(secret)[1:-1]))

    def announce(self, prefix: str, **fields: str) -> None:
        """Put `fields` (JSON) or `prefix: ` (text) on the first line written, whichever it is:
        a configuration error stays the one line of its run."""
        self.first_line = (prefix, fields)

    def scrub(self, text: str) -> str:
        """Mask every known secret in `text` (migration_job.masking says where)."""
        return self.masker(text)

    def scrub_value(self, value: object) -> object:
        """`value` with every string in it scrubbed, through dicts, lists and tuples.

        Values JSON cannot hold become their str() first, as they would be printed anyway.
        """
        if isinstance(value, str):
            return self.scrub(value)
        if isinstance(value, dict):
            return {self.scrub(str(key)): self.scrub_value(item) for key, item in value.items()}
        if isinstance(value, list | tuple):
            return [self.scrub_value(item) for item in value]
        if value is None or isinstance(value, bool | int | float):
            return value
        return self.scrub(str(value))

    def emit(self, level: str, event: str, message: str, **fields: Any) -> None:
        """Write one event if its level passes the threshold."""
        for observe in self.observers:
            observe(event, fields)
        if LEVELS[level] < self.threshold:
            return
        prefix, announced = self.first_line or ("", {})
        self.first_line = None
        now = time.time()
        millis = int(now % 1 * 1000)
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{millis:03d}Z"
        if self.json:
            record = {"ts": stamp, "level": level.lower(), "event": event, **self.context,
                      "message": message}
            record.update(fields)
            record.update(announced)
            # Scrubbed before encoding: JSON escapes quotes, backslashes, control characters
            # and non-ASCII letters, so a secret holding one no longer matches in the line.
            line = json.dumps(self.scrub_value(record))
        else:
            # Scrubbed before rstrip(), which would cut a secret's trailing blank and the match.
            tags = "".join(f"[{value}] " for value in self.context.values())
            lead = f"{prefix}: " if prefix else ""
            line = f"{stamp} {level:<7} {tags}{lead}{self.scrub(message)}"
            if "traceback" in fields:
                line += "\n" + self.scrub(str(fields["traceback"])).rstrip()
        # A second pass over the whole line, belt and braces.
        self.stream.write(self.scrub(line) + "\n")
        self.stream.flush()

    def debug(self, event: str, message: str, **fields: Any) -> None:
        """Emit at DEBUG."""
        self.emit("DEBUG", event, message, **fields)

    def info(self, event: str, message: str, **fields: Any) -> None:
        """Emit at INFO."""
        self.emit("INFO", event, message, **fields)

    def warning(self, event: str, message: str, **fields: Any) -> None:
        """Emit at WARNING."""
        self.emit("WARNING", event, message, **fields)

    def error(self, event: str, message: str, **fields: Any) -> None:
        """Emit at ERROR."""
        self.emit("ERROR", event, message, **fields)

    def silence(self) -> None:
        """Write nothing more: the job's last line has been written."""
        self.threshold = SILENT


log = EventLog()
