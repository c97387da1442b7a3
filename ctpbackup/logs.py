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

from ctpbackup.rules.times import RFC3339_MICRO

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
    """One JSON object per line: time (RFC 3339, microseconds, UTC), level, logger, message, the
    record's `fields` (events), and `error` with the traceback when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).strftime(RFC3339_MICRO),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            entry.update(fields)
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


_scrub_filter = ScrubFilter()


def add_scrubber(scrub: Scrubber) -> None:
    if scrub not in _scrub_filter.scrubbers:
        _scrub_filter.scrubbers.append(scrub)


def is_json_stream(fmt: str, stream) -> bool:
    """`--log-format`: `json`, `text`, or `auto` (JSON exactly when the stream is not a terminal)."""
    if fmt == "auto":
        isatty = getattr(stream, "isatty", None)
        return not (isatty and isatty())
    return fmt == "json"


class Console:
    """Where a command's words go. On a terminal: human text, as before. Off it (the CronJob, a
    pipe): every line one JSON event, on stdout the command's own events (the plan, each action's
    outcome, the summary), on stderr the log records and problems. Both pass the secret scrubbers."""

    def __init__(self, fmt: str = "auto", stdout=None, stderr=None):
        self.stdout = stdout or sys.stdout
        self.stderr = stderr or sys.stderr
        self.json_stdout = is_json_stream(fmt, self.stdout)
        self.json_stderr = is_json_stream(fmt, self.stderr)
        self._events = self._logger("ctpbackup.output", self.stdout, self.json_stdout)
        self._problems = self._logger("ctpbackup.desired.problems", self.stderr, self.json_stderr)

    @staticmethod
    def _logger(name: str, stream, json_lines: bool) -> logging.Logger:
        logger = logging.getLogger(name)
        for old in list(logger.handlers):
            logger.removeHandler(old)
        handler = logging.StreamHandler(stream)
        handler.addFilter(_scrub_filter)
        handler.setFormatter(JsonFormatter({}) if json_lines else logging.Formatter("%(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False
        return logger

    def progress_display(self) -> bool:
        """Progress bars on a terminal; off it, periodic JSON progress events instead."""
        return not self.json_stderr

    def text(self, text: str = "") -> None:
        """Human output on stdout (a terminal, or text asked for); nothing in JSON mode, where the
        events carry the same facts."""
        if not self.json_stdout:
            self._events.info(text.rstrip("\n"))

    def document(self, text: str) -> None:
        """A document asked for with `-o` (JSON, YAML, Markdown): on stdout exactly as rendered."""
        self.stdout.write(text)
        self.stdout.flush()

    def event(self, event: str, message: str, level: int = logging.INFO, **fields: object) -> None:
        """One JSON line on stdout in JSON mode (`event` and `message` plus `fields`); nothing on a
        terminal."""
        if self.json_stdout:
            self._events.log(level, message, extra={"fields": {"event": event, **fields}})

    def problem(self, text: str, level: int = logging.WARNING, **fields: object) -> None:
        """A problem or an error for stderr: the line as is on a terminal, a JSON event otherwise."""
        self._problems.log(level, text, extra={"fields": {"event": "problem", **fields}})


def configure(fmt: str = "auto", verbose: int = 0, stream=None) -> None:
    """Configure the root logger: JSON lines (`fmt` json, or auto when `stream` is not a terminal) or
    `LEVEL message` lines, every message scrubbed of registered secrets."""
    stream = stream or sys.stderr
    json_lines = is_json_stream(fmt, stream)
    handler = logging.StreamHandler(stream)
    handler.addFilter(_scrub_filter)
    if json_lines:
        handler.setFormatter(JsonFormatter())
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
