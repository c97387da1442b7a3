"""Shapes of a running Crossplane 2 install with provider-upjet-aws, written after the real CRDs
(crossplane/crossplane `cluster/crds/`, crossplane-contrib/provider-upjet-aws `package/crds/`,
read 2026-11-30) for `fixtures.seed_crossplane` (on by default): trimmed schemas, real names,
versions, scopes, categories and CEL rules."""

from __future__ import annotations

PRESERVE = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
CONVERT_WEBHOOK = {"strategy": "Webhook", "webhook": {"conversionReviewVersions": ["v1"], "clientConfig": {
    "service": {"name": "provider-aws-ec2", "namespace": "crossplane-system", "path": "/convert", "port": 9443}}}}
MANAGED_CATEGORIES = ["crossplane", "managed", "aws"]
#: namespaced managed resources of provider-upjet-aws v2: (group, plural, kind)
NAMESPACED_MANAGED = [("s3.aws.m.upbound.io", "buckets", "Bucket"), ("rds.aws.m.upbound.io", "instances", "Instance")]


def _crd(group: str, plural: str, kind: str, scope: str, versions: list[dict], categories: list[str],
         short: list[str] | None = None, conversion: dict | None = None) -> dict:
    names = {"plural": plural, "singular": kind.lower(), "kind": kind, "listKind": f"{kind}List", "categories": categories}
    if short:
        names["shortNames"] = short
    spec = {"group": group, "scope": scope, "names": names, "versions": versions}
    if conversion:
        spec["conversion"] = conversion
    return {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": f"{plural}.{group}"}, "spec": spec}


def _version(name: str, storage: bool, schema: dict, served: bool = True, **extra) -> dict:
    return {"name": name, "served": served, "storage": storage, "subresources": {"status": {}},
            "schema": {"openAPIV3Schema": schema}, **extra}


def _object(spec: dict, status: dict | None = None) -> dict:
    props = {"apiVersion": {"type": "string"}, "kind": {"type": "string"}, "metadata": {"type": "object"}, "spec": spec,
             "status": status or PRESERVE}
    return {"type": "object", "properties": props, "required": ["spec"]}


def _xrd_spec(version: str) -> dict:
    """The XRD spec schema: v1's scope defaults to LegacyCluster (claims allowed there), v2's to
    Namespaced, and v2 refuses claims and XR connection secrets outright."""
    names = {"type": "object", "properties": {"kind": {"type": "string"}, "plural": {"type": "string"},
                                              "singular": {"type": "string"}, "listKind": {"type": "string"},
                                              "categories": {"type": "array", "items": {"type": "string"}}},
             "required": ["kind", "plural"],
             "x-kubernetes-validations": [{"message": "Value is immutable", "rule": "self == oldSelf"},
                                          {"message": "Plural name must be lowercase",
                                           "rule": "self.plural == self.plural.lowerAscii()"}]}
    spec = {"type": "object", "required": ["group", "names", "versions"], "properties": {
        "group": {"type": "string", "x-kubernetes-validations": [{"message": "Value is immutable",
                                                                   "rule": "self == oldSelf"}]},
        "names": names,
        "claimNames": names,
        "connectionSecretKeys": {"type": "array", "items": {"type": "string"}},
        "scope": {"type": "string", "enum": ["LegacyCluster", "Namespaced", "Cluster"],
                  "default": "LegacyCluster" if version == "v1" else "Namespaced"},
        "defaultCompositeDeletePolicy": {"type": "string", "enum": ["Background", "Foreground"], "default": "Background"},
        "defaultCompositionRef": {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]},
        "versions": {"type": "array", "items": {"type": "object", "required": ["name", "referenceable", "served"],
                                                "properties": {"name": {"type": "string"},
                                                               "referenceable": {"type": "boolean"},
                                                               "served": {"type": "boolean"},
                                                               "schema": PRESERVE}}},
    }}
    if version == "v1":
        spec["x-kubernetes-validations"] = [
            {"message": "Only LegacyCluster composite resources can offer claims",
             "rule": "self.scope == 'LegacyCluster' || !has(self.claimNames)"},
            {"message": "Only LegacyCluster composite resources support connection secrets",
             "rule": "self.scope == 'LegacyCluster' || !has(self.connectionSecretKeys)"}]
    else:
        spec["x-kubernetes-validations"] = [
            {"message": "Claims aren't supported in apiextensions.crossplane.io/v2", "rule": "!has(self.claimNames)"},
            {"message": "XR connection secrets aren't supported in apiextensions.crossplane.io/v2",
             "rule": "!has(self.connectionSecretKeys)"}]
    return spec


def xrd_crd() -> dict:
    """compositeresourcedefinitions.apiextensions.crossplane.io: v1 deprecated and stored, v2 served
    (and preferred, by Kubernetes' version priority)."""
    v1 = _version("v1", True, _object(_xrd_spec("v1")), deprecated=True,
                  deprecationWarning="CompositeResourceDefinition v1 is deprecated and will be removed in a future "
                                     "release; consider migrating to v2")
    v2 = _version("v2", False, _object(_xrd_spec("v2")))
    return _crd("apiextensions.crossplane.io", "compositeresourcedefinitions", "CompositeResourceDefinition", "Cluster",
                [v1, v2], ["crossplane"], ["xrd", "xrds"])


def _managed_spec(namespaced: bool, extra: dict | None = None) -> dict:
    for_provider = {"type": "object", "properties": {"region": {"type": "string"},
                                                     "tags": {"type": "object", "additionalProperties": {"type": "string"}},
                                                     **(extra or {})}, "x-kubernetes-preserve-unknown-fields": True}
    props = {"forProvider": for_provider, "initProvider": PRESERVE,
             "managementPolicies": {"type": "array", "items": {"type": "string"}, "default": ["*"]},
             "providerConfigRef": {"type": "object", "properties": {"name": {"type": "string"},
                                                                    "kind": {"type": "string"}}, "required": ["name"]},
             "writeConnectionSecretToRef": {"type": "object", "properties": {"name": {"type": "string"}}}}
    if not namespaced:
        props["deletionPolicy"] = {"type": "string", "enum": ["Orphan", "Delete"], "default": "Delete"}
        props["writeConnectionSecretToRef"]["properties"]["namespace"] = {"type": "string"}
    return {"type": "object", "properties": props, "required": ["forProvider"]}


def instance_crd() -> dict:
    """instances.ec2.aws.upbound.io: v1beta1 still served, v1beta2 stored, converted by the
    provider's webhook (served here as if `conversion: None`)."""
    v1beta1 = _version("v1beta1", False, _object(_managed_spec(False, {"cpuCoreCount": {"type": "number"}})))
    v1beta2 = _version("v1beta2", True, _object(_managed_spec(False, {"cpuOptions": PRESERVE})))
    return _crd("ec2.aws.upbound.io", "instances", "Instance", "Cluster", [v1beta1, v1beta2], MANAGED_CATEGORIES,
                conversion=CONVERT_WEBHOOK)


def namespaced_crds() -> list[dict]:
    """Namespaced managed resources and their namespaced ProviderConfig (`*.aws.m.upbound.io`)."""
    crds = [_crd(group, plural, kind, "Namespaced", [_version("v1beta1", True, _object(_managed_spec(True)))],
                 MANAGED_CATEGORIES) for group, plural, kind in NAMESPACED_MANAGED]
    crds.append(_crd("aws.m.upbound.io", "providerconfigs", "ProviderConfig", "Namespaced",
                     [_version("v1beta1", True, _object(PRESERVE))], ["crossplane", "provider", "aws"]))
    return crds


def _usage_schema() -> dict:
    ref = {"type": "object", "properties": {"name": {"type": "string"}, "kind": {"type": "string"}}, "required": ["name"]}
    resource_ref = {"type": "object", "required": ["apiVersion", "kind", "name"], "properties": {
        "apiVersion": {"type": "string"}, "kind": {"type": "string"}, "name": {"type": "string"},
        "uid": {"type": "string"}}}
    return {"type": "object", "required": ["providerConfigRef", "resourceRef"], "properties": {
        "apiVersion": {"type": "string"}, "kind": {"type": "string"}, "metadata": {"type": "object"},
        "providerConfigRef": ref, "resourceRef": resource_ref}}


def usage_crd() -> dict:
    version = _version("v1beta1", True, _usage_schema())
    version.pop("subresources")
    return _crd("aws.upbound.io", "providerconfigusages", "ProviderConfigUsage", "Cluster", [version],
                ["crossplane", "provider", "aws"])


def namespaced_usage_crd() -> dict:
    version = _version("v1beta1", True, _usage_schema())
    version.pop("subresources")
    return _crd("aws.m.upbound.io", "providerconfigusages", "ProviderConfigUsage", "Namespaced", [version],
                ["crossplane", "provider", "aws"])


def usage(mr: dict, controller_ref: dict, config: str = "default") -> dict:
    """The ProviderConfigUsage crossplane-runtime's tracker writes for a managed resource."""
    meta = mr["metadata"]
    body = {"metadata": {"name": meta["uid"], "labels": {"crossplane.io/provider-config": config},
                         "ownerReferences": [controller_ref]},
            "providerConfigRef": {"name": config},
            "resourceRef": {"apiVersion": mr["apiVersion"], "kind": mr["kind"], "name": meta["name"], "uid": meta["uid"]}}
    if meta.get("namespace"):
        body["providerConfigRef"]["kind"] = "ProviderConfig"
    return body


def aggregate_cluster_roles() -> list[dict]:
    """The Crossplane Helm chart's `crossplane:aggregate-to-*` ClusterRoles."""
    out = []
    for level, verbs in (("admin", ["*"]), ("edit", ["*"]), ("view", ["get", "list", "watch"])):
        out.append({"metadata": {"name": f"crossplane:aggregate-to-{level}", "labels": {
            f"rbac.authorization.k8s.io/aggregate-to-{level}": "true", "app": "crossplane"}},
            "rules": [{"apiGroups": ["apiextensions.crossplane.io", "pkg.crossplane.io"], "resources": ["*"],
                       "verbs": verbs}]})
    return out
