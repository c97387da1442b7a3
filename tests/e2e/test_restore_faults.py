"""Backups and restores of Crossplane-shaped control planes, through Git commits and `reconcile.py apply`
(issue 16): each fault as a family of inputs, then everything at once in a round trip whose
difference, source against target, must be empty."""

from __future__ import annotations

import copy
import json
import re
import subprocess
import sys
import tarfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import quote

import urllib3

from ctpbackup.engines.restore import is_custom
from ctpbackup.engines.restore_order import (
    LAST_APPLIED,
    PAUSED,
    PAUSED_BY_RESTORE,
    SA_UID,
    clean,
    made_by_control_plane,
)
from ctpbackup.store.layout import BucketLayout
from kubeemu import EmulatorServer
from kubeemu import crossplane as real
from kubeemu.fixtures import crd, seed_crossplane
from tests.fixtures.story import BACKUP, CONTROL_PLANE, RESTORED, ROOT
from tests.reliability.test_crash import kill_when

PLATFORM = "aws.platformref.upbound.io"
S3 = "s3.aws.upbound.io"
EC2 = "ec2.aws.upbound.io"
NS_MRS = "queues.sqs.aws.m.upbound.io"  # a namespaced managed resource (Crossplane v2 shape)
READY = [{"type": "Ready", "status": "True", "reason": "Available", "lastTransitionTime": "2026-11-20T10:00:00Z"},
         {"type": "Synced", "status": "True", "reason": "ReconcileSuccess", "lastTransitionTime": "2026-11-20T10:00:00Z"}]


class API:
    """A thin JSON client for one emulated control plane (what a test creates and reads back)."""

    def __init__(self, server: EmulatorServer):
        self.server = server
        self.http = urllib3.PoolManager(maxsize=8, ssl_context=server.ssl_context())  # its CA, over HTTPS

    def call(self, method: str, path: str, body: object = None, content_type: str = "application/json") -> dict:
        response = self.http.request(method, self.server.url + path, body=json.dumps(body) if body is not None else None,
                                headers={"Authorization": f"Bearer {self.server.token}", "Content-Type": content_type})
        data = json.loads(response.data or b"{}")
        if response.status >= 400:
            raise AssertionError(f"{method} {path}: {response.status} {data.get('message')}")
        return data

    def create(self, path: str, obj: dict, status: dict | None = None) -> dict:
        made = self.call("POST", path, obj)
        if status is not None:
            made = self.call("PATCH", f"{path}/{quote(made['metadata']['name'], safe='')}/status", {"status": status},
                             "application/merge-patch+json")
        return made

    def get(self, path: str) -> dict:
        return self.call("GET", path)

    def items(self, path: str) -> list[dict]:
        return self.call("GET", path)["items"]

    def establish(self, *crds: dict) -> list[dict]:
        made = [self.create("/apis/apiextensions.k8s.io/v1/customresourcedefinitions", c) for c in crds]
        for c in crds:
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                got = self.get(f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{c['metadata']['name']}")
                if any(x["type"] == "Established" and x["status"] == "True" for x in got["status"]["conditions"]):
                    break
                time.sleep(0.02)
        return made


def owner(obj: dict, controller: bool = False) -> dict:
    ref = {"apiVersion": obj["apiVersion"], "kind": obj["kind"], "name": obj["metadata"]["name"], "uid": obj["metadata"]["uid"]}
    return {**ref, "controller": True, "blockOwnerDeletion": True} if controller else ref


def versions(c: dict, storage: str, *others: str) -> dict:
    """The CRD serving `storage` (its storage version) and `others` too (a later one is preferred)."""
    c = copy.deepcopy(c)
    template = c["spec"]["versions"][0]
    c["spec"]["versions"] = [{**copy.deepcopy(template), "name": v, "storage": v == storage} for v in (storage, *others)]
    return c


def owned_crd(c: dict, *owners: dict) -> dict:
    c = copy.deepcopy(c)
    c["metadata"]["ownerReferences"] = list(owners)
    return c


# -- the source's shapes: each a family, each returns what its check needs -------------------------------


def crossplane_base(src: API) -> dict:
    """Crossplane's own CRDs, a provider with its revision, the provider's CRDs owned by both (the
    revision as controller), an XRD owning its XR and claim CRDs, a claim -> XR -> managed resources
    chain, a namespaced managed resource, a claim's connection Secret."""
    src.establish(crd("pkg.crossplane.io", "providers", "Provider", "Cluster", "v1"),
                  crd("pkg.crossplane.io", "providerrevisions", "ProviderRevision", "Cluster", "v1"),
                  versions(crd("apiextensions.crossplane.io", "compositeresourcedefinitions", "CompositeResourceDefinition",
                               "Cluster", "v1"), "v1", "v2"))  # as Crossplane's: v1 storage, v2 preferred
    provider = src.create("/apis/pkg.crossplane.io/v1/providers", {
        "metadata": {"name": "provider-aws-s3"}, "spec": {"package": "xpkg.upbound.io/upbound/provider-aws-s3:v1.20.0"}},
        {"conditions": [{"type": "Installed", "status": "True", "reason": "ActivePackageRevision"},
                        {"type": "Healthy", "status": "True", "reason": "HealthyPackageRevision"}]})
    revision = src.create("/apis/pkg.crossplane.io/v1/providerrevisions", {
        "metadata": {"name": "provider-aws-s3-1a2b3c", "ownerReferences": [owner(provider, True)]},
        "spec": {"desiredState": "Active", "revision": 1}})
    xrd = src.create("/apis/apiextensions.crossplane.io/v1/compositeresourcedefinitions", {
        "metadata": {"name": f"xclusters.{PLATFORM}"},
        "spec": {"group": PLATFORM, "names": {"kind": "XCluster", "plural": "xclusters"},
                 "claimNames": {"kind": "Cluster", "plural": "clusters"}, "versions": [{"name": "v1alpha1"}]}},
        {"conditions": [{"type": "Established", "status": "True", "reason": "WatchingCompositeResource"}]})
    pkg = (owner(revision, True), owner(provider))
    src.establish(owned_crd(crd(S3, "buckets", "Bucket", "Cluster", "v1beta1", ["managed"]), *pkg),
                  owned_crd(crd(EC2, "vpcs", "VPC", "Cluster", "v1beta1", ["managed"]), *pkg),
                  owned_crd(crd("sqs.aws.m.upbound.io", "queues", "Queue", "Namespaced", "v1beta1", ["managed"]), *pkg),
                  owned_crd(crd(PLATFORM, "xclusters", "XCluster", "Cluster", "v1alpha1", ["composite"]), owner(xrd, True)),
                  owned_crd(crd(PLATFORM, "clusters", "Cluster", "Namespaced", "v1alpha1", ["claim"]), owner(xrd, True)))
    src.create("/api/v1/namespaces", {"metadata": {"name": "team-a", "labels": {"team": "a"}}})
    claim = src.create(f"/apis/{PLATFORM}/v1alpha1/namespaces/team-a/clusters", {
        "metadata": {"name": "app"}, "spec": {"parameters": {"region": "eu-west-2"},
                                              "writeConnectionSecretToRef": {"name": "app-conn"}}}, {"conditions": READY})
    xr = src.create(f"/apis/{PLATFORM}/v1alpha1/xclusters", {
        "metadata": {"name": "app-x7k2p", "labels": {"crossplane.io/claim-name": "app"}},
        "spec": {"claimRef": {"apiVersion": f"{PLATFORM}/v1alpha1", "kind": "Cluster", "name": "app", "namespace": "team-a"}}},
        {"conditions": READY})
    for i, (path, kind) in enumerate(((f"/apis/{S3}/v1beta1/buckets", "bucket"), (f"/apis/{EC2}/v1beta1/vpcs", "vpc"))):
        src.create(path, {"metadata": {"name": f"app-{kind}", "ownerReferences": [owner(xr, True)],
                                       "annotations": {"crossplane.io/external-name": f"app-{kind}-ext-{i}"},
                                       "finalizers": ["finalizer.managedresource.crossplane.io"]},
                          "spec": {"forProvider": {"region": "eu-west-2"}, "providerConfigRef": {"name": "default"}}},
                   {"conditions": READY, "atProvider": {"id": f"app-{kind}-ext-{i}", "arn": f"arn:aws:{kind}:::{i}"}})
    src.create("/apis/sqs.aws.m.upbound.io/v1beta1/namespaces/team-a/queues", {
        "metadata": {"name": "jobs", "annotations": {"crossplane.io/external-name": "jobs-q"}},
        "spec": {"forProvider": {"region": "eu-west-2"}}}, {"conditions": READY, "atProvider": {"id": "jobs-q"}})
    src.create("/api/v1/namespaces/team-a/secrets", {
        "metadata": {"name": "app-conn", "ownerReferences": [owner(claim)]}, "type": "connection.crossplane.io/v1alpha1",
        "data": {"endpoint": "aHR0cHM6Ly9la3M="}})
    return {"provider": provider, "revision": revision, "xrd": xrd}


def rbac_names(src: API) -> list[tuple[str, str | None, str]]:
    """RBAC names are path segments: ':', '@', '+', '_', '~', '=', unicode are all valid."""
    made = []
    for name in ("oidc:platform+sre", "user@example.org", "équipe:sre", "a_b~c=d"):
        src.create("/apis/rbac.authorization.k8s.io/v1/clusterroles", {"metadata": {"name": name},
                   "rules": [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}]})
        src.create("/apis/rbac.authorization.k8s.io/v1/clusterrolebindings", {"metadata": {"name": name},
                   "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name},
                   "subjects": [{"kind": "Group", "name": name, "apiGroup": "rbac.authorization.k8s.io"}]})
        made += [("clusterroles", None, name), ("clusterrolebindings", None, name)]
    src.create("/apis/rbac.authorization.k8s.io/v1/namespaces/team-a/rolebindings", {"metadata": {"name": "oidc:team-a@dev"},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "oidc:platform+sre"},
               "subjects": [{"kind": "User", "name": "dev@example.org", "apiGroup": "rbac.authorization.k8s.io"}]})
    return made + [("rolebindings", "team-a", "oidc:team-a@dev")]


SERVICES = {  # name -> (spec in the source, spec expected in the target, last-applied spec or None)
    "web": ({"type": "ClusterIP", "clusterIP": "10.96.14.7", "clusterIPs": ["10.96.14.7"], "ports": [{"port": 80}]},
            {"type": "ClusterIP", "ports": [{"port": 80}]}, None),
    "headless": ({"clusterIP": "None", "clusterIPs": ["None"], "ports": [{"port": 5432}]},
                 {"clusterIP": "None", "clusterIPs": ["None"], "ports": [{"port": 5432}]}, None),
    "nodeports": ({"type": "NodePort", "clusterIP": "10.96.3.3", "ports": [{"name": "http", "port": 80, "nodePort": 30080},
                                                                           {"name": "https", "port": 443, "nodePort": 31443}]},
                  {"type": "NodePort", "ports": [{"name": "http", "port": 80, "nodePort": 30080}, {"name": "https", "port": 443}]},
                  {"type": "NodePort", "ports": [{"name": "http", "port": 80, "nodePort": 30080}, {"name": "https", "port": 443}]}),
    "lb": ({"type": "LoadBalancer", "clusterIP": "10.96.9.9", "externalTrafficPolicy": "Local", "healthCheckNodePort": 32000,
            "ports": [{"port": 443, "nodePort": 30443}]},
           {"type": "LoadBalancer", "externalTrafficPolicy": "Local", "ports": [{"port": 443}]}, None),
}


def services(src: API) -> None:
    for name, (spec, _, applied) in SERVICES.items():
        meta: dict = {"name": name}
        if applied is not None:
            meta["annotations"] = {LAST_APPLIED: json.dumps({"apiVersion": "v1", "kind": "Service",
                                                             "metadata": {"name": name, "namespace": "team-a"}, "spec": applied})}
        status = {"loadBalancer": {"ingress": [{"ip": "203.0.113.7"}]}} if spec.get("type") == "LoadBalancer" else None
        src.create("/api/v1/namespaces/team-a/services", {"metadata": meta, "spec": spec}, status)


def served_as(spec: dict, source_spec: dict) -> dict:
    """A restored Service's spec less what the target's API server fills in by itself (SetDefaults_Service,
    its own cluster IP and node ports): those must be the target's, never the source's."""
    spec = dict(spec)
    if spec.get("clusterIP") != "None":
        assert spec.pop("clusterIP") not in (source_spec.get("clusterIP"), None)
        spec.pop("clusterIPs")
    for key, default in (("ipFamilies", ["IPv4"]), ("ipFamilyPolicy", "SingleStack"), ("sessionAffinity", "None"),
                         ("internalTrafficPolicy", "Cluster")):
        assert spec.pop(key, default) == default
    if "type" not in source_spec:
        assert spec.pop("type") == "ClusterIP"
    ports = []
    for port, source_port in zip(spec["ports"], source_spec["ports"], strict=True):
        port = dict(port)
        assert (port.pop("protocol"), port.pop("targetPort")) == ("TCP", port["port"])
        if port.get("nodePort") is not None and port["nodePort"] != source_port.get("nodePort"):
            port.pop("nodePort")  # allocated by the target
        ports.append(port)
    spec["ports"] = ports
    return spec


def status_without_subresource(src: API) -> None:
    plain = crd("example.org", "settings", "Setting", "Namespaced", "v1")
    plain["spec"]["versions"][0].pop("subresources")
    src.establish(plain)
    src.create("/apis/example.org/v1/namespaces/team-a/settings", {
        "metadata": {"name": "tier"}, "spec": {"level": 3}, "status": {"observed": 3, "phase": "Synced"}})


def pause_annotations(src: API) -> None:
    """paused "true", paused "false", no annotations at all, other annotations with paused "false"."""
    base = {"spec": {"forProvider": {"region": "eu-west-1"}}}
    src.create(f"/apis/{S3}/v1beta1/buckets", {**base, "metadata": {"name": "kept-paused", "annotations": {PAUSED: "true"}}})
    src.create(f"/apis/{S3}/v1beta1/buckets", {**base, "metadata": {"name": "explicitly-unpaused",
                                                                   "annotations": {PAUSED: "false"}}})
    src.create(f"/apis/{S3}/v1beta1/buckets", {**base, "metadata": {"name": "bare"}})
    src.create(f"/apis/{EC2}/v1beta1/vpcs", {**base, "metadata": {"name": "annotated", "annotations": {
        PAUSED: "false", "crossplane.io/external-name": "vpc-0a1b", "note": "  spaces and ünïcode  "}}})


def being_deleted(src: API) -> None:
    """A managed resource waiting on its finalizer, and a Terminating namespace with what is in it."""
    src.create(f"/apis/{S3}/v1beta1/buckets", {"metadata": {"name": "going", "finalizers": ["finalizer.managedresource.crossplane.io"]},
                                              "spec": {"forProvider": {"region": "eu-west-1"}}})
    src.call("DELETE", f"/apis/{S3}/v1beta1/buckets/going")
    src.create("/api/v1/namespaces", {"metadata": {"name": "team-gone"}})
    src.create("/api/v1/namespaces/team-gone/configmaps", {"metadata": {"name": "stuck", "finalizers": ["example.org/hold"]},
                                                           "data": {"a": "b"}})
    src.create("/api/v1/namespaces/team-gone/secrets", {"metadata": {"name": "plain"}, "data": {"a": "Yg=="}})
    src.call("DELETE", "/api/v1/namespaces/team-gone")
    deadline = time.monotonic() + 10
    while src.items("/api/v1/namespaces/team-gone/secrets") and time.monotonic() < deadline:
        time.sleep(0.05)


def token_secrets(src: API) -> dict:
    sa = src.create("/api/v1/namespaces/team-a/serviceaccounts", {"metadata": {"name": "ci-bot"}})
    src.create("/api/v1/namespaces/team-a/secrets", {
        "metadata": {"name": "ci-bot-token", "annotations": {"kubernetes.io/service-account.name": "ci-bot",
                                                             SA_UID: sa["metadata"]["uid"], "team": "a"}},
        "type": "kubernetes.io/service-account-token",
        "data": {"token": "c2VjcmV0LXRva2Vu", "ca.crt": "Y2E=", "namespace": "dGVhbS1h"}})
    return sa


def pull_secrets(src: API) -> None:
    """User fields added to objects every control plane makes itself."""
    src.call("PATCH", "/api/v1/namespaces/team-a/serviceaccounts/default", {"imagePullSecrets": [{"name": "regcred"}]},
             "application/merge-patch+json")
    src.call("PATCH", "/api/v1/namespaces/default/serviceaccounts/default",
             {"metadata": {"labels": {"audited": "yes"}}, "automountServiceAccountToken": False}, "application/merge-patch+json")
    src.call("PATCH", "/api/v1/namespaces/default", {"metadata": {"labels": {"owner": "platform"}}},
             "application/merge-patch+json")
    src.create("/api/v1/namespaces/team-a/secrets", {"metadata": {"name": "regcred"}, "type": "kubernetes.io/dockerconfigjson",
                                                     "data": {".dockerconfigjson": "e30="}})


# -- the path: Git commits, apply -------------------------------------------------------------------------


@contextmanager
def planes() -> Iterator[tuple[EmulatorServer, EmulatorServer]]:
    source = EmulatorServer(establish_delay=0.02).start()
    target = EmulatorServer(establish_delay=0.02).start()
    try:
        yield source, target
    finally:
        source.stop()
        target.stop()


def back_up(story, source: EmulatorServer, backup_spec: str = "", *, verifies: bool = True) -> dict:
    """Back up `source` as Backup b1; `verifies=False` for a source holding objects a restore refuses:
    the backup is Completed, its verification False, and apply says so with exit code 1."""
    story.connect("src", source)
    story.repo.write("src.yaml", CONTROL_PLANE.format(name="src"))
    story.repo.write("b1.yaml", BACKUP.format(name="b1", control_plane="src") + backup_spec)
    story.repo.commit("back up src")
    done = story.reconcile("apply", check=verifies)
    record = story.backup("b1")
    assert record["phase"] == "Completed", record
    verified = next(c for c in record["conditions"] if c["type"] == "Verified")
    assert (verified["status"], done.returncode) == (("True", 0) if verifies else ("False", 1)), (verified, done.stdout)
    return record


def restore(story, target: EmulatorServer, *args: str) -> subprocess.CompletedProcess:
    story.connect("dst", target)
    story.repo.write("dst.yaml", RESTORED.format(name="dst", source="b1"))
    story.repo.commit("restore b1 into dst")
    return story.reconcile("apply", *args, check=False)


def the_restore(story) -> dict:
    (record,) = story.status()["restores"]
    return record


def archive_metadata(story, record: dict, tmp_path) -> tuple[dict, list[str]]:
    path = tmp_path / "a.tar.gz"
    path.write_bytes(story.bucket.read(record["archiveKey"])[0])
    with tarfile.open(path) as tar:
        return json.load(tar.extractfile("metadata.json")), tar.getnames()


def completed(story, result: subprocess.CompletedProcess) -> dict:
    assert result.returncode == 0, result.stdout + result.stderr
    record = the_restore(story)
    assert record["phase"] == "Completed" and record["finishedAt"], record
    assert sum(c.get("failed", 0) for c in record["counts"].values()) == 0
    return record


def paused_in(api: API, path: str) -> dict[str, str | None]:
    return {o["metadata"]["name"]: (o["metadata"].get("annotations") or {}).get(PAUSED) for o in api.items(path)}


# -- one test per fault ---------------------------------------------------------------------------------------


def test_13_a_restore_with_failed_objects_is_partially_failed_retried_and_then_completed_or_ended(story):
    with planes() as (source, target):
        src, dst = API(source), API(target)
        crossplane_base(src)
        for i in range(3):
            src.create("/api/v1/namespaces/team-a/configmaps", {"metadata": {"name": f"refused-{i}"}, "data": {"i": str(i)}})
        back_up(story, source)
        target.inject("error", count=-1, status=403, methods=["POST"], path_prefix="/api/v1/namespaces/team-a/configmaps")
        target.inject("error", count=-1, status=422, methods=["POST"], path_prefix=f"/apis/{EC2}/v1beta1/vpcs")

        first = restore(story, target)
        assert first.returncode == 1
        record = the_restore(story)
        assert record["phase"] == "PartiallyFailed" and record["finishedAt"] is None and record["attempts"] == 1
        restored = record["conditions"][-1]
        assert (restored["type"], restored["status"], restored["reason"]) == ("Restored", "False", "PartiallyFailed")
        assert record["counts"]["configmaps"] == {"restored": 0, "skipped": 0, "failed": 3}
        assert record["counts"][f"vpcs.{EC2}"] == {"restored": 0, "skipped": 0, "failed": 1}
        assert "4 failed" in restored["message"]
        assert re.search(r"; first: configmaps team-a/refused-\d: POST /api/v1/namespaces/team-a/configmaps: "
                         r"403 injected fault \(403\); configmaps team-a/refused-\d: ", restored["message"])
        assert f"vpcs.{EC2} app-vpc: POST /apis/{EC2}/v1beta1/vpcs: 422 injected fault (422)" in record["warnings"]
        assert "PartiallyFailed: " in first.stdout and "0 done, 1 failed" in first.stdout
        described = story.reconcile("describe", "restore", "dst").stdout
        assert "Phase:          PartiallyFailed" in described and "Restored=False  PartiallyFailed" in described
        # waiting for it ends at once (no run changes it while one waits), exit 1, saying why
        for kind, condition in (("restore", "condition=Restored"), ("controlplane", "condition=restored=true")):
            waited = story.reconcile("wait", kind, "dst", "--for", condition, "--timeout", "1h", check=False, timeout=60)
            (line,) = [json.loads(x)["message"] for x in waited.stderr.splitlines()]
            assert (waited.returncode, line.split("; first: ")[0]) == (
                1, f"error: {kind} default/dst will not meet {condition}: it is PartiallyFailed in attempt 1; the "
                   f"next apply retries it: 17 restored, 158 skipped (already there), 4 failed, 4 warning(s)")
        assert story.reconcile("wait", "restore", "dst", "--for", "condition=Restored=False",
                               "--timeout", "1h", timeout=60).stdout == "restore default/dst condition met\n"

        target.clear_faults()
        second = story.reconcile("apply", check=False)
        assert "(attempt 2 of 3)" in second.stdout
        record = completed(story, second)
        assert record["attempts"] == 2
        assert record["counts"]["configmaps"] == {"restored": 3, "skipped": 0, "failed": 0}
        assert record["counts"][f"buckets.{S3}"] == {"restored": 0, "skipped": 1, "failed": 0}  # already there
        assert sorted(o["metadata"]["name"] for o in dst.items("/api/v1/namespaces/team-a/configmaps")) == [
            "kube-root-ca.crt", "refused-0", "refused-1", "refused-2"]
        assert "No changes" in story.reconcile("apply").stdout  # finished: never runs again

        # the attempts run out: the last one ends it as it stands, with finishedAt
        story.repo.write("dst2.yaml", RESTORED.format(name="dst2", source="b1"))
        other = EmulatorServer(establish_delay=0.02).start()
        try:
            story.connect("dst2", other)
            other.inject("error", count=-1, status=403, methods=["POST"], path_prefix="/api/v1/namespaces/team-a/configmaps")
            story.repo.commit("restore b1 into dst2 too")
            for attempt in (1, 2, 3):
                assert story.reconcile("apply", check=False).returncode == 1
                (record,) = [r for r in story.status()["restores"] if r["controlPlane"] == "dst2"]
                assert record["phase"] == "PartiallyFailed" and record["attempts"] == attempt
                assert (record["finishedAt"] is not None) == (attempt == 3)
            assert "No changes" in story.reconcile("apply").stdout
        finally:
            other.stop()


def test_13_a_failed_restore_ends_with_finished_at_after_its_last_attempt(story):
    with planes() as (source, target):
        crossplane_base(API(source))
        record = back_up(story, source)
        data = bytearray(story.bucket.read(record["archiveKey"])[0])
        data[len(data) // 2] ^= 0x01
        story.bucket.put(record["archiveKey"], bytes(data))
        restore(story, target)
        for attempt in (1, 2, 3):
            if attempt > 1:
                assert story.reconcile("apply", check=False).returncode == 1
            record = the_restore(story)
            assert (record["phase"], record["attempts"]) == ("Failed", attempt)
            assert record["conditions"][-1]["reason"] == "IntegrityCheckFailed"
            assert (record["finishedAt"] is not None) == (attempt == 3)
        assert "No changes" in story.reconcile("apply").stdout


def test_11_a_restore_killed_after_pausing_is_finished_by_the_rerun(story):
    with planes() as (source, target):
        src, dst = API(source), API(target)
        crossplane_base(src)
        pause_annotations(src)
        for i in range(40):
            src.create(f"/apis/{S3}/v1beta1/buckets", {"metadata": {"name": f"fleet-{i:02d}"}, "spec": {"i": i}},
                       {"conditions": READY, "atProvider": {"id": f"fleet-{i:02d}"}})
        back_up(story, source)
        story.connect("dst", target)
        story.repo.write("dst.yaml", RESTORED.format(name="dst", source="b1"))
        story.repo.commit("restore b1 into dst")
        target.inject("slow", count=-1, delay=0.05, path_prefix=f"/apis/{S3}/")
        command = [sys.executable, str(ROOT / "reconcile.py"), "apply", "--repo", str(story.repo.path),
                   "--secrets-dir", str(story.secrets), "--lease-wait", "5"]

        def marked() -> int:
            table = target.store.tables.get((S3, "buckets"))
            objects = list(table.objects.values()) if table else []
            return sum(1 for o in objects if (o["metadata"].get("annotations") or {}).get(PAUSED_BY_RESTORE))

        assert kill_when(command, lambda: marked() >= 10), "the kill should land mid-restore"
        assert the_restore(story)["phase"] == "InProgress"
        left = {n: v for n, v in paused_in(dst, f"/apis/{S3}/v1beta1/buckets").items() if v == "true"}
        assert len(left) >= 10  # created paused, never unpaused by the killed run
        story.bucket.delete(BucketLayout("prod/cluster1").lease_key())
        target.clear_faults()

        record = completed(story, story.reconcile("apply", "--lease-wait", "5", check=False))
        assert record["attempts"] == 2
        after = paused_in(dst, f"/apis/{S3}/v1beta1/buckets")
        assert after.pop("kept-paused") == "true" and after.pop("explicitly-unpaused") == "false"
        assert set(after.values()) == {None}, after  # every one it paused is unpaused
        for name in ("fleet-00", "fleet-39", "app-bucket"):
            obj = dst.get(f"/apis/{S3}/v1beta1/buckets/{name}")
            assert PAUSED_BY_RESTORE not in (obj["metadata"].get("annotations") or {})
            assert obj["status"]["conditions"] == READY and obj["status"]["atProvider"]["id"]


def test_11_an_unpause_the_server_refuses_is_retried_until_done(story):
    with planes() as (source, target):
        src, dst = API(source), API(target)
        crossplane_base(src)
        pause_annotations(src)
        back_up(story, source)
        target.inject("error", count=-1, status=503, methods=["PATCH"], path_prefix=f"/apis/{S3}/v1beta1/buckets")

        first = restore(story, target)
        assert first.returncode == 1
        record = the_restore(story)
        assert record["phase"] == "PartiallyFailed" and record["finishedAt"] is None
        message = record["conditions"][-1]["message"]
        assert "0 failed, 3 still paused" in message and "could not be unpaused" in message
        assert paused_in(dst, f"/apis/{S3}/v1beta1/buckets") == {
            "app-bucket": "true", "bare": "true", "explicitly-unpaused": "true", "kept-paused": "true"}

        target.clear_faults()
        record = completed(story, story.reconcile("apply", check=False))
        assert record["counts"][f"buckets.{S3}"] == {"restored": 3, "skipped": 1, "failed": 0}  # the 3 it paused
        assert paused_in(dst, f"/apis/{S3}/v1beta1/buckets") == {
            "app-bucket": None, "bare": None, "explicitly-unpaused": "false", "kept-paused": "true"}
        assert "annotations" not in dst.get(f"/apis/{S3}/v1beta1/buckets/bare")["metadata"]


def test_1_owned_crds_come_first_and_get_their_owners_back(story):
    with planes() as (source, target):
        src, dst = API(source), API(target)
        crossplane_base(src)
        back_up(story, source)
        record = completed(story, restore(story, target))
        assert record["warnings"] == []
        new = {kind: dst.get(path)["metadata"]["uid"] for kind, path in (
            ("Provider", "/apis/pkg.crossplane.io/v1/providers/provider-aws-s3"),
            ("ProviderRevision", "/apis/pkg.crossplane.io/v1/providerrevisions/provider-aws-s3-1a2b3c"),
            ("CompositeResourceDefinition", f"/apis/apiextensions.crossplane.io/v1/compositeresourcedefinitions/xclusters.{PLATFORM}"))}
        for name, kinds in ((f"buckets.{S3}", ["ProviderRevision", "Provider"]), (f"vpcs.{EC2}", ["ProviderRevision", "Provider"]),
                            (NS_MRS, ["ProviderRevision", "Provider"]),
                            (f"xclusters.{PLATFORM}", ["CompositeResourceDefinition"]),
                            (f"clusters.{PLATFORM}", ["CompositeResourceDefinition"])):
            refs = dst.get(f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}")["metadata"]["ownerReferences"]
            assert [(r["kind"], r["uid"], r.get("controller", False)) for r in refs] == [
                (k, new[k], k != "Provider") for k in kinds]
        assert [o["metadata"]["name"] for o in dst.items(f"/apis/{S3}/v1beta1/buckets")] == ["app-bucket"]
        assert [o["metadata"]["name"] for o in dst.items(f"/apis/{EC2}/v1beta1/vpcs")] == ["app-vpc"]
        assert [o["metadata"]["name"] for o in dst.items("/apis/sqs.aws.m.upbound.io/v1beta1/queues")] == ["jobs"]
        assert [o["metadata"]["name"] for o in dst.items(f"/apis/{PLATFORM}/v1alpha1/clusters")] == ["app"]
        xr_uid = dst.get(f"/apis/{PLATFORM}/v1alpha1/xclusters/app-x7k2p")["metadata"]["uid"]
        assert dst.get(f"/apis/{S3}/v1beta1/buckets/app-bucket")["metadata"]["ownerReferences"][0]["uid"] == xr_uid


def test_8_every_name_kubernetes_accepts_is_backed_up_and_restored(story, tmp_path):
    with planes() as (source, target):
        src, dst = API(source), API(target)
        crossplane_base(src)
        names = rbac_names(src)
        record = back_up(story, source)
        _, members = archive_metadata(story, record, tmp_path)
        assert "resources/clusterrolebindings.rbac.authorization.k8s.io/cluster/oidc:platform+sre.json" in members
        assert "resources/clusterroles.rbac.authorization.k8s.io/cluster/%C3%A9quipe:sre.json" in members
        completed(story, restore(story, target))
        for resource, namespace, name in names:
            where = f"/namespaces/{namespace}" if namespace else ""
            got = {o["metadata"]["name"] for o in dst.items(f"/apis/rbac.authorization.k8s.io/v1{where}/{resource}")}
            assert name in got, (resource, name)


def test_5_allocated_service_fields_are_left_to_the_target_and_4_server_status_is_not_written(story):
    with planes() as (source, target):
        src, dst = API(source), API(target)
        crossplane_base(src)
        services(src)
        status_without_subresource(src)
        back_up(story, source)
        # the target already uses the source's allocations: restoring them would be refused
        dst.create("/api/v1/namespaces/default/services", {"metadata": {"name": "squatter"}, "spec": {
            "type": "NodePort", "clusterIP": "10.96.14.7",
            "ports": [{"name": "a", "port": 1, "nodePort": 31443}, {"name": "b", "port": 2, "nodePort": 30443}]}})
        completed(story, restore(story, target))
        for name, (source_spec, expected, _) in SERVICES.items():
            svc = dst.get(f"/api/v1/namespaces/team-a/services/{name}")
            assert served_as(svc["spec"], source_spec) == expected, name
            assert "status" not in svc  # the source's loadBalancer is the source's
        # 4: a CRD without a status subresource keeps its status in the create body
        assert dst.get("/apis/example.org/v1/namespaces/team-a/settings/tier")["status"] == {"observed": 3, "phase": "Synced"}
        assert dst.get("/api/v1/namespaces/team-a")["status"] == {"phase": "Active"}  # the target's own
        assert dst.get(f"/apis/{S3}/v1beta1/buckets/app-bucket")["status"]["atProvider"] == {
            "id": "app-bucket-ext-0", "arn": "arn:aws:bucket:::0"}


def test_12_annotations_come_back_byte_for_byte(story):
    with planes() as (source, target):
        src, dst = API(source), API(target)
        crossplane_base(src)
        pause_annotations(src)
        services(src)
        back_up(story, source)
        completed(story, restore(story, target))
        for path in (f"/apis/{S3}/v1beta1/buckets", f"/apis/{EC2}/v1beta1/vpcs", "/api/v1/namespaces/team-a/services"):
            before = {o["metadata"]["name"]: o["metadata"].get("annotations") for o in src.items(path)}
            after = {o["metadata"]["name"]: o["metadata"].get("annotations") for o in dst.items(path)}
            assert after == before, path


def test_10_existing_update_replaces_status_exactly(story):
    with planes() as (source, target):
        src, dst = API(source), API(target)
        crossplane_base(src)
        back_up(story, source)
        dst.establish(crd(S3, "buckets", "Bucket", "Cluster", "v1beta1", ["managed"]))
        dst.create(f"/apis/{S3}/v1beta1/buckets", {"metadata": {"name": "app-bucket", "labels": {"only": "target"}},
                                                  "spec": {"forProvider": {"region": "us-east-1"}, "extra": True}},
                   {"conditions": [{"type": "Ready", "status": "False", "reason": "Creating"}],
                    "atProvider": {"id": "only-the-target-had-this", "zone": "b"}, "targetOnly": 1})
        completed(story, restore(story, target, "--existing", "update"))
        got, want = dst.get(f"/apis/{S3}/v1beta1/buckets/app-bucket"), src.get(f"/apis/{S3}/v1beta1/buckets/app-bucket")
        assert got["status"] == want["status"]
        assert got["spec"] == want["spec"] and got["metadata"].get("labels") is None


def test_3_objects_being_deleted_are_left_out_and_listed(story, tmp_path):
    with planes() as (source, target):
        src, dst = API(source), API(target)
        crossplane_base(src)
        being_deleted(src)
        record = back_up(story, source)
        metadata, members = archive_metadata(story, record, tmp_path)
        assert metadata["excluded"][f"buckets.{S3} (being deleted)"] == {"reason": "being deleted", "objects": 1,
                                                                          "names": ["going"]}
        assert metadata["excluded"]["namespaces (being deleted)"] == {"reason": "being deleted", "objects": 1,
                                                                       "names": ["team-gone"]}
        assert metadata["excluded"]["configmaps (being deleted)"]["names"] == ["team-gone/stuck"]
        assert not [m for m in members if "team-gone" in m or "/going.json" in m]
        completed(story, restore(story, target))
        assert [o["metadata"]["name"] for o in dst.items(f"/apis/{S3}/v1beta1/buckets")] == ["app-bucket"]
        assert "team-gone" not in {o["metadata"]["name"] for o in dst.items("/api/v1/namespaces")}


def test_6_token_secrets_come_back_after_their_service_account_without_the_old_token(story):
    with planes() as (source, target):
        src, dst = API(source), API(target)
        crossplane_base(src)
        token_secrets(src)
        back_up(story, source)
        completed(story, restore(story, target))
        secret = dst.get("/api/v1/namespaces/team-a/secrets/ci-bot-token")
        account = dst.get("/api/v1/namespaces/team-a/serviceaccounts/ci-bot")
        assert secret["type"] == "kubernetes.io/service-account-token" and "data" not in secret
        assert secret["metadata"]["annotations"] == {"kubernetes.io/service-account.name": "ci-bot", "team": "a"}
        assert int(secret["metadata"]["resourceVersion"]) > int(account["metadata"]["resourceVersion"])


def test_7_user_fields_of_objects_the_control_plane_makes_are_merged(story):
    with planes() as (source, target):
        src, dst = API(source), API(target)
        crossplane_base(src)
        pull_secrets(src)
        back_up(story, source)
        record = completed(story, restore(story, target))
        assert record["counts"]["serviceaccounts"]["merged"] == 2
        assert record["counts"]["namespaces"]["merged"] == 1
        assert "3 merged into objects the control plane made" in record["conditions"][-1]["message"]
        described = story.reconcile("describe", "restore", "dst").stdout
        assert f"  {'serviceaccounts':<60} 0 / 3 / 2 / 0\n" in described  # restored / skipped / merged / failed
        assert dst.get("/api/v1/namespaces/team-a/serviceaccounts/default")["imagePullSecrets"] == [{"name": "regcred"}]
        default_sa = dst.get("/api/v1/namespaces/default/serviceaccounts/default")
        assert default_sa["metadata"]["labels"] == {"audited": "yes"} and default_sa["automountServiceAccountToken"] is False
        # the server's own name label stays beside the user's (kube-apiserver sets it on every namespace)
        assert dst.get("/api/v1/namespaces/default")["metadata"]["labels"] == {
            "owner": "platform", "kubernetes.io/metadata.name": "default"}


def test_9_an_exclusion_that_matches_nothing_is_a_recorded_warning(story, tmp_path):
    with planes() as (source, _):
        src = API(source)
        crossplane_base(src)
        record = back_up(story, source, "  excludedResources: [secret, bucket.s3.aws.upbound.io, configmaps]\n")
        assert record["warnings"] == [
            "excludedResources entry 'secret' matches no resource the control plane serves; did you mean 'secrets'? "
            "Nothing was excluded for it.",
            "excludedResources entry 'bucket.s3.aws.upbound.io' matches no resource the control plane serves; "
            f"did you mean 'buckets.{S3}'? Nothing was excluded for it."]
        completed = next(c for c in record["conditions"] if c["type"] == "Completed")
        assert completed["message"].endswith(", 2 warning(s)")
        metadata, members = archive_metadata(story, record, tmp_path)
        assert metadata["warnings"] == record["warnings"]
        assert "resources/secrets/namespaces/team-a/app-conn.json" in members  # 'secret' excluded nothing
        assert not [m for m in members if m.startswith("resources/configmaps/")]  # 'configmaps' did
        described = story.reconcile("describe", "backup", "b1").stdout
        assert "Warnings:\n  excludedResources entry 'secret' matches no resource" in described


def multi_version(src: API) -> None:
    """A managed resource stored at v1beta1 of a CRD that also serves (and prefers) v1beta2."""
    src.establish(versions(crd("sns.aws.upbound.io", "topics", "Topic", "Cluster", "v1beta1", ["managed"]), "v1beta1", "v1beta2"))
    src.create("/apis/sns.aws.upbound.io/v1beta1/topics", {"metadata": {"name": "alerts"}, "spec": {"forProvider": {}}},
               {"conditions": READY})


def test_2_objects_are_read_at_the_storage_version_and_written_back_through_it(story, tmp_path):
    with planes() as (source, target):
        src, dst = API(source), API(target)
        crossplane_base(src)  # its XRD CRD: v1 storage, v2 preferred; the XRD has claimNames
        multi_version(src)
        (group,) = [g for g in src.get("/apis")["groups"] if g["name"] == "sns.aws.upbound.io"]
        assert group["preferredVersion"]["version"] == "v1beta2"  # discovery alone would read v1beta2
        record = back_up(story, source)
        metadata, _ = archive_metadata(story, record, tmp_path)
        assert metadata["versions"]["topics.sns.aws.upbound.io"] == {"apiVersion": "sns.aws.upbound.io/v1beta1",
                                                                     "chosen": "storage"}
        assert metadata["versions"]["compositeresourcedefinitions.apiextensions.crossplane.io"] == {
            "apiVersion": "apiextensions.crossplane.io/v1", "chosen": "storage"}
        assert metadata["versions"]["secrets"] == {"apiVersion": "v1", "chosen": "preferred"}
        with tarfile.open(tmp_path / "a.tar.gz") as tar:
            xrd = json.load(tar.extractfile(
                f"resources/compositeresourcedefinitions.apiextensions.crossplane.io/cluster/xclusters.{PLATFORM}.json"))
        assert xrd["apiVersion"] == "apiextensions.crossplane.io/v1" and xrd["spec"]["claimNames"]["kind"] == "Cluster"

        completed(story, restore(story, target))
        for path, api_version in (("/apis/sns.aws.upbound.io/v1beta2/topics/alerts", "sns.aws.upbound.io/v1beta1"),
                                  (f"/apis/apiextensions.crossplane.io/v2/compositeresourcedefinitions/xclusters.{PLATFORM}",
                                   "apiextensions.crossplane.io/v1")):
            written = [(f["manager"], f["apiVersion"]) for f in dst.get(path)["metadata"]["managedFields"]]
            assert written[0] == ("ctpbackup", api_version), written  # created through the archived version

    # a target that serves the resource only at another version: the object fails, naming both
    with planes() as (_, other):
        story.repo.write("dst2.yaml", RESTORED.format(name="dst2", source="b1"))
        story.connect("dst2", other)
        API(other).establish(versions(crd("sns.aws.upbound.io", "topics", "Topic", "Cluster", "v1beta2", ["managed"]),
                                      "v1beta2"))
        story.repo.commit("restore b1 into dst2")
        assert story.reconcile("apply", check=False).returncode == 1
        (record,) = [r for r in story.status()["restores"] if r["controlPlane"] == "dst2"]
        assert record["phase"] == "PartiallyFailed"
        assert record["counts"]["topics.sns.aws.upbound.io"] == {"restored": 0, "skipped": 0, "failed": 1}
        assert ("topics.sns.aws.upbound.io alerts: archived at sns.aws.upbound.io/v1beta1, which the control plane does "
                "not serve; it serves topics.sns.aws.upbound.io at sns.aws.upbound.io/v1beta2") in record["warnings"]


def webhook_converted(src: API, base: dict) -> None:
    """Two provider CRDs converted by the provider's webhook: instances.ec2 owned by the revision
    (controller) and the Provider, as a running install has it; securitygroups.ec2 by the revision
    alone (its Provider is found through the revision's owner). One object of each."""
    instance = owned_crd(real.instance_crd(), owner(base["revision"], True), owner(base["provider"]))
    groups = owned_crd(versions(crd(EC2, "securitygroups", "SecurityGroup", "Cluster", "v1beta1", ["managed"]),
                                "v1beta1", "v1beta2"), owner(base["revision"], True))
    groups["spec"]["conversion"] = copy.deepcopy(real.CONVERT_WEBHOOK)
    src.establish(instance, groups)
    src.create(f"/apis/{EC2}/v1beta1/instances", {"metadata": {"name": "bastion"}, "spec": {
        "forProvider": {"region": "eu-west-2", "cpuCoreCount": 2}}}, {"conditions": READY, "atProvider": {"id": "i-0a"}})
    src.create(f"/apis/{EC2}/v1beta1/securitygroups", {"metadata": {"name": "web"}, "spec": {
        "forProvider": {"region": "eu-west-2"}}}, {"conditions": READY, "atProvider": {"id": "sg-0b"}})


def provider_health(api: API, status: str) -> dict:
    """Install (or update) the target's own provider-aws-s3 with Healthy=`status`, as its package manager would."""
    path = "/apis/pkg.crossplane.io/v1/providers"
    if not any(c["metadata"]["name"] == "providers.pkg.crossplane.io"
               for c in api.items("/apis/apiextensions.k8s.io/v1/customresourcedefinitions")):
        api.establish(crd("pkg.crossplane.io", "providers", "Provider", "Cluster", "v1"))
    conditions = {"conditions": [
        {"type": "Installed", "status": "True", "reason": "ActivePackageRevision"},
        {"type": "Healthy", "status": status, "reason": "HealthyPackageRevision" if status == "True"
         else "UnhealthyPackageRevision"}]}
    if not api.items(path):
        return api.create(path, {"metadata": {"name": "provider-aws-s3"},
                                 "spec": {"package": "xpkg.upbound.io/upbound/provider-aws-s3:v1.20.0"}}, conditions)
    return api.call("PATCH", f"{path}/provider-aws-s3/status", {"status": conditions}, "application/merge-patch+json")


def test_2_objects_of_webhook_converted_crds_wait_until_their_provider_is_healthy(story):
    with planes() as (source, target):
        src, dst = API(source), API(target)
        webhook_converted(src, crossplane_base(src))
        # the target's provider is its own (installed by its platform, not restored): only this wait holds them
        back_up(story, source, "  excludedResources: [providers.pkg.crossplane.io]\n")
        provider_health(dst, "False")
        seen: dict[str, object] = {}

        def past_the_xrds() -> bool:
            try:
                return bool(dst.items("/apis/apiextensions.crossplane.io/v1/compositeresourcedefinitions"))
            except AssertionError:  # not served yet
                return False

        def turn_healthy() -> None:  # once the restore is past the XRDs, the last tier waits on the provider
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline and not past_the_xrds():
                time.sleep(0.05)
            time.sleep(1.0)
            seen["before"] = [o["metadata"]["name"] for path in (f"/apis/{EC2}/v1beta1/instances",
                                                                   f"/apis/{EC2}/v1beta1/securitygroups")
                              for o in dst.items(path)]
            seen["healthy"] = provider_health(dst, "True")

        flipper = threading.Thread(target=turn_healthy)
        flipper.start()
        try:
            record = completed(story, restore(story, target, "--restore-wait", "2m"))
        finally:
            flipper.join()
        assert seen["before"] == []  # nothing of them written while the provider was not Healthy
        assert record["counts"][f"instances.{EC2}"] == {"restored": 1, "skipped": 0, "failed": 0}
        assert record["counts"][f"securitygroups.{EC2}"] == {"restored": 1, "skipped": 0, "failed": 0}
        healthy_at = int(seen["healthy"]["metadata"]["resourceVersion"])  # resourceVersions grow across kinds
        for path in (f"/apis/{EC2}/v1beta2/instances/bastion", f"/apis/{EC2}/v1beta2/securitygroups/web"):
            obj = dst.get(path)
            assert obj["status"]["conditions"] == READY and int(obj["metadata"]["resourceVersion"]) > healthy_at

    # a provider that never turns Healthy: its objects fail with the reason, everything else is restored
    with planes() as (_, other):
        story.repo.write("dst2.yaml", RESTORED.format(name="dst2", source="b1"))
        story.connect("dst2", other)
        provider_health(API(other), "False")
        story.repo.commit("restore b1 into dst2")
        result = story.reconcile("apply", "--restore-wait", "2s", check=False)
        assert result.returncode == 1, result.stdout + result.stderr
        (record,) = [r for r in story.status()["restores"] if r["controlPlane"] == "dst2"]
        assert (record["phase"], record["finishedAt"]) == ("PartiallyFailed", None)
        assert record["counts"][f"instances.{EC2}"] == {"restored": 0, "skipped": 0, "failed": 1}
        assert record["counts"][f"securitygroups.{EC2}"] == {"restored": 0, "skipped": 0, "failed": 1}
        assert record["counts"][f"buckets.{S3}"] == {"restored": 1, "skipped": 0, "failed": 0}
        for resource, name, crd_name in (("instances", "bastion", f"instances.{EC2}"),
                                         ("securitygroups", "web", f"securitygroups.{EC2}")):
            assert (f"{resource}.{EC2} {name}: its CRD {crd_name} converts through a webhook of Provider "
                    "provider-aws-s3, which was not Healthy within 2s (Healthy=False UnhealthyPackageRevision); "
                    "not written") in record["warnings"]
        assert API(other).items(f"/apis/{EC2}/v1beta1/instances") == []


# -- everything at once --------------------------------------------------------------------------------------

SKIPPED = {"events", "events.events.k8s.io", "leases.coordination.k8s.io", "endpoints", "pods", "replicasets.apps",
           "controllerrevisions.apps", "nodes", "componentstatuses", "endpointslices.discovery.k8s.io"}


def listable(api: API) -> dict[str, str]:
    """resource key -> list path of every listable type (at the first of its group's versions, in
    discovery's order, that serves it: a group's preferred version need not serve every resource)."""
    out: dict[str, str] = {}
    paths = ["/api/v1"] + [f"/apis/{g['name']}/{v['version']}" for g in api.get("/apis")["groups"] for v in g["versions"]]
    for group_path in paths:
        group = "" if group_path == "/api/v1" else group_path.split("/")[2]
        for r in api.get(group_path)["resources"]:
            if "/" not in r["name"] and "list" in r["verbs"] and "create" in r["verbs"]:
                out.setdefault(f"{r['name']}.{group}" if group else r["name"], f"{group_path}/{r['name']}")
    return out


def comparable(obj: dict, key: str, uid_to_owner: dict[str, tuple[str, str]], custom: set[str]) -> dict:
    obj = copy.deepcopy(obj)
    clean(key, obj, key in custom)
    meta = obj.pop("metadata")
    obj.pop("apiVersion", None)
    return {"body": obj, "labels": meta.get("labels"), "annotations": meta.get("annotations"),
            "finalizers": meta.get("finalizers"),
            "owners": [(r["kind"], r["name"], uid_to_owner.get(r["uid"]), r.get("controller")) for r in meta.get("ownerReferences") or ()]}


def test_round_trip_of_a_crossplane_control_plane_has_an_empty_difference(story):
    with planes() as (source, target):
        src, dst = API(source), API(target)
        # a running Crossplane 2 install's shapes (kubeemu.crossplane): provider CRDs owned by their
        # ProviderRevision and Provider, XR/claim CRDs owned by their XRD, v1 XRDs with claims and a v2
        # XRD, the XRD CRD at v1 (storage) and v2 (preferred), a webhook-converted multi-version provider
        # CRD, namespaced and cluster-scoped managed resources, claims and XRs with connection Secrets,
        # ProviderConfigUsages, `crossplane:` ClusterRoles; then every family of the faults above
        seeded = seed_crossplane(source, 200)
        for shape in (rbac_names, services, status_without_subresource, pause_annotations, being_deleted, token_secrets,
                      pull_secrets, multi_version):
            shape(src)
        back_up(story, source)
        completed(story, restore(story, target))
        revision_owned = set(seeded.revision_owned)  # left to the package manager: never backed up
        assert len(revision_owned) == 2

        types = listable(src)
        crds = {f"{c['spec']['names']['plural']}.{c['spec']['group']}"
                for c in src.items("/apis/apiextensions.k8s.io/v1/customresourcedefinitions")}
        custom = {k for k in types if is_custom(k, crds)}

        def by_uid(api: API) -> dict[str, tuple[str, str]]:
            return {o["metadata"]["uid"]: (k, o["metadata"].get("namespace", "") + "/" + o["metadata"]["name"])
                    for k, p in types.items() if k not in SKIPPED for o in api.items(p)}

        src_owner, dst_owner = by_uid(src), by_uid(dst)
        difference = []
        compared: Counter = Counter()
        for key, path in sorted(types.items()):
            if key in SKIPPED:
                continue
            after = {(o["metadata"].get("namespace"), o["metadata"]["name"]): o for o in dst.items(path)}
            for obj in src.items(path):
                meta = obj["metadata"]
                ident = (meta.get("namespace"), meta["name"])
                made = made_by_control_plane(key, meta.get("namespace") or "", meta["name"])
                if made is not None and not made.fields:
                    continue  # the target's own copy (kube-root-ca.crt)
                if meta.get("deletionTimestamp") or meta.get("namespace") == "team-gone" or \
                        "/".join([key, *filter(None, ident)]) in revision_owned:
                    assert ident not in after, (key, ident)  # being deleted, or the package manager's: left out
                    continue
                if ident not in after:
                    difference.append((key, ident, "missing"))
                    continue
                compared[key] += 1
                want = comparable(obj, key, src_owner, custom)
                got = comparable(after[ident], key, dst_owner, custom)
                if key == "customresourcedefinitions.apiextensions.k8s.io":
                    want["body"].pop("status", None)
                    got["body"].pop("status", None)
                if got != want:
                    difference.append((key, ident, {k: (want[k], got[k]) for k in want if want[k] != got[k]}))
        assert difference == []
        for key, count in seeded.counts.items():  # every seeded object was compared (less what is left out)
            left_out = sum(1 for owned in revision_owned if owned.startswith(f"{key}/"))
            assert compared[key] >= count - left_out, key
        assert compared["customresourcedefinitions.apiextensions.k8s.io"] == seeded.counts[
            "customresourcedefinitions.apiextensions.k8s.io"] + 2  # settings.example.org, topics.sns
        assert compared["compositeresourcedefinitions.apiextensions.crossplane.io"] == 3
        assert compared[f"instances.{EC2}"] == seeded.counts[f"instances.{EC2}"] > 0
