"""The order a restore re-creates objects in: one list, in one place (as Velero keeps its priorities).

    1. CustomResourceDefinitions               then wait until Established, and refresh discovery
    2. Namespaces
    3. cluster RBAC: ClusterRoles, ClusterRoleBindings
    4. ServiceAccounts, Secrets, ConfigMaps, Roles, RoleBindings
    5. Crossplane packages and runtime configs  then wait until Installed / Healthy
    6. XRDs, Compositions, EnvironmentConfigs   then wait until Established
    7. everything else (managed resources, composites, claims, ...), created paused

An object whose owner belongs to a later tier waits for its owner's tier (a claim's connection Secret
is restored with the claims); within a tier, owners come before their dependents. So every
ownerReference can be remapped to its owner's new uid. CRD status belongs to the API server and is
never restored; after the CRDs, discovery is polled until their resources are served.
"""

from __future__ import annotations

from dataclasses import dataclass


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


def tier_of(resource_key: str) -> int:
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
