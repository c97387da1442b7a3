"""The seed's scenario through Git commits and `reconcile.py apply` only: back up my-awesome-ctp,
lose it, restore it as my-awesome-restored-ctp, and find everything there."""

from __future__ import annotations

import json
import subprocess
import tarfile

from kubeemu import EmulatorProcess, EmulatorServer, bootstrap
from kubeemu.fixtures import seed_crossplane
from tests.fixtures.story import BACKUP, CONTROL_PLANE, RESTORED


def list_all(cp, path: str) -> list[dict]:
    import urllib.request

    request = urllib.request.Request(cp.url + path, headers={"Authorization": f"Bearer {cp.token}"})
    with urllib.request.urlopen(request, timeout=30, context=cp.ssl_context()) as response:  # noqa: S310 - loopback emulator
        return json.loads(response.read())["items"]


def comparable(obj: dict) -> dict:
    meta = obj["metadata"]
    return {"spec": obj.get("spec"), "data": obj.get("data"), "status": obj.get("status"),
            "labels": meta.get("labels"), "annotations": meta.get("annotations"), "finalizers": meta.get("finalizers")}


def test_backup_then_restore_into_a_new_control_plane(story, tmp_path):
    source = EmulatorProcess().start()
    try:
        seeded = seed_crossplane(source, 300)
        before = {path: list_all(source, path) for path in (
            "/api/v1/secrets", "/apis/s3.aws.upbound.io/v1beta1/buckets", "/apis/aws.platformref.upbound.io/v1alpha1/xclusters",
            "/apis/aws.platformref.upbound.io/v1alpha1/clusters", "/apis/pkg.crossplane.io/v1/providers")}
        story.connect("my-awesome-ctp", source)
        story.repo.write("controlplanes/my-awesome-ctp.yaml", CONTROL_PLANE.format(name="my-awesome-ctp"))
        story.repo.write("backups/restore-me.yaml", BACKUP.format(name="restore-me", control_plane="my-awesome-ctp"))
        story.repo.commit("back up my-awesome-ctp")

        applied = story.reconcile("apply")
        assert "+ backup default/restore-me ← my-awesome-ctp" in applied.stdout
        record = story.backup("restore-me")
        assert record["phase"] == "Completed" and record["sha256"] and record["size"] > 0
        expected = dict(seeded.counts)
        for owned in seeded.revision_owned:  # owned by the ProviderRevision: recreated by the package manager
            expected[owned.split("/")[0]] -= 1
        assert sorted(owned.split("/")[0] for owned in seeded.revision_owned) == [
            "clusterroles.rbac.authorization.k8s.io", "deployments.apps"]
        expected = {key: count for key, count in expected.items() if count}
        expected["namespaces"] += 4  # default, kube-system, kube-public, kube-node-lease
        expected["serviceaccounts"] += expected["namespaces"]  # each namespace's default ServiceAccount
        for key, count in bootstrap.counts().items():  # system: RBAC, flow control, APIServices, `kubernetes` Service
            expected[key] = expected.get(key, 0) + count
        assert record["counts"] == expected

        # the archive, as a person with tar sees it
        archive = tmp_path / "archive.tar.gz"
        archive.write_bytes(story.bucket.read(record["archiveKey"])[0])
        assert record["archiveKey"] == "prod/cluster1/default/my-awesome-ctp/backups/restore-me/archive.tar.gz"
        listing = subprocess.run(["tar", "-tzf", str(archive)], capture_output=True, text=True, check=True).stdout.split()
        assert "resources/secrets/namespaces/default/super-secret-secret.json" in listing
        assert "metadata.json" in listing and "uids.jsonl" in listing
        assert not any("kube-root-ca.crt" in p or "deployments.apps" in p for p in listing)
        with tarfile.open(archive) as tar:
            mr = json.load(tar.extractfile("resources/buckets.s3.aws.upbound.io/cluster/app-000000-buckets-0.json"))
            meta = json.load(tar.extractfile("metadata.json"))
        assert mr["metadata"]["annotations"]["crossplane.io/external-name"] == "app-000000-buckets-0-ext"
        assert mr["status"]["conditions"][0]["type"] == "Ready"
        assert "uid" not in mr["metadata"] and "resourceVersion" not in mr["metadata"]
        assert meta["formatVersion"] == 1 and meta["counts"] == expected

        assert "No changes" in story.reconcile("apply").stdout  # nothing more to do
    finally:
        source.kill()  # the control plane is lost

    target = EmulatorServer(establish_delay=0.05).start()
    try:
        story.connect("my-awesome-restored-ctp", target)
        story.repo.write("controlplanes/my-awesome-restored-ctp.yaml",
                         RESTORED.format(name="my-awesome-restored-ctp", source="restore-me"))
        story.repo.commit("restore my-awesome-ctp as my-awesome-restored-ctp")
        restored = story.reconcile("apply")
        assert "~ restore default/my-awesome-restored-ctp ← restore-me" in restored.stdout
        status = story.status()
        (restore,) = status["restores"]
        assert restore["phase"] == "Completed" and restore["finishedAt"]
        assert sum(c["failed"] for c in restore["counts"].values()) == 0

        secret = next(s for s in list_all(target, "/api/v1/secrets") if s["metadata"]["name"] == "super-secret-secret")
        assert secret["data"] == {"password": "c3VwZXJzZWNyZXQ="}
        for path, objects in before.items():
            after = {(o["metadata"].get("namespace"), o["metadata"]["name"]): o for o in list_all(target, path)}
            for obj in objects:
                key = (obj["metadata"].get("namespace"), obj["metadata"]["name"])
                if obj["metadata"]["name"] == "kube-root-ca.crt":
                    continue
                assert key in after, f"{path} {key} not restored"
                assert comparable(after[key]) == comparable(obj), f"{path} {key} differs"
        # owner references point at the new owners
        xrs = {o["metadata"]["name"]: o["metadata"]["uid"] for o in list_all(target, "/apis/aws.platformref.upbound.io/v1alpha1/xclusters")}
        for mr in list_all(target, "/apis/s3.aws.upbound.io/v1beta1/buckets"):
            (ref,) = mr["metadata"]["ownerReferences"]
            if ref["kind"] == "XCluster":
                assert ref["uid"] == xrs[ref["name"]]
        # nothing left paused that was not paused before
        paused = [f"{o['metadata']['name']}" for path in before for o in list_all(target, path)
                  if (o["metadata"].get("annotations") or {}).get("crossplane.io/paused") == "true"]
        assert paused == ["app-000000-buckets-0"]

        again = story.reconcile("apply")
        assert "~ restore" not in again.stdout and "No changes" in again.stdout  # restored exactly once
    finally:
        target.stop()
