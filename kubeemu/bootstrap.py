"""What a new control plane holds before anyone writes to it, named and shaped as kube-apiserver's
bootstrap controllers make them: a representative set, not every object.

- RBAC: `plugin/pkg/auth/authorizer/rbac/bootstrappolicy` (policy.go, controller_policy.go,
  namespace_policy.go): every object carries the label `kubernetes.io/bootstrapping: rbac-defaults`
  and the annotation `rbac.authorization.kubernetes.io/autoupdate: "true"`; controller roles are
  `system:controller:<name>` bound to the ServiceAccount `kube-system/<name>`.
- Flow control: `pkg/apis/flowcontrol/bootstrap/default.go` (mandatory `exempt` and `catch-all`,
  the suggested levels and schemas), annotated `apf.kubernetes.io/autoupdate-spec: "true"`.
- PriorityClasses `system-node-critical` (2000001000) and `system-cluster-critical` (2000000000).
- One local APIService per built-in group/version (`v1.`, `v1.apps`, ...), label
  `kube-aggregator.kubernetes.io/automanaged: onstart`, Available with reason `Local`.
- The `kubernetes` Service in `default` (the first address of the service range, port 443 -> 6443).
"""

from __future__ import annotations

from collections.abc import Iterator

RBAC = "rbac.authorization.k8s.io"
BOOTSTRAP_LABELS = {"kubernetes.io/bootstrapping": "rbac-defaults"}
AUTOUPDATE = {"rbac.authorization.kubernetes.io/autoupdate": "true"}
READ = ["get", "list", "watch"]
WRITE = ["create", "delete", "deletecollection", "patch", "update"]

#: controller roles (controller_policy.go), each bound to kube-system/<name>
CONTROLLERS = (
    "attachdetach-controller", "certificate-controller", "clusterrole-aggregation-controller", "cronjob-controller",
    "daemon-set-controller", "deployment-controller", "disruption-controller", "endpoint-controller",
    "endpointslice-controller", "endpointslicemirroring-controller", "ephemeral-volume-controller",
    "expand-controller", "generic-garbage-collector", "horizontal-pod-autoscaler", "job-controller",
    "legacy-service-account-token-cleaner", "namespace-controller", "node-controller", "persistent-volume-binder",
    "pod-garbage-collector", "pv-protection-controller", "pvc-protection-controller", "replicaset-controller",
    "replication-controller", "resourcequota-controller", "root-ca-cert-publisher", "route-controller",
    "service-account-controller", "service-cidrs-controller", "service-controller", "statefulset-controller",
    "ttl-after-finished-controller", "ttl-controller", "validatingadmissionpolicy-status-controller",
)
DISCOVERY_URLS = ["/api", "/api/*", "/apis", "/apis/*", "/healthz", "/livez", "/openapi", "/openapi/*", "/readyz",
                  "/version", "/version/"]
PUBLIC_URLS = ["/healthz", "/livez", "/readyz", "/version", "/version/"]


def _meta(name: str, labels: dict | None = None, annotations: dict | None = None, namespace: str | None = None) -> dict:
    meta = {"name": name, "labels": {**BOOTSTRAP_LABELS, **(labels or {})}, "annotations": {**AUTOUPDATE, **(annotations or {})}}
    if namespace:
        meta["namespace"] = namespace
    return meta


def _rule(groups: list[str], resources: list[str], verbs: list[str]) -> dict:
    return {"apiGroups": groups, "resources": resources, "verbs": verbs}


def _aggregated(name: str) -> dict:
    return {"metadata": _meta(name), "aggregationRule": {"clusterRoleSelectors": [
        {"matchLabels": {f"rbac.authorization.k8s.io/aggregate-to-{name}": "true"}}]}, "rules": []}


def cluster_roles() -> list[dict]:
    user_facing = [
        {"metadata": _meta("cluster-admin"), "rules": [_rule(["*"], ["*"], ["*"]),
                                                        {"nonResourceURLs": ["*"], "verbs": ["*"]}]},
        _aggregated("admin"), _aggregated("edit"), _aggregated("view"),
        {"metadata": _meta("system:aggregate-to-admin", {"rbac.authorization.k8s.io/aggregate-to-admin": "true"}),
         "rules": [_rule([RBAC], ["rolebindings", "roles"], READ + WRITE),
                   _rule(["authorization.k8s.io"], ["localsubjectaccessreviews"], ["create"])]},
        {"metadata": _meta("system:aggregate-to-edit", {"rbac.authorization.k8s.io/aggregate-to-edit": "true"}),
         "rules": [_rule([""], ["configmaps", "secrets", "services", "serviceaccounts", "persistentvolumeclaims"],
                         WRITE), _rule(["apps"], ["deployments", "statefulsets", "daemonsets", "replicasets"], WRITE)]},
        {"metadata": _meta("system:aggregate-to-view", {"rbac.authorization.k8s.io/aggregate-to-view": "true"}),
         "rules": [_rule([""], ["configmaps", "endpoints", "persistentvolumeclaims", "pods", "services"], READ),
                   _rule(["apps"], ["deployments", "statefulsets", "daemonsets", "replicasets"], READ)]},
        {"metadata": _meta("system:discovery"), "rules": [{"nonResourceURLs": DISCOVERY_URLS, "verbs": ["get"]}]},
        {"metadata": _meta("system:public-info-viewer"), "rules": [{"nonResourceURLs": PUBLIC_URLS, "verbs": ["get"]}]},
        {"metadata": _meta("system:basic-user"), "rules": [
            _rule(["authorization.k8s.io"], ["selfsubjectaccessreviews", "selfsubjectrulesreviews"], ["create"]),
            _rule(["authentication.k8s.io"], ["selfsubjectreviews"], ["create"])]},
        {"metadata": _meta("system:monitoring"), "rules": [{"nonResourceURLs": ["/healthz", "/healthz/*", "/livez",
                                                                                 "/livez/*", "/metrics", "/readyz",
                                                                                 "/readyz/*"], "verbs": ["get"]}]},
        {"metadata": _meta("system:auth-delegator"), "rules": [
            _rule(["authentication.k8s.io"], ["tokenreviews"], ["create"]),
            _rule(["authorization.k8s.io"], ["subjectaccessreviews"], ["create"])]},
        {"metadata": _meta("system:node"), "rules": [_rule([""], ["nodes"], ["create", "get", "list", "watch"])]},
        {"metadata": _meta("system:kube-controller-manager"), "rules": [
            _rule(["coordination.k8s.io"], ["leases"], ["create"]), _rule([""], ["secrets", "serviceaccounts"], READ)]},
        {"metadata": _meta("system:kube-scheduler"), "rules": [_rule([""], ["pods"], READ),
                                                                _rule([""], ["bindings", "pods/binding"], ["create"])]},
        {"metadata": _meta("system:node-proxier"), "rules": [_rule([""], ["endpoints", "services"], ["list", "watch"])]},
        {"metadata": _meta("system:service-account-issuer-discovery"), "rules": [
            {"nonResourceURLs": ["/.well-known/openid-configuration", "/.well-known/openid-configuration/",
                                 "/openid/v1/jwks", "/openid/v1/jwks/"], "verbs": ["get"]}]},
        {"metadata": _meta("system:certificates.k8s.io:certificatesigningrequests:nodeclient"), "rules": [
            _rule(["certificates.k8s.io"], ["certificatesigningrequests/nodeclient"], ["create"])]},
        {"metadata": _meta("system:certificates.k8s.io:certificatesigningrequests:selfnodeclient"), "rules": [
            _rule(["certificates.k8s.io"], ["certificatesigningrequests/selfnodeclient"], ["create"])]},
    ]
    controllers = [{"metadata": _meta(f"system:controller:{name}"),
                    "rules": [_rule([""], ["events"], ["create", "patch", "update"]),
                              _rule(["events.k8s.io"], ["events"], ["create", "patch", "update"])]}
                   for name in CONTROLLERS]
    return user_facing + controllers


def _binding(name: str, subjects: list[dict], role: str | None = None) -> dict:
    return {"metadata": _meta(name), "roleRef": {"apiGroup": RBAC, "kind": "ClusterRole", "name": role or name},
            "subjects": subjects}


def _group(name: str) -> dict:
    return {"apiGroup": RBAC, "kind": "Group", "name": name}


def _user(name: str) -> dict:
    return {"apiGroup": RBAC, "kind": "User", "name": name}


def cluster_role_bindings() -> list[dict]:
    return [
        _binding("cluster-admin", [_group("system:masters")]),
        _binding("system:basic-user", [_group("system:authenticated")]),
        _binding("system:discovery", [_group("system:authenticated")]),
        _binding("system:public-info-viewer", [_group("system:authenticated"), _group("system:unauthenticated")]),
        _binding("system:monitoring", [_group("system:monitoring")]),
        _binding("system:kube-controller-manager", [_user("system:kube-controller-manager")]),
        _binding("system:kube-scheduler", [_user("system:kube-scheduler")]),
        _binding("system:node-proxier", [_user("system:kube-proxy")]),
        _binding("system:service-account-issuer-discovery", [_group("system:serviceaccounts")]),
        _binding("system:node", []),
    ] + [_binding(f"system:controller:{name}", [{"kind": "ServiceAccount", "name": name, "namespace": "kube-system"}])
         for name in CONTROLLERS]


def roles() -> list[tuple[str, dict]]:
    """Namespaced bootstrap Roles: (namespace, body)."""
    return [
        ("kube-system", {"metadata": _meta("extension-apiserver-authentication-reader", namespace="kube-system"),
                         "rules": [{"apiGroups": [""], "resourceNames": ["extension-apiserver-authentication"],
                                    "resources": ["configmaps"], "verbs": READ}]}),
        ("kube-system", {"metadata": _meta("system::leader-locking-kube-controller-manager", namespace="kube-system"),
                         "rules": [_rule(["coordination.k8s.io"], ["leases"], ["watch"])]}),
        ("kube-system", {"metadata": _meta("system:controller:bootstrap-signer", namespace="kube-system"),
                         "rules": [_rule([""], ["secrets"], READ)]}),
        ("kube-public", {"metadata": _meta("system:controller:bootstrap-signer", namespace="kube-public"),
                         "rules": [_rule([""], ["configmaps"], READ), {"apiGroups": [""], "resourceNames": ["cluster-info"],
                                                                         "resources": ["configmaps"], "verbs": ["update"]}]}),
    ]


def role_bindings() -> list[tuple[str, dict]]:
    def bind(namespace: str, name: str, subject: dict) -> tuple[str, dict]:
        return namespace, {"metadata": _meta(name, namespace=namespace),
                           "roleRef": {"apiGroup": RBAC, "kind": "Role", "name": name}, "subjects": [subject]}

    return [
        bind("kube-system", "system::leader-locking-kube-controller-manager",
             {"kind": "ServiceAccount", "name": "kube-controller-manager", "namespace": "kube-system"}),
        bind("kube-system", "system:controller:bootstrap-signer",
             {"kind": "ServiceAccount", "name": "bootstrap-signer", "namespace": "kube-system"}),
        bind("kube-public", "system:controller:bootstrap-signer",
             {"kind": "ServiceAccount", "name": "bootstrap-signer", "namespace": "kube-system"}),
    ]


def priority_classes() -> list[dict]:
    return [{"metadata": {"name": "system-node-critical"}, "value": 2000001000, "globalDefault": False,
             "preemptionPolicy": "PreemptLowerPriority", "description": "Used for system critical pods that must not be "
                                                                         "moved from their current node."},
            {"metadata": {"name": "system-cluster-critical"}, "value": 2000000000, "globalDefault": False,
             "preemptionPolicy": "PreemptLowerPriority", "description": "Used for system critical pods that must run "
                                                                         "in the cluster, but can be moved to another node "
                                                                         "if necessary."}]


_APF = {"apf.kubernetes.io/autoupdate-spec": "true"}
#: (name, nominalConcurrencyShares, lendablePercent); catch-all rejects rather than queues
_LEVELS = (("system", 30, 33), ("node-high", 40, 25), ("leader-election", 10, 0), ("workload-high", 40, 50),
           ("workload-low", 100, 90), ("global-default", 20, 50), ("catch-all", 5, 0))
#: (name, priority level, matchingPrecedence, distinguisher or None, subjects)
_SCHEMAS = (
    ("exempt", "exempt", 1, None, [_group("system:masters")]),
    ("probes", "exempt", 2, None, [_group("system:unauthenticated"), _group("system:authenticated")]),
    ("system-leader-election", "leader-election", 100, "ByUser",
     [_user("system:kube-controller-manager"), _user("system:kube-scheduler")]),
    ("endpoint-controller", "workload-high", 150, "ByUser", [_user("system:kube-controller-manager")]),
    ("workload-leader-election", "leader-election", 200, "ByUser", [_group("system:serviceaccounts")]),
    ("system-node-high", "node-high", 400, "ByUser", [_group("system:nodes")]),
    ("system-nodes", "system", 500, "ByUser", [_group("system:nodes")]),
    ("kube-controller-manager", "workload-high", 800, "ByNamespace", [_user("system:kube-controller-manager")]),
    ("kube-scheduler", "workload-high", 800, "ByNamespace", [_user("system:kube-scheduler")]),
    ("kube-system-service-accounts", "workload-high", 900, "ByNamespace", [_group("system:serviceaccounts")]),
    ("service-accounts", "workload-low", 9000, "ByUser", [_group("system:serviceaccounts")]),
    ("global-default", "global-default", 9900, "ByUser", [_group("system:unauthenticated"),
                                                          _group("system:authenticated")]),
    ("catch-all", "catch-all", 10000, "ByUser", [_group("system:unauthenticated"), _group("system:authenticated")]),
)


def priority_level_configurations() -> list[dict]:
    out = [{"metadata": {"name": "exempt", "annotations": _APF},
            "spec": {"type": "Exempt", "exempt": {"nominalConcurrencyShares": 0, "lendablePercent": 0}}}]
    for name, shares, lendable in _LEVELS:
        response = ({"type": "Reject"} if name == "catch-all" else
                    {"type": "Queue", "queuing": {"queues": 64 if name != "leader-election" else 16,
                                                  "handSize": 6 if name != "leader-election" else 4,
                                                  "queueLengthLimit": 50}})
        out.append({"metadata": {"name": name, "annotations": _APF},
                    "spec": {"type": "Limited", "limited": {"nominalConcurrencyShares": shares,
                                                            "lendablePercent": lendable, "limitResponse": response}}})
    return out


def flow_schemas() -> list[dict]:
    out = []
    for name, level, precedence, distinguisher, subjects in _SCHEMAS:
        spec: dict = {"priorityLevelConfiguration": {"name": level}, "matchingPrecedence": precedence,
                      "rules": [{"subjects": [{"kind": s["kind"], s["kind"].lower(): {"name": s["name"]}}
                                              for s in subjects],
                                 "resourceRules": [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"],
                                                    "clusterScope": True, "namespaces": ["*"]}],
                                 "nonResourceRules": [{"verbs": ["*"], "nonResourceURLs": ["*"]}]}]}
        if distinguisher:
            spec["distinguisherMethod"] = {"type": distinguisher}
        out.append({"metadata": {"name": name, "annotations": _APF}, "spec": spec})
    return out


#: groupPriorityMinimum of the local APIServices (kube-aggregator's `apiVersionPriorities`)
GROUP_PRIORITY = {"": 18000, "apiregistration.k8s.io": 18000, "apps": 17800, "events.k8s.io": 17750,
                  "authentication.k8s.io": 17700, "authorization.k8s.io": 17600, "autoscaling": 17500, "batch": 17400,
                  "certificates.k8s.io": 17300, "networking.k8s.io": 17200, "policy": 17100,
                  "rbac.authorization.k8s.io": 17000, "storage.k8s.io": 16800, "admissionregistration.k8s.io": 16700,
                  "apiextensions.k8s.io": 16700, "scheduling.k8s.io": 16600, "coordination.k8s.io": 16500,
                  "node.k8s.io": 16300, "discovery.k8s.io": 16200, "flowcontrol.apiserver.k8s.io": 16100}


def api_services(group_versions: list[tuple[str, str]]) -> Iterator[dict]:
    """One local APIService per served built-in group/version, named `<version>.<group>`."""
    for group, version in group_versions:
        yield {"metadata": {"name": f"{version}.{group}", "labels": {"kube-aggregator.kubernetes.io/automanaged": "onstart"}},
               "spec": {"group": group, "version": version, "groupPriorityMinimum": GROUP_PRIORITY.get(group, 16000),
                        "versionPriority": {"v2": 30, "v1": 15}.get(version, 9)},
               "status": {"conditions": [{"type": "Available", "status": "True", "reason": "Local",
                                          "message": "Local APIServices are always available",
                                          "lastTransitionTime": "2026-01-01T00:00:00Z"}]}}


def kubernetes_endpoints(address: str = "127.0.0.1") -> tuple[dict, dict]:
    """The Endpoints and EndpointSlice the API server keeps for the `kubernetes` Service (its own address)."""
    endpoints = {"metadata": {"name": "kubernetes", "labels": {"endpointslice.kubernetes.io/skip-mirror": "true"}},
                 "subsets": [{"addresses": [{"ip": address}],
                              "ports": [{"name": "https", "port": 6443, "protocol": "TCP"}]}]}
    slice_ = {"metadata": {"name": "kubernetes", "labels": {"kubernetes.io/service-name": "kubernetes"}},
              "addressType": "IPv4", "endpoints": [{"addresses": [address], "conditions": {"ready": True}}],
              "ports": [{"name": "https", "port": 6443, "protocol": "TCP"}]}
    return endpoints, slice_


def apiserver_lease(identity: str) -> dict:
    """kube-system's identity Lease of the running API server (renewed by it; `kube-apiserver-<id>`)."""
    return {"metadata": {"name": f"apiserver-{identity}", "labels": {
        "apiserver.kubernetes.io/identity": "kube-apiserver", "kubernetes.io/hostname": "kubeemu"}},
        "spec": {"holderIdentity": f"apiserver-{identity}_{identity}", "leaseDurationSeconds": 3600}}


def kubernetes_service(cluster_ip: str) -> dict:
    return {"metadata": {"name": "kubernetes", "labels": {"component": "apiserver", "provider": "kubernetes"}},
            "spec": {"type": "ClusterIP", "clusterIP": cluster_ip, "clusterIPs": [cluster_ip],
                     "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": 6443}],
                     "sessionAffinity": "None"}}


def counts() -> dict[str, int]:
    """How many bootstrap objects a new control plane holds, by `resource.group` (namespaces and
    what every namespace gets are not counted here)."""
    from kubeemu.resources import BUILTINS

    return {"clusterroles.rbac.authorization.k8s.io": len(cluster_roles()),
            "clusterrolebindings.rbac.authorization.k8s.io": len(cluster_role_bindings()),
            "roles.rbac.authorization.k8s.io": len(roles()),
            "rolebindings.rbac.authorization.k8s.io": len(role_bindings()),
            "priorityclasses.scheduling.k8s.io": len(priority_classes()),
            "prioritylevelconfigurations.flowcontrol.apiserver.k8s.io": len(priority_level_configurations()),
            "flowschemas.flowcontrol.apiserver.k8s.io": len(flow_schemas()),
            "apiservices.apiregistration.k8s.io": len({(r.group, r.version) for r in BUILTINS}),
            "services": 1}
