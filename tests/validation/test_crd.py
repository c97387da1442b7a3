"""CustomResourceDefinition rules (tables): names, one storage version, structural schemas, storedVersions."""

from __future__ import annotations

import copy

import pytest

from kubevalidation import Invalid, Target, admit
from kubevalidation.crd import validate_crd, validate_structural
from tests.validation import xrd_crd

CRD = Target("apiextensions.k8s.io", "v1", "CustomResourceDefinition", "customresourcedefinitions", False)


def fields(errors):
    return [str(e) for e in errors]


def test_the_xrd_shaped_crd_is_valid():
    assert validate_crd(xrd_crd.crd()) == []


@pytest.mark.parametrize(("change", "expected"), [
    (lambda c: c["metadata"].update(name="xrds.apiextensions.crossplane.io"),
     ['metadata.name: Invalid value: "xrds.apiextensions.crossplane.io": must be spec.names.plural+"."+spec.group']),
    (lambda c: c["spec"]["versions"][1].update(storage=True),
     ["spec.versions: Invalid value: "]),
    (lambda c: [v.update(storage=False) for v in c["spec"]["versions"]],
     ["spec.versions: Invalid value: "]),
    (lambda c: c["spec"].update(scope="Global"),
     ['spec.scope: Unsupported value: "Global": supported values: "Cluster", "Namespaced"']),
    (lambda c: c["spec"]["versions"][1].update(name="v1"), ['spec.versions[1].name: Duplicate value: "v1"']),
    (lambda c: c["spec"]["versions"][0].pop("schema"),
     ["spec.versions[0].schema.openAPIV3Schema: Required value: schemas are required"]),
    (lambda c: c["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"].pop("type"),
     ["spec.versions[0].schema.openAPIV3Schema.properties[spec].type: Required value: must not be empty for specified "
      "object fields"]),
])
def test_crd_refusals(change, expected):
    crd = xrd_crd.crd()
    change(crd)
    got = fields(validate_crd(crd))
    assert len(got) == len(expected) and all(g.startswith(e) for g, e in zip(got, expected, strict=True))


def test_exactly_one_storage_version_message():
    crd = xrd_crd.crd()
    crd["spec"]["versions"][1]["storage"] = True
    with pytest.raises(Invalid, match=r'^CustomResourceDefinition.apiextensions.k8s.io "compositeresourcedefinitions.'
                                      r'apiextensions.crossplane.io" is invalid: spec.versions: Invalid value: \[.*\]: '
                                      r"must have exactly one version marked as storage version$"):
        admit(CRD, crd)


@pytest.mark.parametrize(("schema", "expected"), [
    ({"type": "object", "properties": {"a": {"type": "string"}}}, []),
    ({"type": "object", "x-kubernetes-preserve-unknown-fields": True}, []),
    ({"type": "string"}, ['s.type: Invalid value: "string": must be object at the root']),
    ({"properties": {}}, ["s.type: Required value: must not be empty at the root"]),
    ({"type": "object", "properties": {"a": {"properties": {}}}},
     ["s.properties[a].type: Required value: must not be empty for specified object fields"]),
    ({"type": "object", "properties": {"a": {"type": "array"}}}, ["s.properties[a].items: Required value: must be specified"]),
    ({"type": "object", "properties": {"p": {"x-kubernetes-int-or-string": True, "type": "string"}}},
     ['s.properties[p].type: Invalid value: "string": must be empty if x-kubernetes-int-or-string is true']),
    ({"type": "object", "properties": {"p": {"x-kubernetes-int-or-string": True,
                                             "anyOf": [{"type": "integer"}, {"type": "string"}]}}}, []),
    ({"type": "object", "properties": {"p": {"type": "string", "anyOf": [{"type": "integer"}]}}},
     ["s.properties[p].anyOf[0].type: Forbidden: must be empty to be structural"]),
    ({"type": "object", "properties": {"m": {"type": "object", "properties": {"a": {"type": "string"}},
                                             "additionalProperties": {"type": "string"}}}},
     ["s.properties[m].additionalProperties: Forbidden: additionalProperties and properties are mutual exclusive"]),
    ({"type": "object", "properties": {"metadata": {"type": "object", "properties": {"labels": {"type": "object"}}}}},
     ["s.properties[metadata]: Forbidden: must not specify anything other than name and generateName, but metadata is "
      "implicitly specified"]),
    ({"type": "object", "properties": {"e": {"type": "string", "x-kubernetes-embedded-resource": True}}},
     ['s.properties[e].type: Invalid value: "string": must be object if x-kubernetes-embedded-resource is true']),
])
def test_structural_schemas(schema, expected):
    assert fields(validate_structural(schema, "s")) == expected


def test_stored_versions_filled_and_checked():
    crd = admit(CRD, xrd_crd.crd()).obj
    assert crd["status"]["storedVersions"] == ["v1"]
    moved = copy.deepcopy(crd)
    for v in moved["spec"]["versions"]:
        v["storage"] = v["name"] == "v2"
    assert admit(CRD, moved, crd).obj["status"]["storedVersions"] == ["v1", "v2"]
    dropped = copy.deepcopy(crd)
    dropped["status"]["storedVersions"] = ["v1beta1"]
    with pytest.raises(Invalid, match=r'status.storedVersions\[0\]: Invalid value: "v1beta1": must appear in spec.versions, '
                                      r'status.storedVersions: Invalid value: \["v1beta1"\]: must have the storage version v1\]$'):
        admit(CRD, dropped, crd, subresource="status")
