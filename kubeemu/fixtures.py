"""Seed a control plane with realistic Crossplane state, sized by a parameter (100 to 100,000 objects).

Shapes that matter to a backup and a restore: provider and XRD CRDs, claims -> composites -> managed
resources chained by ownerReferences (by uid), `crossplane.io/external-name` annotations, status with
conditions (written through /status, as controllers do), connection Secrets, ConfigMaps, RBAC,
objects owned by a ProviderRevision (a backup skips them), one managed resource already paused, and
the seed's `super-secret-secret`. Everything goes through the HTTP API.
"""

from __future__ import annotations

import json
import time
import zlib
from collections import Counter
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Protocol

import urllib3

from kubeemu import crossplane as real

PLATFORM = "aws.platformref.upbound.io"
MANAGED = [  # (group, plural, kind)
    ("s3.aws.upbound.io", "buckets", "Bucket"),
    ("ec2.aws.upbound.io", "vpcs", "VPC"),
    ("ec2.aws.upbound.io", "subnets", "Subnet"),
    ("ec2.aws.upbound.io", "securitygroups", "SecurityGroup"),
    ("eks.aws.upbound.io", "clusters", "Cluster"),
    ("eks.aws.upbound.io", "nodegroups", "NodeGroup"),
    ("iam.aws.upbound.io", "roles", "Role"),
    ("iam.aws.upbound.io", "policies", "Policy"),
]
PACKAGE_CRDS = [  # Crossplane's own APIs: (group, plural, kind, scope, version)
    ("pkg.crossplane.io", "providers", "Provider", "Cluster", "v1"),
    ("pkg.crossplane.io", "providerrevisions", "ProviderRevision", "Cluster", "v1"),
    ("pkg.crossplane.io", "configurations", "Configuration", "Cluster", "v1"),
    ("pkg.crossplane.io", "deploymentruntimeconfigs", "DeploymentRuntimeConfig", "Cluster", "v1beta1"),
    ("apiextensions.crossplane.io", "compositeresourcedefinitions", "CompositeResourceDefinition", "Cluster", "v1"),
    ("apiextensions.crossplane.io", "compositions", "Composition", "Cluster", "v1"),
    ("aws.upbound.io", "providerconfigs", "ProviderConfig", "Cluster", "v1beta1"),
]
READY = [{"type": "Ready", "status": "True", "reason": "Available", "lastTransitionTime": "2026-11-20T10:00:00Z"},
         {"type": "Synced", "status": "True", "reason": "ReconcileSuccess", "lastTransitionTime": "2026-11-20T10:00:00Z"}]
SUPER_SECRET = {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                "metadata": {"name": "super-secret-secret", "namespace": "default"},
                "data": {"password": "c3VwZXJzZWNyZXQ="}}  # supersecret


@dataclass
class Seeded:
    """What was created, by resource key (`resource.group`), for tests to compare a restore against."""

    counts: Counter = field(default_factory=Counter)
    #: objects a backup must leave out (owned by a package revision): `resource.group/[namespace/]name`
    revision_owned: list[str] = field(default_factory=list)
    paused: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(self.counts.values())


class EmulatorClient:
    """A small JSON client for seeding and inspecting an emulator (tests, benchmarks, the demo).

    `url` is the emulator's base URL, `token` its bearer token (None: no Authorization header, which
    the emulator answers 401), `workers` the connection pool size (one per thread that calls at
    once), `ca` the emulator's CA certificate (PEM), the only one trusted. Requests are retried by
    urllib3 (5 times, backoff 0.1 s) on connection errors and 429/500/503. `call(method, path, body,
    content_type)` sends `body` as JSON (or with `content_type`, e.g. a merge patch) and returns the
    decoded answer; a status of 400 or more raises RuntimeError naming the method, path, status and
    the server's message. Not part of the product: the product talks through `ctpbackup.kube.api`."""

    def __init__(self, url: str, token: str | None, workers: int, ca: bytes | None = None):
        self.url = url
        self.http = urllib3.PoolManager(maxsize=workers, retries=urllib3.Retry(total=5, backoff_factor=0.1,
                                                                               status_forcelist=(429, 500, 503)),
                                        ca_cert_data=ca.decode() if ca else None)
        self.headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if token:
            self.headers["Authorization"] = f"Bearer {token}"

    def call(self, method: str, path: str, body: object = None, content_type: str | None = None) -> dict:
        headers = dict(self.headers)
        if content_type:
            headers["Content-Type"] = content_type
        response = self.http.request(method, self.url + path, body=json.dumps(body) if body is not None else None,
                                     headers=headers)
        data = json.loads(response.data or b"{}")
        if response.status >= 400:
            raise RuntimeError(f"{method} {path}: {response.status} {data.get('message')}")
        return data


def crd(group: str, plural: str, kind: str, scope: str = "Cluster", version: str = "v1alpha1",
        categories: Iterable[str] = ()) -> dict:
    return {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": f"{plural}.{group}"},
            "spec": {"group": group, "scope": scope,
                     "names": {"plural": plural, "singular": kind.lower(), "kind": kind, "listKind": f"{kind}List",
                               "categories": list(categories)},
                     "versions": [{"name": version, "served": True, "storage": True, "subresources": {"status": {}},
                                   "schema": {"openAPIV3Schema": {"type": "object",
                                                                  "x-kubernetes-preserve-unknown-fields": True}}}]}}


def _path(group: str, version: str, plural: str, namespace: str | None = None) -> str:
    base = f"/apis/{group}/{version}" if group else f"/api/{version}"
    return f"{base}/namespaces/{namespace}/{plural}" if namespace else f"{base}/{plural}"


class ControlPlane(Protocol):
    """An emulator to seed (`EmulatorServer`, `EmulatorProcess`): its HTTPS URL, bearer token and CA (PEM)."""

    url: str
    token: str | None

    @property
    def ca_data(self) -> bytes: ...


def seed_crossplane(control_plane: ControlPlane, size: int = 200, *, workers: int = 8, extra_types: int = 0,
                    real_install: bool = True) -> Seeded:
    """Create about `size` objects of Crossplane-shaped state in `control_plane` (through its HTTPS API,
    trusting its CA, with its token); `extra_types` adds that many more custom resource types (for
    benchmarks that want ~30 types), objects spread over all of them.

    `real_install` (on by default; off gives only the simpler shapes, for tests that count objects
    or want an older Crossplane) adds what a running
    Crossplane 2 install with provider-upjet-aws holds beside that: provider CRDs owned by their
    ProviderRevision (controller) and Provider; XR and claim CRDs controller-owned by their XRD; the
    XRD CRD served at v1 (storage) and v2 (preferred) with v2's CEL rules refusing `claimNames` and
    `connectionSecretKeys`, a v2 XRD of namespaced XRs beside the v1 XRDs with claims; a
    multi-version provider CRD (v1beta1 served, v1beta2 stored, conversion Webhook); namespaced
    managed resources (`*.aws.m.upbound.io`) beside cluster-scoped ones; a ProviderConfigUsage
    controller-owned by each managed resource; `crossplane:` ClusterRoles owned by the revision and
    the XRDs; XR connection Secrets in `crossplane-system` owned by their XR."""
    client = EmulatorClient(control_plane.url, control_plane.token, workers, control_plane.ca_data)
    seeded = Seeded()
    pool = ThreadPoolExecutor(max_workers=workers)

    def create(group: str, version: str, plural: str, obj: dict, namespace: str | None = None,
               status: dict | None = None) -> dict:
        made = client.call("POST", _path(group, version, plural, namespace), obj)
        if status is not None:
            name = made["metadata"]["name"]
            made = client.call("PATCH", _path(group, version, plural, namespace) + f"/{name}/status", {"status": status},
                               "application/merge-patch+json")
        seeded.counts[f"{plural}.{group}" if group else plural] += 1
        return made

    # CRDs: Crossplane's, the provider's, the platform's XRDs (composites and claims), and fillers
    crds = [crd(g, p, k, s, v) for g, p, k, s, v in PACKAGE_CRDS]
    if real_install:
        xrd_crd = real.xrd_crd()
        crds = [c for c in crds if c["metadata"]["name"] != xrd_crd["metadata"]["name"]] + [xrd_crd]
        crds += [real.instance_crd(), *real.namespaced_crds(), real.usage_crd(), real.namespaced_usage_crd(),
                 crd(PLATFORM, "xdatabases", "XDatabase", "Namespaced", "v1alpha1", ["composite"])]
    crds += [crd(g, p, k, "Cluster", "v1beta1", ["crossplane", "managed", "aws"]) for g, p, k in MANAGED]
    crds += [crd(PLATFORM, "xclusters", "XCluster", "Cluster", "v1alpha1", ["composite"]),
             crd(PLATFORM, "clusters", "Cluster", "Namespaced", "v1alpha1", ["claim"]),
             crd(PLATFORM, "xnetworks", "XNetwork", "Cluster", "v1alpha1", ["composite"]),
             crd(PLATFORM, "networks", "Network", "Namespaced", "v1alpha1", ["claim"])]
    fillers = [(f"bench{i:02d}.fill.example.org", f"widget{i:02d}s", f"Widget{i:02d}") for i in range(extra_types)]
    crds += [crd(g, p, k, "Namespaced", "v1") for g, p, k in fillers]
    list(pool.map(lambda c: create("apiextensions.k8s.io", "v1", "customresourcedefinitions", c), crds))
    _wait_established(client, [c["metadata"]["name"] for c in crds])

    # namespaces, RBAC, the seed's Secret
    teams = [f"team-{c}" for c in "abcd"]
    for ns in teams:
        create("", "v1", "namespaces", {"metadata": {"name": ns, "labels": {"platform.example.org/team": ns}}},
               status=None)
    create("", "v1", "secrets", SUPER_SECRET, "default")
    create("rbac.authorization.k8s.io", "v1", "clusterroles", {"metadata": {"name": "crossplane-admin"},
           "rules": [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}]})
    for ns in teams:
        create("", "v1", "serviceaccounts", {"metadata": {"name": "platform-bot"}}, ns)
        create("rbac.authorization.k8s.io", "v1", "rolebindings", {"metadata": {"name": "platform-bot"},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "crossplane-admin"},
               "subjects": [{"kind": "ServiceAccount", "name": "platform-bot", "namespace": ns}]}, ns)

    # Crossplane packages: a provider, its revision, and what the revision owns
    provider = create("pkg.crossplane.io", "v1", "providers", {"metadata": {"name": "provider-aws"},
                      "spec": {"package": "xpkg.upbound.io/upbound/provider-aws-s3:v1.20.0"}},
                      status={"conditions": [{"type": "Installed", "status": "True", "reason": "ActivePackageRevision",
                                              "lastTransitionTime": "2026-11-20T10:00:00Z"},
                                             {"type": "Healthy", "status": "True", "reason": "HealthyPackageRevision",
                                              "lastTransitionTime": "2026-11-20T10:00:00Z"}]})
    revision = create("pkg.crossplane.io", "v1", "providerrevisions", {"metadata": {"name": "provider-aws-1a2b3c",
                      "ownerReferences": [_owner(provider, controller=True)]},
                      "spec": {"desiredState": "Active", "revision": 1, "image": "xpkg.upbound.io/upbound/provider-aws-s3:v1.20.0"}})
    deployment = create("apps", "v1", "deployments", {"metadata": {"name": "provider-aws-1a2b3c",
                        "ownerReferences": [_owner(revision, controller=True)]},
                        "spec": {"replicas": 1, "selector": {"matchLabels": {"pkg": "provider-aws"}},
                                 "template": {"metadata": {"labels": {"pkg": "provider-aws"}},
                                              "spec": {"containers": [{"name": "p", "image": "provider"}]}}}},
                        "default")
    seeded.revision_owned.append(f"deployments.apps/default/{deployment['metadata']['name']}")
    create("pkg.crossplane.io", "v1beta1", "deploymentruntimeconfigs", {"metadata": {"name": "default"}, "spec": {}})
    create("aws.upbound.io", "v1beta1", "providerconfigs", {"metadata": {"name": "default"},
           "spec": {"credentials": {"source": "Secret", "secretRef": {"namespace": "default", "name": "aws-creds", "key": "creds"}}}})
    for kind, plural, claim_plural in (("XCluster", "xclusters", "clusters"), ("XNetwork", "xnetworks", "networks")):
        create("apiextensions.crossplane.io", "v1", "compositeresourcedefinitions",
               {"metadata": {"name": f"{plural}.{PLATFORM}"},
                "spec": {"group": PLATFORM, "names": {"kind": kind, "plural": plural},
                         "claimNames": {"kind": kind[1:], "plural": claim_plural}, "versions": [{"name": "v1alpha1", "served": True, "referenceable": True}]}},
               status={"conditions": [{"type": "Established", "status": "True", "reason": "WatchingCompositeResource",
                                       "lastTransitionTime": "2026-11-20T10:00:00Z"}]})
        create("apiextensions.crossplane.io", "v1", "compositions", {"metadata": {"name": f"{plural}-aws"},
               "spec": {"compositeTypeRef": {"apiVersion": f"{PLATFORM}/v1alpha1", "kind": kind}, "mode": "Pipeline"}})

    if real_install:
        _install_like_crossplane(client, create, seeded, crds, provider, revision)

    # claims -> composites -> managed resources, plus connection Secrets and ConfigMaps
    base = seeded.total
    per_unit = 1 + 1 + 4 + 1 + 1 + (1 if extra_types else 0) + (10 if real_install else 0)
    units = max(1, (size - base) // per_unit)

    def unit(i: int) -> None:
        ns = teams[i % len(teams)]
        name = f"app-{i:06d}"
        claim_plural, xr_plural, xr_kind = ("clusters", "xclusters", "XCluster") if i % 2 == 0 else (
            "networks", "xnetworks", "XNetwork")
        claim = create(PLATFORM, "v1alpha1", claim_plural, {"metadata": {"name": name, "labels": {"app": name}},
                       "spec": {"parameters": {"region": "eu-west-2", "size": i % 5},
                                "writeConnectionSecretToRef": {"name": f"{name}-conn"}}}, ns,
                       status={"conditions": READY})
        xr = create(PLATFORM, "v1alpha1", xr_plural, {"metadata": {"name": f"{name}-x7k2p", "labels": {
                    "crossplane.io/claim-name": name, "crossplane.io/claim-namespace": ns}},
                    "spec": {"claimRef": {"apiVersion": f"{PLATFORM}/v1alpha1", "kind": xr_kind[1:], "name": name,
                                          "namespace": ns},
                             "compositionRef": {"name": f"{xr_plural}-aws"}, "resourceRefs": []}},
                    status={"conditions": READY})
        claim_patch = {"spec": {"resourceRef": {"apiVersion": f"{PLATFORM}/v1alpha1", "kind": xr_kind,
                                                "name": xr["metadata"]["name"]}}}
        client.call("PATCH", _path(PLATFORM, "v1alpha1", claim_plural, ns) + f"/{name}", claim_patch,
                    "application/merge-patch+json")
        for j in range(4):
            group, plural, kind = MANAGED[(i + j) % len(MANAGED)]
            annotations = {"crossplane.io/external-name": f"{name}-{plural}-{j}-ext",
                           "crossplane.io/composition-resource-name": f"{plural}-{j}"}
            if i == 0 and j == 0:
                annotations["crossplane.io/paused"] = "true"
                seeded.paused.append(f"{plural}.{group}/{name}-{plural}-{j}")
            mr = create(group, "v1beta1", plural, {"metadata": {"name": f"{name}-{plural}-{j}", "annotations": annotations,
                        "ownerReferences": [_owner(xr, controller=True)], "finalizers": ["finalizer.managedresource.crossplane.io"]},
                        "spec": {"forProvider": {"region": "eu-west-2", "tags": {"app": name}},
                                 "providerConfigRef": {"name": "default"}, "deletionPolicy": "Delete"}},
                        status={"conditions": READY, "atProvider": {"arn": f"arn:aws:{plural}:eu-west-2:123456789012:{name}-{j}",
                                                                    "id": f"{name}-{plural}-{j}-ext"}})
            if real_install:
                create("aws.upbound.io", "v1beta1", "providerconfigusages", real.usage(mr, _owner(mr, controller=True)))
        if real_install:
            _unit_like_crossplane(create, name, ns, xr)
        create("", "v1", "secrets", {"metadata": {"name": f"{name}-conn", "ownerReferences": [_owner(claim, controller=real_install)]},
               "type": "connection.crossplane.io/v1alpha1",
               "data": {"endpoint": "aHR0cHM6Ly9la3MuZXhhbXBsZQ==", "kubeconfig": "c2VjcmV0LWt1YmVjb25maWc="}}, ns)
        create("", "v1", "configmaps", {"metadata": {"name": f"{name}-settings"}, "data": {"tier": str(i % 3)}}, ns)
        if extra_types:
            group, plural, kind = fillers[i % extra_types]
            create(group, "v1", plural, {"metadata": {"name": name}, "spec": {"index": i}}, ns)

    try:
        list(pool.map(unit, range(units)))
    finally:
        pool.shutdown()
    return seeded


def _install_like_crossplane(client: EmulatorClient, create, seeded: Seeded, crds: list[dict], provider: dict,
                             revision: dict) -> None:
    """What the package manager and the RBAC manager add to a running install (see seed_crossplane)."""
    create("", "v1", "namespaces", {"metadata": {"name": "crossplane-system"}}, status=None)
    # provider CRDs: controller-owned by the active revision, owned by the Provider
    owners = [_owner(revision, controller=True), _owner(provider)]
    provider_groups = {g for g, _, _ in MANAGED} | {"aws.upbound.io", "ec2.aws.upbound.io", "aws.m.upbound.io"} | {
        g for g, _, _ in real.NAMESPACED_MANAGED}
    for body in crds:
        if body["spec"]["group"] in provider_groups:
            _own(client, "customresourcedefinitions", body["metadata"]["name"], owners)
    # a v2 XRD of namespaced XRs (no claims) beside the v1 XRDs with claims; XR/claim CRDs owned by their XRD
    create("apiextensions.crossplane.io", "v2", "compositeresourcedefinitions",
           {"metadata": {"name": f"xdatabases.{PLATFORM}"},
            "spec": {"group": PLATFORM, "scope": "Namespaced", "names": {"kind": "XDatabase", "plural": "xdatabases"},
                     "versions": [{"name": "v1alpha1", "served": True, "referenceable": True, "schema": {
                         "openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}}}]}},
           status={"conditions": [{"type": "Established", "status": "True", "reason": "WatchingCompositeResource",
                                   "lastTransitionTime": "2026-11-20T10:00:00Z"}]})
    xrds = {x["metadata"]["name"]: x for x in client.call(
        "GET", "/apis/apiextensions.crossplane.io/v1/compositeresourcedefinitions")["items"]}
    for xrd_name, generated in ((f"xclusters.{PLATFORM}", ("xclusters", "clusters")),
                                (f"xnetworks.{PLATFORM}", ("xnetworks", "networks")),
                                (f"xdatabases.{PLATFORM}", ("xdatabases",))):
        for plural in generated:
            _own(client, "customresourcedefinitions", f"{plural}.{PLATFORM}", [_owner(xrds[xrd_name], controller=True)])
        create("rbac.authorization.k8s.io", "v1", "clusterroles", {"metadata": {
            "name": f"crossplane:composite:{xrd_name}:aggregate-to-edit",
            "labels": {"rbac.crossplane.io/aggregate-to-edit": "true"},
            "ownerReferences": [_owner(xrds[xrd_name], controller=True)]},
            "rules": [{"apiGroups": [PLATFORM], "resources": list(generated), "verbs": ["*"]}]})
    for body in real.aggregate_cluster_roles():
        create("rbac.authorization.k8s.io", "v1", "clusterroles", body)
    system = create("rbac.authorization.k8s.io", "v1", "clusterroles", {"metadata": {
        "name": f"crossplane:provider:{revision['metadata']['name']}:system",
        "ownerReferences": [_owner(revision, controller=True)]},
        "rules": [{"apiGroups": sorted(provider_groups), "resources": ["*"], "verbs": ["*"]}]})
    seeded.revision_owned.append(f"clusterroles.rbac.authorization.k8s.io/{system['metadata']['name']}")
    for team in ("team-a", "team-b", "team-c", "team-d"):
        create("aws.m.upbound.io", "v1beta1", "providerconfigs", {"metadata": {"name": "default"}, "spec": {
            "credentials": {"source": "Secret", "secretRef": {"name": "aws-creds", "key": "creds"}}}}, team)


def _unit_like_crossplane(create, name: str, ns: str, xr: dict) -> None:
    """Per claim, what a running install adds: the XR's connection Secret, a namespaced XR with a
    namespaced managed resource, a multi-version managed resource, and their ProviderConfigUsages."""
    create("", "v1", "secrets", {"metadata": {"name": xr["metadata"]["uid"], "ownerReferences": [_owner(xr, controller=True)]},
           "type": "connection.crossplane.io/v1alpha1", "data": {"endpoint": "aHR0cHM6Ly9la3MuZXhhbXBsZQ=="}},
           "crossplane-system")
    xdb = create(PLATFORM, "v1alpha1", "xdatabases", {"metadata": {"name": f"{name}-db"},
                 "spec": {"crossplane": {"compositionRef": {"name": "xdatabases-aws"}}, "parameters": {"size": "small"}}},
                 ns, status={"conditions": READY})
    bucket = create("s3.aws.m.upbound.io", "v1beta1", "buckets", {"metadata": {
        "name": f"{name}-db-backups", "annotations": {"crossplane.io/external-name": f"{name}-db-backups-ext",
                                                      "crossplane.io/composition-resource-name": "backups"},
        "ownerReferences": [_owner(xdb, controller=True)], "finalizers": ["finalizer.managedresource.crossplane.io"]},
        "spec": {"forProvider": {"region": "eu-west-2"}, "providerConfigRef": {"kind": "ProviderConfig", "name": "default"}}},
        ns, status={"conditions": READY, "atProvider": {"arn": f"arn:aws:s3:::{name}-db-backups-ext",
                                                        "id": f"{name}-db-backups-ext"}})
    create("aws.m.upbound.io", "v1beta1", "providerconfigusages", real.usage(bucket, _owner(bucket, controller=True)), ns)
    instance = create("ec2.aws.upbound.io", "v1beta1", "instances", {"metadata": {
        "name": f"{name}-bastion", "annotations": {"crossplane.io/external-name": f"i-{zlib.crc32(name.encode()):08x}"},
        "ownerReferences": [_owner(xr, controller=True)], "finalizers": ["finalizer.managedresource.crossplane.io"]},
        "spec": {"forProvider": {"region": "eu-west-2", "cpuCoreCount": 2}, "providerConfigRef": {"name": "default"}}},
        status={"conditions": READY, "atProvider": {"id": f"{name}-bastion"}})
    create("aws.upbound.io", "v1beta1", "providerconfigusages", real.usage(instance, _owner(instance, controller=True)))


def _own(client: EmulatorClient, plural: str, name: str, owners: list[dict]) -> None:
    client.call("PATCH", f"/apis/apiextensions.k8s.io/v1/{plural}/{name}", {"metadata": {"ownerReferences": owners}},
                "application/merge-patch+json")


def _owner(obj: dict, controller: bool = False) -> dict:
    ref = {"apiVersion": obj["apiVersion"], "kind": obj["kind"], "name": obj["metadata"]["name"],
           "uid": obj["metadata"]["uid"]}
    if controller:
        ref.update({"controller": True, "blockOwnerDeletion": True})
    return ref


def _wait_established(client: EmulatorClient, names: list[str], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    pending = set(names)
    while pending and time.monotonic() < deadline:
        for name in list(pending):
            crd_obj = client.call("GET", f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}")
            if any(c.get("type") == "Established" and c.get("status") == "True"
                   for c in (crd_obj.get("status") or {}).get("conditions") or ()):
                pending.discard(name)
        if pending:
            time.sleep(0.05)
    if pending:
        raise RuntimeError(f"CRDs not Established: {sorted(pending)}")
