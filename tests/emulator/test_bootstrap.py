"""What a new control plane holds and does by itself, named and shaped as kube-apiserver's bootstrap
controllers (plugin/pkg/auth/authorizer/rbac/bootstrappolicy, pkg/apis/flowcontrol/bootstrap) and
the namespace controllers make them."""

from __future__ import annotations

import time

import pytest

from kubeemu.store import ROOT_CA_DESCRIPTION
from tests.emulator.kubehttp import call

RBAC = "/apis/rbac.authorization.k8s.io/v1"
BOOTSTRAPPED = ({"kubernetes.io/bootstrapping": "rbac-defaults"}, {"rbac.authorization.kubernetes.io/autoupdate": "true"})


def names(cp, path: str) -> set[str]:
    code, _, listed = call(cp, "GET", path)
    assert code == 200
    return {i["metadata"]["name"] for i in listed["items"]}


@pytest.mark.parametrize("name", ["cluster-admin", "admin", "edit", "view", "system:discovery", "system:basic-user",
                                  "system:public-info-viewer", "system:controller:namespace-controller",
                                  "system:controller:generic-garbage-collector", "system:aggregate-to-edit",
                                  "system:certificates.k8s.io:certificatesigningrequests:nodeclient", "system:node"])
def test_bootstrap_cluster_roles(control_plane, name):
    code, _, role = call(control_plane, "GET", f"{RBAC}/clusterroles/{name}")
    assert code == 200
    labels, annotations = BOOTSTRAPPED
    assert labels.items() <= role["metadata"]["labels"].items()
    assert role["metadata"]["annotations"] == annotations


def test_cluster_role_shapes(control_plane):
    _, _, admin = call(control_plane, "GET", f"{RBAC}/clusterroles/cluster-admin")
    assert admin["rules"] == [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]},
                              {"nonResourceURLs": ["*"], "verbs": ["*"]}]
    _, _, edit = call(control_plane, "GET", f"{RBAC}/clusterroles/edit")
    assert edit["aggregationRule"] == {"clusterRoleSelectors": [
        {"matchLabels": {"rbac.authorization.k8s.io/aggregate-to-edit": "true"}}]}
    _, _, to_edit = call(control_plane, "GET", f"{RBAC}/clusterroles/system:aggregate-to-edit")
    assert to_edit["metadata"]["labels"]["rbac.authorization.k8s.io/aggregate-to-edit"] == "true"
    controllers = {n for n in names(control_plane, f"{RBAC}/clusterroles") if n.startswith("system:controller:")}
    assert len(controllers) == 34


def test_bootstrap_cluster_role_bindings(control_plane):
    bound = names(control_plane, f"{RBAC}/clusterrolebindings")
    assert {"cluster-admin", "system:basic-user", "system:discovery", "system:public-info-viewer",
            "system:controller:namespace-controller"} <= bound
    _, _, admin = call(control_plane, "GET", f"{RBAC}/clusterrolebindings/cluster-admin")
    assert admin["subjects"] == [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "system:masters"}]
    assert admin["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"}
    _, _, ns_ctrl = call(control_plane, "GET", f"{RBAC}/clusterrolebindings/system:controller:namespace-controller")
    assert ns_ctrl["subjects"] == [{"kind": "ServiceAccount", "name": "namespace-controller", "namespace": "kube-system"}]
    assert names(control_plane, f"{RBAC}/namespaces/kube-system/roles") >= {"extension-apiserver-authentication-reader",
                                                                            "system:controller:bootstrap-signer"}
    assert names(control_plane, f"{RBAC}/namespaces/kube-public/rolebindings") == {"system:controller:bootstrap-signer"}


def test_priority_classes(control_plane):
    _, _, listed = call(control_plane, "GET", "/apis/scheduling.k8s.io/v1/priorityclasses")
    assert {i["metadata"]["name"]: i["value"] for i in listed["items"]} == {
        "system-cluster-critical": 2000000000, "system-node-critical": 2000001000}


def test_flow_control_defaults(control_plane):
    levels = names(control_plane, "/apis/flowcontrol.apiserver.k8s.io/v1/prioritylevelconfigurations")
    assert levels == {"exempt", "catch-all", "system", "node-high", "leader-election", "workload-high", "workload-low",
                      "global-default"}
    schemas = names(control_plane, "/apis/flowcontrol.apiserver.k8s.io/v1/flowschemas")
    assert {"exempt", "catch-all", "probes", "system-leader-election", "service-accounts", "global-default"} <= schemas
    _, _, exempt = call(control_plane, "GET", "/apis/flowcontrol.apiserver.k8s.io/v1/prioritylevelconfigurations/exempt")
    assert exempt["spec"]["type"] == "Exempt"
    assert exempt["metadata"]["annotations"] == {"apf.kubernetes.io/autoupdate-spec": "true"}
    _, _, catch_all = call(control_plane, "GET", "/apis/flowcontrol.apiserver.k8s.io/v1/flowschemas/catch-all")
    assert (catch_all["spec"]["matchingPrecedence"], catch_all["spec"]["priorityLevelConfiguration"]) == (
        10000, {"name": "catch-all"})


def test_local_api_services(control_plane):
    services = names(control_plane, "/apis/apiregistration.k8s.io/v1/apiservices")
    assert {"v1.", "v1.apps", "v2.autoscaling", "v1.autoscaling", "v1.rbac.authorization.k8s.io",
            "v1.apiextensions.k8s.io", "v1.flowcontrol.apiserver.k8s.io"} <= services
    _, _, core = call(control_plane, "GET", "/apis/apiregistration.k8s.io/v1/apiservices/v1.")
    assert core["spec"] == {"group": "", "version": "v1", "groupPriorityMinimum": 18000, "versionPriority": 15}
    (available,) = core["status"]["conditions"]
    assert (available["type"], available["status"], available["reason"]) == ("Available", "True", "Local")
    assert core["metadata"]["labels"] == {"kube-aggregator.kubernetes.io/automanaged": "onstart"}


def test_every_namespace_gets_its_service_account_and_root_ca(control_plane):
    call(control_plane, "POST", "/api/v1/namespaces", {"metadata": {"name": "team-a"}})
    for ns in ("default", "kube-system", "team-a"):
        _, _, cm = call(control_plane, "GET", f"/api/v1/namespaces/{ns}/configmaps/kube-root-ca.crt")
        assert cm["metadata"]["annotations"] == {"kubernetes.io/description": ROOT_CA_DESCRIPTION}
        assert cm["data"]["ca.crt"] == control_plane.store.root_ca
        code, _, sa = call(control_plane, "GET", f"/api/v1/namespaces/{ns}/serviceaccounts/default")
        assert code == 200 and "secrets" not in sa
        _, _, namespace = call(control_plane, "GET", f"/api/v1/namespaces/{ns}")
        assert namespace["metadata"]["labels"] == {"kubernetes.io/metadata.name": ns}
        assert (namespace["spec"], namespace["status"]) == ({"finalizers": ["kubernetes"]}, {"phase": "Active"})


def test_namespace_deletion(control_plane):
    call(control_plane, "POST", "/api/v1/namespaces", {"metadata": {"name": "team-b"}})
    call(control_plane, "POST", "/api/v1/namespaces/team-b/configmaps",
         {"metadata": {"name": "held", "finalizers": ["example.org/hold"]}})
    code, _, deleting = call(control_plane, "DELETE", "/api/v1/namespaces/team-b")
    assert code == 200 and deleting["metadata"]["deletionTimestamp"] and deleting["status"] == {"phase": "Terminating"}
    for path, body in (("/api/v1/namespaces/team-b/configmaps", {"metadata": {"name": "late"}}),
                       ("/api/v1/namespaces/team-b/secrets", {"metadata": {"name": "late"}}),
                       ("/apis/rbac.authorization.k8s.io/v1/namespaces/team-b/roles", {"metadata": {"name": "late"}})):
        code, _, status = call(control_plane, "POST", path, body)
        assert (code, status["reason"], status["message"]) == (
            403, "Forbidden", "unable to create new content in namespace team-b because it is being terminated")
    deadline = time.monotonic() + 5
    while names(control_plane, "/api/v1/namespaces/team-b/configmaps") != {"held"} and time.monotonic() < deadline:
        time.sleep(0.05)
    assert names(control_plane, "/api/v1/namespaces/team-b/configmaps") == {"held"}  # the rest removed
    assert names(control_plane, "/api/v1/namespaces/team-b/serviceaccounts") == set()
    assert call(control_plane, "GET", "/api/v1/namespaces/team-b")[0] == 200  # waits for the finalizer
    while True:  # the namespace controller's conditions say what it waits for
        _, _, terminating = call(control_plane, "GET", "/api/v1/namespaces/team-b")
        conditions = {c["type"]: c for c in terminating["status"].get("conditions") or ()}
        if "NamespaceFinalizersRemaining" in conditions or time.monotonic() > deadline + 5:
            break
        time.sleep(0.05)
    assert terminating["status"]["phase"] == "Terminating"
    assert {t: (c["status"], c["reason"]) for t, c in conditions.items()} == {
        "NamespaceDeletionDiscoveryFailure": ("False", "ResourcesDiscovered"),
        "NamespaceDeletionGroupVersionParsingFailure": ("False", "ParsedGroupVersions"),
        "NamespaceDeletionContentFailure": ("False", "ContentDeleted"),
        "NamespaceContentRemaining": ("True", "SomeResourcesRemain"),
        "NamespaceFinalizersRemaining": ("True", "SomeFinalizersRemain")}
    assert conditions["NamespaceContentRemaining"]["message"] == (
        "Some resources are remaining: configmaps has 1 resource instances")
    assert conditions["NamespaceFinalizersRemaining"]["message"] == (
        "Some content in the namespace has finalizers remaining: example.org/hold in 1 resource instances")
    call(control_plane, "PATCH", "/api/v1/namespaces/team-b/configmaps/held", {"metadata": {"finalizers": None}},
         content_type="application/merge-patch+json")
    while call(control_plane, "GET", "/api/v1/namespaces/team-b")[0] != 404 and time.monotonic() < deadline + 5:
        time.sleep(0.05)
    assert call(control_plane, "GET", "/api/v1/namespaces/team-b")[0] == 404


@pytest.mark.parametrize(("phase", "deleting", "detail"), [
    ("Terminating", False, "may only be 'Active' if `deletionTimestamp` is empty"),
    ("Lost", False, "may only be 'Active' if `deletionTimestamp` is empty"),
    ("Active", True, "may only be 'Terminating' if `deletionTimestamp` is not empty"),
])
def test_namespace_phase_follows_deletion(control_plane, phase, deleting, detail):
    call(control_plane, "POST", "/api/v1/namespaces", {"metadata": {"name": "team-c"}})
    if deleting:
        call(control_plane, "POST", "/api/v1/namespaces/team-c/configmaps",
             {"metadata": {"name": "held", "finalizers": ["example.org/hold"]}})
        call(control_plane, "DELETE", "/api/v1/namespaces/team-c")
    code, _, status = call(control_plane, "PATCH", "/api/v1/namespaces/team-c/status", {"status": {"phase": phase}},
                           content_type="application/merge-patch+json")
    assert (code, status["reason"], status["details"]["causes"][0]["field"]) == (422, "Invalid", "status.Phase")
    assert status["message"] == f'Namespace "team-c" is invalid: status.Phase: Invalid value: "{phase}": {detail}'


def test_namespace_status_written_active_or_empty_is_accepted(control_plane):
    call(control_plane, "POST", "/api/v1/namespaces", {"metadata": {"name": "team-d"}})
    for status in ({"phase": "Active"}, {}):
        code, _, ns = call(control_plane, "PUT", "/api/v1/namespaces/team-d/status",
                           {"metadata": {"name": "team-d"}, "status": status})
        assert (code, ns["status"]) == (200, {"phase": "Active"})


def test_namespace_finalize_and_csr_approval_subresources(control_plane):
    call(control_plane, "POST", "/api/v1/namespaces", {"metadata": {"name": "team-e"}})
    code, _, ns = call(control_plane, "PUT", "/api/v1/namespaces/team-e/finalize",
                       {"metadata": {"name": "team-e"}, "spec": {"finalizers": []}, "status": {"phase": "Terminating"}})
    assert (code, ns["spec"], ns["status"]) == (200, {"finalizers": []}, {"phase": "Active"})  # only finalizers change
    code, _, status = call(control_plane, "GET", "/api/v1/namespaces/team-e/finalize")
    assert (code, status["reason"]) == (405, "MethodNotAllowed")
    csr = {"metadata": {"name": "node-csr-1"}, "spec": {"request": "LS0tLS1CRUdJTg==", "usages": ["client auth"],
                                                       "signerName": "kubernetes.io/kube-apiserver-client"}}
    call(control_plane, "POST", "/apis/certificates.k8s.io/v1/certificatesigningrequests", csr)
    approved = {"metadata": {"name": "node-csr-1"}, "spec": {"usages": ["server auth"]}, "status": {"conditions": [
        {"type": "Approved", "status": "True", "reason": "AutoApproved", "message": "approved by a test"}]}}
    code, _, got = call(control_plane, "PUT", "/apis/certificates.k8s.io/v1/certificatesigningrequests/node-csr-1/approval",
                        approved)
    assert code == 200 and got["status"]["conditions"][0]["type"] == "Approved"
    assert got["spec"]["usages"] == ["client auth"]  # the spec is not the approval's to change


def test_kubernetes_endpoints_slice_and_apiserver_lease(control_plane):
    _, _, endpoints = call(control_plane, "GET", "/api/v1/namespaces/default/endpoints/kubernetes")
    assert endpoints["subsets"] == [{"addresses": [{"ip": "127.0.0.1"}],
                                     "ports": [{"name": "https", "port": 6443, "protocol": "TCP"}]}]
    _, _, slice_ = call(control_plane, "GET", "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices/kubernetes")
    assert (slice_["addressType"], slice_["metadata"]["labels"]) == ("IPv4", {"kubernetes.io/service-name": "kubernetes"})
    (lease,) = call(control_plane, "GET", "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases")[2]["items"]
    assert lease["metadata"]["name"].startswith("apiserver-")
    assert lease["metadata"]["labels"]["apiserver.kubernetes.io/identity"] == "kube-apiserver"
