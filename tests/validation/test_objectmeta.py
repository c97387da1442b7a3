"""`metadata` rules and Secret decoding (tables), with the messages kube-apiserver answers."""

from __future__ import annotations

import base64
import re

import pytest

from kubevalidation import BadRequest, Invalid, Target, admit, builtins, names, objectmeta

CM = Target("", "v1", "ConfigMap", "configmaps", namespaced=True)
SECRET = Target("", "v1", "Secret", "secrets", namespaced=True)
ROLE = Target("rbac.authorization.k8s.io", "v1", "ClusterRole", "clusterroles", namespaced=False)


def fields(errors):
    return [(e.type, e.field, str(e)) for e in errors]


@pytest.mark.parametrize(("meta", "expected"), [
    ({"name": "a", "namespace": "ns", "labels": {"app": "x y"}},
     [("FieldValueInvalid", "metadata.labels",
       'metadata.labels: Invalid value: "x y": a valid label must be an empty string or consist of alphanumeric '
       "characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or "
       "'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')")]),
    ({"name": "a", "namespace": "ns", "annotations": {"big": "x" * 300_000}},
     [("FieldValueTooLong", "metadata.annotations", "metadata.annotations: Too long: may not be more than 262144 bytes")]),
    ({"name": "a", "namespace": "ns", "annotations": {"k": "x" * (262_144 - 1)}}, []),  # exactly at the limit
    ({"name": "a", "namespace": "ns", "annotations": {"k": "x" * 262_144}},
     [("FieldValueTooLong", "metadata.annotations", "metadata.annotations: Too long: may not be more than 262144 bytes")]),
    ({"name": "a", "namespace": "ns", "annotations": {"Example.COM/Key": "v"}}, []),  # keys are lower-cased first
    ({"name": "a", "namespace": "ns", "ownerReferences": [{"apiVersion": "v1", "kind": "ConfigMap", "name": "o"}]},
     [("FieldValueRequired", "metadata.ownerReferences[0].uid",
       "metadata.ownerReferences[0].uid: Required value: must not be empty")]),
    ({"name": "a", "namespace": "ns", "ownerReferences": [{"uid": "u"}]},
     [("FieldValueRequired", "metadata.ownerReferences[0].apiVersion",
       "metadata.ownerReferences[0].apiVersion: Required value: must not be empty"),
      ("FieldValueRequired", "metadata.ownerReferences[0].kind", "metadata.ownerReferences[0].kind: Required value: must not be empty"),
      ("FieldValueRequired", "metadata.ownerReferences[0].name", "metadata.ownerReferences[0].name: Required value: must not be empty")]),
    ({"name": "a", "namespace": "ns", "ownerReferences": [{"apiVersion": "a/b/c", "kind": "K", "name": "o", "uid": "u"}]},
     [("FieldValueInvalid", "metadata.ownerReferences[0].apiVersion",
       'metadata.ownerReferences[0].apiVersion: Invalid value: "a/b/c": must be <group>/<version> or <version>')]),
    ({"name": "a", "namespace": "ns", "finalizers": ["finalizer.crossplane.io", "bad finalizer"]},
     [("FieldValueInvalid", "metadata.finalizers",
       'metadata.finalizers: Invalid value: "bad finalizer": name part must consist of alphanumeric characters, '
       "'-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or "
       "'123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')")]),
    ({"name": "a"}, [("FieldValueRequired", "metadata.namespace", "metadata.namespace: Required value")]),
    ({}, [("FieldValueRequired", "metadata.name", "metadata.name: Required value: name or generateName is required"),
          ("FieldValueRequired", "metadata.namespace", "metadata.namespace: Required value")]),
])
def test_object_meta_on_create(meta, expected):
    assert fields(objectmeta.validate_object_meta(meta, True, names.DNS_SUBDOMAIN)) == expected


def test_cluster_scoped_objects_have_no_namespace():
    assert fields(objectmeta.validate_object_meta({"name": "a", "namespace": "x"}, False, names.DNS_SUBDOMAIN)) == [
        ("FieldValueForbidden", "metadata.namespace", "metadata.namespace: Forbidden: not allowed on this type")]


def test_two_controllers_are_refused():
    refs = [{"apiVersion": "v1", "kind": "A", "name": "a", "uid": "1", "controller": True},
            {"apiVersion": "v1", "kind": "B", "name": "b", "uid": "2", "controller": True}]
    errs = objectmeta.validate_owner_references(refs)
    assert [(e.type, e.field, e.detail) for e in errs] == [
        ("FieldValueInvalid", "metadata.ownerReferences",
         'Only one reference can have Controller set to true. Found "true" in references for A/a and B/b')]


def test_no_new_finalizers_once_deleting():
    old = {"name": "a", "namespace": "n", "deletionTimestamp": "2026-01-01T00:00:00Z", "finalizers": ["x.io/a"]}
    new = dict(old, finalizers=["x.io/a", "x.io/b"])
    assert fields(objectmeta.validate_object_meta(new, True, names.DNS_SUBDOMAIN, old)) == [
        ("FieldValueForbidden", "metadata.finalizers", 'metadata.finalizers: Forbidden: no new finalizers can be added '
                                                       'if the object is being deleted, found new finalizers []string{"x.io/b"}')]


def test_invalid_names_the_object_and_every_field_in_its_status():
    obj = {"metadata": {"name": "Bad_Name", "namespace": "ns", "labels": {"k": "-v"}}}
    with pytest.raises(Invalid, match=r'^ConfigMap "Bad_Name" is invalid: \[metadata.name: Invalid value: "Bad_Name": ') as err:
        admit(CM, obj)
    status = err.value.status()
    assert (status["code"], status["reason"], status["details"]["name"], status["details"]["kind"]) == (
        422, "Invalid", "Bad_Name", "ConfigMap")
    assert "group" not in status["details"]
    assert [(c["reason"], c["field"]) for c in status["details"]["causes"]] == [
        ("FieldValueInvalid", "metadata.name"), ("FieldValueInvalid", "metadata.labels")]
    assert status["details"]["causes"][1]["message"].startswith('Invalid value: "-v": a valid label must be')


@pytest.mark.parametrize("name", ["crossplane:aggregate-to-edit", "system:controller:foo", "oidc:platform+sre"])
def test_rbac_names_accepted(name):
    assert admit(ROLE, {"metadata": {"name": name}}).obj["metadata"]["name"] == name


@pytest.mark.parametrize(("data", "byte"), [
    ({"k": "not base64!"}, 3), ({"k": "YWJj*"}, 4), ({"k": "YWJjZA"}, 4), ({"k": "Y"}, 0), ({"k": "YQ==YQ=="}, 2),
])
def test_secret_data_must_be_base64(data, byte):
    with pytest.raises(BadRequest, match=rf'^Secret in version "v1" cannot be handled as a Secret: illegal base64 data '
                                         rf"at input byte {byte}$"):
        admit(SECRET, {"metadata": {"name": "s", "namespace": "n"}, "data": data})


@pytest.mark.parametrize("value", ["", "YQ==", "YWI=", "YWJj", base64.b64encode(bytes(range(256))).decode()])
def test_valid_base64_is_kept_as_is(value):
    obj = {"metadata": {"name": "s", "namespace": "n"}, "data": {"k": value}}
    assert admit(SECRET, obj).obj["data"] == {"k": value}


def test_string_data_is_merged_into_data_and_dropped():
    obj = {"metadata": {"name": "s", "namespace": "n"}, "data": {"a": "YQ==", "b": "Yg=="},
           "stringData": {"b": "new", "c": "ünï"}}
    stored = admit(SECRET, obj).obj
    assert "stringData" not in stored
    assert stored["data"] == {"a": "YQ==", "b": "bmV3", "c": base64.b64encode("ünï".encode()).decode()}


def test_secret_type_is_immutable():
    old = {"metadata": {"name": "s", "namespace": "n"}, "type": "Opaque", "data": {}}
    new = {"metadata": {"name": "s", "namespace": "n", "resourceVersion": "1"}, "type": "kubernetes.io/basic-auth",
           "data": {"username": "YQ=="}}
    with pytest.raises(Invalid, match=r'^Secret "s" is invalid: type: Invalid value: "kubernetes.io/basic-auth": '
                                      r"field is immutable$"):
        admit(SECRET, new, old)


@pytest.mark.parametrize(("kind", "data", "field"), [
    ("kubernetes.io/tls", {"tls.crt": "YQ=="}, "data[tls.key]"),
    ("kubernetes.io/dockerconfigjson", {}, "data[.dockerconfigjson]"),
    ("kubernetes.io/ssh-auth", {}, "data[ssh-privatekey]"),
    ("kubernetes.io/service-account-token", {}, "metadata.annotations[kubernetes.io/service-account.name]"),
])
def test_secret_types_require_their_keys(kind, data, field):
    with pytest.raises(Invalid, match=rf'^Secret "s" is invalid: {re.escape(field)}: Required value$'):
        admit(SECRET, {"metadata": {"name": "s", "namespace": "n"}, "type": kind, "data": data})


@pytest.mark.parametrize("key", ["bad key", "..", "a/b"])
def test_data_keys_are_config_keys(key):
    with pytest.raises(Invalid, match=r"^ConfigMap \"c\" is invalid: data\["):
        admit(CM, {"metadata": {"name": "c", "namespace": "n"}, "data": {key: "v"}})
    assert builtins.validate_config_map({"data": {"ok.key_1": "v"}}, None) == []


@pytest.mark.parametrize(("body", "message"), [
    ({"apiVersion": "v2", "kind": "ConfigMap"}, r"the API version in the data \(v2\) does not match the expected API version \(v1\)"),
    ({"apiVersion": "apps/v1", "kind": "ConfigMap"}, r"the API version in the data \(apps/v1\) does not match the expected "
                                                     r"API version \(v1\)"),
])
def test_api_version_must_match_the_url(body, message):
    with pytest.raises(BadRequest, match=f"^{message}$"):
        admit(CM, dict(body, metadata={"name": "c", "namespace": "n"}))


def test_kind_must_match_the_url():
    with pytest.raises(Invalid, match=r'^Secret "c" is invalid: kind: Invalid value: "Secret": must be ConfigMap$'):
        admit(CM, {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "c", "namespace": "n"}})
