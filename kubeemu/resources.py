"""The resource types an emulated control plane serves: Kubernetes' built-ins, plus whatever
CustomResourceDefinitions add once they are Established."""

from __future__ import annotations

from dataclasses import dataclass

ALL_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")


@dataclass(frozen=True)
class Resource:
    group: str
    version: str
    plural: str
    singular: str
    kind: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    has_status: bool = False
    verbs: tuple[str, ...] = ALL_VERBS
    categories: tuple[str, ...] = ()
    #: names must be DNS labels (namespaces) rather than DNS subdomains
    label_names: bool = False

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def key(self) -> tuple[str, str]:
        return (self.group, self.plural)

    @property
    def qualified(self) -> str:
        return f"{self.plural}.{self.group}" if self.group else self.plural


def _r(group, version, plural, kind, namespaced, short=(), status=False, verbs=ALL_VERBS, singular=None, cats=(),
       label=False) -> Resource:
    return Resource(group, version, plural, singular or kind.lower(), kind, namespaced, tuple(short), status, verbs,
                    tuple(cats), label)


BUILTINS: tuple[Resource, ...] = (
    _r("", "v1", "namespaces", "Namespace", False, ("ns",), True, label=True,
       verbs=("create", "delete", "get", "list", "patch", "update", "watch")),
    _r("", "v1", "secrets", "Secret", True),
    _r("", "v1", "configmaps", "ConfigMap", True, ("cm",)),
    _r("", "v1", "serviceaccounts", "ServiceAccount", True, ("sa",)),
    _r("", "v1", "events", "Event", True, ("ev",)),
    _r("", "v1", "services", "Service", True, ("svc",), True, cats=("all",)),
    _r("", "v1", "endpoints", "Endpoints", True, ("ep",)),
    _r("", "v1", "pods", "Pod", True, ("po",), True, cats=("all",)),
    _r("", "v1", "persistentvolumeclaims", "PersistentVolumeClaim", True, ("pvc",), True),
    _r("", "v1", "persistentvolumes", "PersistentVolume", False, ("pv",), True),
    _r("", "v1", "nodes", "Node", False, ("no",), True),
    _r("", "v1", "limitranges", "LimitRange", True, ("limits",)),
    _r("", "v1", "resourcequotas", "ResourceQuota", True, ("quota",), True),
    _r("rbac.authorization.k8s.io", "v1", "roles", "Role", True),
    _r("rbac.authorization.k8s.io", "v1", "rolebindings", "RoleBinding", True),
    _r("rbac.authorization.k8s.io", "v1", "clusterroles", "ClusterRole", False),
    _r("rbac.authorization.k8s.io", "v1", "clusterrolebindings", "ClusterRoleBinding", False),
    _r("apiextensions.k8s.io", "v1", "customresourcedefinitions", "CustomResourceDefinition", False, ("crd", "crds"), True),
    _r("coordination.k8s.io", "v1", "leases", "Lease", True),
    _r("events.k8s.io", "v1", "events", "Event", True, ("ev",)),
    _r("apps", "v1", "deployments", "Deployment", True, ("deploy",), True, cats=("all",)),
    _r("apps", "v1", "replicasets", "ReplicaSet", True, ("rs",), True, cats=("all",)),
    _r("apps", "v1", "statefulsets", "StatefulSet", True, ("sts",), True, cats=("all",)),
    _r("apps", "v1", "daemonsets", "DaemonSet", True, ("ds",), True, cats=("all",)),
    _r("apps", "v1", "controllerrevisions", "ControllerRevision", True),
    _r("batch", "v1", "jobs", "Job", True, (), True, cats=("all",)),
    _r("batch", "v1", "cronjobs", "CronJob", True, ("cj",), True, cats=("all",)),
    _r("policy", "v1", "poddisruptionbudgets", "PodDisruptionBudget", True, ("pdb",), True),
    _r("networking.k8s.io", "v1", "networkpolicies", "NetworkPolicy", True, ("netpol",)),
    _r("scheduling.k8s.io", "v1", "priorityclasses", "PriorityClass", False, ("pc",)),
    _r("admissionregistration.k8s.io", "v1", "validatingwebhookconfigurations", "ValidatingWebhookConfiguration", False),
    _r("admissionregistration.k8s.io", "v1", "mutatingwebhookconfigurations", "MutatingWebhookConfiguration", False),
    _r("authentication.k8s.io", "v1", "tokenreviews", "TokenReview", False, verbs=("create",)),
    _r("authorization.k8s.io", "v1", "selfsubjectaccessreviews", "SelfSubjectAccessReview", False, verbs=("create",)),
)

#: the namespaces a new control plane has
INITIAL_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")


def from_crd(crd: dict) -> list[Resource]:
    """The served versions of a CRD as resources (the storage version first)."""
    spec = crd.get("spec") or {}
    names = spec.get("names") or {}
    out = []
    versions = sorted(spec.get("versions") or (), key=lambda v: not v.get("storage"))
    for version in versions:
        if not version.get("served", True):
            continue
        out.append(Resource(
            group=spec.get("group", ""), version=version["name"], plural=names.get("plural", ""),
            singular=names.get("singular") or names.get("kind", "").lower(), kind=names.get("kind", ""),
            namespaced=spec.get("scope", "Namespaced") == "Namespaced", short_names=tuple(names.get("shortNames") or ()),
            has_status="status" in (version.get("subresources") or {}), categories=tuple(names.get("categories") or ()),
        ))
    return out
