"""Progress of backups and restores: on a terminal, one rich progress bar per running backup or
restore, naming its control plane, with objects done/total, bytes, rate, ETA and the restore's
current step; log lines print above the bars. Off a terminal, a JSON `progress` event every
PERIOD seconds (and at each new step), so a long run in a CronJob shows it is alive.

The bars share one display per process (the terminal is one): it starts with the first bar and
stops when the last one closes.
"""

from __future__ import annotations

import logging
import sys
import threading
import time

from rich.console import Console
from rich.filesize import decimal
from rich.progress import BarColumn, ProgressColumn, Task, TaskID, TextColumn, TimeRemainingColumn
from rich.progress import Progress as Bars
from rich.table import Column
from rich.text import Text

log = logging.getLogger(__name__)

#: seconds between two JSON progress events of one backup or restore
PERIOD = 30.0


class _Counts(ProgressColumn):
    """`1,234/5,678 objects` (or `1,234 objects` while the total is unknown), bytes and objects/s."""

    def __init__(self) -> None:
        super().__init__(table_column=Column(no_wrap=True))

    def render(self, task: Task) -> Text:
        done = f"{int(task.completed):,}"
        objects = f"{done}/{int(task.total):,}" if task.total else done
        speed = f"{task.speed:,.0f} obj/s" if task.speed else "– obj/s"
        size = decimal(task.fields.get("bytes", 0)) if task.fields.get("bytes") else ""
        return Text(f"{objects} objects {size:>9} {speed:>11}".rstrip(), no_wrap=True)


class _Board:
    """The one rich display of the process, shared by every bar; redirects the log handlers that
    write to the terminal through it while it runs, so their lines print above the bars."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._bars: Bars | None = None
        self._open = 0
        self._swapped: list[tuple[logging.StreamHandler, object]] = []

    def add(self, label: str, total: int | None) -> TaskID:
        with self._lock:
            if self._bars is None:
                console = Console(file=sys.stderr)
                self._bars = Bars(TextColumn("[bold]{task.description}", table_column=Column(no_wrap=True)),
                                  BarColumn(bar_width=24), _Counts(), TimeRemainingColumn(),
                                  TextColumn("{task.fields[step]}", table_column=Column(no_wrap=True)), console=console,
                                  redirect_stdout=False, redirect_stderr=True, refresh_per_second=8)
                self._bars.start()
                self._redirect_logs()
            self._open += 1
            return self._bars.add_task(label, total=total, step="", bytes=0)

    def update(self, task: TaskID, **fields) -> None:
        bars = self._bars
        if bars is not None:
            bars.update(task, **fields)

    def remove(self, task: TaskID) -> None:
        with self._lock:
            if self._bars is None:
                return
            self._bars.refresh()
            self._open -= 1
            if self._open == 0:
                self._bars.stop()
                self._restore_logs()
                self._bars = None

    def _redirect_logs(self) -> None:
        """Handlers writing to the real stderr now write to rich's proxy (installed by start())."""
        original = sys.__stderr__
        loggers = [logging.getLogger(), *(logging.getLogger(n) for n in ("ctpbackup.output", "ctpbackup.desired.problems"))]
        for logger in loggers:
            for handler in logger.handlers:
                if isinstance(handler, logging.StreamHandler) and handler.stream in (original, getattr(
                        sys.stderr, "rich_proxied_file", None)):
                    self._swapped.append((handler, handler.setStream(sys.stderr)))

    def _restore_logs(self) -> None:
        for handler, stream in self._swapped:
            handler.setStream(stream)
        self._swapped = []


_board = _Board()


class Progress:
    """The progress of one backup or restore. `label` names it ("backup default/ctp1"); `total` is
    the number of objects when known (restores); `enabled` draws a bar (on a terminal), else JSON
    progress events are logged every PERIOD seconds of `clock` (seconds, monotonic). Thread-safe."""

    def __init__(self, label: str, *, enabled: bool = False, total: int | None = None, stream=None,
                 clock=time.monotonic):
        self.label = label
        self.stream = stream or sys.stderr
        self.enabled = enabled and self.stream.isatty()
        self.total = total
        self.objects = 0
        self.bytes = 0
        self.current_step = ""
        self.clock = clock
        self.started = clock()
        self._logged = self.started
        self._lock = threading.Lock()
        self._task = _board.add(label, total) if self.enabled else None

    def update(self, objects: int = 0, bytes_total: int | None = None) -> None:
        """`objects` more done; `bytes_total` the bytes written so far (backups)."""
        with self._lock:
            self.objects += objects
            if bytes_total is not None:
                self.bytes = bytes_total
            if self._task is not None:
                _board.update(self._task, advance=objects, bytes=self.bytes)
            else:
                now = self.clock()
                if now - self._logged >= PERIOD:
                    self._event(now)

    def step(self, text: str) -> None:
        """What it is doing now ("waiting for 34 CRDs to be Established"): beside the bar, or one event."""
        with self._lock:
            self.current_step = text
            if self._task is not None:
                _board.update(self._task, step=text)
            else:
                self._event(self.clock())

    def _event(self, now: float) -> None:
        self._logged = now
        log.info("%s: %s objects%s", self.label, f"{self.objects:,}" + (f"/{self.total:,}" if self.total else ""),
                 f", {self.current_step}" if self.current_step else "",
                 extra={"fields": {"event": "progress", "label": self.label, "objects": self.objects,
                                   "total": self.total, "bytes": self.bytes, "step": self.current_step,
                                   "seconds": round(self._logged - self.started, 1)}})

    def close(self) -> None:
        with self._lock:
            if self._task is not None:
                _board.update(self._task, step=self.current_step or "done")
                _board.remove(self._task)
                self._task = None
