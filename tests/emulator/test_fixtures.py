"""The Crossplane fixtures: by default the shapes of a running Crossplane 2 install with
provider-upjet-aws (owners, versions, namespaced managed resources); `real_install=False` the simpler ones."""

from __future__ import annotations

import pytest

from kubeemu import EmulatorServer
from kubeemu.fixtures import PLATFORM, seed_crossplane
from tests.emulator.kubehttp import call

CRDS = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
V2 = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"


@pytest.fixture(scope="module")
def installed():
    with EmulatorServer(establish_delay=0.02) as cp:
        seeded = seed_crossplane(cp, 200)
        yield cp, seeded


def items(cp, path: str) -> list[dict]:
    code, _, listed = call(cp, "GET", path)
    assert code == 200, listed
    return listed["items"]


def refs(obj: dict) -> list[tuple[str, str, bool]]:
    return [(r["kind"], r["name"], bool(r.get("controller"))) for r in obj["metadata"].get("ownerReferences") or ()]


def test_switched_off_only_the_simpler_shapes(control_plane):
    seeded = seed_crossplane(control_plane, 100, real_install=False)
    assert 90 <= seeded.total <= 110
    assert call(control_plane, "GET", "/api/v1/namespaces/crossplane-system")[0] == 404
    groups = {g["name"] for g in call(control_plane, "GET", "/apis")[2]["groups"]}
    assert not {"s3.aws.m.upbound.io", "aws.m.upbound.io"} & groups
    _, _, xrd_crd = call(control_plane, "GET", f"{CRDS}/compositeresourcedefinitions.apiextensions.crossplane.io")
    assert [v["name"] for v in xrd_crd["spec"]["versions"]] == ["v1"]
    assert all("ownerReferences" not in c["metadata"] for c in items(control_plane, CRDS))


def test_sized_by_the_parameter(installed):
    _, seeded = installed
    assert 180 <= seeded.total <= 220


def test_xrd_crd_served_at_v1_storage_and_v2_preferred_with_v2_rules(installed):
    cp, _ = installed
    _, _, xrd_crd = call(cp, "GET", f"{CRDS}/compositeresourcedefinitions.apiextensions.crossplane.io")
    versions = {v["name"]: v for v in xrd_crd["spec"]["versions"]}
    assert {n: (v["served"], v["storage"]) for n, v in versions.items()} == {"v1": (True, True), "v2": (True, False)}
    assert versions["v1"]["deprecated"] is True
    rules = versions["v2"]["schema"]["openAPIV3Schema"]["properties"]["spec"]["x-kubernetes-validations"]
    assert rules == [
        {"message": "Claims aren't supported in apiextensions.crossplane.io/v2", "rule": "!has(self.claimNames)"},
        {"message": "XR connection secrets aren't supported in apiextensions.crossplane.io/v2",
         "rule": "!has(self.connectionSecretKeys)"}]
    (group,) = [g for g in call(cp, "GET", "/apis")[2]["groups"] if g["name"] == "apiextensions.crossplane.io"]
    assert group["preferredVersion"]["version"] == "v2" and [v["version"] for v in group["versions"]] == ["v2", "v1"]


def test_v1_xrds_with_claims_and_a_v2_xrd_stored_at_v1(installed):
    cp, _ = installed
    xrds = {x["metadata"]["name"]: x for x in items(cp, "/apis/apiextensions.crossplane.io/v2/compositeresourcedefinitions")}
    assert set(xrds) == {f"xclusters.{PLATFORM}", f"xnetworks.{PLATFORM}", f"xdatabases.{PLATFORM}"}
    assert all(x["apiVersion"] == "apiextensions.crossplane.io/v2" for x in xrds.values())
    assert xrds[f"xclusters.{PLATFORM}"]["spec"]["claimNames"] == {"kind": "Cluster", "plural": "clusters"}
    assert "claimNames" not in xrds[f"xdatabases.{PLATFORM}"]["spec"]
    stored = cp.store.tables[("apiextensions.crossplane.io", "compositeresourcedefinitions")].objects
    assert {o["apiVersion"] for o in stored.values()} == {"apiextensions.crossplane.io/v1"}


def test_generated_crds_controller_owned_by_their_xrd(installed):
    cp, _ = installed
    crds = {c["metadata"]["name"]: c for c in items(cp, CRDS)}
    for xrd, generated in (("xclusters", ("xclusters", "clusters")), ("xnetworks", ("xnetworks", "networks")),
                           ("xdatabases", ("xdatabases",))):
        for plural in generated:
            assert refs(crds[f"{plural}.{PLATFORM}"]) == [("CompositeResourceDefinition", f"{xrd}.{PLATFORM}", True)]
    assert crds[f"xdatabases.{PLATFORM}"]["spec"]["scope"] == "Namespaced"


def test_provider_crds_owned_by_revision_and_provider(installed):
    cp, _ = installed
    crds = {c["metadata"]["name"]: c for c in items(cp, CRDS)}
    for name in ("buckets.s3.aws.upbound.io", "instances.ec2.aws.upbound.io", "buckets.s3.aws.m.upbound.io",
                 "providerconfigusages.aws.upbound.io", "providerconfigs.aws.upbound.io"):
        assert refs(crds[name]) == [("ProviderRevision", "provider-aws-1a2b3c", True), ("Provider", "provider-aws", False)]
    assert refs(crds["providers.pkg.crossplane.io"]) == []  # Crossplane's own CRDs come with its Helm chart


def test_multi_version_provider_crd(installed):
    cp, _ = installed
    _, _, instances = call(cp, "GET", f"{CRDS}/instances.ec2.aws.upbound.io")
    assert [(v["name"], v["storage"]) for v in instances["spec"]["versions"]] == [("v1beta1", False), ("v1beta2", True)]
    assert instances["spec"]["conversion"]["strategy"] == "Webhook"
    assert instances["status"]["storedVersions"] == ["v1beta2"]
    written = items(cp, "/apis/ec2.aws.upbound.io/v1beta1/instances")
    assert written and all(i["apiVersion"] == "ec2.aws.upbound.io/v1beta1" for i in written)
    stored = cp.store.tables[("ec2.aws.upbound.io", "instances")].objects.values()
    assert {o["apiVersion"] for o in stored} == {"ec2.aws.upbound.io/v1beta2"}


def test_namespaced_managed_resources_beside_cluster_scoped_ones(installed):
    cp, _ = installed
    _, _, apis = call(cp, "GET", "/apis", headers={"Accept": V2})
    scopes = {g["metadata"]["name"]: g["versions"][0]["resources"][0]["scope"] for g in apis["items"]
              if g["metadata"]["name"] in ("s3.aws.m.upbound.io", "s3.aws.upbound.io")}
    assert scopes == {"s3.aws.m.upbound.io": "Namespaced", "s3.aws.upbound.io": "Cluster"}
    buckets = items(cp, "/apis/s3.aws.m.upbound.io/v1beta1/buckets")
    assert buckets and {b["metadata"]["namespace"] for b in buckets} <= {"team-a", "team-b", "team-c", "team-d"}
    for mr in buckets + items(cp, "/apis/s3.aws.upbound.io/v1beta1/buckets"):
        meta = mr["metadata"]
        assert meta["finalizers"] == ["finalizer.managedresource.crossplane.io"]
        assert meta["annotations"]["crossplane.io/external-name"] == mr["status"]["atProvider"]["id"]
        assert [(c["type"], c["status"]) for c in mr["status"]["conditions"]] == [("Ready", "True"), ("Synced", "True")]
    (owner_kind, _, controller), = refs(buckets[0])
    assert (owner_kind, controller) == ("XDatabase", True)


def test_provider_config_usages_owned_by_their_managed_resource(installed):
    cp, _ = installed
    uids = {}
    for path in ("/apis/s3.aws.upbound.io/v1beta1/buckets", "/apis/ec2.aws.upbound.io/v1beta2/instances",
                 "/apis/s3.aws.m.upbound.io/v1beta1/buckets"):
        for mr in items(cp, path):
            uids[mr["metadata"]["uid"]] = mr
    usages = items(cp, "/apis/aws.upbound.io/v1beta1/providerconfigusages") + items(
        cp, "/apis/aws.m.upbound.io/v1beta1/providerconfigusages")
    matched = [u for u in usages if u["resourceRef"]["uid"] in uids]
    assert len(matched) == len(uids)
    for usage in matched:
        mr = uids[usage["resourceRef"]["uid"]]
        (ref,) = usage["metadata"]["ownerReferences"]
        assert (ref["uid"], ref["kind"], ref["controller"]) == (mr["metadata"]["uid"], mr["kind"], True)
        assert usage["metadata"]["labels"] == {"crossplane.io/provider-config": "default"}
        assert usage["metadata"].get("namespace") == mr["metadata"].get("namespace")


def test_crossplane_cluster_roles(installed):
    cp, _ = installed
    roles = {r["metadata"]["name"]: r for r in items(cp, "/apis/rbac.authorization.k8s.io/v1/clusterroles")
             if r["metadata"]["name"].startswith("crossplane:")}
    assert set(roles) == {"crossplane:aggregate-to-admin", "crossplane:aggregate-to-edit", "crossplane:aggregate-to-view",
                          "crossplane:provider:provider-aws-1a2b3c:system",
                          f"crossplane:composite:xclusters.{PLATFORM}:aggregate-to-edit",
                          f"crossplane:composite:xnetworks.{PLATFORM}:aggregate-to-edit",
                          f"crossplane:composite:xdatabases.{PLATFORM}:aggregate-to-edit"}
    assert refs(roles["crossplane:provider:provider-aws-1a2b3c:system"]) == [
        ("ProviderRevision", "provider-aws-1a2b3c", True)]
    assert refs(roles[f"crossplane:composite:xclusters.{PLATFORM}:aggregate-to-edit"]) == [
        ("CompositeResourceDefinition", f"xclusters.{PLATFORM}", True)]


def test_connection_secrets_owned_by_claims_and_xrs(installed):
    cp, _ = installed
    xr_uids = {x["metadata"]["uid"] for p in ("xclusters", "xnetworks")
               for x in items(cp, f"/apis/{PLATFORM}/v1alpha1/{p}")}
    xr_secrets = items(cp, "/api/v1/namespaces/crossplane-system/secrets")
    assert xr_secrets and {s["metadata"]["name"] for s in xr_secrets} == xr_uids
    assert all(s["metadata"]["ownerReferences"][0]["uid"] == s["metadata"]["name"]
               and s["metadata"]["ownerReferences"][0]["controller"] for s in xr_secrets)
    claim_secrets = [s for s in items(cp, "/api/v1/secrets") if s["metadata"]["name"].endswith("-conn")]
    assert claim_secrets and all(refs(s)[0][0] in ("Cluster", "Network") and refs(s)[0][2] for s in claim_secrets)
