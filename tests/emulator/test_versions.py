"""Several served versions per CRD (conversion None), as kube-apiserver serves them: stored at the
storage version, read at any served version, discovery in Kubernetes' version priority order."""

from __future__ import annotations

import pytest

from kubeemu.resources import by_priority
from tests.emulator.kubehttp import call, wait_established, watch_events

CRD_PATH = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"


def schema(field: str) -> dict:
    return {"openAPIV3Schema": {"type": "object", "properties": {"spec": {"type": "object", "properties": {
        field: {"type": "string"}}}, "status": {"type": "object", "properties": {"atProvider": {
            "type": "object", "properties": {"id": {"type": "string"}}}}}}}}


def multi_version_crd(storage: str = "v1beta1", conversion: str = "None") -> dict:
    """Shaped like an upjet provider CRD: v1beta1 and v1beta2 served, an old v1alpha1 not served."""
    versions = [{"name": "v1alpha1", "served": False, "storage": False, "schema": schema("old")},
                {"name": "v1beta1", "served": True, "storage": storage == "v1beta1", "schema": schema("region"),
                 "subresources": {"status": {}}},
                {"name": "v1beta2", "served": True, "storage": storage == "v1beta2", "schema": schema("location"),
                 "subresources": {"status": {}}}]
    spec = {"group": "ec2.aws.upbound.io", "scope": "Cluster", "versions": versions,
            "names": {"plural": "instances", "singular": "instance", "kind": "Instance", "listKind": "InstanceList",
                      "categories": ["crossplane", "managed", "aws"]}}
    if conversion == "Webhook":
        spec["conversion"] = {"strategy": "Webhook", "webhook": {"conversionReviewVersions": ["v1"], "clientConfig": {
            "service": {"name": "provider-aws-ec2", "namespace": "crossplane-system", "path": "/convert"}}}}
    return {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": "instances.ec2.aws.upbound.io"}, "spec": spec}


@pytest.fixture
def instances(control_plane):
    code, _, _ = call(control_plane, "POST", CRD_PATH, multi_version_crd())
    assert code == 201
    return wait_established(control_plane, "instances.ec2.aws.upbound.io")


@pytest.mark.parametrize(("versions", "expected"), [
    (["v1", "v2", "v1beta1"], ["v2", "v1", "v1beta1"]),
    (["v1beta1", "v1beta2"], ["v1beta2", "v1beta1"]),
    (["v2beta1", "v1"], ["v1", "v2beta1"]),  # GA before any beta, whatever the major
    (["v1alpha1", "v1beta1", "v1alpha2"], ["v1beta1", "v1alpha2", "v1alpha1"]),
    (["v10", "v2", "v1", "v11beta2", "v10beta3", "v3beta1", "v12alpha1", "v11alpha2", "foo1", "foo10"],
     ["v10", "v2", "v1", "v11beta2", "v10beta3", "v3beta1", "v12alpha1", "v11alpha2", "foo1", "foo10"]),
])
def test_version_priority_order_of_apimachinery(versions, expected):
    assert by_priority(versions) == expected


def test_write_through_any_served_version_is_stored_at_the_storage_version(control_plane, instances):
    for version, name in (("v1beta1", "a"), ("v1beta2", "b")):
        code, _, made = call(control_plane, "POST", f"/apis/ec2.aws.upbound.io/{version}/instances",
                             {"apiVersion": f"ec2.aws.upbound.io/{version}", "kind": "Instance",
                              "metadata": {"name": name}, "spec": {"region": "eu-west-2"}})
        assert (code, made["apiVersion"]) == (201, f"ec2.aws.upbound.io/{version}")  # answered at the URL's version
        stored = control_plane.store.tables[("ec2.aws.upbound.io", "instances")].objects[f"/{name}"]
        assert stored["apiVersion"] == "ec2.aws.upbound.io/v1beta1"
        assert made["metadata"]["managedFields"][0]["apiVersion"] == f"ec2.aws.upbound.io/{version}"


def test_read_list_and_watch_at_every_served_version(control_plane, instances):
    call(control_plane, "POST", "/apis/ec2.aws.upbound.io/v1beta1/instances", {"metadata": {"name": "a"}, "spec": {}})
    for version in ("v1beta1", "v1beta2"):
        code, _, got = call(control_plane, "GET", f"/apis/ec2.aws.upbound.io/{version}/instances/a")
        assert (code, got["apiVersion"], got["kind"]) == (200, f"ec2.aws.upbound.io/{version}", "Instance")
        _, _, listed = call(control_plane, "GET", f"/apis/ec2.aws.upbound.io/{version}/instances")
        assert listed["apiVersion"] == f"ec2.aws.upbound.io/{version}" and listed["kind"] == "InstanceList"
        assert [i["apiVersion"] for i in listed["items"]] == [f"ec2.aws.upbound.io/{version}"]
        (event,) = watch_events(control_plane, f"/apis/ec2.aws.upbound.io/{version}/instances", 1)
        assert (event["type"], event["object"]["apiVersion"]) == ("ADDED", f"ec2.aws.upbound.io/{version}")
    code, _, status = call(control_plane, "GET", "/apis/ec2.aws.upbound.io/v1alpha1/instances/a")
    assert (code, status["reason"]) == (404, "NotFound")  # served: false


def test_update_through_the_other_version_and_status_at_both(control_plane, instances):
    _, _, made = call(control_plane, "POST", "/apis/ec2.aws.upbound.io/v1beta1/instances",
                      {"metadata": {"name": "a"}, "spec": {"region": "eu-west-2"}})
    made.update({"apiVersion": "ec2.aws.upbound.io/v1beta2", "spec": {"location": "eu-west-2"}})
    code, _, updated = call(control_plane, "PUT", "/apis/ec2.aws.upbound.io/v1beta2/instances/a", made)
    assert (code, updated["apiVersion"], updated["metadata"]["generation"]) == (200, "ec2.aws.upbound.io/v1beta2", 2)
    code, _, patched = call(control_plane, "PATCH", "/apis/ec2.aws.upbound.io/v1beta2/instances/a/status",
                            {"status": {"atProvider": {"id": "i-1"}}}, content_type="application/merge-patch+json")
    assert (code, patched["apiVersion"]) == (200, "ec2.aws.upbound.io/v1beta2")
    _, _, old = call(control_plane, "GET", "/apis/ec2.aws.upbound.io/v1beta1/instances/a")
    assert old["status"] == {"atProvider": {"id": "i-1"}} and old["spec"] == {"location": "eu-west-2"}
    stored = control_plane.store.tables[("ec2.aws.upbound.io", "instances")].objects["/a"]
    assert stored["apiVersion"] == "ec2.aws.upbound.io/v1beta1"


def test_discovery_lists_crd_versions_by_priority(control_plane, instances):
    _, _, groups = call(control_plane, "GET", "/apis")
    (group,) = [g for g in groups["groups"] if g["name"] == "ec2.aws.upbound.io"]
    assert [v["version"] for v in group["versions"]] == ["v1beta2", "v1beta1"]
    assert group["preferredVersion"] == {"groupVersion": "ec2.aws.upbound.io/v1beta2", "version": "v1beta2"}
    for version in ("v1beta1", "v1beta2"):
        _, _, listed = call(control_plane, "GET", f"/apis/ec2.aws.upbound.io/{version}")
        assert [r["name"] for r in listed["resources"]] == ["instances", "instances/status"]
        assert listed["resources"][0]["categories"] == ["crossplane", "managed", "aws"]
    code, _, _ = call(control_plane, "GET", "/apis/ec2.aws.upbound.io/v1alpha1")
    assert code == 404


def test_built_in_group_with_two_versions(control_plane):
    hpa = {"metadata": {"name": "web"}, "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment",
                                                                    "name": "web"}, "maxReplicas": 3}}
    code, _, made = call(control_plane, "POST", "/apis/autoscaling/v1/namespaces/default/horizontalpodautoscalers", hpa)
    assert (code, made["apiVersion"]) == (201, "autoscaling/v1")
    _, _, got = call(control_plane, "GET", "/apis/autoscaling/v2/namespaces/default/horizontalpodautoscalers/web")
    assert got["apiVersion"] == "autoscaling/v2"
    _, _, groups = call(control_plane, "GET", "/apis")
    (group,) = [g for g in groups["groups"] if g["name"] == "autoscaling"]
    assert [v["version"] for v in group["versions"]] == ["v2", "v1"] and group["preferredVersion"]["version"] == "v2"


def test_stored_versions_gain_each_new_storage_version(control_plane, instances):
    assert instances["status"]["storedVersions"] == ["v1beta1"]
    crd = multi_version_crd(storage="v1beta2")
    crd["metadata"]["resourceVersion"] = instances["metadata"]["resourceVersion"]
    code, _, updated = call(control_plane, "PUT", f"{CRD_PATH}/instances.ec2.aws.upbound.io", crd)
    assert (code, updated["status"]["storedVersions"]) == (200, ["v1beta1", "v1beta2"])
    call(control_plane, "POST", "/apis/ec2.aws.upbound.io/v1beta1/instances", {"metadata": {"name": "new"}, "spec": {}})
    stored = control_plane.store.tables[("ec2.aws.upbound.io", "instances")].objects["/new"]
    assert stored["apiVersion"] == "ec2.aws.upbound.io/v1beta2"
    again = dict(updated)
    code, _, same = call(control_plane, "PUT", f"{CRD_PATH}/instances.ec2.aws.upbound.io", again)
    assert (code, same["status"]["storedVersions"]) == (200, ["v1beta1", "v1beta2"])  # no repeats


def test_webhook_conversion_is_served_as_none(control_plane):
    code, _, _ = call(control_plane, "POST", CRD_PATH, multi_version_crd(conversion="Webhook"))
    assert code == 201
    wait_established(control_plane, "instances.ec2.aws.upbound.io")
    call(control_plane, "POST", "/apis/ec2.aws.upbound.io/v1beta2/instances", {"metadata": {"name": "w"}, "spec": {}})
    _, _, got = call(control_plane, "GET", "/apis/ec2.aws.upbound.io/v1beta1/instances/w")
    assert got["apiVersion"] == "ec2.aws.upbound.io/v1beta1"  # no webhook called: only apiVersion differs


def test_schema_of_the_version_in_the_url(control_plane, instances):
    store = control_plane.store
    props = lambda v: store.crd_version_schema("ec2.aws.upbound.io", "instances", v)["properties"]["spec"]["properties"]  # noqa: E731
    assert props("v1beta1") == {"region": {"type": "string"}}
    assert props("v1beta2") == {"location": {"type": "string"}}
    assert props("v1alpha1") == {"old": {"type": "string"}}
    assert store.crd_version_schema("ec2.aws.upbound.io", "instances", "v9") is None
    assert store.crd_version_schema("", "configmaps", "v1") is None
