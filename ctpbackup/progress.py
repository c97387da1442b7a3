"""A progress line for people at a terminal (objects, bytes, rate); silent elsewhere, where the
JSON log line at the end of each backup or restore says the same."""

from __future__ import annotations

import sys
import threading
import time

from ctpbackup.sizes import human_size


class Progress:
    def __init__(self, label: str, *, enabled: bool = False, total: int | None = None, stream=None):
        self.label = label
        self.stream = stream or sys.stderr
        self.enabled = enabled and self.stream.isatty()
        self.total = total
        self.objects = 0
        self.bytes = 0
        self.started = time.monotonic()
        self._shown = 0.0
        self._lock = threading.Lock()

    def update(self, objects: int = 0, bytes_total: int | None = None) -> None:
        with self._lock:
            self.objects += objects
            if bytes_total is not None:
                self.bytes = bytes_total
            now = time.monotonic()
            if self.enabled and now - self._shown > 0.2:
                self._shown = now
                self._draw(now)

    def _draw(self, now: float) -> None:
        rate = self.objects / max(now - self.started, 1e-6)
        done = f"{self.objects}/{self.total}" if self.total else f"{self.objects}"
        bar = ""
        if self.total:
            filled = int(30 * min(1.0, self.objects / max(self.total, 1)))
            bar = "[" + "#" * filled + "." * (30 - filled) + "] "
        self.stream.write(f"\r{self.label}: {bar}{done} objects, {human_size(self.bytes)}, {rate:,.0f} obj/s ")
        self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            self._draw(time.monotonic())
            self.stream.write("\n")
            self.stream.flush()
