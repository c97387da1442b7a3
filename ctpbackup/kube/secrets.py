"""Where Secrets come from: one module for bucket credentials and control-plane kubeconfigs alike.

In a pod: the host cluster's API (in-cluster config, or a kubeconfig). For local runs and CI: a
directory laid out as a mounted Secret, `DIR/<namespace>/<name>/<key>`. Every value read is
registered with a Redactor so that it can be scrubbed from any log line or error message.
"""

from __future__ import annotations

import abc
import base64
import re
import threading
from pathlib import Path

_SEGMENT = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
MIN_SCRUB_LENGTH = 6  # shorter values would scrub ordinary words


class SecretUnreadable(Exception):
    """The Secret (or its key) cannot be read: it does not exist, or the API refused it (401, 403,
    5xx). The message names it and the status, never a value."""


class SecretNotFound(SecretUnreadable):
    """The Secret (or its key) does not exist (404, or no such folder or file)."""


class SecretKeyMissing(SecretNotFound):
    """The Secret exists but has no such key."""


class Redactor:
    """Remembers secret values and replaces them (and each line of a multi-line value) in text."""

    def __init__(self) -> None:
        self._values: set[str] = set()
        self._lock = threading.Lock()

    def add(self, value: bytes | str) -> None:
        text = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
        parts = {text.strip()} | {line.strip() for line in text.splitlines()}
        for part in parts:
            # also the value part of `key = value` lines (AWS credentials files, .env files)
            if "=" in part:
                parts = parts | {part.split("=", 1)[1].strip()}
        with self._lock:
            self._values.update(p for p in parts if len(p) >= MIN_SCRUB_LENGTH)

    def scrub(self, text: str) -> str:
        with self._lock:
            values = sorted(self._values, key=len, reverse=True)
        for value in values:
            if value in text:
                text = text.replace(value, "***")
        return text


class SecretSource(abc.ABC):
    def __init__(self) -> None:
        self.redactor = Redactor()

    def get(self, namespace: str, name: str, key: str) -> bytes:
        value = self._get(namespace, name, key)
        self.redactor.add(value)
        return value

    @abc.abstractmethod
    def _get(self, namespace: str, name: str, key: str) -> bytes: ...

    @abc.abstractmethod
    def exists(self, namespace: str, name: str) -> bool: ...


class DirectorySecretSource(SecretSource):
    """`root/<namespace>/<name>/<key>` files, the layout Kubernetes uses when it mounts a Secret."""

    def __init__(self, root: str | Path):
        super().__init__()
        self.root = Path(root)

    def _dir(self, namespace: str, name: str) -> Path:
        for segment in (namespace, name):
            if not _SEGMENT.match(segment):
                raise SecretNotFound(f"invalid Secret reference {namespace}/{name}")
        return self.root / namespace / name

    def _get(self, namespace: str, name: str, key: str) -> bytes:
        if not _SEGMENT.match(key):
            raise SecretKeyMissing(f"invalid key {key!r} of Secret {namespace}/{name}")
        folder = self._dir(namespace, name)
        if not folder.is_dir():
            raise SecretNotFound(f"Secret {namespace}/{name} not found in {self.root}")
        file = folder / key
        if not file.is_file():
            raise SecretKeyMissing(f"Secret {namespace}/{name} has no key {key!r}")
        return file.read_bytes()

    def exists(self, namespace: str, name: str) -> bool:
        try:
            return self._dir(namespace, name).is_dir()
        except SecretNotFound:
            return False


class KubernetesSecretSource(SecretSource):
    """Secrets read from the host cluster through the kubernetes client (needs `get` on them).

    The bearer token of the in-cluster config or kubeconfig is carried into the generated client's
    auth settings (`kubeapi.carry_bearer_token`): kubernetes 36 would otherwise send none."""

    def __init__(self, api_client) -> None:
        super().__init__()
        from kubernetes import client

        from ctpbackup.kube.api import carry_bearer_token

        carry_bearer_token(api_client.configuration)
        self.api = client.CoreV1Api(api_client)

    @classmethod
    def in_cluster(cls) -> KubernetesSecretSource:
        from kubernetes import client, config

        configuration = client.Configuration()
        config.load_incluster_config(client_configuration=configuration)
        return cls(client.ApiClient(configuration))

    @classmethod
    def from_kubeconfig(cls, path: str) -> KubernetesSecretSource:
        from kubernetes import client, config

        configuration = client.Configuration()
        config.load_kube_config(config_file=path, client_configuration=configuration)
        return cls(client.ApiClient(configuration))

    def _read(self, namespace: str, name: str):
        from kubernetes.client.exceptions import ApiException

        try:
            return self.api.read_namespaced_secret(name, namespace)
        except ApiException as err:
            if err.status == 404:
                raise SecretNotFound(f"Secret {namespace}/{name} not found") from None
            raise SecretUnreadable(f"Secret {namespace}/{name} could not be read: {err.status} {err.reason}") from None

    def _get(self, namespace: str, name: str, key: str) -> bytes:
        data = self._read(namespace, name).data or {}
        if key not in data:
            raise SecretKeyMissing(f"Secret {namespace}/{name} has no key {key!r}")
        return base64.b64decode(data[key])

    def exists(self, namespace: str, name: str) -> bool:
        try:
            self._read(namespace, name)
            return True
        except SecretUnreadable:
            return False
