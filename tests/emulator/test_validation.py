"""Conformance of what the emulator stores, through HTTP: each request and the answer a real
kube-apiserver gives (status code, reason, `details.causes[].field`, message)."""

from __future__ import annotations

import base64
import json
import ssl
import time
import urllib.error
import urllib.request

import pytest

from tests.validation import xrd_crd

WIDGETS = {
    "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
    "metadata": {"name": "widgets.example.org"},
    "spec": {"group": "example.org", "scope": "Namespaced",
             "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "listKind": "WidgetList"},
             "versions": [{"name": "v1", "served": True, "storage": True, "subresources": {"status": {}},
                           "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                               "spec": {"type": "object", "properties": {
                                   "size": {"type": "integer", "minimum": 1},
                                   "mode": {"type": "string", "default": "Safe"},
                                   "forProvider": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}},
                                        "x-kubernetes-validations": [
                                            {"rule": "!has(self.size) || self.size <= 10",
                                             "message": "size may not exceed 10"}]},
                               "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}}}}}]},
}


class Raw:
    """Plain HTTP(S) against the emulator, to see status codes, headers and bodies exactly."""

    def __init__(self, cp):
        self.cp = cp
        self.context = ssl._create_unverified_context() if cp.url.startswith("https") else None  # noqa: S323 - loopback

    def __call__(self, method: str, path: str, body=None, content_type: str = "application/json"):
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.cp.url + path, data=data, method=method, headers={
            "Authorization": f"Bearer {self.cp.token}", "Content-Type": content_type})
        try:
            with urllib.request.urlopen(request, timeout=30, context=self.context) as response:  # noqa: S310 - loopback
                return response.status, json.loads(response.read() or b"{}"), response.headers.get_all("Warning") or []
        except urllib.error.HTTPError as err:
            return err.code, json.loads(err.read() or b"{}"), err.headers.get_all("Warning") or []


def install(raw, crd: dict) -> None:
    code, body, _ = raw("POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", crd)
    assert code == 201, body
    plural, group = crd["spec"]["names"]["plural"], crd["spec"]["group"]
    version = next(v["name"] for v in crd["spec"]["versions"] if v["storage"])
    deadline = time.monotonic() + 10
    while raw("GET", f"/apis/{group}/{version}/{plural}")[0] != 200:
        assert time.monotonic() < deadline, f"{plural}.{group} never served"
        time.sleep(0.02)


@pytest.fixture
def raw(control_plane):
    api = Raw(control_plane)
    install(api, WIDGETS)
    install(api, xrd_crd.crd())
    return api


def meta(name: str, **extra) -> dict:
    return {"name": name, **extra}


def widget(name: str = "w", **spec) -> dict:
    return {"apiVersion": "example.org/v1", "kind": "Widget", "metadata": meta(name), "spec": spec}


CM = "/api/v1/namespaces/default/configmaps"
WIDGET_PATH = "/apis/example.org/v1/namespaces/default/widgets"
XRDS = "/apis/apiextensions.crossplane.io/{}/compositeresourcedefinitions"

# (case, method, path, body, code, reason, field or None, message start)
REFUSALS = [
    ("Service named 1svc", "POST", "/api/v1/namespaces/default/services",
     {"metadata": meta("1svc"), "spec": {"ports": [{"port": 80}]}}, 422, "Invalid", "metadata.name",
     'Service "1svc" is invalid: metadata.name: Invalid value: "1svc": a DNS-1035 label must consist of lower case '
     "alphanumeric characters or '-', start with an alphabetic character"),
    ("300,000-byte annotation", "POST", CM, {"metadata": meta("big", annotations={"a": "x" * 300_000})},
     422, "Invalid", "metadata.annotations",
     'ConfigMap "big" is invalid: metadata.annotations: Too long: may not be more than 262144 bytes'),
    ("invalid label value", "POST", CM, {"metadata": meta("lbl", labels={"team": "platform sre"})},
     422, "Invalid", "metadata.labels",
     'ConfigMap "lbl" is invalid: metadata.labels: Invalid value: "platform sre": a valid label must be an empty string'),
    ("ownerReference without uid", "POST", CM,
     {"metadata": meta("own", ownerReferences=[{"apiVersion": "v1", "kind": "ConfigMap", "name": "o"}])},
     422, "Invalid", "metadata.ownerReferences[0].uid",
     'ConfigMap "own" is invalid: metadata.ownerReferences[0].uid: Required value: must not be empty'),
    ("non-base64 Secret data", "POST", "/api/v1/namespaces/default/secrets",
     {"metadata": meta("s"), "data": {"password": "hunter2!"}}, 400, "BadRequest", None,
     'Secret in version "v1" cannot be handled as a Secret: illegal base64 data at input byte 7'),
    ("custom object with a wrong type", "POST", WIDGET_PATH, widget(size="three"), 422, "Invalid", "spec.size",
     'Widget.example.org "w" is invalid: spec.size: Invalid value: "string": spec.size in body must be of type '
     'integer: "string"'),
    ("unknown field under Strict", "POST", WIDGET_PATH + "?fieldValidation=Strict", widget(size=1, foo="bar"),
     400, "BadRequest", None, 'strict decoding error: unknown field "spec.foo"'),
    ("CEL rule violated", "POST", WIDGET_PATH, widget(size=11), 422, "Invalid", "spec",
     'Widget.example.org "w" is invalid: spec: Invalid value: "object": size may not exceed 10'),
    ("v2 XRD with claimNames", "POST", XRDS.format("v2"), xrd_crd.xrd("v2", claims=True), 422, "Invalid", "spec",
     'CompositeResourceDefinition.apiextensions.crossplane.io "xpostgres.example.org" is invalid: spec: Invalid '
     "value: \"object\": Claims aren't supported in apiextensions.crossplane.io/v2"),
    ("v2 XRD with connectionSecretKeys", "POST", XRDS.format("v2"),
     xrd_crd.xrd("v2", connectionSecretKeys=["password"]), 422, "Invalid", "spec",
     'CompositeResourceDefinition.apiextensions.crossplane.io "xpostgres.example.org" is invalid: spec: Invalid '
     "value: \"object\": XR connection secrets aren't supported in apiextensions.crossplane.io/v2"),
    ("apiVersion differs from the URL", "POST", CM, {"apiVersion": "v2", "kind": "ConfigMap", "metadata": meta("v")},
     400, "BadRequest", None, "the API version in the data (v2) does not match the expected API version (v1)"),
    ("group differs from the URL", "POST", WIDGET_PATH,
     dict(widget(size=1), apiVersion="other.org/v1"), 400, "BadRequest", None,
     "the API version in the data (other.org/v1) does not match the expected API version (example.org/v1)"),
    ("kind differs from the URL", "POST", WIDGET_PATH, dict(widget(size=1), kind="Gadget"), 422, "Invalid", "kind",
     'Gadget.example.org "w" is invalid: kind: Invalid value: "Gadget": must be Widget'),
    ("CRD name not plural.group", "POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
     dict(WIDGETS, metadata={"name": "gadgets.example.org"}), 422, "Invalid", "metadata.name",
     'CustomResourceDefinition.apiextensions.k8s.io "gadgets.example.org" is invalid: metadata.name: Invalid value: '
     '"gadgets.example.org": must be spec.names.plural+"."+spec.group'),
    ("namespace name with a dot", "POST", "/api/v1/namespaces", {"metadata": meta("team.a")}, 422, "Invalid",
     "metadata.name", 'Namespace "team.a" is invalid: metadata.name: Invalid value: "team.a": must not contain dots'),
    ("ClusterRole named ..", "POST", "/apis/rbac.authorization.k8s.io/v1/clusterroles", {"metadata": meta("..")},
     422, "Invalid", "metadata.name",
     'ClusterRole.rbac.authorization.k8s.io ".." is invalid: metadata.name: Invalid value: "..": may not be \'..\''),
    ("ClusterRoleBinding with a slash", "POST", "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
     {"metadata": meta("a/b"), "roleRef": {}}, 422, "Invalid", "metadata.name",
     'ClusterRoleBinding.rbac.authorization.k8s.io "a/b" is invalid: metadata.name: Invalid value: "a/b": may not '
     "contain '/'"),
    ("invalid finalizer", "POST", CM, {"metadata": meta("fin", finalizers=["not a finalizer"])}, 422, "Invalid",
     "metadata.finalizers", 'ConfigMap "fin" is invalid: metadata.finalizers: Invalid value: "not a finalizer"'),
]


@pytest.mark.parametrize(("method", "path", "body", "code", "reason", "field", "message"),
                         [r[1:] for r in REFUSALS], ids=[r[0] for r in REFUSALS])
def test_refusals(raw, method, path, body, code, reason, field, message):
    got_code, status, _ = raw(method, path, body)
    assert (got_code, status["kind"], status["status"], status["reason"], status["code"]) == (
        code, "Status", "Failure", reason, code)
    assert status["message"].startswith(message), status["message"]
    if field is None:
        assert "causes" not in status["details"]
    else:
        assert status["details"]["causes"][0]["field"] == field
        assert status["message"].endswith(status["details"]["causes"][0]["message"])


ACCEPTED = [
    ("ClusterRole crossplane:aggregate-to-edit", "/apis/rbac.authorization.k8s.io/v1/clusterroles",
     {"metadata": meta("crossplane:aggregate-to-edit"), "rules": []}),
    ("ClusterRoleBinding oidc:platform+sre", "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
     {"metadata": meta("oidc:platform+sre"), "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                                                           "name": "cluster-admin"}}),
    ("ClusterRole system:controller:foo", "/apis/rbac.authorization.k8s.io/v1/clusterroles",
     {"metadata": meta("system:controller:foo"), "rules": []}),
    ("ClusterRoleBinding system:controller:foo", "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
     {"metadata": meta("system:controller:foo"), "roleRef": {}}),
    # (system:certificates.k8s.io:certificatesigningrequests:nodeclient itself is bootstrapped already)
    ("ClusterRole with a dotted system: name", "/apis/rbac.authorization.k8s.io/v1/clusterroles",
     {"metadata": meta("system:certificates.k8s.io:certificatesigningrequests:custom"), "rules": []}),
    ("ClusterRole with a dotted crossplane: name", "/apis/rbac.authorization.k8s.io/v1/clusterroles",
     {"metadata": meta("crossplane:composite:xnetworks.aws.platformref.upbound.io:aggregate-to-edit"), "rules": []}),
    ("Role with a colon", "/apis/rbac.authorization.k8s.io/v1/namespaces/default/roles",
     {"metadata": meta("crossplane:ns:view"), "rules": []}),
    ("v1 XRD with claims", XRDS.format("v1"), xrd_crd.xrd("v1", claims=True)),
    ("Service with a DNS-1035 name", "/api/v1/namespaces/default/services",
     {"metadata": meta("svc-1"), "spec": {"ports": [{"port": 80}]}}),
]


@pytest.mark.parametrize(("path", "body"), [a[1:] for a in ACCEPTED], ids=[a[0] for a in ACCEPTED])
def test_acceptances(raw, path, body):
    code, stored, _ = raw("POST", path, body)
    assert (code, stored["metadata"]["name"]) == (201, body["metadata"]["name"])


def test_unknown_field_pruned_with_a_warning(raw):
    code, stored, warnings = raw("POST", WIDGET_PATH + "?fieldValidation=Warn", widget(size=1, foo="bar"))
    assert (code, stored["spec"], warnings) == (201, {"size": 1, "mode": "Safe"}, ['299 - "unknown field \\"spec.foo\\""'])
    code, stored, _ = raw("GET", WIDGET_PATH + "/w")
    assert stored["spec"] == {"size": 1, "mode": "Safe"}
    code, stored, warnings = raw("POST", WIDGET_PATH, widget("quiet", size=1, foo="bar"))  # no parameter: Warn
    assert (code, warnings) == (201, ['299 - "unknown field \\"spec.foo\\""'])
    code, stored, warnings = raw("POST", WIDGET_PATH + "?fieldValidation=Ignore", widget("ignored", size=1, foo="bar"))
    assert (code, stored["spec"], warnings) == (201, {"size": 1, "mode": "Safe"}, [])


def test_secret_string_data_is_merged_and_dropped(raw):
    code, stored, _ = raw("POST", "/api/v1/namespaces/default/secrets",
                          {"metadata": meta("s"), "data": {"a": "YQ=="}, "stringData": {"b": "bee"}})
    assert (code, stored["data"], "stringData" in stored) == (201, {"a": "YQ==", "b": base64.b64encode(b"bee").decode()},
                                                              False)


def test_updates_are_validated_and_ratchet(raw):
    assert raw("POST", WIDGET_PATH, widget(size=2))[0] == 201
    code, status, _ = raw("PATCH", WIDGET_PATH + "/w", {"spec": {"size": 0}}, "application/merge-patch+json")
    assert (code, status["reason"], status["details"]["causes"][0]["field"]) == (422, "Invalid", "spec.size")
    code, status, _ = raw("PATCH", WIDGET_PATH + "/w", {"spec": {"size": 12}}, "application/merge-patch+json")
    assert (code, status["message"]) == (422, 'Widget.example.org "w" is invalid: spec: Invalid value: "object": size '
                                              "may not exceed 10")
    code, status, _ = raw("PATCH", WIDGET_PATH + "/w", {"apiVersion": "example.org/v2", "spec": {"size": 3}},
                          "application/merge-patch+json")
    assert (code, status["reason"]) == (400, "BadRequest")
    code, stored, _ = raw("PATCH", WIDGET_PATH + "/w", {"spec": {"size": 3}}, "application/merge-patch+json")
    assert (code, stored["spec"]["size"]) == (200, 3)


def test_transition_rule_on_update(raw):
    assert raw("POST", XRDS.format("v2"), xrd_crd.xrd("v2"))[0] == 201
    code, status, _ = raw("PATCH", XRDS.format("v2") + "/xpostgres.example.org", {"spec": {"group": "other.org"}},
                          "application/merge-patch+json")
    assert (code, status["details"]["causes"][0]["field"], status["details"]["causes"][0]["message"]) == (
        422, "spec.group", 'Invalid value: "string": Value is immutable')


def test_crd_stored_versions_filled_by_the_server(raw):
    code, crd, _ = raw("GET", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/"
                              "compositeresourcedefinitions.apiextensions.crossplane.io")
    assert (code, crd["status"]["storedVersions"]) == (200, ["v1"])
