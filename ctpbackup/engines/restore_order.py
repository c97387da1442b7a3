"""The order a restore re-creates objects in: one list, in one place (as Velero keeps its priorities).

    1. CustomResourceDefinitions               then wait until Established, and refresh discovery
    2. Namespaces
    3. cluster RBAC: ClusterRoles, ClusterRoleBindings
    4. ServiceAccounts, Secrets, ConfigMaps, Roles, RoleBindings
       then service-account token Secrets (after their ServiceAccount)
    5. Crossplane packages and runtime configs  then wait until Installed / Healthy
    6. XRDs, Compositions, EnvironmentConfigs   then wait until Established
    7. everything else (managed resources, composites, claims, ...), created paused

CRDs always come first, whoever owns them (a provider's CRDs are owned by its ProviderRevision,
XR and claim CRDs by their XRD): an ownerReference to an owner restored later is added, remapped to
the owner's new uid, as soon as that owner exists. Any other object whose owner belongs to a later
tier waits for its owner's tier (a claim's connection Secret is restored with the claims); within a
tier, owners come before their dependents. After the CRDs, discovery is polled until their resources
are served, and it is refreshed after any tier that brings new types.

Two more tables live here, each in one place: CLEANUPS, what a restore changes in an archived object
before it writes it (and why), and MADE_BY_CONTROL_PLANE, the objects a new control plane makes
itself, into which the archived user fields are merged.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ctpbackup.kube.api import CRD_KEY


@dataclass(frozen=True)
class Tier:
    name: str
    resources: frozenset[str]  # resource keys ("secrets", "providers.pkg.crossplane.io"); empty = the rest
    #: resource key -> condition types its objects must report True before the next tier starts
    wait_for: tuple[tuple[str, tuple[str, ...]], ...] = ()
    #: create custom resources of this tier with crossplane.io/paused: "true", unpaused at the end
    pause: bool = False


TIERS: tuple[Tier, ...] = (
    Tier("CustomResourceDefinitions", frozenset({"customresourcedefinitions.apiextensions.k8s.io"}),
         (("customresourcedefinitions.apiextensions.k8s.io", ("Established",)),)),
    Tier("Namespaces", frozenset({"namespaces"})),
    Tier("Cluster RBAC", frozenset({"clusterroles.rbac.authorization.k8s.io",
                                    "clusterrolebindings.rbac.authorization.k8s.io"})),
    Tier("Namespaced basics", frozenset({"serviceaccounts", "secrets", "configmaps", "roles.rbac.authorization.k8s.io",
                                         "rolebindings.rbac.authorization.k8s.io"})),
    Tier("Service-account tokens", frozenset({"secrets (type kubernetes.io/service-account-token)"})),
    Tier("Crossplane packages", frozenset({
        "deploymentruntimeconfigs.pkg.crossplane.io", "controllerconfigs.pkg.crossplane.io",
        "imageconfigs.pkg.crossplane.io", "providers.pkg.crossplane.io", "configurations.pkg.crossplane.io",
        "functions.pkg.crossplane.io"}),
         tuple((f"{kind}.pkg.crossplane.io", ("Installed", "Healthy")) for kind in ("providers", "configurations", "functions"))),
    Tier("Crossplane APIs", frozenset({
        "compositeresourcedefinitions.apiextensions.crossplane.io", "compositions.apiextensions.crossplane.io",
        "compositionrevisions.apiextensions.crossplane.io", "environmentconfigs.apiextensions.crossplane.io"}),
        (("compositeresourcedefinitions.apiextensions.crossplane.io", ("Established",)),)),
    Tier("Everything else", frozenset(), pause=True),
)

#: groups whose objects are never paused (Kubernetes' own and Crossplane's machinery)
UNPAUSED_GROUP_SUFFIXES = (".k8s.io", "apps", "batch", "policy", "pkg.crossplane.io", "apiextensions.crossplane.io")

PAUSED = "crossplane.io/paused"
EXTERNAL_NAME = "crossplane.io/external-name"
#: set next to crossplane.io/paused: "true" on every object a restore paused, removed when it unpauses
#: it: a rerun of an interrupted restore finds what it paused by this marker
PAUSED_BY_RESTORE = "restore.ctpbackup.io/paused"
TOKEN_TYPE = "kubernetes.io/service-account-token"
SA_UID = "kubernetes.io/service-account.uid"
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
TOKEN_SECRETS = f"secrets (type {TOKEN_TYPE})"


def tier_of(resource_key: str, obj: dict | None = None) -> int:
    """The tier of an object of `resource_key` (token Secrets have their own, after ServiceAccounts)."""
    if resource_key == "secrets" and obj is not None and obj.get("type") == TOKEN_TYPE:
        resource_key = TOKEN_SECRETS
    for i, tier in enumerate(TIERS):
        if resource_key in tier.resources:
            return i
    return len(TIERS) - 1


def is_pausable(resource_key: str) -> bool:
    """Custom resources of the last tier: Crossplane managed resources, composites and claims."""
    if "." not in resource_key:
        return False  # core group
    group = resource_key.split(".", 1)[1]
    return not any(group == s or group.endswith(s) for s in UNPAUSED_GROUP_SUFFIXES)


# -- clean-ups: the one table of what a restore changes in an archived object ---------------------


@dataclass(frozen=True)
class Cleanup:
    """One per-kind clean-up. `applies(resource_key, obj, custom)` picks the objects (custom: the type
    is defined by a CRD); `clean(obj)` changes the body in place before it is written."""

    objects: str
    fields: str
    why: str
    applies: Callable[[str, dict, bool], bool]
    clean: Callable[[dict], None]


def _last_applied(obj: dict) -> dict:
    text = ((obj.get("metadata") or {}).get("annotations") or {}).get(LAST_APPLIED)
    try:
        value = json.loads(text) if text else {}
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _service_ips(obj: dict) -> None:
    spec = obj.get("spec") or {}
    if spec.get("clusterIP") != "None":
        spec.pop("clusterIP", None)
        spec.pop("clusterIPs", None)


def _node_ports(obj: dict) -> None:
    """Velero's rule (pkg/restore/service_action.go): a nodePort is kept only when the user set it,
    as the last-applied configuration shows; otherwise the target allocates one."""
    spec = obj.get("spec") or {}
    applied = _last_applied(obj).get("spec") or {}
    explicit_by_port = {p.get("port") for p in applied.get("ports") or () if isinstance(p, dict) and p.get("nodePort")}
    for port in spec.get("ports") or ():
        if isinstance(port, dict) and "nodePort" in port and port.get("port") not in explicit_by_port:
            port.pop("nodePort")
    if "healthCheckNodePort" in spec and not applied.get("healthCheckNodePort"):
        spec.pop("healthCheckNodePort")


def _token_secret(obj: dict) -> None:
    obj.pop("data", None)
    obj.pop("stringData", None)
    annotations = (obj.get("metadata") or {}).get("annotations")
    if annotations:
        annotations.pop(SA_UID, None)


def _status(obj: dict) -> None:
    obj.pop("status", None)


def _webhook_ca_bundle(obj: dict) -> None:
    conversion = (obj.get("spec") or {}).get("conversion") or {}
    client_config = (conversion.get("webhook") or {}).get("clientConfig") or {}
    client_config.pop("caBundle", None)


def _converts_by_webhook(key: str, obj: dict) -> bool:
    return key == CRD_KEY and ((obj.get("spec") or {}).get("conversion") or {}).get("strategy") == "Webhook"


CLEANUPS: tuple[Cleanup, ...] = (
    Cleanup("Service", "spec.clusterIP, spec.clusterIPs (kept when `None`: headless)",
            "allocated by the target from its own range; the source's may be taken or out of range",
            lambda key, obj, custom: key == "services", _service_ips),
    Cleanup("Service", "spec.ports[].nodePort, spec.healthCheckNodePort",
            "allocated by the target; kept when the last-applied configuration sets them (as Velero does)",
            lambda key, obj, custom: key == "services", _node_ports),
    Cleanup(f"Secret of type {TOKEN_TYPE}", f"data, annotation {SA_UID}",
            "the target's token controller fills in data, and deletes a token whose uid is not its ServiceAccount's",
            lambda key, obj, custom: key == "secrets" and obj.get("type") == TOKEN_TYPE, _token_secret),
    Cleanup("CustomResourceDefinition", "status", "the API server's (conditions, acceptedNames, storedVersions)",
            lambda key, obj, custom: key == CRD_KEY, _status),
    Cleanup("CustomResourceDefinition with conversion: Webhook", "spec.conversion.webhook.clientConfig.caBundle",
            "the source's CA; the target's provider sets its own (its objects come after the providers are Healthy)",
            lambda key, obj, custom: _converts_by_webhook(key, obj), _webhook_ca_bundle),
    Cleanup("built-in types (Namespace, Service, Deployment, ...)", "status",
            "server-owned (Namespace phase, Service loadBalancer, ...): never written back",
            lambda key, obj, custom: not custom and key != CRD_KEY, _status),
)
#: not body changes, but done to every object and listed with the table in the README:
#: ownerReferences remapped to the new uids (added once a later owner exists); custom resources of the
#: last tier created with crossplane.io/paused: "true" and PAUSED_BY_RESTORE, set back to the archived
#: annotations when unpaused; custom resources with a status subresource get their status through
#: /status (replaced exactly), those without keep it in the create body.


def clean(resource_key: str, obj: dict, custom: bool) -> list[str]:
    """Apply every clean-up of the table that fits; the `fields` of those applied."""
    done = []
    for cleanup in CLEANUPS:
        if cleanup.applies(resource_key, obj, custom):
            cleanup.clean(obj)
            done.append(cleanup.fields)
    return done


# -- objects the control plane makes itself -------------------------------------------------------


@dataclass(frozen=True)
class MadeByControlPlane:
    """Objects a new control plane makes itself (its controllers or the API server's bootstrap):
    already in the target, so the archived user `fields` are merged into the target's object.
    fields == (): not backed up at all (the target's own copy is the right one)."""

    resource: str
    objects: str
    match: Callable[[str, str], bool]  # (namespace, name)
    fields: tuple[str, ...]


_META = ("metadata.labels", "metadata.annotations")
BOOTSTRAP_CLUSTER_ROLES = frozenset({"cluster-admin", "admin", "edit", "view"})

MADE_BY_CONTROL_PLANE: tuple[MadeByControlPlane, ...] = (
    MadeByControlPlane("configmaps", "kube-root-ca.crt in every namespace", lambda ns, name: name == "kube-root-ca.crt", ()),
    MadeByControlPlane("serviceaccounts", "default in every namespace", lambda ns, name: name == "default",
                       (*_META, "imagePullSecrets", "secrets", "automountServiceAccountToken")),
    MadeByControlPlane("namespaces", "default, kube-system, kube-public, kube-node-lease",
                       lambda ns, name: name in ("default", "kube-system", "kube-public", "kube-node-lease"), _META),
    MadeByControlPlane("services", "default/kubernetes", lambda ns, name: (ns, name) == ("default", "kubernetes"), _META),
    MadeByControlPlane("clusterroles.rbac.authorization.k8s.io", "system:*, cluster-admin, admin, edit, view",
                       lambda ns, name: name.startswith("system:") or name in BOOTSTRAP_CLUSTER_ROLES, _META),
    MadeByControlPlane("clusterrolebindings.rbac.authorization.k8s.io", "system:*, cluster-admin",
                       lambda ns, name: name.startswith("system:") or name == "cluster-admin", _META),
    MadeByControlPlane("roles.rbac.authorization.k8s.io", "system:* and extension-apiserver-authentication-reader",
                       lambda ns, name: name.startswith("system:") or name == "extension-apiserver-authentication-reader",
                       _META),
    MadeByControlPlane("rolebindings.rbac.authorization.k8s.io", "system:*",
                       lambda ns, name: name.startswith("system:"), _META),
    MadeByControlPlane("priorityclasses.scheduling.k8s.io", "system-cluster-critical, system-node-critical",
                       lambda ns, name: name in ("system-cluster-critical", "system-node-critical"), _META),
    MadeByControlPlane("flowschemas.flowcontrol.apiserver.k8s.io", "the API server's bootstrap flow schemas",
                       lambda ns, name: True, _META),
    MadeByControlPlane("prioritylevelconfigurations.flowcontrol.apiserver.k8s.io", "the API server's bootstrap levels",
                       lambda ns, name: True, _META),
)


def made_by_control_plane(resource_key: str, namespace: str, name: str) -> MadeByControlPlane | None:
    for entry in MADE_BY_CONTROL_PLANE:
        if entry.resource == resource_key and entry.match(namespace, name):
            return entry
    return None


def merge_user_fields(entry: MadeByControlPlane, archived: dict, current: dict) -> dict[str, Any]:
    """A merge patch putting the archived user fields into the target's object: maps key by key
    (archived values win), lists as a union (the target's items first), scalars the archived value.
    Empty when the target already has them all."""
    patch: dict[str, Any] = {}
    for path in entry.fields:
        parts = path.split(".")
        want = _get(archived, parts)
        have = _get(current, parts)
        if want is None:
            continue
        if isinstance(want, dict):
            changed = {k: v for k, v in want.items() if (have or {}).get(k) != v}
            value: Any = changed or None
        elif isinstance(want, list):
            missing = [item for item in want if item not in (have or [])]
            value = [*(have or []), *missing] if missing else None
        else:
            value = want if want != have else None
        if value is not None:
            node = patch
            for part in parts[:-1]:
                node = node.setdefault(part, {})
            node[parts[-1]] = value
    return patch


def _get(obj: dict, parts: list[str]) -> Any:
    node: Any = obj
    for part in parts:
        if not isinstance(node, dict):
            return None
        node = node.get(part)
    return node
