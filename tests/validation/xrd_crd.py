"""A test CRD shaped like Crossplane's CompositeResourceDefinition CRD (crossplane/crossplane
`cluster/crds/apiextensions.crossplane.io_compositeresourcedefinitions.yaml`, read 2026-11-30): served at
v1 (storage) and v2, v2's rules refuse `claimNames` and `connectionSecretKeys`; immutable group, names and
scope (`self == oldSelf` transition rules); lower-case plural names. Written for these tests, abridged."""

from __future__ import annotations

import copy

GROUP = "apiextensions.crossplane.io"
_NAMES = {"type": "object", "required": ["kind", "plural"],
          "properties": {"kind": {"type": "string"}, "plural": {"type": "string"}, "singular": {"type": "string"},
                         "listKind": {"type": "string"}, "categories": {"type": "array", "items": {"type": "string"}},
                         "shortNames": {"type": "array", "items": {"type": "string"}}},
          "x-kubernetes-validations": [
              {"message": "Plural name must be lowercase", "rule": "self.plural == self.plural.lowerAscii()"},
              {"message": "Singular name must be lowercase",
               "rule": "!has(self.singular) || self.singular == self.singular.lowerAscii()"}]}
_IMMUTABLE = {"message": "Value is immutable", "rule": "self == oldSelf"}


def _spec(version: str) -> dict:
    names = copy.deepcopy(_NAMES)
    immutable_names = copy.deepcopy(names)
    immutable_names["x-kubernetes-validations"].insert(0, dict(_IMMUTABLE))
    spec = {
        "type": "object", "required": ["group", "names", "versions"],
        "properties": {
            "group": {"type": "string", "x-kubernetes-validations": [dict(_IMMUTABLE)]},
            "names": immutable_names,
            "claimNames": names,
            "connectionSecretKeys": {"type": "array", "items": {"type": "string"}},
            "defaultCompositeDeletePolicy": {"type": "string", "enum": ["Background", "Foreground"],
                                             "default": "Background"},
            "versions": {"type": "array", "items": {
                "type": "object", "required": ["name", "referenceable", "served"],
                "properties": {"name": {"type": "string"}, "referenceable": {"type": "boolean"},
                               "served": {"type": "boolean"},
                               "schema": {"type": "object", "properties": {
                                   "openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}}}}}},
        },
    }
    if version == "v1":
        spec["x-kubernetes-validations"] = [
            {"message": "Only LegacyCluster composite resources can offer claims",
             "rule": "self.scope == 'LegacyCluster' || !has(self.claimNames)"},
            {"message": "Only LegacyCluster composite resources support connection secrets",
             "rule": "self.scope == 'LegacyCluster' || !has(self.connectionSecretKeys)"}]
        spec["properties"]["scope"] = {"type": "string", "enum": ["Namespaced", "Cluster", "LegacyCluster"],
                                       "default": "LegacyCluster",
                                       "x-kubernetes-validations": [dict(_IMMUTABLE)]}
    else:
        spec["x-kubernetes-validations"] = [
            {"message": "Claims aren't supported in apiextensions.crossplane.io/v2", "rule": "!has(self.claimNames)"},
            {"message": "XR connection secrets aren't supported in apiextensions.crossplane.io/v2",
             "rule": "!has(self.connectionSecretKeys)"}]
        spec["properties"]["scope"] = {"type": "string", "enum": ["Namespaced", "Cluster", "LegacyCluster"],
                                       "default": "Namespaced", "x-kubernetes-validations": [dict(_IMMUTABLE)]}
    return spec


def schema(version: str) -> dict:
    return {"type": "object", "properties": {
        "apiVersion": {"type": "string"}, "kind": {"type": "string"}, "metadata": {"type": "object"},
        "spec": _spec(version),
        "status": {"type": "object", "properties": {"conditions": {
            "type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"],
            "items": {"type": "object", "required": ["type", "status"], "properties": {
                "type": {"type": "string"}, "status": {"type": "string"}, "reason": {"type": "string"}}}}}}}}


def crd() -> dict:
    versions = [{"name": v, "served": True, "storage": v == "v1", "referenceable": v == "v2",
                 "subresources": {"status": {}}, "schema": {"openAPIV3Schema": schema(v)}} for v in ("v1", "v2")]
    for v in versions:
        v.pop("referenceable")
    return {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": f"compositeresourcedefinitions.{GROUP}"},
            "spec": {"group": GROUP, "scope": "Cluster",
                     "names": {"kind": "CompositeResourceDefinition", "listKind": "CompositeResourceDefinitionList",
                               "plural": "compositeresourcedefinitions", "singular": "compositeresourcedefinition",
                               "shortNames": ["xrd", "xrds"], "categories": ["crossplane"]},
                     "versions": versions}}


def xrd(version: str, name: str = "xpostgres.example.org", claims: bool = False, **spec) -> dict:
    body = {"apiVersion": f"{GROUP}/{version}", "kind": "CompositeResourceDefinition", "metadata": {"name": name},
            "spec": {"group": "example.org", "names": {"kind": "XPostgres", "plural": "xpostgres"},
                     "versions": [{"name": "v1alpha1", "referenceable": True, "served": True}], **spec}}
    if claims:
        body["spec"]["claimNames"] = {"kind": "Postgres", "plural": "postgres"}
    return body
