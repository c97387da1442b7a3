"""Every backup is verified offline after it completes (issue 21): a good Crossplane-shaped backup is
recorded Verified=True; `download` gives the control plane's objects as a plain tar and refuses a
tampered archive, leaving no file behind."""

from __future__ import annotations

import hashlib
import json
import subprocess
import tarfile

from ctpbackup.engines.archive import clean_object, object_path
from kubeemu import EmulatorServer
from kubeemu.fixtures import seed_crossplane
from tests.e2e.test_encryption import KEY, encrypt_config, get, write_key
from tests.fixtures.story import BACKUP, CONTROL_PLANE


def verified(record: dict) -> dict:
    return next(c for c in record["conditions"] if c["type"] == "Verified")


def test_a_crossplane_backup_is_verified_after_it_completes(story):
    source = EmulatorServer(establish_delay=0.05).start()
    try:
        seed_crossplane(source, 120)
        story.connect("src", source)
        story.repo.write("src.yaml", CONTROL_PLANE.format(name="src"))
        story.repo.write("b.yaml", BACKUP.format(name="b1", control_plane="src"))
        story.repo.commit("backup")
        result = story.reconcile("apply")
        record = story.backup("b1")
        assert record["phase"] == "Completed"
        condition = verified(record)
        total = sum(record["counts"].values())
        assert (condition["status"], condition["reason"]) == ("True", "BackupVerified"), condition["message"]
        check = record["verification"]
        assert check["objects"] == total and check["failed"] == 0 and check["failures"] == {}
        assert check["created"] + check["skipped"] + check["merged"] == total
        assert condition["message"] == (f"{total} objects: {check['created']} would be created, {check['skipped']} "
                                        f"skipped by policy, {check['merged']} merged, 0 would fail")
        events = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
        (event,) = [e for e in events if e.get("event") == "verified"]
        assert (event["namespace"], event["name"], event["verified"], event["reason"]) == (
            "default", "b1", True, "BackupVerified")
        assert event["message"] == condition["message"]

        # on demand, the same outcome, and `describe` shows the condition
        again = story.reconcile("verify", "backup", "b1")
        assert again.stdout.splitlines()[0] == "Backup default/b1: Verified=True (BackupVerified)"
        described = story.reconcile("describe", "backup", "b1").stdout
        assert "  Verified=True  BackupVerified  " in described
    finally:
        source.stop()


def live_objects(cp, versions: dict[str, dict]) -> dict[str, dict]:
    """Archive member path -> the object as the backup stores it, for every object the control plane
    serves of the archived resources (read at the archived version)."""
    out = {}
    for resource, entry in versions.items():
        plural = resource.partition(".")[0]
        api_version = entry["apiVersion"]
        base = f"/apis/{api_version}" if "/" in api_version else f"/api/{api_version}"
        for item in get(cp, f"{base}/{plural}")["items"]:
            cleaned, _ = clean_object(item)
            cleaned.setdefault("apiVersion", api_version)
            meta = cleaned["metadata"]
            out[object_path(resource, meta.get("namespace"), meta["name"])] = cleaned
    return out


def test_download_of_an_encrypted_backup_is_a_plain_tar_of_the_control_planes_objects(story, tmp_path):
    source = EmulatorServer(establish_delay=0.05).start()
    try:
        seed_crossplane(source, 40, real_install=False)
        write_key(story, KEY)
        encrypt_config(story)
        story.connect("src", source)
        story.repo.write("src.yaml", CONTROL_PLANE.format(name="src"))
        story.repo.write("b.yaml", BACKUP.format(name="b1", control_plane="src"))
        story.repo.commit("encrypted backups")
        story.reconcile("apply")
        record = story.backup("b1")
        assert record["encrypted"] is True and verified(record)["status"] == "True"

        out = tmp_path / "b1.tar.gz"
        result = story.reconcile("download", "backup", "b1", "-o", str(out))
        assert result.stdout.startswith(f"Backup default/b1: {out.stat().st_size} bytes written to {out}")
        listed = subprocess.run(["tar", "-tzf", str(out)], capture_output=True, text=True, check=True).stdout.split()
        objects = {m for m in listed if m.startswith("resources/")}
        assert set(listed) - objects == {"uids.jsonl", "metadata.json"}
        assert len(objects) == sum(record["counts"].values())
        with tarfile.open(out) as tar:
            metadata = json.loads(tar.extractfile("metadata.json").read())
            live = live_objects(source, metadata["versions"])
            assert objects <= set(live), sorted(objects - set(live))[:5]
            for member in sorted(objects):  # each member is the control plane's object, byte for byte as JSON
                body = json.loads(tar.extractfile(member).read())
                assert {**body, "kind": live[member].get("kind", body["kind"])} == {**live[member], "kind": body["kind"]}
            secrets = [m for m in objects if m.startswith("resources/secrets/")]
            assert secrets and all(json.loads(tar.extractfile(m).read())["kind"] == "Secret" for m in secrets)
        left_out = sorted(set(live) - objects)  # only what the backup leaves out by rule
        revision_owned = [p for p in left_out if any(r["apiVersion"].startswith("pkg.crossplane.io/") and
                                                     r["kind"].endswith("Revision")
                                                     for r in live[p]["metadata"].get("ownerReferences", ()))]
        made = [p for p in left_out if p.endswith("/kube-root-ca.crt.json")]
        assert sorted(revision_owned + made) == left_out and made and revision_owned

        # one changed byte in the bucket: refused in one line, no file written
        data = bytearray(story.bucket.read(record["archiveKey"])[0])
        data[len(data) // 2] ^= 0x01
        story.bucket.put(record["archiveKey"], bytes(data))
        tampered = tmp_path / "tampered.tar.gz"
        refused = story.reconcile("download", "backup", "b1", "-o", str(tampered), check=False)
        assert refused.returncode == 1 and "Traceback" not in refused.stderr
        assert json.loads(refused.stderr.strip().splitlines()[-1])["message"] == (
            "error: backup default/b1 not downloaded: IntegrityCheckFailed: archive of Backup b1 does not match the "
            "sha256 recorded in the index")
        assert not tampered.exists()
        assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".ctpbackup-download-")] == []
        # verification on demand records the damage
        failed = story.reconcile("verify", "backup", "b1", check=False)
        assert failed.returncode == 1
        assert failed.stdout.splitlines()[0] == "Backup default/b1: Verified=False (IntegrityCheckFailed)"
        assert verified(story.backup("b1"))["reason"] == "IntegrityCheckFailed"
        assert story.backup("b1")["phase"] == "Completed", "verification never changes a backup's phase"
    finally:
        source.stop()


def test_a_backup_with_every_known_bad_shape_is_recorded_verified_false(story):
    """An archive holding each known-bad shape, recorded Completed as a past run would have: `verify
    backup` records Verified=False with every reason; status, describe and the plan show it; the
    backup stays Completed and is never taken again."""
    from datetime import UTC, datetime, timedelta

    from ctpbackup.store.index import BucketIndex
    from ctpbackup.store.records import BackupRecord, Phase
    from tests.e2e.test_integrity import LAYOUT
    from tests.engines.test_verify import GOOD, WIDGETS, build, config_map, owner, widget, xrd

    objects = [o for o in GOOD if o["metadata"]["name"] != WIDGETS] + [  # the Widget CRD missing
        xrd("xdbs.example.org", claimNames={"kind": "DB", "plural": "dbs"}),  # a v2 XRD with claimNames
        config_map("orphan", owners=[owner("Widget", "gone", "uid-gone")])]  # an ownerReference to nothing
    when = datetime.now(UTC) - timedelta(hours=1)
    archives = {
        "bad": build(objects, raw=[("configmaps", "resources/configmaps/namespaces/team-a/x y.json",
                                    config_map("x y"))], backup="bad"),
        # a custom resource violating a CEL rule of its (archived) CRD
        "cel": build([*GOOD, widget("w9", replicas=5, maximum=2)], backup="cel"),
    }
    for name, archive in archives.items():
        record = BackupRecord("default", name, "ctp1", "default", Phase.COMPLETED, created_at=when, started_at=when,
                              completed_at=when, size=len(archive), sha256=hashlib.sha256(archive).hexdigest(),
                              archive_format_version=1, archive_key=LAYOUT.archive_key("default", "ctp1", name))
        story.bucket.put(record.archive_key, archive)
        BucketIndex(story.bucket, LAYOUT).update_backup("default", "ctp1", name, lambda _old, r=record: r)
    story.repo.write("ctp1.yaml", CONTROL_PLANE.format(name="ctp1"))
    story.repo.write("b.yaml", BACKUP.format(name="bad", control_plane="ctp1"))
    story.repo.commit("the backups")

    result = story.reconcile("verify", "backup", "bad", check=False)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    lines = result.stdout.splitlines()
    assert lines[:6] == [
        "Backup default/bad: Verified=False (UnstorableName)",
        f"  {len(objects) + 1} objects: {len(objects) - 5} would be created, 1 skipped by policy, 1 merged, "
        "4 would fail",
        "  CRDMissing: 1", "  ObjectInvalid: 1", "  OwnerMissing: 1", "  UnstorableName: 1"]
    assert sorted(lines[6:]) == [
        "  - CRDMissing: widgets.example.org team-a/w1: its CustomResourceDefinition widgets.example.org is not in "
        "the archive",
        '  - ObjectInvalid: compositeresourcedefinitions.apiextensions.crossplane.io xdbs.example.org: '
        'CompositeResourceDefinition.apiextensions.crossplane.io "xdbs.example.org" is invalid: spec: Invalid value: '
        '"object": Claims aren\'t supported in apiextensions.crossplane.io/v2',
        "  - OwnerMissing: configmaps team-a/orphan: owner Widget 'gone' (uid uid-gone) is not in the archive and no "
        "control plane makes it",
        "  - UnstorableName: 'resources/configmaps/namespaces/team-a/x y.json': a member name the archive format "
        "cannot hold (written raw by an older release?); a restore refuses the whole archive"]
    record = story.backup("bad")
    condition = verified(record)
    assert (record["phase"], condition["status"], condition["reason"]) == ("Completed", "False", "UnstorableName")
    for reason in ("UnstorableName (1)", "CRDMissing (1)", "ObjectInvalid (1)", "OwnerMissing (1)"):
        assert reason in condition["message"]
    assert record["verification"]["failures"] == {"CRDMissing": 1, "ObjectInvalid": 1, "OwnerMissing": 1,
                                                  "UnstorableName": 1}
    assert any("Claims aren't supported in apiextensions.crossplane.io/v2" in e for e in record["verification"]["examples"])

    cel_result = story.reconcile("verify", "backup", "cel", check=False)
    assert cel_result.returncode == 1
    assert cel_result.stdout.splitlines()[0] == "Backup default/cel: Verified=False (ObjectInvalid)"
    assert "replicas must not exceed maxReplicas" in verified(story.backup("cel"))["message"]

    table = story.reconcile("status").stdout
    row = next(line for line in table.splitlines() if line.startswith("default     bad "))
    assert row.split()[-2:] == ["False", "(UnstorableName)"]
    assert "Verified=False  UnstorableName" in story.reconcile("describe", "backup", "bad").stdout

    plan = story.reconcile("plan", "-o", "text", check=False)
    assert "  ! failed default/bad: failed verification: UnstorableName: " in plan.stdout
    assert "Completed, but a restore of it would fail; never taken again automatically" in plan.stdout
    assert "+ backup default/bad" not in plan.stdout

