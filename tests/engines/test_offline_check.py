"""engines/offline_check: what a dry-run restore checks without a server (objects in namespaces or of
CRDs the restore would create), answered in the API server's words."""

from __future__ import annotations

import copy

import pytest

from ctpbackup.engines.offline_check import OfflineAdmission
from kubeemu.fixtures import crd
from kubevalidation import Target

GADGETS = crd("example.org", "gadgets", "Gadget", "Namespaced", "v1")
GADGETS["spec"]["versions"][0]["schema"]["openAPIV3Schema"] = {"type": "object", "properties": {
    "spec": {"type": "object", "properties": {
        "size": {"type": "integer", "x-kubernetes-validations": [{"rule": "self <= 5", "message": "at most 5"}]},
        "color": {"type": "string", "enum": ["blue", "green"]}}},
    "status": {"type": "object", "properties": {"phase": {"type": "integer"}}}}}
CONFIGMAP = Target("", "v1", "ConfigMap", "configmaps", True)


def gadget(**spec) -> dict:
    return {"apiVersion": "example.org/v1", "kind": "Gadget", "metadata": {"name": "g", "namespace": "team-a"}, "spec": spec}


@pytest.fixture
def admission() -> OfflineAdmission:
    return OfflineAdmission(lambda key: copy.deepcopy(GADGETS) if key == "gadgets.example.org" else None)


@pytest.mark.parametrize(("obj", "refusal"), [
    (gadget(size=3, color="blue"), ""),
    (gadget(size=9), 'Gadget.example.org "g" is invalid: spec.size: Invalid value: "integer": at most 5'),
    (gadget(size="big"), 'Gadget.example.org "g" is invalid: spec.size: Invalid value: "string": spec.size in body '
                         'must be of type integer: "string"'),
    (gadget(color="red"), 'Gadget.example.org "g" is invalid: spec.color: Unsupported value: "red": supported values: '
                          '"blue", "green"'),
    ({**gadget(size=1), "metadata": {"name": "Not_A_Name", "namespace": "team-a"}},
     'Gadget.example.org "Not_A_Name" is invalid: metadata.name: Invalid value: "Not_A_Name": a lowercase RFC 1123 '
     "subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an "
     "alphanumeric character (e.g. 'example.com', regex used for validation is "
     "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"),
    ({**gadget(size=1), "status": {"phase": "not-an-integer"}}, ""),  # a create ignores status (status subresource)
    ({**gadget(size=1), "apiVersion": "example.org/v2"}, "no CRD in the backup or the target serves gadgets.example.org "
                                                          "at example.org/v2"),
], ids=["valid", "cel-rule", "type", "enum", "name", "status-ignored", "unserved-version"])
def test_custom_resources_against_their_archived_crd(admission, obj, refusal):
    assert admission.check("gadgets.example.org", obj) == refusal


def test_a_type_no_crd_defines_is_refused_by_name(admission):
    assert admission.check("widgets.example.org", {"apiVersion": "example.org/v1", "kind": "Widget",
                                                   "metadata": {"name": "w"}}) == \
        "no CRD in the backup or the target serves widgets.example.org at example.org/v1"


@pytest.mark.parametrize(("data", "refusal"), [
    ({"ok.key": "v"}, ""),
    ({"no/slash": "v"}, 'ConfigMap "c" is invalid: data[no/slash]: Invalid value: "no/slash": a valid config key must '
                        "consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or "
                        "'key-name', regex used for validation is '[-._a-zA-Z0-9]+')"),
], ids=["valid", "bad-key"])
def test_built_ins_against_the_kubernetes_rules(admission, data, refusal):
    obj = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "team-a"}, "data": data}
    assert admission.check("configmaps", obj, CONFIGMAP) == refusal
