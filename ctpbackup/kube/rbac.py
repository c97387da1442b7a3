"""The RBAC a repository's manifests need: `get` on exactly the Secrets the job reads, in the namespaces
that hold them.

A Role only grants access inside its own namespace (RoleBinding semantics, kube-apiserver
`plugin/pkg/auth/authorizer/rbac/rbac.go`), so one Role and one RoleBinding are needed per namespace
holding a bucket-credentials, encryption-key or connection Secret. Writing them by hand is how a Role
ends up in the wrong namespace; `reconcile.py rbac` prints them from the loaded manifests instead.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import yaml

from ctpbackup.desired.model import CredentialsSource, DesiredState

ROLE_NAME = "ctpbackup-read-secrets"
SERVICE_ACCOUNT = ("ctpbackup-system", "ctpbackup")  # (namespace, name) of the job's ServiceAccount
LABELS = {"app.kubernetes.io/name": "ctpbackup", "app.kubernetes.io/part-of": "ctpbackup"}


@dataclass(frozen=True)
class SecretUse:
    """One key of one Secret the job reads: where, what for (`bucket-credentials`, `encryption-key`
    or `kubeconfig`), and the objects that reference it ("SharedBackupConfig default/default", ...)."""

    namespace: str
    name: str
    key: str
    use: str
    used_by: tuple[str, ...]


def secrets_read(desired: DesiredState) -> list[SecretUse]:
    """Every Secret key a run may read, sorted by (namespace, name, key, use): each
    SharedBackupConfig's credentials (when `credentials.source` is Secret) and encryption keys, and
    each ControlPlane's connection Secret (key `kubeconfig`; Spaces' default name `kubeconfig-<name>`)."""
    users: dict[tuple[str, str, str, str], set[str]] = defaultdict(set)
    for (ns, name), config in desired.configs.items():
        storage = config.object_storage
        who = f"SharedBackupConfig {ns}/{name}"
        if storage.credentials.source is CredentialsSource.SECRET and storage.credentials.secret_ref is not None:
            ref = storage.credentials.secret_ref
            users[(ns, ref.name, ref.key, "bucket-credentials")].add(who)
        for ref in storage.encryption_key_refs:  # every key decrypts, so every key is read
            users[(ns, ref.name, ref.key, "encryption-key")].add(who)
    for (ns, name), control_plane in desired.control_planes.items():
        conn = control_plane.connection_secret
        if conn is not None:
            users[(conn.namespace, conn.name, "kubeconfig", "kubeconfig")].add(f"ControlPlane {ns}/{name}")
    return [SecretUse(*key, tuple(sorted(users[key]))) for key in sorted(users)]


def objects(desired: DesiredState, service_account: tuple[str, str] = SERVICE_ACCOUNT) -> list[dict]:
    """One Role (`get` on the named Secrets, nothing else) and one RoleBinding (to the job's
    ServiceAccount) per namespace, as rbac.authorization.k8s.io/v1 objects, sorted by namespace."""
    by_namespace: dict[str, set[str]] = defaultdict(set)
    for secret in secrets_read(desired):
        by_namespace[secret.namespace].add(secret.name)
    sa_namespace, sa_name = service_account
    out: list[dict] = []
    for namespace in sorted(by_namespace):
        metadata = {"name": ROLE_NAME, "namespace": namespace, "labels": dict(LABELS)}
        out.append({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": metadata,
            "rules": [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"],
                       "resourceNames": sorted(by_namespace[namespace])}],
        })
        out.append({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": dict(metadata),
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": ROLE_NAME},
            "subjects": [{"kind": "ServiceAccount", "name": sa_name, "namespace": sa_namespace}],
        })
    return out


def to_yaml(docs: list[dict], header: str = "") -> str:
    """A multi-document YAML stream, `---` between documents, keys in the order written."""
    body = "---\n".join(yaml.safe_dump(doc, sort_keys=False, default_flow_style=False) for doc in docs)
    return header + body
