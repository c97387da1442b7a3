"""Starting emulated control planes: in this process (a background thread) or as a subprocess, each
on a free port of 127.0.0.1, each able to write a kubeconfig for itself."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import yaml

from kubeemu.server import ApiServer


def kubeconfig(url: str, token: str, name: str = "kubeemu") -> str:
    return yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": name,
        "clusters": [{"name": name, "cluster": {"server": url}}],
        "users": [{"name": name, "user": {"token": token}}],
        "contexts": [{"name": name, "context": {"cluster": name, "user": name, "namespace": "default"}}],
    }, sort_keys=False)


class _Admin:
    """Faults and pause through the admin endpoints (works for both in-process and subprocess)."""

    url: str

    def _admin(self, method: str, path: str, body: dict | None = None) -> dict:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(f"{self.url}/_emulator/{path}", data=data, method=method,
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - loopback
            return json.loads(response.read())

    def inject(self, mode: str, count: int = 1, **options) -> None:
        """Answer the next `count` matching requests with a fault: mode error|throttle|slow|drop;
        options status, retry_after, delay, path_prefix, methods."""
        self._admin("POST", "faults", {"mode": mode, "count": count, **options})

    def clear_faults(self) -> None:
        self._admin("DELETE", "faults")

    def pause(self) -> None:
        self._admin("POST", "pause")

    def resume(self) -> None:
        self._admin("POST", "resume")

    def stats(self) -> dict:
        return self._admin("GET", "stats")

    def kubeconfig_text(self, name: str = "kubeemu") -> str:
        return kubeconfig(self.url, self.token, name)  # type: ignore[attr-defined]

    def write_kubeconfig(self, path: str | Path, name: str = "kubeemu") -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.kubeconfig_text(name))
        return path


class EmulatorServer(_Admin):
    """An emulated control plane served from a thread of this process."""

    def __init__(self, token: str | None = None, establish_delay: float = 0.15):
        self.token = token or secrets.token_urlsafe(24)
        self.api = ApiServer(token=self.token, establish_delay=establish_delay)
        self.url = self.api.url

    @property
    def store(self):
        return self.api.store

    def start(self) -> EmulatorServer:
        self.api.serve_in_thread()
        return self

    def stop(self) -> None:
        self.api.shutdown()

    def __enter__(self) -> EmulatorServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


class EmulatorProcess(_Admin):
    """An emulated control plane in its own Python process (no GIL shared with the client)."""

    def __init__(self, token: str | None = None):
        self.token = token or secrets.token_urlsafe(24)
        self.process: subprocess.Popen | None = None
        self.url = ""

    def start(self, timeout: float = 30.0) -> EmulatorProcess:
        env = {**os.environ, "KUBEEMU_TOKEN": self.token}
        self.process = subprocess.Popen([sys.executable, "-m", "kubeemu", "--port", "0"], stdout=subprocess.PIPE,
                                        stderr=subprocess.DEVNULL, env=env, text=True)
        deadline = time.monotonic() + timeout
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line.startswith("http://"):
            self.stop()
            raise RuntimeError(f"emulator did not start: {line!r}")
        self.url = line.strip()
        while time.monotonic() < deadline:
            try:
                self.stats()
                return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("emulator did not answer")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            if self.process.stdout:
                self.process.stdout.close()
            self.process = None

    def kill(self) -> None:
        """Like a control plane that disappears: no goodbye."""
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            if self.process.stdout:
                self.process.stdout.close()
            self.process = None

    def __enter__(self) -> EmulatorProcess:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
