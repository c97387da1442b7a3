"""Reach a control plane: the kubeconfig in its connection Secret, turned into an API client.

The Secret is read through the same SecretSource as bucket credentials, and its token never reaches a
message. Whoever can write that Secret must not get to run anything in the job (which holds every
team's bucket credentials) or read its files, so before the kubernetes client sees the kubeconfig it
is checked against an allow-list of fields that carry only inline data (`check_kubeconfig`); anything
that names a command, a plugin or a local file fails that control plane with `InsecureKubeconfig`,
unless its ControlPlane sets the extension `spec.allowInsecureKubeconfig: true`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import yaml

from ctpbackup.desired.model import ControlPlane
from ctpbackup.kube.secrets import SecretSource, SecretUnreadable
from ctpbackup.rules.reasons import FailureReason, ReasonedError

if TYPE_CHECKING:  # the kubernetes package takes seconds to import: only commands that connect load it
    from kubernetes.client import ApiClient

KUBECONFIG_KEY = "kubeconfig"

#: The fields a connection kubeconfig may hold by default (client-go's clientcmd/api/v1 names), per
#: level. Each carries inline data only; `extensions` are opaque to clients (client-go hands them only
#: to exec plugins, which are refused).
_ALLOWED: dict[str, frozenset[str]] = {
    "": frozenset({"apiVersion", "kind", "clusters", "users", "contexts", "current-context", "preferences",
                   "extensions"}),
    "clusters[]": frozenset({"name", "cluster"}),
    "cluster": frozenset({"server", "certificate-authority-data", "tls-server-name", "extensions"}),
    "users[]": frozenset({"name", "user"}),
    "user": frozenset({"token", "client-certificate-data", "client-key-data", "extensions"}),
    "contexts[]": frozenset({"name", "context"}),
    "context": frozenset({"cluster", "user", "namespace", "extensions"}),
}

#: Why a known field is refused (from kubectl's and client-go's kubeconfig documentation).
_WHY = {
    "exec": "runs a command (a client-go credential plugin)",
    "auth-provider": "runs a plugin (gcp's cmd-path runs a command; oidc and azure fetch tokens from identity providers)",
    "tokenFile": "reads a local file",
    "client-certificate": "reads a local file",
    "client-key": "reads a local file",
    "certificate-authority": "reads a local file",
    "proxy-url": "sends the traffic, credentials included, through a proxy the Secret chooses",
    "insecure-skip-tls-verify": "turns off the server certificate check",
    "username": "basic authentication (kube-apiserver removed it in 1.19)",
    "password": "basic authentication (kube-apiserver removed it in 1.19)",
    "as": "impersonation", "as-uid": "impersonation", "as-groups": "impersonation",
    "as-user-extra": "impersonation",
}


class ConnectionSecretUnusable(ReasonedError):
    """The control plane's connection Secret cannot be used: missing or unreadable
    (`ConnectionSecretMissing`), not a kubeconfig (`InvalidKubeconfig`) or one that would run or read
    something (`InsecureKubeconfig`). No request was made; the message says why, without secrets."""


class InsecureKubeconfig(ValueError):
    """A kubeconfig field outside the allow-list; `field` is its path (`users[0].user.exec`)."""

    def __init__(self, field: str, why: str):
        super().__init__(f"{field} {why}")
        self.field = field
        self.why = why


def _name(key: object) -> str:
    text = str(key)
    return text if len(text) <= 60 and text.isprintable() else repr(text[:60]) + "..."


def check_kubeconfig(document: Any) -> None:
    """Raise InsecureKubeconfig for the first field (in document order) that is not on the allow-list:
    only `server`, `certificate-authority-data`, `tls-server-name`, `token`, `client-certificate-data`,
    `client-key-data` and the structure around them (clusters/users/contexts, names, `namespace`,
    `current-context`, `preferences`, `extensions`). `insecure-skip-tls-verify: false` is allowed.
    Values are never quoted; a document of the wrong shape raises ValueError."""
    if not isinstance(document, Mapping):
        raise ValueError("not a mapping")

    def fields(mapping: object, level: str, where: str) -> None:
        if mapping is None:
            return
        if not isinstance(mapping, Mapping):
            raise ValueError(f"{where or 'the document'} is not a mapping")
        for key, value in mapping.items():
            path = f"{where}.{_name(key)}" if where else _name(key)
            if key == "insecure-skip-tls-verify" and value is False:
                continue
            if key not in _ALLOWED[level]:
                raise InsecureKubeconfig(path, _WHY.get(str(key), "is not an allowed kubeconfig field"))
            if level == "" and key in ("clusters", "users", "contexts"):
                if value is None:
                    continue
                if not isinstance(value, list):
                    raise ValueError(f"{path} is not a list")
                for i, entry in enumerate(value):
                    fields(entry, f"{key}[]", f"{path}[{i}]")
            elif level.endswith("[]") and key != "name":
                fields(value, key, path)

    fields(document, "", "")


def _credentials(document: Any) -> list[str]:
    """The secret values of a kubeconfig's users (tokens, private keys, passwords), to be scrubbed
    from messages on their own and not only as part of the line that holds them."""
    values = []
    users = document.get("users") if isinstance(document, Mapping) else None
    for entry in users if isinstance(users, list) else ():
        user = entry.get("user") if isinstance(entry, Mapping) else None
        if isinstance(user, Mapping):
            values += [str(user[k]) for k in ("token", "client-key-data", "password") if user.get(k)]
    return values


def kubeconfig_of(control_plane: ControlPlane, secrets: SecretSource) -> bytes:
    ref = control_plane.connection_secret
    assert ref is not None
    try:
        return secrets.get(ref.namespace, ref.name, KUBECONFIG_KEY)
    except SecretUnreadable as err:
        raise ConnectionSecretUnusable(FailureReason.CONNECTION_SECRET_MISSING, f"connection Secret not available: {err}") from None


def api_client_for(control_plane: ControlPlane, secrets: SecretSource, *, pool_size: int = 16) -> ApiClient:
    """An ApiClient for the control plane (no request made yet). Raises ConnectionSecretUnusable with
    reason `ConnectionSecretMissing`, `InsecureKubeconfig` (a field naming a command, plugin or file,
    see `check_kubeconfig`; nothing is run or read) or `InvalidKubeconfig`."""
    from kubernetes import client, config

    raw = kubeconfig_of(control_plane, secrets)
    ref = control_plane.connection_secret
    where = f"the 'kubeconfig' key of Secret {ref.namespace}/{ref.name}"
    try:
        document = yaml.safe_load(raw)
        for value in _credentials(document):
            secrets.redactor.add(value)
        if not control_plane.allow_insecure_kubeconfig:
            check_kubeconfig(document)
        configuration = client.Configuration()
        loader = config.kube_config.KubeConfigLoader(config_dict=document)
        loader.load_and_set(configuration)
    except InsecureKubeconfig as err:
        raise ConnectionSecretUnusable(
            FailureReason.INSECURE_KUBECONFIG,
            f"{where}: {err.field} {err.why}; refused (only inline server, certificate and token fields are "
            f"allowed unless ControlPlane {control_plane.namespace}/{control_plane.name} sets "
            f"spec.allowInsecureKubeconfig)") from None
    except Exception:  # a kubeconfig we cannot use; its content may be secret, so it is not quoted
        raise ConnectionSecretUnusable(FailureReason.INVALID_KUBECONFIG, f"{where} is not a usable kubeconfig") from None
    configuration.connection_pool_maxsize = pool_size
    configuration.retries = 0  # we retry ourselves, with backoff, where it is safe
    return client.ApiClient(configuration)
