"""Event output: one line per event, as text or JSON, with secrets scrubbed.

The job writes its own lines instead of going through `logging`, because a project's
`env.py` commonly calls `logging.config.fileConfig()`, which disables every logger it
does not name: the job's events would go silent exactly while migrations run.
"""

from __future__ import annotations

import json
import sys
import time
from typing import IO, Any

LEVELS = {"DEBUG": 10, "INFO": 20, "WARNING": 30, "ERROR": 40}
MASK = "***"


class EventLog:
    """Writes events to a stream; every line passes through the secret scrubber."""

    def __init__(self) -> None:
        self.stream: IO[str] = sys.stderr
        self.json = False
        self.threshold = LEVELS["INFO"]
        self.secrets: tuple[str, ...] = ()

    def configure(self, *, log_format: str, level: str, secrets: tuple[str, ...]) -> None:
        """Apply the settings; called once the configuration is known."""
        self.json = log_format == "json"
        self.threshold = LEVELS[level]
        self.secrets = tuple(sorted((s for s in secrets if s), key=len, reverse=True))

    def scrub(self, text: str) -> str:
        """Replace every known secret in `text` with a mask."""
        for secret in self.secrets:
            text = text.replace(secret, MASK)
        return text

    def emit(self, level: str, event: str, message: str, **fields: Any) -> None:
        """Write one event if its level passes the threshold."""
        if LEVELS[level] < self.threshold:
            return
        now = time.time()
        millis = int(now % 1 * 1000)
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{millis:03d}Z"
        if self.json:
            record = {"ts": stamp, "level": level.lower(), "event": event, "message": message}
            record.update(fields)
            line = json.dumps(record, default=str)
        else:
            line = f"{stamp} {level:<7} {message}"
            if "traceback" in fields:
                line += "\n" + str(fields["traceback"]).rstrip()
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


log = EventLog()
