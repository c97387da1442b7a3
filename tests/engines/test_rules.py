"""The pure rules of the engines: which types and objects a backup keeps, and the restore order."""

from __future__ import annotations

import json

import pytest

from ctpbackup.engines import archive
from ctpbackup.engines.backup import exclusion_warnings, select_types, skip_reason
from ctpbackup.engines.restore import _Entry, _generations
from ctpbackup.engines.restore_order import (
    LAST_APPLIED,
    TIERS,
    clean,
    is_pausable,
    made_by_control_plane,
    merge_user_fields,
    tier_of,
)
from ctpbackup.kube.api import CRD_KEY, ResourceType

ALL = ("list", "create", "get", "delete")


def rt(resource: str, group: str = "", verbs=ALL, namespaced=True) -> ResourceType:
    return ResourceType(group, "v1", resource, resource.title(), namespaced, tuple(verbs))


def test_select_types_skips_transient_and_excluded_keeps_crds():
    types = [rt("secrets"), rt("events"), rt("events", "events.k8s.io"), rt("leases", "coordination.k8s.io"),
             rt("tokenreviews", "authentication.k8s.io", verbs=("create",)),
             rt("xclusters", "aws.platformref.upbound.io"), rt("buckets", "s3.aws.upbound.io"),
             rt("customresourcedefinitions", "apiextensions.k8s.io", namespaced=False)]
    chosen, left_out = select_types(types, ["xclusters.aws.platformref.upbound.io", CRD_KEY])
    keys = [t.key for t in chosen]
    assert keys == ["secrets", "buckets.s3.aws.upbound.io", CRD_KEY]
    assert left_out["events"] and left_out["events.events.k8s.io"] and left_out["leases.coordination.k8s.io"]
    assert left_out["xclusters.aws.platformref.upbound.io"] == "excludedResources"
    assert "still included" in left_out[CRD_KEY]
    assert "tokenreviews.authentication.k8s.io" not in keys  # not listable: nothing to restore


CRD = rt("customresourcedefinitions", "apiextensions.k8s.io", namespaced=False)


def crd(plural: str, group: str, owner: str | None = None) -> dict:
    meta = {"name": f"{plural}.{group}"}
    if owner:
        meta["ownerReferences"] = [{"apiVersion": owner, "kind": "ProviderRevision", "name": "p", "uid": "1"}]
    return {"metadata": meta, "spec": {"group": group, "names": {"plural": plural}}}


@pytest.mark.parametrize("rtype, obj, crd_all, skipped", [
    (rt("configmaps"), {"metadata": {"name": "kube-root-ca.crt", "namespace": "a"}}, True, True),
    (rt("configmaps"), {"metadata": {"name": "app-config", "namespace": "a"}}, True, False),
    (rt("secrets"), {"type": "kubernetes.io/service-account-token", "metadata": {"name": "t"}}, True, False),
    (rt("secrets"), {"type": "Opaque", "metadata": {"name": "super-secret-secret"}}, True, False),
    (rt("deployments", "apps"), {"metadata": {"name": "d", "ownerReferences": [
        {"apiVersion": "pkg.crossplane.io/v1", "kind": "ProviderRevision", "name": "p", "uid": "1"}]}}, True, True),
    (rt("providerrevisions", "pkg.crossplane.io"), {"metadata": {"name": "r", "ownerReferences": [
        {"apiVersion": "pkg.crossplane.io/v1", "kind": "Provider", "name": "p", "uid": "1"}]}}, True, False),
    (rt("buckets", "s3.aws.upbound.io"), {"metadata": {"name": "b", "ownerReferences": [
        {"apiVersion": "aws.platformref.upbound.io/v1alpha1", "kind": "XCluster", "name": "x", "uid": "1"}]}}, True, False),
    # a provider's CRD is owned by its ProviderRevision, yet kept: its custom resources are in the backup
    (CRD, crd("buckets", "s3.aws.upbound.io", "pkg.crossplane.io/v1"), True, False),
    (CRD, crd("buckets", "s3.aws.upbound.io"), False, False),
    (CRD, crd("unused", "other.example.org"), False, True),
], ids=["kube-root-ca", "configmap", "sa-token", "opaque-secret", "owned-by-revision", "revision-owned-by-provider",
        "owned-by-composite",
        "crd-owned-by-revision-but-needed", "crd-needed-although-crds-excluded", "crd-excluded"])
def test_skip_reason(rtype, obj, crd_all, skipped):
    wanted = {"buckets.s3.aws.upbound.io"}
    assert bool(skip_reason(rtype, obj, wanted, crd_all)) == skipped


@pytest.mark.parametrize("key, tier", [
    ("customresourcedefinitions.apiextensions.k8s.io", "CustomResourceDefinitions"),
    ("namespaces", "Namespaces"),
    ("clusterroles.rbac.authorization.k8s.io", "Cluster RBAC"),
    ("secrets", "Namespaced basics"), ("serviceaccounts", "Namespaced basics"), ("configmaps", "Namespaced basics"),
    ("providers.pkg.crossplane.io", "Crossplane packages"),
    ("deploymentruntimeconfigs.pkg.crossplane.io", "Crossplane packages"),
    ("compositeresourcedefinitions.apiextensions.crossplane.io", "Crossplane APIs"),
    ("compositions.apiextensions.crossplane.io", "Crossplane APIs"),
    ("buckets.s3.aws.upbound.io", "Everything else"), ("xclusters.aws.platformref.upbound.io", "Everything else"),
])
def test_restore_tiers(key, tier):
    assert TIERS[tier_of(key)].name == tier


def test_tier_order_is_the_documented_one():
    assert [t.name for t in TIERS] == ["CustomResourceDefinitions", "Namespaces", "Cluster RBAC", "Namespaced basics",
                                       "Service-account tokens", "Crossplane packages", "Crossplane APIs", "Everything else"]
    assert dict(TIERS[0].wait_for) == {"customresourcedefinitions.apiextensions.k8s.io": ("Established",)}
    assert dict(TIERS[5].wait_for)["providers.pkg.crossplane.io"] == ("Installed", "Healthy")
    assert "deploymentruntimeconfigs.pkg.crossplane.io" not in dict(TIERS[5].wait_for)  # reports no such condition
    assert TIERS[-1].pause


@pytest.mark.parametrize("key, pausable", [
    ("buckets.s3.aws.upbound.io", True), ("xclusters.aws.platformref.upbound.io", True),
    ("clusters.aws.platformref.upbound.io", True), ("secrets", False), ("deployments.apps", False),
    ("providers.pkg.crossplane.io", False), ("compositions.apiextensions.crossplane.io", False),
    ("leases.coordination.k8s.io", False),
])
def test_pausable(key, pausable):
    assert is_pausable(key) == pausable


def test_owners_come_before_dependents():
    claim = _Entry(0, "clusters.x", "claim", ())
    composite = _Entry(1, "xclusters.x", "xr", ("claim",))
    managed = [_Entry(2 + i, "buckets.x", f"mr{i}", ("xr",)) for i in range(3)]
    outside = _Entry(9, "vpcs.x", "vpc", ("not-in-archive",))
    generations = [[e.old_uid for e in g] for g in _generations(managed + [outside, composite, claim])]
    assert generations == [["vpc", "claim"], ["xr"], ["mr0", "mr1", "mr2"]]


def test_ownership_cycles_do_not_hang():
    a = _Entry(0, "x", "a", ("b",))
    b = _Entry(1, "x", "b", ("a",))
    assert sum(len(g) for g in _generations([a, b])) == 2


@pytest.mark.parametrize("obj, tier", [
    ({"type": "kubernetes.io/service-account-token", "metadata": {"name": "t"}}, "Service-account tokens"),
    ({"type": "Opaque", "metadata": {"name": "o"}}, "Namespaced basics"),
    ({"type": "connection.crossplane.io/v1alpha1", "metadata": {"name": "c"}}, "Namespaced basics"),
    ({"metadata": {"name": "untyped"}}, "Namespaced basics"),
])
def test_token_secrets_come_after_service_accounts(obj, tier):
    assert TIERS[tier_of("secrets", obj)].name == tier
    assert tier_of("secrets", obj) >= tier_of("serviceaccounts")


@pytest.mark.parametrize("obj, deleted, why", [
    ({"metadata": {"name": "b", "deletionTimestamp": "2026-11-30T10:00:00Z", "finalizers": ["f"]}}, "buckets", "being deleted"),
    ({"metadata": {"name": "c", "namespace": "going"}}, "configmaps", "being deleted (its namespace is terminating)"),
    ({"metadata": {"name": "c", "namespace": "team-a"}}, "configmaps", ""),
    ({"metadata": {"name": "kube-root-ca.crt", "namespace": "team-a"}}, "configmaps",
     "made by every control plane itself (kube-root-ca.crt in every namespace)"),
    ({"metadata": {"name": "default", "namespace": "team-a"}}, "serviceaccounts", ""),  # merged on restore, so kept
])
def test_objects_being_deleted_and_made_by_the_control_plane(obj, deleted, why):
    rtype = rt(deleted, "s3.aws.upbound.io" if deleted == "buckets" else "")
    assert skip_reason(rtype, obj, {"buckets.s3.aws.upbound.io"}, True, frozenset({"going"})) == why


SERVED = [rt("secrets"), rt("configmaps"), rt("serviceaccounts"), rt("buckets", "s3.aws.upbound.io"),
          rt("clusterroles", "rbac.authorization.k8s.io", namespaced=False)]


@pytest.mark.parametrize("entry, nearest", [
    ("secret", "secrets"), ("configmap", "configmaps"), ("bucket.s3.aws.upbound.io", "buckets.s3.aws.upbound.io"),
    ("clusterrole.rbac.authorization.k8s.io", "clusterroles.rbac.authorization.k8s.io"), ("Secrets", "secrets"),
])
def test_an_exclusion_that_matches_nothing_names_the_nearest_served_resource(entry, nearest):
    (warning,) = exclusion_warnings(SERVED, [entry, "secrets"])
    assert warning == (f"excludedResources entry {entry!r} matches no resource the control plane serves; "
                       f"did you mean {nearest!r}? Nothing was excluded for it.")


def test_exclusions_that_match_warn_nothing():
    assert exclusion_warnings(SERVED, ["secrets", "buckets.s3.aws.upbound.io"]) == []
    assert exclusion_warnings(SERVED, ["zzzzzzzz"]) == [
        "excludedResources entry 'zzzzzzzz' matches no resource the control plane serves. Nothing was excluded for it."]


def service(spec: dict, last_applied: dict | None = None) -> dict:
    meta: dict = {"name": "s", "namespace": "a"}
    if last_applied is not None:
        meta["annotations"] = {LAST_APPLIED: json.dumps(last_applied)}
    return {"metadata": meta, "spec": spec, "status": {"loadBalancer": {"ingress": [{"ip": "1.2.3.4"}]}}}


@pytest.mark.parametrize("spec, last_applied, expected", [
    ({"type": "ClusterIP", "clusterIP": "10.0.0.7", "clusterIPs": ["10.0.0.7"], "ports": [{"port": 80}]}, None,
     {"type": "ClusterIP", "ports": [{"port": 80}]}),
    ({"clusterIP": "None", "clusterIPs": ["None"], "ports": [{"port": 80}]}, None,
     {"clusterIP": "None", "clusterIPs": ["None"], "ports": [{"port": 80}]}),
    ({"type": "NodePort", "clusterIP": "10.0.0.8", "ports": [{"port": 80, "nodePort": 30080}, {"port": 443, "nodePort": 30443}]},
     {"spec": {"ports": [{"port": 80, "nodePort": 30080}, {"port": 443}]}},
     {"type": "NodePort", "ports": [{"port": 80, "nodePort": 30080}, {"port": 443}]}),
    ({"type": "LoadBalancer", "externalTrafficPolicy": "Local", "healthCheckNodePort": 31000,
      "ports": [{"port": 80, "nodePort": 30080}]}, None,
     {"type": "LoadBalancer", "externalTrafficPolicy": "Local", "ports": [{"port": 80}]}),
    ({"type": "LoadBalancer", "healthCheckNodePort": 31000, "ports": [{"port": 80, "nodePort": 30080}]},
     {"spec": {"healthCheckNodePort": 31000, "ports": [{"port": 80, "nodePort": 30080}]}},
     {"type": "LoadBalancer", "healthCheckNodePort": 31000, "ports": [{"port": 80, "nodePort": 30080}]}),
    ({"type": "NodePort", "ports": [{"port": 80, "nodePort": 30080}]}, "not json",
     {"type": "NodePort", "ports": [{"port": 80}]}),
], ids=["cluster-ip", "headless", "explicit-node-port", "health-check", "explicit-health-check", "bad-last-applied"])
def test_allocated_service_fields_are_left_to_the_target(spec, last_applied, expected):
    obj = service(spec, last_applied)
    if last_applied == "not json":
        obj["metadata"]["annotations"] = {LAST_APPLIED: "{not json"}
    done = clean("services", obj, custom=False)
    assert obj["spec"] == expected
    assert "status" not in obj  # server-owned: never written back
    assert done == ["spec.clusterIP, spec.clusterIPs (kept when `None`: headless)",
                    "spec.ports[].nodePort, spec.healthCheckNodePort", "status"]


def test_the_clean_up_table_keeps_custom_status_and_drops_token_data():
    mr = {"metadata": {"name": "b"}, "spec": {"x": 1}, "status": {"atProvider": {"id": "i"}}}
    assert clean("buckets.s3.aws.upbound.io", mr, custom=True) == [] and mr["status"] == {"atProvider": {"id": "i"}}
    crd_obj = {"metadata": {"name": "x"}, "spec": {}, "status": {"storedVersions": ["v1"]}}
    assert clean(CRD_KEY, crd_obj, custom=False) == ["status"] and "status" not in crd_obj
    token = {"type": "kubernetes.io/service-account-token", "data": {"token": "c2VjcmV0"},
             "metadata": {"name": "t", "annotations": {"kubernetes.io/service-account.name": "bot",
                                                       "kubernetes.io/service-account.uid": "old-uid", "team": "a"}}}
    clean("secrets", token, custom=False)
    assert token == {"type": "kubernetes.io/service-account-token", "metadata": {"name": "t", "annotations": {
        "kubernetes.io/service-account.name": "bot", "team": "a"}}}
    opaque = {"type": "Opaque", "data": {"k": "dg=="}, "metadata": {"name": "o"}}
    clean("secrets", opaque, custom=False)
    assert opaque == {"type": "Opaque", "data": {"k": "dg=="}, "metadata": {"name": "o"}}


@pytest.mark.parametrize("resource, namespace, name, archived, current, patch", [
    ("serviceaccounts", "team-a", "default", {"metadata": {"name": "default"}, "imagePullSecrets": [{"name": "regcred"}]},
     {"metadata": {"name": "default", "uid": "u"}}, {"imagePullSecrets": [{"name": "regcred"}]}),
    ("serviceaccounts", "team-a", "default", {"metadata": {"name": "default"}, "imagePullSecrets": [{"name": "regcred"}]},
     {"metadata": {"name": "default"}, "imagePullSecrets": [{"name": "other"}]},
     {"imagePullSecrets": [{"name": "other"}, {"name": "regcred"}]}),
    ("serviceaccounts", "team-a", "default", {"metadata": {"name": "default"}, "imagePullSecrets": [{"name": "regcred"}]},
     {"metadata": {"name": "default"}, "imagePullSecrets": [{"name": "regcred"}]}, {}),
    ("namespaces", None, "default", {"metadata": {"name": "default", "labels": {"team": "core", "same": "1"}}},
     {"metadata": {"name": "default", "labels": {"kubernetes.io/metadata.name": "default", "same": "1"}}},
     {"metadata": {"labels": {"team": "core"}}}),
    ("services", "default", "kubernetes", {"metadata": {"name": "kubernetes", "annotations": {"a": "b"}},
                                           "spec": {"clusterIP": "10.96.0.1"}},
     {"metadata": {"name": "kubernetes"}, "spec": {"clusterIP": "10.0.0.1"}}, {"metadata": {"annotations": {"a": "b"}}}),
    ("clusterroles.rbac.authorization.k8s.io", None, "system:aggregate-to-edit",
     {"metadata": {"name": "system:aggregate-to-edit", "labels": {"x": "y"}}, "rules": []},
     {"metadata": {"name": "system:aggregate-to-edit"}, "rules": [{"verbs": ["get"]}]}, {"metadata": {"labels": {"x": "y"}}}),
    ("priorityclasses.scheduling.k8s.io", None, "system-node-critical",
     {"metadata": {"name": "system-node-critical", "annotations": {"note": "n"}}, "value": 1},
     {"metadata": {"name": "system-node-critical"}, "value": 2000001000}, {"metadata": {"annotations": {"note": "n"}}}),
], ids=["default-sa", "default-sa-union", "default-sa-already", "namespace", "kubernetes-service", "bootstrap-rbac",
        "system-priorityclass"])
def test_objects_the_control_plane_makes_get_the_user_fields_merged(resource, namespace, name, archived, current, patch):
    made = made_by_control_plane(resource, namespace or "", name)
    assert made is not None and made.fields
    assert merge_user_fields(made, archived, current) == patch


@pytest.mark.parametrize("resource, namespace, name", [
    ("serviceaccounts", "team-a", "platform-bot"), ("services", "team-a", "kubernetes"), ("namespaces", None, "team-a"),
    ("clusterroles.rbac.authorization.k8s.io", None, "crossplane-admin"), ("priorityclasses.scheduling.k8s.io", None, "high"),
])
def test_user_objects_are_not_made_by_the_control_plane(resource, namespace, name):
    assert made_by_control_plane(resource, namespace or "", name) is None


@pytest.mark.parametrize("name, encoded", [
    ("oidc:platform+sre", "oidc:platform+sre"), ("user@example.org", "user@example.org"), ("a_b", "a_b"),
    ("x~y", "x~y"), ("k=v", "k=v"), ("café", "caf%C3%A9"), ("équipe:sre", "%C3%A9quipe:sre"), ("with space", "with%20space"),
    ("system:controller:job", "system:controller:job"), ("a.json", "a.json"), ("日本", "%E6%97%A5%E6%9C%AC"),
    ("-lead", "-lead"), ("trail.", "trail."),
])
def test_every_name_kubernetes_accepts_is_stored_and_read_back(name, encoded, tmp_path):
    path = archive.object_path("clusterrolebindings.rbac.authorization.k8s.io", None, name)
    assert path == f"resources/clusterrolebindings.rbac.authorization.k8s.io/cluster/{encoded}.json"
    with (tmp_path / "a.tar.gz").open("wb") as out:
        writer = archive.ArchiveWriter(out)
        writer.add_json(path, {"metadata": {"name": name}})
        writer.add_json(archive.METADATA, {"formatVersion": 1})
        writer.close()
    reader = archive.ArchiveReader(tmp_path / "a.tar.gz")
    reader.validate()
    ((member, obj),) = list(reader.objects())
    assert member.name == name and obj["metadata"]["name"] == name


@pytest.mark.parametrize("name", ["", ".", "..", "a/b", "100%", "../etc"])
def test_a_name_no_kubernetes_object_can_have_cannot_be_stored(name):
    with pytest.raises(archive.ArchiveError, match="is not a name Kubernetes accepts"):
        archive.object_path("secrets", "default", name)


@pytest.mark.parametrize("member", ["caf%c3%a9", "a%41", "%C3", "a%2Fb", "a%25"])
def test_the_reader_refuses_names_the_writer_never_writes(member):
    with pytest.raises(archive.ArchiveError, match="not"):
        archive.decode_name(member)


@pytest.mark.parametrize("conversion, expected", [
    ({"strategy": "Webhook", "webhook": {"conversionReviewVersions": ["v1"], "clientConfig": {
        "caBundle": "LS0tLS1CRUdJTg==", "service": {"name": "provider-aws", "namespace": "crossplane-system", "port": 9443}}}},
     {"strategy": "Webhook", "webhook": {"conversionReviewVersions": ["v1"], "clientConfig": {
         "service": {"name": "provider-aws", "namespace": "crossplane-system", "port": 9443}}}}),
    ({"strategy": "Webhook", "webhook": {"clientConfig": {"url": "https://x.example/convert"}}},
     {"strategy": "Webhook", "webhook": {"clientConfig": {"url": "https://x.example/convert"}}}),
    ({"strategy": "None"}, {"strategy": "None"}),
])
def test_a_conversion_webhook_ca_bundle_is_the_targets(conversion, expected):
    obj = {"metadata": {"name": "topics.sns.aws.upbound.io"}, "spec": {"conversion": conversion}, "status": {}}
    clean(CRD_KEY, obj, custom=False)
    assert obj == {"metadata": {"name": "topics.sns.aws.upbound.io"}, "spec": {"conversion": expected}}
