"""Discovery as kube-apiserver answers it: the recorded documents of kubernetes/kubernetes
`api/discovery/*.json` (verbs, shortNames, categories, subresources, storageVersionHash) and
aggregated discovery (apidiscovery.k8s.io v2 and v2beta1) as current kubectl and client-go ask for it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.emulator.kubehttp import call, wait_established

KUBECTL = str(Path(sys.executable).parent / "kubectl")
ALL = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]
SUB = ["get", "patch", "update"]
V2 = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
V2BETA1 = "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList"

# (group/version, resource) -> (namespaced, verbs, shortNames, categories, subresources, storageVersionHash),
# as recorded in api/discovery/*.json ("" hash: not recorded here)
RECORDED = {
    ("v1", "configmaps"): (True, ALL, ["cm"], None, [], "qFsyl6wFWjQ="),
    ("v1", "events"): (True, ALL, ["ev"], None, [], "r2yiGXH7wu8="),
    ("v1", "namespaces"): (False, ["create", "delete", "get", "list", "patch", "update", "watch"], ["ns"], None,
                           ["finalize", "status"], "Q3oi5N2YM8M="),
    ("v1", "podtemplates"): (True, ALL, None, None, [], "LIXB2x4IFpk="),
    ("v1", "replicationcontrollers"): (True, ALL, ["rc"], ["all"], ["scale", "status"], "Jond2If31h0="),
    ("v1", "secrets"): (True, ALL, None, None, [], "S6u1pOWzb84="),
    ("v1", "services"): (True, ALL, ["svc"], ["all"], ["status"], "0/CO1lhkEBI="),
    ("v1", "serviceaccounts"): (True, ALL, ["sa"], None, [], "pbx9ZvyFpBE="),
    ("apps/v1", "deployments"): (True, ALL, ["deploy"], ["all"], ["scale", "status"], "8aSe+NMegvE="),
    ("apps/v1", "statefulsets"): (True, ALL, ["sts"], ["all"], ["scale", "status"], "H+vl74LkKdo="),
    ("apps/v1", "daemonsets"): (True, ALL, ["ds"], ["all"], ["status"], "dd7pWHUlMKQ="),
    ("apps/v1", "controllerrevisions"): (True, ALL, None, None, [], "85nkx63pcBU="),
    ("autoscaling/v2", "horizontalpodautoscalers"): (True, ALL, ["hpa"], ["all"], ["status"], "qwQve8ut294="),
    ("autoscaling/v1", "horizontalpodautoscalers"): (True, ALL, ["hpa"], ["all"], ["status"], "qwQve8ut294="),
    ("batch/v1", "cronjobs"): (True, ALL, ["cj"], ["all"], ["status"], "sd5LIXh4Fjs="),
    ("networking.k8s.io/v1", "ingresses"): (True, ALL, ["ing"], None, ["status"], "39NQlfNR+bo="),
    ("networking.k8s.io/v1", "ingressclasses"): (False, ALL, None, None, [], "l/iqIbDgFyQ="),
    ("storage.k8s.io/v1", "storageclasses"): (False, ALL, ["sc"], None, [], "K+m6uJwbjGY="),
    ("storage.k8s.io/v1", "csidrivers"): (False, ALL, None, None, [], "hL6j/rwBV5w="),
    ("admissionregistration.k8s.io/v1", "validatingadmissionpolicies"): (
        False, ALL, None, ["api-extensions"], ["status"], "6OxvlMmQ6is="),
    ("admissionregistration.k8s.io/v1", "validatingadmissionpolicybindings"): (
        False, ALL, None, ["api-extensions"], [], "v9715VZqakg="),
    ("apiregistration.k8s.io/v1", "apiservices"): (False, ALL, None, ["api-extensions"], ["status"], "InPBPD7+PqM="),
    ("apiextensions.k8s.io/v1", "customresourcedefinitions"): (
        False, ALL, ["crd", "crds"], ["api-extensions"], ["status"], "jfWCUB31mvA="),
    ("flowcontrol.apiserver.k8s.io/v1", "flowschemas"): (False, ALL, None, None, ["status"], "9NnFrw7ZEmA="),
    ("flowcontrol.apiserver.k8s.io/v1", "prioritylevelconfigurations"): (
        False, ALL, None, None, ["status"], "+CwSrEWTDhc="),
    ("certificates.k8s.io/v1", "certificatesigningrequests"): (
        False, ALL, ["csr"], None, ["approval", "status"], "95fRKMXA+00="),
    ("node.k8s.io/v1", "runtimeclasses"): (False, ALL, None, None, [], ""),
    ("authentication.k8s.io/v1", "tokenreviews"): (False, ["create"], None, None, [], None),
}


def resource_list(cp, group_version: str) -> dict[str, dict]:
    prefix = "/api/" if "/" not in group_version else "/apis/"
    code, _, listed = call(cp, "GET", prefix + group_version)
    assert code == 200 and listed["groupVersion"] == group_version
    return {r["name"]: r for r in listed["resources"]}


@pytest.mark.parametrize(("group_version", "plural"), sorted(RECORDED))
def test_unaggregated_resource_lists_match_the_recorded_documents(control_plane, group_version, plural):
    namespaced, verbs, short, cats, subs, digest = RECORDED[(group_version, plural)]
    resources = resource_list(control_plane, group_version)
    entry = resources[plural]
    assert (entry["namespaced"], entry["verbs"], entry.get("shortNames"), entry.get("categories")) == (
        namespaced, verbs, short, cats)
    assert entry["singularName"] == entry["kind"].lower()
    if digest:
        assert entry["storageVersionHash"] == digest
    elif digest is None:
        assert "storageVersionHash" not in entry
    listed_subs = sorted(name.split("/", 1)[1] for name in resources if name.startswith(plural + "/"))
    assert listed_subs == subs
    for sub in subs:
        sub_entry = resources[f"{plural}/{sub}"]
        assert sub_entry["verbs"] == (["update"] if sub == "finalize" else SUB)
        if sub == "scale":
            assert (sub_entry["group"], sub_entry["version"], sub_entry["kind"]) == ("autoscaling", "v1", "Scale")
        else:
            assert sub_entry["kind"] == entry["kind"]


def test_events_have_no_status_and_rbac_no_short_names(control_plane):
    assert "events/status" not in resource_list(control_plane, "v1")
    assert "events/status" not in resource_list(control_plane, "events.k8s.io/v1")
    rbac = resource_list(control_plane, "rbac.authorization.k8s.io/v1")
    assert sorted(rbac) == ["clusterrolebindings", "clusterroles", "rolebindings", "roles"]
    assert all("shortNames" not in r and "categories" not in r for r in rbac.values())


@pytest.mark.parametrize(("accept", "content_type", "api_version"), [
    (f"{V2},application/json", V2, "apidiscovery.k8s.io/v2"),  # what kubectl 1.37 sends
    (f"{V2},{V2BETA1},application/json", V2, "apidiscovery.k8s.io/v2"),
    (f"{V2BETA1},application/json", V2BETA1, "apidiscovery.k8s.io/v2beta1"),
    ("application/vnd.kubernetes.protobuf;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList," + V2, V2,
     "apidiscovery.k8s.io/v2"),  # protobuf is not spoken: the JSON form next in line answers
])
def test_aggregated_discovery_negotiated_by_accept(control_plane, accept, content_type, api_version):
    for path in ("/api", "/apis"):
        code, headers, body = call(control_plane, "GET", path, headers={"Accept": accept})
        assert (code, headers["Content-Type"]) == (200, content_type)
        assert (body["kind"], body["apiVersion"]) == ("APIGroupDiscoveryList", api_version)


@pytest.mark.parametrize("accept", ["application/json", "*/*", "application/json;g=apidiscovery.k8s.io;v=v3;as=APIGroupDiscoveryList,application/json"])
def test_plain_accept_gets_the_unaggregated_documents(control_plane, accept):
    code, headers, api = call(control_plane, "GET", "/api", headers={"Accept": accept})
    assert (code, headers["Content-Type"], api["kind"], api["versions"]) == (200, "application/json", "APIVersions", ["v1"])
    _, _, apis = call(control_plane, "GET", "/apis", headers={"Accept": accept})
    assert apis["kind"] == "APIGroupList"


def test_aggregated_documents_shape(control_plane):
    _, _, core = call(control_plane, "GET", "/api", headers={"Accept": V2})
    (group,) = core["items"]
    assert group["metadata"] == {"creationTimestamp": None}
    (v1,) = group["versions"]
    assert (v1["version"], v1["freshness"]) == ("v1", "Current")
    resources = {r["resource"]: r for r in v1["resources"]}
    assert resources["configmaps"] == {"resource": "configmaps", "responseKind": {"group": "", "version": "", "kind": "ConfigMap"},
                                       "scope": "Namespaced", "singularResource": "configmap", "verbs": ALL,
                                       "shortNames": ["cm"]}
    assert resources["replicationcontrollers"]["subresources"] == [
        {"subresource": "scale", "responseKind": {"group": "autoscaling", "version": "v1", "kind": "Scale"}, "verbs": SUB},
        {"subresource": "status", "responseKind": {"group": "", "version": "", "kind": "ReplicationController"},
         "verbs": SUB}]
    assert resources["namespaces"]["scope"] == "Cluster"
    _, _, apis = call(control_plane, "GET", "/apis", headers={"Accept": V2})
    groups = {g["metadata"]["name"]: g for g in apis["items"]}
    assert "" not in groups and {"apps", "autoscaling", "rbac.authorization.k8s.io"} <= set(groups)
    assert [v["version"] for v in groups["autoscaling"]["versions"]] == ["v2", "v1"]
    deployments = {r["resource"]: r for r in groups["apps"]["versions"][0]["resources"]}["deployments"]
    assert [s["subresource"] for s in deployments["subresources"]] == ["scale", "status"]
    assert deployments["categories"] == ["all"] and deployments["shortNames"] == ["deploy"]


def test_aggregated_discovery_follows_crds(control_plane):
    from tests.emulator.test_versions import CRD_PATH, multi_version_crd

    call(control_plane, "POST", CRD_PATH, multi_version_crd())
    wait_established(control_plane, "instances.ec2.aws.upbound.io")
    _, _, apis = call(control_plane, "GET", "/apis", headers={"Accept": V2})
    (group,) = [g for g in apis["items"] if g["metadata"]["name"] == "ec2.aws.upbound.io"]
    assert [v["version"] for v in group["versions"]] == ["v1beta2", "v1beta1"]
    (instances,) = group["versions"][0]["resources"]
    assert (instances["resource"], instances["scope"], instances["categories"]) == (
        "instances", "Cluster", ["crossplane", "managed", "aws"])
    call(control_plane, "DELETE", f"{CRD_PATH}/instances.ec2.aws.upbound.io")
    _, _, apis = call(control_plane, "GET", "/apis", headers={"Accept": V2})
    assert "ec2.aws.upbound.io" not in {g["metadata"]["name"] for g in apis["items"]}


def test_kubectl_discovers_through_aggregated_discovery(control_plane, tmp_path):
    kc = control_plane.write_kubeconfig(tmp_path / "kubeconfig")
    run = subprocess.run([KUBECTL, "--kubeconfig", str(kc), "api-resources", "-o", "wide", "-v=8"],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert f"Accept: {V2}" in run.stderr  # kubectl asked for the aggregated form
    assert not any(f"/apis/{g}" in run.stderr for g in ("apps/v1?", "apps/v1 "))  # and needed no per-group list
    rows = {line.split()[0]: line.split() for line in run.stdout.splitlines()[1:]}
    assert rows["horizontalpodautoscalers"][1:4] == ["hpa", "autoscaling/v2", "true"]
    assert rows["replicationcontrollers"][1:4] == ["rc", "v1", "true"]
    assert rows["certificatesigningrequests"][1:4] == ["csr", "certificates.k8s.io/v1", "false"]
    got = subprocess.run([KUBECTL, "--kubeconfig", str(kc), "get", "hpa,ing,sc,csr,pc", "-A", "-o", "json"],
                         capture_output=True, text=True, timeout=60)
    assert got.returncode == 0, got.stderr
    names = sorted(i["metadata"]["name"] for i in json.loads(got.stdout)["items"])
    assert names == ["system-cluster-critical", "system-node-critical"]


def deployment(name: str, replicas: int | None = 2) -> dict:
    spec = {"selector": {"matchLabels": {"app": name, "tier": "web"}},
            "template": {"metadata": {"labels": {"app": name, "tier": "web"}},
                         "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}
    if replicas is not None:
        spec["replicas"] = replicas
    return {"metadata": {"name": name}, "spec": spec}


def test_scale_subresource_of_built_ins(control_plane):
    base = "/apis/apps/v1/namespaces/default/deployments"
    call(control_plane, "POST", base, deployment("web"))
    code, _, scale = call(control_plane, "GET", f"{base}/web/scale")
    assert (code, scale["kind"], scale["apiVersion"]) == (200, "Scale", "autoscaling/v1")
    assert (scale["spec"], scale["status"]) == ({"replicas": 2}, {"replicas": 0, "selector": "app=web,tier=web"})
    scale["spec"]["replicas"] = 5
    code, _, scaled = call(control_plane, "PUT", f"{base}/web/scale", scale)
    assert (code, scaled["spec"]["replicas"]) == (200, 5)
    _, _, web = call(control_plane, "GET", f"{base}/web")
    assert (web["spec"]["replicas"], web["metadata"]["generation"]) == (5, 2)
    code, _, patched = call(control_plane, "PATCH", f"{base}/web/scale", {"spec": {"replicas": 0}},
                            content_type="application/merge-patch+json")
    assert (code, patched["spec"]["replicas"]) == (200, 0)
    scale["spec"]["replicas"] = 3  # the resourceVersion it carries is stale now
    code, _, status = call(control_plane, "PUT", f"{base}/web/scale", scale)
    assert (code, status["reason"]) == (409, "Conflict")
    code, _, status = call(control_plane, "PATCH", f"{base}/web/scale", {"spec": {"replicas": -1}},
                           content_type="application/merge-patch+json")
    assert (code, status["reason"], status["details"]["causes"][0]["field"]) == (422, "Invalid", "spec.replicas")
    assert status["message"] == ('Scale.autoscaling "web" is invalid: spec.replicas: Invalid value: -1: '
                                 "must be greater than or equal to 0")
    rc = {"metadata": {"name": "legacy"}, "spec": {"replicas": 1, "selector": {"app": "legacy"}}}
    call(control_plane, "POST", "/api/v1/namespaces/default/replicationcontrollers", rc)
    _, _, rc_scale = call(control_plane, "GET", "/api/v1/namespaces/default/replicationcontrollers/legacy/scale")
    assert (rc_scale["spec"], rc_scale["status"]) == ({"replicas": 1}, {"replicas": 0, "selector": "app=legacy"})
    code, _, _ = call(control_plane, "GET", "/apis/apps/v1/namespaces/default/daemonsets/x/scale")
    assert code == 404  # no scale subresource on DaemonSets
    code, _, _ = call(control_plane, "GET", "/api/v1/namespaces/default/configmaps/kube-root-ca.crt/status")
    assert code == 404


def test_scale_subresource_of_a_crd_follows_its_paths(control_plane):
    crd = {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
           "metadata": {"name": "nodepools.example.org"},
           "spec": {"group": "example.org", "scope": "Namespaced",
                    "names": {"plural": "nodepools", "singular": "nodepool", "kind": "NodePool"},
                    "versions": [{"name": "v1", "served": True, "storage": True,
                                  "schema": {"openAPIV3Schema": {"type": "object",
                                                                 "x-kubernetes-preserve-unknown-fields": True}},
                                  "subresources": {"status": {}, "scale": {
                                      "specReplicasPath": ".spec.size", "statusReplicasPath": ".status.ready",
                                      "labelSelectorPath": ".status.selector"}}}]}}
    call(control_plane, "POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", crd)
    wait_established(control_plane, "nodepools.example.org")
    listed = resource_list(control_plane, "example.org/v1")
    assert sorted(listed) == ["nodepools", "nodepools/scale", "nodepools/status"]
    base = "/apis/example.org/v1/namespaces/default/nodepools"
    call(control_plane, "POST", base, {"metadata": {"name": "pool"}, "spec": {"size": 3}})
    call(control_plane, "PATCH", f"{base}/pool/status", {"status": {"ready": 2, "selector": "pool=a"}},
         content_type="application/merge-patch+json")
    _, _, scale = call(control_plane, "GET", f"{base}/pool/scale")
    assert (scale["spec"], scale["status"]) == ({"replicas": 3}, {"replicas": 2, "selector": "pool=a"})
    call(control_plane, "PATCH", f"{base}/pool/scale", {"spec": {"replicas": 6}}, content_type="application/merge-patch+json")
    assert call(control_plane, "GET", f"{base}/pool")[2]["spec"] == {"size": 6}


def test_kubectl_scale(control_plane, tmp_path):
    call(control_plane, "POST", "/apis/apps/v1/namespaces/default/deployments", deployment("api", None))
    kc = control_plane.write_kubeconfig(tmp_path / "kubeconfig")
    run = subprocess.run([KUBECTL, "--kubeconfig", str(kc), "scale", "deployment/api", "--replicas=4"],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "deployment.apps/api scaled"
    assert call(control_plane, "GET", "/apis/apps/v1/namespaces/default/deployments/api")[2]["spec"]["replicas"] == 4


@pytest.mark.parametrize(("group", "versions"), [("apps", ["v1"]), ("autoscaling", ["v2", "v1"]),
                                                  ("rbac.authorization.k8s.io", ["v1"])])
def test_api_group_document(control_plane, group, versions):
    code, _, doc = call(control_plane, "GET", f"/apis/{group}")
    assert (code, doc["kind"], doc["name"]) == (200, "APIGroup", group)
    assert [v["version"] for v in doc["versions"]] == versions
    assert doc["preferredVersion"] == {"groupVersion": f"{group}/{versions[0]}", "version": versions[0]}
    code, _, status = call(control_plane, "GET", "/apis/nothing.example.org")
    assert (code, status["reason"]) == (404, "NotFound")


def test_kubectl_get_all_follows_the_all_category(control_plane, tmp_path):
    call(control_plane, "POST", "/apis/apps/v1/namespaces/default/deployments", deployment("shop"))
    call(control_plane, "POST", "/api/v1/namespaces/default/configmaps", {"metadata": {"name": "not-in-all"}})
    kc = control_plane.write_kubeconfig(tmp_path / "kubeconfig")
    run = subprocess.run([KUBECTL, "--kubeconfig", str(kc), "get", "all", "-n", "default", "-o", "name"],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert sorted(run.stdout.split()) == ["deployment.apps/shop", "service/kubernetes"]
