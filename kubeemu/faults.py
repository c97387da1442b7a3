"""Faults on demand, for reliability tests: answer the next N matching requests with an error, a 429
with Retry-After, a slow response or a dropped connection; or pause the whole server."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field


@dataclass
class Fault:
    mode: str  # "error" | "throttle" | "slow" | "drop"
    count: int = 1  # how many matching requests; -1: until cleared
    status: int = 500
    retry_after: float = 1.0
    delay: float = 1.0
    path_prefix: str = ""
    methods: tuple[str, ...] = ()

    def matches(self, method: str, path: str) -> bool:
        return path.startswith(self.path_prefix) and (not self.methods or method in self.methods)


@dataclass
class Faults:
    _faults: list[Fault] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _running: threading.Event = field(default_factory=threading.Event)
    requests: int = 0
    injected: int = 0

    def __post_init__(self) -> None:
        self._running.set()

    def add(self, mode: str, count: int = 1, **options) -> Fault:
        if mode not in ("error", "throttle", "slow", "drop"):
            raise ValueError(f"unknown fault mode {mode!r}")
        fault = Fault(mode, count, **options)
        with self._lock:
            self._faults.append(fault)
        return fault

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()
        self._running.set()

    def pause(self) -> None:
        self._running.clear()

    def resume(self) -> None:
        self._running.set()

    def next_for(self, method: str, path: str) -> Fault | None:
        """Count the request, wait while paused, and return the fault to inject, if any."""
        self._running.wait()
        with self._lock:
            self.requests += 1
            for fault in self._faults:
                if fault.matches(method, path) and fault.count != 0:
                    if fault.count > 0:
                        fault.count -= 1
                    self.injected += 1
                    return fault
        return None
