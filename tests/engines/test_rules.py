"""The pure rules of the engines: which types and objects a backup keeps, and the restore order."""

from __future__ import annotations

import pytest

from ctpbackup.backup import CRD_KEY, select_types, skip_reason
from ctpbackup.kubeapi import ResourceType
from ctpbackup.restore import _Entry, _generations
from ctpbackup.restore_order import TIERS, is_pausable, tier_of

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
    (rt("secrets"), {"type": "kubernetes.io/service-account-token", "metadata": {"name": "t"}}, True, True),
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
                                       "Crossplane packages", "Crossplane APIs", "Everything else"]
    assert dict(TIERS[0].wait_for) == {"customresourcedefinitions.apiextensions.k8s.io": ("Established",)}
    assert dict(TIERS[4].wait_for)["providers.pkg.crossplane.io"] == ("Installed", "Healthy")
    assert "deploymentruntimeconfigs.pkg.crossplane.io" not in dict(TIERS[4].wait_for)  # reports no such condition
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
