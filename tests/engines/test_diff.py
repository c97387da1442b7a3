"""engines/diff: what counts as a difference (server-owned fields never do), how changes are named, and
that a Secret's values never appear, in any output, with or without --show-values."""

from __future__ import annotations

import copy
import json

import pytest

from ctpbackup.engines.diff import HIDDEN, FieldChange, compare, field_changes, normalize

CM = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings", "namespace": "team-a"},
      "data": {"mode": "fast", "size": "3"}}
SECRET = {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
          "metadata": {"name": "creds", "namespace": "team-a", "labels": {"team": "a"}, "annotations": {
              "kubectl.kubernetes.io/last-applied-configuration": '{"data":{"password":"aHVudGVyMg=="}}'}},
          "data": {"password": "aHVudGVyMg=="}}
SERVICE = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "team-a"},
           "spec": {"type": "NodePort", "clusterIP": "10.96.14.7", "clusterIPs": ["10.96.14.7"],
                    "ports": [{"port": 80, "nodePort": 30080}]}, "status": {"loadBalancer": {}}}
BUCKET = {"apiVersion": "s3.aws.upbound.io/v1beta1", "kind": "Bucket",
          "metadata": {"name": "b", "ownerReferences": [{"apiVersion": "x/v1", "kind": "XCluster", "name": "x", "uid": "1"}]},
          "spec": {"forProvider": {"region": "eu-west-2"}}, "status": {"atProvider": {"arn": "arn:1"}}}


def with_(obj: dict, **changes) -> dict:
    """A copy with dotted paths set (`metadata.uid=...`)."""
    obj = copy.deepcopy(obj)
    for path, value in changes.items():
        node = obj
        *parents, last = path.split("__")
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value
    return obj


@pytest.mark.parametrize(("resource", "obj", "server_side"), [
    ("configmaps", CM, {"metadata__uid": "u-2", "metadata__resourceVersion": "99", "metadata__generation": 4,
                        "metadata__creationTimestamp": "2026-11-30T00:00:00Z",
                        "metadata__managedFields": [{"manager": "kubectl"}]}),
    ("services", SERVICE, {"spec__clusterIP": "10.96.0.9", "spec__clusterIPs": ["10.96.0.9"],
                           "status": {"loadBalancer": {"ingress": [{"ip": "203.0.113.7"}]}}}),
    ("buckets.s3.aws.upbound.io", BUCKET, {"metadata__ownerReferences": [
        {"apiVersion": "x/v1", "kind": "XCluster", "name": "x", "uid": "another-control-planes-uid"}]}),
], ids=["object-meta", "allocated-service-fields-and-built-in-status", "owner-uids"])
def test_server_owned_fields_are_no_difference(resource, obj, server_side):
    result = compare([(resource, obj)], [(resource, with_(obj, **server_side))], left_name="a", right_name="b")
    assert (result.changes, result.unchanged) == ([], {resource: 1})


def test_a_custom_resources_status_is_its_data_and_is_compared():
    changed = with_(BUCKET, status={"atProvider": {"arn": "arn:2"}})
    result = compare([("buckets.s3.aws.upbound.io", BUCKET)], [("buckets.s3.aws.upbound.io", changed)],
                     left_name="a", right_name="b", show_values=True)
    (change,) = result.changes
    assert (change.sign, change.fields) == ("~", (FieldChange("status.atProvider.arn", "arn:1", "arn:2"),))


def test_added_removed_and_changed_objects_per_resource_in_order():
    left = [("configmaps", CM), ("configmaps", with_(CM, metadata__name="old")), ("secrets", SECRET)]
    right = [("configmaps", with_(CM, data={"mode": "slow", "size": "3", "new": "x"})),
             ("configmaps", with_(CM, metadata__name="added")), ("secrets", SECRET)]
    result = compare(left, right, left_name="Backup b1", right_name="Backup b2")
    assert list(result.lines()) == ["+ configmaps team-a/added", "- configmaps team-a/old",
                                    "~ configmaps team-a/settings", "    ~ data.mode", "    ~ data.new"]
    assert result.summary() == {"configmaps": {"added": 1, "removed": 1, "changed": 1, "unchanged": 0},
                                "secrets": {"added": 0, "removed": 0, "changed": 0, "unchanged": 1}}
    assert result.headline() == "Diff: 1 added, 1 removed, 1 changed, 1 unchanged."


@pytest.mark.parametrize("show_values", [False, True])
@pytest.mark.parametrize("change", [
    {"data": {"password": "bmV3LXNlY3JldA=="}},
    {"data": {"password": "aHVudGVyMg==", "token": "dG9rZW4="}},
    {"stringData": {"password": "plain-new-secret"}},
    {"metadata__annotations": {"kubectl.kubernetes.io/last-applied-configuration": '{"data":{"password":"bmV3"}}'}},
], ids=["value", "new-key", "stringData", "last-applied-copy"])
def test_a_secret_says_changed_and_never_shows_a_value_or_a_key(show_values, change):
    changed = with_(SECRET, **change)
    result = compare([("secrets", SECRET)], [("secrets", changed)], left_name="a", right_name="b", show_values=show_values)
    (only,) = result.changes
    assert all(f.old is HIDDEN and f.new is HIDDEN for f in only.fields)
    for text in (result.to_text(), result.to_json(), result.to_markdown()):
        for secret in ("aHVudGVyMg==", "hunter2", "bmV3LXNlY3JldA==", "dG9rZW4=", "plain-new-secret", "bmV3", "token"):
            assert secret not in text


def test_paths_quote_keys_that_are_not_plain_and_index_lists():
    old = {"metadata": {"labels": {"app.kubernetes.io/name": "a"}}, "spec": {"ports": [{"port": 80}, {"port": 443}]}}
    new = {"metadata": {"labels": {"app.kubernetes.io/name": "b"}}, "spec": {"ports": [{"port": 80}, {"port": 8443}]}}
    assert field_changes("services", old, new, True) == (
        FieldChange('metadata.labels["app.kubernetes.io/name"]', "a", "b"), FieldChange("spec.ports[1].port", 443, 8443))
    assert field_changes("services", old, new, False) == (
        FieldChange('metadata.labels["app.kubernetes.io/name"]'), FieldChange("spec.ports[1].port"))


def test_the_json_document_and_markdown():
    result = compare([("configmaps", CM)], [("configmaps", with_(CM, data={"mode": "slow", "size": "3"}))],
                     left_name="Backup default/b1 (of src)", right_name="Backup default/b2 (of src)", show_values=True)
    assert json.loads(result.to_json()) == {
        "format_version": "1", "left": "Backup default/b1 (of src)", "right": "Backup default/b2 (of src)",
        "showValues": True, "totals": {"added": 0, "removed": 0, "changed": 1, "unchanged": 0},
        "summary": {"configmaps": {"added": 0, "removed": 0, "changed": 1, "unchanged": 0}},
        "resources": {"configmaps": {"added": [], "removed": [], "changed": [
            {"object": "team-a/settings", "fields": [{"path": "data.mode", "old": "fast", "new": "slow"}]}]}}}
    assert result.to_markdown() == (
        "### Diff: Backup default/b1 (of src) → Backup default/b2 (of src)\n\n"
        "**0 added, 0 removed, 1 changed**, 0 unchanged (server-owned fields ignored).\n\n"
        "| resource | added | removed | changed |\n|---|---:|---:|---:|\n| `configmaps` | 0 | 0 | 1 |\n\n"
        '```diff\n! configmaps team-a/settings\n    ~ data.mode: "fast" → "slow"\n```\n')


def test_normalize_leaves_the_input_alone():
    before = copy.deepcopy(SERVICE)
    normalize("services", SERVICE)
    assert before == SERVICE
