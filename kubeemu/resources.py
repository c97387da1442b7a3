"""The resource types an emulated control plane serves: Kubernetes' built-ins, plus whatever
CustomResourceDefinitions add once they are Established.

Discovery attributes (verbs, shortNames, categories, subresources) are those of kube-apiserver's
recorded discovery documents (kubernetes/kubernetes `api/discovery/*.json`, read 2026-11-30).
"""

from __future__ import annotations

import base64
import hashlib
import re
from dataclasses import dataclass

ALL_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")
NO_WATCH = ALL_VERBS[:-1]
CREATE_ONLY = ("create",)
#: a subresource's verbs and, when it answers another kind than its resource, that kind's (group, version, kind)
SUBRESOURCE_VERBS = ("get", "patch", "update")
SUBRESOURCE_KINDS = {"scale": ("autoscaling", "v1", "Scale")}


@dataclass(frozen=True)
class Resource:
    """One resource at one served version, with what discovery says of it.

    `storage_version` is the version objects are stored at (the CRD's `storage: true` version, or
    the built-in's storage version): every write through any served version is stored there, and
    every read rewrites `apiVersion` to the version in the URL (conversion `None`)."""

    group: str
    version: str
    plural: str
    singular: str
    kind: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    subresources: tuple[str, ...] = ()
    verbs: tuple[str, ...] = ALL_VERBS
    categories: tuple[str, ...] = ()
    #: names must be DNS labels (namespaces) rather than DNS subdomains
    label_names: bool = False
    storage_version: str = ""
    #: the version etcd still encodes objects at, when it lags the storage version (it feeds the hash)
    encoding_version: str = ""

    @property
    def has_status(self) -> bool:
        return "status" in self.subresources

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def storage_api_version(self) -> str:
        version = self.storage_version or self.version
        return f"{self.group}/{version}" if self.group else version

    @property
    def key(self) -> tuple[str, str]:
        return (self.group, self.plural)

    @property
    def qualified(self) -> str:
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def storage_version_hash(self) -> str:
        """As apiserver's `discovery.StorageVersionHash`: base64 of the first 8 bytes of
        sha256("group/storageVersion/Kind") (e.g. "qFsyl6wFWjQ=" for ConfigMaps)."""
        text = f"{self.group}/{self.encoding_version or self.storage_version or self.version}/{self.kind}"
        return base64.b64encode(hashlib.sha256(text.encode()).digest()[:8]).decode()


def _r(group: str, versions: str, plural: str, kind: str, namespaced: bool, short: tuple[str, ...] = (),
       subs: tuple[str, ...] = (), verbs: tuple[str, ...] = ALL_VERBS, cats: tuple[str, ...] = (),
       label: bool = False, encoded: str = "") -> list[Resource]:
    """A built-in served at `versions` (space-separated, the storage version first)."""
    names = versions.split()
    return [Resource(group, v, plural, kind.lower(), kind, namespaced, tuple(short), tuple(subs), verbs, tuple(cats),
                     label, names[0], encoded) for v in names]


_STATUS = ("status",)
_SCALE_STATUS = ("scale", "status")
_EXT = ("api-extensions",)

BUILTINS: tuple[Resource, ...] = tuple(r for group in (
    # core (api__v1.json)
    _r("", "v1", "namespaces", "Namespace", False, ("ns",), ("finalize", "status"), label=True,
       verbs=("create", "delete", "get", "list", "patch", "update", "watch")),
    _r("", "v1", "secrets", "Secret", True),
    _r("", "v1", "configmaps", "ConfigMap", True, ("cm",)),
    _r("", "v1", "serviceaccounts", "ServiceAccount", True, ("sa",)),
    _r("", "v1", "events", "Event", True, ("ev",)),
    _r("", "v1", "services", "Service", True, ("svc",), _STATUS, cats=("all",)),
    _r("", "v1", "endpoints", "Endpoints", True, ("ep",)),
    _r("", "v1", "pods", "Pod", True, ("po",), _STATUS, cats=("all",)),
    _r("", "v1", "podtemplates", "PodTemplate", True),
    _r("", "v1", "replicationcontrollers", "ReplicationController", True, ("rc",), _SCALE_STATUS, cats=("all",)),
    _r("", "v1", "persistentvolumeclaims", "PersistentVolumeClaim", True, ("pvc",), _STATUS),
    _r("", "v1", "persistentvolumes", "PersistentVolume", False, ("pv",), _STATUS),
    _r("", "v1", "nodes", "Node", False, ("no",), _STATUS),
    _r("", "v1", "limitranges", "LimitRange", True, ("limits",)),
    _r("", "v1", "resourcequotas", "ResourceQuota", True, ("quota",), _STATUS),
    # rbac.authorization.k8s.io
    _r("rbac.authorization.k8s.io", "v1", "roles", "Role", True),
    _r("rbac.authorization.k8s.io", "v1", "rolebindings", "RoleBinding", True),
    _r("rbac.authorization.k8s.io", "v1", "clusterroles", "ClusterRole", False),
    _r("rbac.authorization.k8s.io", "v1", "clusterrolebindings", "ClusterRoleBinding", False),
    # extension APIs
    _r("apiextensions.k8s.io", "v1", "customresourcedefinitions", "CustomResourceDefinition", False, ("crd", "crds"),
       _STATUS, cats=_EXT, encoded="v1beta1"),
    _r("apiregistration.k8s.io", "v1", "apiservices", "APIService", False, (), _STATUS, cats=_EXT),
    _r("admissionregistration.k8s.io", "v1", "validatingwebhookconfigurations", "ValidatingWebhookConfiguration", False,
       cats=_EXT),
    _r("admissionregistration.k8s.io", "v1", "mutatingwebhookconfigurations", "MutatingWebhookConfiguration", False,
       cats=_EXT),
    _r("admissionregistration.k8s.io", "v1", "validatingadmissionpolicies", "ValidatingAdmissionPolicy", False, (),
       _STATUS, cats=_EXT),
    _r("admissionregistration.k8s.io", "v1", "validatingadmissionpolicybindings", "ValidatingAdmissionPolicyBinding",
       False, cats=_EXT),
    # workloads
    _r("apps", "v1", "deployments", "Deployment", True, ("deploy",), _SCALE_STATUS, cats=("all",)),
    _r("apps", "v1", "replicasets", "ReplicaSet", True, ("rs",), _SCALE_STATUS, cats=("all",)),
    _r("apps", "v1", "statefulsets", "StatefulSet", True, ("sts",), _SCALE_STATUS, cats=("all",)),
    _r("apps", "v1", "daemonsets", "DaemonSet", True, ("ds",), _STATUS, cats=("all",)),
    _r("apps", "v1", "controllerrevisions", "ControllerRevision", True),
    _r("batch", "v1", "jobs", "Job", True, (), _STATUS, cats=("all",)),
    _r("batch", "v1", "cronjobs", "CronJob", True, ("cj",), _STATUS, cats=("all",)),
    # autoscaling: v2 is stored and preferred, v1 still served
    _r("autoscaling", "v2 v1", "horizontalpodautoscalers", "HorizontalPodAutoscaler", True, ("hpa",), _STATUS,
       cats=("all",)),
    _r("policy", "v1", "poddisruptionbudgets", "PodDisruptionBudget", True, ("pdb",), _STATUS),
    # networking, storage, nodes, scheduling
    _r("networking.k8s.io", "v1", "networkpolicies", "NetworkPolicy", True, ("netpol",)),
    _r("networking.k8s.io", "v1", "ingresses", "Ingress", True, ("ing",), _STATUS),
    _r("networking.k8s.io", "v1", "ingressclasses", "IngressClass", False),
    _r("discovery.k8s.io", "v1", "endpointslices", "EndpointSlice", True),
    _r("storage.k8s.io", "v1", "storageclasses", "StorageClass", False, ("sc",)),
    _r("storage.k8s.io", "v1", "csidrivers", "CSIDriver", False),
    _r("storage.k8s.io", "v1", "csinodes", "CSINode", False),
    _r("storage.k8s.io", "v1", "volumeattachments", "VolumeAttachment", False, (), _STATUS),
    _r("node.k8s.io", "v1", "runtimeclasses", "RuntimeClass", False),
    _r("scheduling.k8s.io", "v1", "priorityclasses", "PriorityClass", False, ("pc",)),
    _r("coordination.k8s.io", "v1", "leases", "Lease", True),
    _r("events.k8s.io", "v1", "events", "Event", True, ("ev",)),
    # the API server's own
    _r("flowcontrol.apiserver.k8s.io", "v1", "flowschemas", "FlowSchema", False, (), _STATUS, encoded="v1beta3"),
    _r("flowcontrol.apiserver.k8s.io", "v1", "prioritylevelconfigurations", "PriorityLevelConfiguration", False, (),
       _STATUS, encoded="v1beta3"),
    _r("certificates.k8s.io", "v1", "certificatesigningrequests", "CertificateSigningRequest", False, ("csr",),
       ("approval", "status")),
    _r("authentication.k8s.io", "v1", "tokenreviews", "TokenReview", False, verbs=CREATE_ONLY),
    _r("authentication.k8s.io", "v1", "selfsubjectreviews", "SelfSubjectReview", False, verbs=CREATE_ONLY),
    _r("authorization.k8s.io", "v1", "selfsubjectaccessreviews", "SelfSubjectAccessReview", False, verbs=CREATE_ONLY),
    _r("authorization.k8s.io", "v1", "selfsubjectrulesreviews", "SelfSubjectRulesReview", False, verbs=CREATE_ONLY),
    _r("authorization.k8s.io", "v1", "subjectaccessreviews", "SubjectAccessReview", False, verbs=CREATE_ONLY),
    _r("authorization.k8s.io", "v1", "localsubjectaccessreviews", "LocalSubjectAccessReview", True, verbs=CREATE_ONLY),
) for r in group)

#: the namespaces a new control plane has
INITIAL_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")

_KUBE_VERSION = re.compile(r"^v(\d+)(?:(alpha|beta)(\d+))?$")


def version_priority(version: str) -> tuple:
    """Sort key of a version in Kubernetes' priority order (apimachinery `version/helpers.go`,
    CompareKubeAwareVersionStrings): GA before beta before alpha, higher major then higher minor
    first within each, versions not shaped like Kubernetes' last in lexical order:
    v10 < v2 < v1 < v11beta2 < v10beta3 < v3beta1 < v12alpha1 < v11alpha2 < foo1 < foo10 (first = highest)."""
    match = _KUBE_VERSION.match(version)
    if not match:
        return (3, 0, 0, version)
    major, stage, minor = match.groups()
    return ({None: 0, "beta": 1, "alpha": 2}[stage], -int(major), -int(minor or 0), "")


def by_priority(versions) -> list[str]:
    """Versions, highest priority first."""
    return sorted(set(versions), key=version_priority)


def storage_version_of(crd: dict) -> str:
    """The CRD's `storage: true` version ('' if none)."""
    for version in (crd.get("spec") or {}).get("versions") or ():
        if version.get("storage"):
            return version.get("name", "")
    return ""


def from_crd(crd: dict) -> list[Resource]:
    """The served versions of a CRD as resources, highest priority first. Conversion is `None` for
    every strategy (a `Webhook` strategy is served as if it were `None`: no webhook is called)."""
    spec = crd.get("spec") or {}
    names = spec.get("names") or {}
    storage = storage_version_of(crd)
    out = []
    for version in sorted(spec.get("versions") or (), key=lambda v: version_priority(v.get("name", ""))):
        if not version.get("served", True):
            continue
        subs = tuple(s for s in ("scale", "status") if s in (version.get("subresources") or {}))
        out.append(Resource(
            group=spec.get("group", ""), version=version["name"], plural=names.get("plural", ""),
            singular=names.get("singular") or names.get("kind", "").lower(), kind=names.get("kind", ""),
            namespaced=spec.get("scope", "Namespaced") == "Namespaced", short_names=tuple(names.get("shortNames") or ()),
            subresources=subs, categories=tuple(names.get("categories") or ()), storage_version=storage,
        ))
    return out
