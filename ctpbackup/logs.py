"""Logging for a job that runs both at a terminal and in a CronJob.

Human lines on a TTY; one JSON object per line otherwise (what log collectors parse). Every record
passes through the scrubbers registered here, so a secret value that slipped into a message is
replaced before it is written.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable
from datetime import UTC, datetime

Scrubber = Callable[[str], str]


class ScrubFilter(logging.Filter):
    """Replace secret values in a record's final message (after %-formatting)."""

    def __init__(self) -> None:
        super().__init__()
        self.scrubbers: list[Scrubber] = []

    def filter(self, record: logging.LogRecord) -> bool:
        if self.scrubbers:
            message = record.getMessage()
            for scrub in self.scrubbers:
                message = scrub(message)
            record.msg, record.args = message, None
            if record.exc_info and record.exc_info[1] is not None:
                record.exc_text = None
        return True


class JsonFormatter(logging.Formatter):
    def __init__(self, static: dict[str, object]):
        super().__init__()
        self.static = static

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update(self.static)
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            entry.update(fields)
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


_scrub_filter = ScrubFilter()


def add_scrubber(scrub: Scrubber) -> None:
    if scrub not in _scrub_filter.scrubbers:
        _scrub_filter.scrubbers.append(scrub)


def configure(fmt: str = "auto", verbose: int = 0, stream=None) -> dict[str, object]:
    """Configure the root logger; returns the dict of static fields added to every JSON line."""
    stream = stream or sys.stderr
    if fmt == "auto":
        fmt = "text" if stream.isatty() else "json"
    static: dict[str, object] = {}
    handler = logging.StreamHandler(stream)
    handler.addFilter(_scrub_filter)
    if fmt == "json":
        handler.setFormatter(JsonFormatter(static))
    else:
        handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    level = logging.DEBUG if verbose > 1 else logging.INFO if verbose == 1 else logging.WARNING
    root.setLevel(level)
    logging.getLogger("ctpbackup").setLevel(logging.DEBUG if verbose > 1 else logging.INFO)
    for noisy in ("botocore", "boto3", "urllib3", "git", "kubernetes", "azure", "google"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    return static


def is_json(stream=None) -> bool:
    stream = stream or sys.stderr
    return not stream.isatty()
