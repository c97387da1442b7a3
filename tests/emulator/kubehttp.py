"""HTTPS against an emulator (its CA trusted, its token sent) with any headers: status, headers and decoded body, exactly."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request


def call(cp, method: str, path: str, body=None, headers: dict | None = None, content_type: str = "application/json"):
    """(status, response headers, JSON body) of one request to the emulator `cp`."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(cp.url + path, data=data, method=method, headers={
        "Authorization": f"Bearer {cp.token}", "Content-Type": content_type, **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=30, context=cp.ssl_context()) as response:  # noqa: S310 - loopback
            return response.status, dict(response.headers), json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), json.loads(err.read() or b"{}")


def watch_events(cp, path: str, count: int, timeout: float = 10) -> list[dict]:
    """The first `count` events of a watch on `path` (a list URL with `watch=1` added)."""
    sep = "&" if "?" in path else "?"
    request = urllib.request.Request(f"{cp.url}{path}{sep}watch=1&timeoutSeconds={int(timeout)}",
                                     headers={"Authorization": f"Bearer {cp.token}"})
    events = []
    with urllib.request.urlopen(request, timeout=timeout + 5, context=cp.ssl_context()) as response:  # noqa: S310 - loopback
        for line in response:
            if line.strip():
                events.append(json.loads(line))
            if len(events) >= count:
                break
    return events


def wait_established(cp, name: str, timeout: float = 10) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        _, _, crd = call(cp, "GET", f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}")
        if any(c.get("type") == "Established" and c.get("status") == "True"
               for c in (crd.get("status") or {}).get("conditions") or ()):
            return crd
        time.sleep(0.02)
    raise AssertionError(f"{name} not Established")
