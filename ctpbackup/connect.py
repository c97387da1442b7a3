"""Reach a control plane: the kubeconfig in its connection Secret, turned into an API client.

The Secret is read through the same SecretSource as bucket credentials. The kubeconfig is parsed in
memory (never written to disk) and its token never reaches a message.
"""

from __future__ import annotations

import yaml
from kubernetes import client, config

from ctpbackup.model import ControlPlane
from ctpbackup.secrets import SecretNotFound, SecretSource

KUBECONFIG_KEY = "kubeconfig"


class ControlPlaneUnreachable(Exception):
    """The control plane cannot be reached; the message says why, without secrets."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason
        self.message = message


def kubeconfig_of(control_plane: ControlPlane, secrets: SecretSource) -> bytes:
    ref = control_plane.connection_secret
    assert ref is not None
    try:
        return secrets.get(ref.namespace, ref.name, KUBECONFIG_KEY)
    except SecretNotFound as err:
        raise ControlPlaneUnreachable("ConnectionSecretMissing", f"connection Secret not available: {err}") from None


def api_client_for(control_plane: ControlPlane, secrets: SecretSource, *, pool_size: int = 16) -> client.ApiClient:
    """An ApiClient for the control plane (no request made yet)."""
    raw = kubeconfig_of(control_plane, secrets)
    try:
        document = yaml.safe_load(raw)
        configuration = client.Configuration()
        loader = config.kube_config.KubeConfigLoader(config_dict=document)
        loader.load_and_set(configuration)
    except Exception:  # a kubeconfig we cannot use; its content may be secret, so it is not quoted
        ref = control_plane.connection_secret
        raise ControlPlaneUnreachable(
            "InvalidKubeconfig",
            f"the 'kubeconfig' key of Secret {ref.namespace}/{ref.name} is not a usable kubeconfig") from None
    configuration.connection_pool_maxsize = pool_size
    configuration.retries = 0  # we retry ourselves, with backoff, where it is safe
    return client.ApiClient(configuration)
