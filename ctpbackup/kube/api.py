"""Raw JSON access to a control plane's API, through the official client's connection and auth.

Backups and restores move tens of thousands of objects; turning each into a generated model class
and back costs more than the network, so this layer speaks JSON dicts. It retries what is safe to
retry: 429 (honouring Retry-After), 5xx and dropped connections, with exponential backoff and jitter.
"""

from __future__ import annotations

import json
import logging
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import urllib3

from ctpbackup.engines import jsoncodec

if TYPE_CHECKING:  # the kubernetes package takes seconds to import: only commands that connect load it
    from kubernetes.client import ApiClient, Configuration

log = logging.getLogger(__name__)

RETRYABLE_STATUS = {429, 500, 502, 503, 504}


class KubeError(Exception):
    """A request failed for good. `status` is the HTTP status (0: no answer); `reason` the API's reason."""

    def __init__(self, status: int, reason: str, message: str):
        super().__init__(message)
        self.status = status
        self.reason = reason
        self.message = message


#: the resource key (`ResourceType.key`) of CustomResourceDefinitions
CRD_KEY = "customresourcedefinitions.apiextensions.k8s.io"


@dataclass(frozen=True)
class ResourceType:
    group: str
    version: str
    resource: str  # plural
    kind: str
    namespaced: bool
    verbs: tuple[str, ...] = ()
    has_status: bool = False

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def key(self) -> str:
        """`resource.group` as excludedResources names it (core resources: the plural alone)."""
        return f"{self.resource}.{self.group}" if self.group else self.resource

    def path(self, namespace: str | None = None, name: str | None = None, subresource: str = "") -> str:
        base = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        if self.namespaced and namespace:
            base += f"/namespaces/{namespace}"
        base += f"/{self.resource}"
        if name:
            base += f"/{name}"
            if subresource:
                base += f"/{subresource}"
        return base


def carry_bearer_token(configuration: Configuration) -> Configuration:
    """Make the generated API classes (`CoreV1Api` and the like) send the bearer token.

    They authenticate through `configuration.auth_settings()`, which in kubernetes 36 reads only
    `api_key['BearerToken']` while the kubeconfig and in-cluster loaders store the token (with its
    `Bearer ` prefix) under `api_key['authorization']` (kubernetes-client/python#2582): without this
    every request of theirs is anonymous. The token is copied to `BearerToken` now and after every
    `refresh_api_key_hook` run (so a rotated service-account token is carried too). Returns the
    same configuration; applying it twice is harmless."""
    if getattr(configuration, "_ctpbackup_carries_token", False):
        return configuration
    original = configuration.refresh_api_key_hook

    def refresh(config: Configuration) -> None:
        if original is not None:
            original(config)
        token = config.api_key.get("authorization")
        if token:
            config.api_key["BearerToken"] = token

    configuration.refresh_api_key_hook = refresh
    configuration._ctpbackup_carries_token = True
    refresh(configuration)
    return configuration


class KubeAPI:
    def __init__(self, api_client: ApiClient, *, attempts: int = 6, base_delay: float = 0.2, max_delay: float = 10.0,
                 timeout: float = 60.0):
        self.client = api_client
        self.attempts = attempts
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.timeout = timeout

    # -- transport ---------------------------------------------------------------------------------

    def _headers(self, content_type: str) -> dict[str, str]:
        """Headers of every request, with the credentials of the client's configuration.

        The kubeconfig and in-cluster loaders keep the bearer token under `api_key['authorization']`
        (already prefixed `Bearer `); kubernetes 36's `configuration.auth_settings()` only looks
        under `BearerToken` and returns {} (kubernetes-client/python#2582), so the token is read
        with `get_api_key_with_prefix('authorization')`, which also runs `refresh_api_key_hook`
        (rotated in-cluster tokens, exec and OIDC credentials). Whatever `auth_settings()` yields
        (a client that fixes the regression, a `BearerToken` set by hand) is applied too. Client
        certificates need no header: they are part of the pool's TLS settings."""
        headers = {"Accept": "application/json", "Content-Type": content_type,
                   "User-Agent": "ctpbackup"}
        configuration = self.client.configuration
        token = configuration.get_api_key_with_prefix("authorization")
        if token:
            headers["Authorization"] = token
        for setting in configuration.auth_settings().values():
            if setting.get("in") == "header" and setting.get("value"):
                key = "Authorization" if setting["key"].lower() == "authorization" else setting["key"]
                headers[key] = setting["value"]
        return headers

    def request(self, method: str, path: str, query: dict[str, Any] | None = None, body: Any = None,
                content_type: str = "application/json", retry: bool = True) -> Any:
        """One API call returning parsed JSON, retried on 429/5xx/connection errors when `retry`.
        Sent through the client's own connection pool (its TLS, proxy and auth settings), without its
        per-object model serialisation, which costs more than the request on bulk work."""
        params = {k: v for k, v in (query or {}).items() if v is not None}
        url = self.client.configuration.host + path + (f"?{urlencode(params)}" if params else "")
        data = jsoncodec.dumps(body) if body is not None else None
        pool = self.client.rest_client.pool_manager
        attempt = 0
        while True:
            attempt += 1
            try:
                response = pool.request(method, url, body=data, headers=self._headers(content_type),
                                        timeout=urllib3.Timeout(connect=10, read=self.timeout), retries=False)
            except (urllib3.exceptions.HTTPError, OSError) as err:
                if retry and attempt < self.attempts:
                    self._sleep(attempt, None)
                    continue
                raise KubeError(0, "Unreachable", f"{method} {path}: no answer from the API server "
                                                  f"({type(err).__name__})") from None
            if response.status < 400:
                try:
                    return jsoncodec.loads(response.data) if response.data else {}
                except ValueError:
                    raise KubeError(response.status, "InvalidResponse",
                                    f"{method} {path}: the API server's answer is not JSON") from None
            if retry and response.status in RETRYABLE_STATUS and attempt < self.attempts:
                self._sleep(attempt, _retry_after(response.headers.get("Retry-After")))
                continue
            raise _kube_error(response.status, response.data, method, path)

    def _sleep(self, attempt: int, retry_after: float | None) -> None:
        delay = min(self.max_delay, self.base_delay * (2 ** (attempt - 1)))
        delay = random.uniform(delay / 2, delay)  # jitter: many workers must not retry in lockstep
        if retry_after is not None:
            delay = max(delay, min(retry_after, 60.0))
        time.sleep(delay)

    # -- discovery ---------------------------------------------------------------------------------

    def server_version(self) -> str:
        info = self.request("GET", "/version")
        return str(info.get("gitVersion", ""))

    def discover(self) -> list[ResourceType]:
        """Every resource type, each at the most preferred version that serves it: the group's
        preferred version first, then the others (a resource served only by an older version of
        its group is still found), as client-go's ServerPreferredResources does."""
        groups: list[tuple[str, list[str]]] = [("", list(self.request("GET", "/api").get("versions", ["v1"])))]
        for group in self.request("GET", "/apis").get("groups", []):
            versions = [v["version"] for v in group.get("versions", [])]
            preferred = (group.get("preferredVersion") or {}).get("version")
            if preferred in versions:
                versions.remove(preferred)
                versions.insert(0, preferred)
            groups.append((group["name"], versions))
        types: list[ResourceType] = []
        seen: set[tuple[str, str]] = set()
        for group, versions in groups:
            for version in versions:
                path = f"/apis/{group}/{version}" if group else f"/api/{version}"
                try:
                    resources = self.request("GET", path).get("resources", [])
                except KubeError as err:
                    if err.status in (404, 503):  # a version going away, or an unavailable aggregated API
                        log.warning("discovery of %s skipped: %s", path, err.message)
                        continue
                    raise
                status_of = {r["name"].split("/")[0] for r in resources if r["name"].endswith("/status")}
                for r in resources:
                    if "/" in r["name"] or (group, r["name"]) in seen:
                        continue
                    seen.add((group, r["name"]))
                    types.append(ResourceType(group, version, r["name"], r["kind"], bool(r.get("namespaced")),
                                              tuple(r.get("verbs", ())), r["name"] in status_of))
        return types

    # -- reads ---------------------------------------------------------------------------------------

    def list_pages(self, rtype: ResourceType, limit: int = 500) -> Iterator[list[dict]]:
        """All objects of a type (every namespace), one page at a time. Lists come in storage-key
        order (`namespace/name`), so an expired continue token (410) restarts from a fresh snapshot
        and skips what was already yielded by remembering only the last key."""
        last: str | None = None
        restarts = 0
        token: str | None = None
        while True:
            try:
                page = self.request("GET", rtype.path(), {"limit": limit, "continue": token})
            except KubeError as err:
                if err.status == 410 and restarts < 3:
                    restarts += 1
                    token = None
                    continue
                raise
            items = page.get("items", [])
            if restarts and last is not None:
                items = [i for i in items if _key(i) > last]
            if items:
                last = _key(items[-1])
                yield items
            token = (page.get("metadata") or {}).get("continue")
            if not token:
                return

    def get(self, rtype: ResourceType, namespace: str | None, name: str) -> dict | None:
        try:
            return self.request("GET", rtype.path(namespace, name))
        except KubeError as err:
            if err.status == 404:
                return None
            raise


def _key(obj: dict) -> str:
    meta = obj.get("metadata") or {}
    return f"{meta.get('namespace', '')}/{meta.get('name', '')}"


def _retry_after(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def _kube_error(status: int, body: bytes, method: str, path: str) -> KubeError:
    reason, message = "", ""
    try:
        doc = json.loads(body or b"{}")
        reason, message = doc.get("reason", ""), doc.get("message", "")
    except (ValueError, TypeError, AttributeError):
        pass
    return KubeError(status, reason, f"{method} {path}: {status} {message or reason}".rstrip())


def reachable(api_client: ApiClient) -> bool:
    """Whether the control plane's API answers at all: `GET /version`, 2 attempts with backoff, 10 s
    each. A restore waits until it does; `status` shows it as the ControlPlane's Ready. Any KubeError
    (no connection, 5xx, 401/403) is False; nothing is raised."""
    try:
        KubeAPI(api_client, attempts=2, timeout=10).server_version()
        return True
    except KubeError:
        return False
