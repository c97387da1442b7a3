"""Client-side encryption (an extension): with `objectStorage.encryption` the bucket holds only
ciphertext, a restore with the key brings the Secret back, and a missing or wrong key fails the
restore with a clear reason and writes nothing. The key itself never appears in any output."""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request

from ctpbackup.engines.encryption import Keyring, parse_key
from kubeemu import EmulatorServer
from kubeemu.fixtures import seed_crossplane
from tests.fixtures.story import BACKUP, CONTROL_PLANE, RESTORED

KEY = base64.b64encode(b"K" * 16 + b"NOLEAK-ENC-KEY16").decode()
ENCRYPTION = "    encryption:\n      secretRef: {name: backup-key}\n"


def get(cp, path: str) -> dict:
    request = urllib.request.Request(cp.url + path, headers={"Authorization": f"Bearer {cp.token}"})
    with urllib.request.urlopen(request, timeout=30, context=cp.ssl_context()) as response:  # noqa: S310 - loopback emulator
        return json.loads(response.read())


def write_key(story, value: str) -> None:
    folder = story.secrets / "default" / "backup-key"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "key").write_text(value + "\n")


def encrypt_config(story) -> None:
    path = story.repo.path / "config" / "sharedbackupconfig.yaml"
    story.repo.write("config/sharedbackupconfig.yaml",
                     path.read_text().replace("    credentials:\n", ENCRYPTION + "    credentials:\n"))


def test_encrypted_backup_restores_with_the_key_and_only_with_it(story):
    source = EmulatorServer(establish_delay=0.05).start()
    target = EmulatorServer(establish_delay=0.05).start()
    outputs: list[str] = []

    def run(*args: str, check: bool = True):
        result = story.reconcile(*args, check=check)
        outputs.extend([result.stdout, result.stderr])
        return result

    try:
        seed_crossplane(source, 60)
        write_key(story, KEY)
        encrypt_config(story)
        story.connect("src", source)
        story.repo.write("src.yaml", CONTROL_PLANE.format(name="src"))
        story.repo.write("b.yaml", BACKUP.format(name="b1", control_plane="src"))
        story.repo.commit("encrypted backups")
        run("apply")
        record = story.backup("b1")
        assert record["phase"] == "Completed"
        stored = story.bucket.read(record["archiveKey"])[0]
        assert stored.startswith(b"CTPBENC2"), "the bucket must hold the encrypted stream"
        assert not stored[8:].startswith(b"\x1f\x8b") and b"super-secret-secret" not in stored
        assert stored[8:16] == bytes.fromhex(Keyring.of([parse_key(KEY.encode())]).ids[0]), "it names its key"

        # a wrong key: the restore fails after the integrity check, before writing anything, naming the
        # id of the key the archive needs
        write_key(story, base64.b64encode(bytes(32)).decode())
        before = target.store.rv
        story.connect("dst", target)
        story.repo.write("dst.yaml", RESTORED.format(name="dst", source="b1"))
        story.repo.commit("restore")
        assert run("apply", check=False).returncode == 1
        (restore,) = story.status()["restores"]
        assert (restore["phase"], restore["conditions"][-1]["reason"]) == ("Failed", "EncryptionKeyMissing")
        assert "not among the config's keys" in restore["conditions"][-1]["message"]
        assert target.store.rv == before

        # the right key again: the next run restores everything, the seed's Secret included
        write_key(story, KEY)
        run("apply")
        (restore,) = story.status()["restores"]
        assert restore["phase"] == "Completed"
        secret = get(target, "/api/v1/namespaces/default/secrets/super-secret-secret")
        assert secret["data"]["password"] == "c3VwZXJzZWNyZXQ="
    finally:
        source.stop()
        target.stop()
    assert not [out for out in outputs if KEY in out or "NOLEAK-ENC-KEY16" in out]


def test_a_missing_or_malformed_key_fails_apply_closed_and_plans_need_no_key(story, tmp_path):
    """Plans (and the pull-request workflow) never need the key; apply refuses to start without a
    usable one, naming the Secret and never echoing its value."""
    source = EmulatorServer(establish_delay=0.05).start()
    try:
        encrypt_config(story)
        story.connect("src", source)
        story.repo.write("src.yaml", CONTROL_PLANE.format(name="src"))
        story.repo.write("b.yaml", BACKUP.format(name="b1", control_plane="src"))
        story.repo.commit("encryption, key Secret not created yet")
        assert "+ backup" in story.reconcile("plan").stdout

        result = story.reconcile("apply", check=False)
        assert result.returncode == 1 and "backup-key" in result.stderr + result.stdout

        write_key(story, "NOLEAK-not-a-key")
        result = story.reconcile("apply", check=False)
        assert result.returncode == 1 and "32 bytes" in result.stderr + result.stdout
        assert "NOLEAK-not-a-key" not in result.stderr + result.stdout
        assert story.status()["backups"] == [], "nothing may be taken without the key"
    finally:
        source.stop()


# -- issue 17, item 9: authenticated records, rotation ----------------------------------------------

KEY2 = base64.b64encode(b"L" * 16 + b"NOLEAK-ENC-KEY2!").decode()
PREFIX = "prod/cluster1"


def set_keys(story, *names: str, allow: tuple[str, ...] = ()) -> None:
    """The config's encryption keys (Secret names, first encrypts) and allowUnauthenticatedBackups."""
    path = story.repo.path / "config" / "sharedbackupconfig.yaml"
    text = path.read_text()
    if "    encryption:\n" in text:
        text = text[:text.index("    encryption:\n")] + text[text.index("    credentials:\n"):]
    refs = ", ".join(f"{{name: {n}}}" for n in names)
    block = f"    encryption:\n      secretRefs: [{refs}]\n"
    if allow:
        block += f"      allowUnauthenticatedBackups: [{', '.join(allow)}]\n"
    story.repo.write("config/sharedbackupconfig.yaml", text.replace("    credentials:\n", block + "    credentials:\n"))


def write_named_key(story, name: str, value: str) -> None:
    folder = story.secrets / "default" / name
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "key").write_text(value + "\n")


def edit_record(story, name: str, change) -> None:
    """What someone with write access to the bucket can do: rewrite a record (shard and record.json)."""
    from ctpbackup.store.index import BucketIndex
    from ctpbackup.store.layout import BucketLayout

    BucketIndex(story.bucket, BucketLayout(PREFIX), config_name="default").update_backup(
        "default", "src", name, lambda old: change(old))


def planted_archive() -> bytes:
    """A plaintext archive granting cluster-admin, shaped like a real backup of src."""
    import io

    from ctpbackup.engines import archive

    sink = io.BytesIO()
    writer = archive.ArchiveWriter(sink)
    writer.add_json(archive.object_path("clusterrolebindings.rbac.authorization.k8s.io", None, "pwned"), {
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": {"name": "pwned"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
        "subjects": [{"kind": "User", "name": "mallory", "apiGroup": "rbac.authorization.k8s.io"}]})
    writer.add_json(archive.METADATA, {"formatVersion": 1, "controlPlane": {"namespace": "default", "name": "src"},
                                       "backup": {"namespace": "default", "name": "b1"}, "totalObjects": 1,
                                       "counts": {"clusterrolebindings.rbac.authorization.k8s.io": 1}})
    writer.close()
    return sink.getvalue()


def exists(cp, path: str) -> bool:
    try:
        get(cp, path)
        return True
    except urllib.error.HTTPError as err:
        assert err.code == 404
        return False


def test_a_planted_plaintext_archive_or_an_edited_record_is_refused(story):
    """With a key configured, whoever can write to the bucket cannot get a restore to apply their
    archive: an edited record fails its MAC, `encrypted: false` is refused, a stripped MAC does not
    help; only naming the backup in allowUnauthenticatedBackups lets an unencrypted one through."""
    import dataclasses
    import hashlib

    source = EmulatorServer(establish_delay=0.05).start()
    targets = {f"dst{i}": EmulatorServer(establish_delay=0.05).start() for i in range(1, 5)}
    try:
        seed_crossplane(source, 20)
        write_named_key(story, "backup-key", KEY)
        set_keys(story, "backup-key")
        story.connect("src", source)
        story.repo.write("src.yaml", CONTROL_PLANE.format(name="src"))
        for i in range(1, 5):
            story.repo.write(f"b{i}.yaml", BACKUP.format(name=f"b{i}", control_plane="src"))
        story.repo.commit("four encrypted backups")
        story.reconcile("apply")
        assert all(story.backup(f"b{i}")["mac"].startswith("v1:") for i in range(1, 5))

        planted = planted_archive()
        size, sha = len(planted), hashlib.sha256(planted).hexdigest()
        for name in ("b1", "b2", "b3"):
            story.bucket.put(story.backup(name)["archiveKey"], planted)
        # b1: the issue's attack, `encrypted: false` with the planted archive's size and sha256
        edit_record(story, "b1", lambda r: dataclasses.replace(r, encrypted=False, size=size, sha256=sha))
        # b2: still "encrypted", size and sha256 edited, MAC kept
        edit_record(story, "b2", lambda r: dataclasses.replace(r, size=size, sha256=sha))
        # b3: the same with the MAC removed (as if an earlier release had written it)
        edit_record(story, "b3", lambda r: dataclasses.replace(r, size=size, sha256=sha, mac=""))
        # b4: its real archive, its MAC removed and its dates moved
        edit_record(story, "b4", lambda r: dataclasses.replace(
            r, mac="", completed_at=r.completed_at.replace(year=2031)))
        before = {name: cp.store.rv for name, cp in targets.items()}
        for i, (name, cp) in enumerate(targets.items(), start=1):
            story.connect(name, cp)
            story.repo.write(f"{name}.yaml", RESTORED.format(name=name, source=f"b{i}"))
        story.repo.commit("restore from the tampered records")
        result = story.reconcile("apply", check=False)
        assert result.returncode == 1
        restores = {r["controlPlane"]: r for r in story.status()["restores"]}
        reasons = {name: (r["phase"], r["conditions"][-1]["reason"]) for name, r in restores.items()}
        assert reasons == {"dst1": ("Failed", "ArchiveNotEncrypted"), "dst2": ("Failed", "RecordNotAuthenticated"),
                           "dst3": ("Failed", "DecryptionFailed"), "dst4": ("Failed", "RecordNotAuthenticated")}
        assert "Backup default/b1 is not encrypted although its config has a key" in \
            restores["dst1"]["conditions"][-1]["message"]
        assert "it was edited" in restores["dst2"]["conditions"][-1]["message"]
        assert "not an encrypted archive" in restores["dst3"]["conditions"][-1]["message"]
        assert "its record carries no authentication code" in restores["dst4"]["conditions"][-1]["message"]
        assert {name: cp.store.rv for name, cp in targets.items()} == before, "nothing may be written"
        assert not exists(targets["dst1"], "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/pwned")

        # the operator names b1 explicitly: then (and only for b1) the unencrypted archive restores
        set_keys(story, "backup-key", allow=("b1",))
        story.repo.commit("trust b1")
        story.reconcile("apply", check=False)
        restores = {r["controlPlane"]: r for r in story.status()["restores"]}
        assert restores["dst1"]["phase"] == "Completed"
        assert exists(targets["dst1"], "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/pwned")
        assert [restores[f"dst{i}"]["phase"] for i in (2, 3, 4)] == ["Failed"] * 3
    finally:
        source.stop()
        for cp in targets.values():
            cp.stop()


def test_keys_rotate_new_backups_use_the_first_old_ones_restore_until_their_key_is_removed(story):
    source = EmulatorServer(establish_delay=0.05).start()
    targets = {name: EmulatorServer(establish_delay=0.05).start() for name in ("dst1", "dst2", "dst3")}
    k1, k2 = (Keyring.of([parse_key(k.encode())]).ids[0] for k in (KEY, KEY2))
    outputs: list[str] = []

    def apply(check: bool = True) -> None:
        result = story.reconcile("apply", check=check)
        outputs.extend([result.stdout, result.stderr])

    def restore(name: str, source_backup: str) -> dict:
        story.connect(name, targets[name])
        story.repo.write(f"{name}.yaml", RESTORED.format(name=name, source=source_backup))
        story.repo.commit(f"restore {source_backup} into {name}")
        apply(check=False)
        return next(r for r in story.status()["restores"] if r["controlPlane"] == name)

    try:
        seed_crossplane(source, 20)
        write_named_key(story, "key-1", KEY)
        write_named_key(story, "key-2", KEY2)
        set_keys(story, "key-1")
        story.connect("src", source)
        story.repo.write("src.yaml", CONTROL_PLANE.format(name="src"))
        story.repo.write("b1.yaml", BACKUP.format(name="b1", control_plane="src"))
        story.repo.commit("backups under key 1")
        apply()
        assert story.bucket.read(story.backup("b1")["archiveKey"])[0][8:16].hex() == k1

        set_keys(story, "key-2", "key-1")  # rotation: the new key first, the old one kept
        story.repo.write("b2.yaml", BACKUP.format(name="b2", control_plane="src"))
        story.repo.commit("key 2 first")
        apply()
        b2 = story.backup("b2")
        assert story.bucket.read(b2["archiveKey"])[0][8:16].hex() == k2
        assert b2["mac"].startswith(f"v1:{k2}:")
        assert restore("dst1", "b1")["phase"] == "Completed", "an old backup restores with the old key second"
        assert exists(targets["dst1"], "/api/v1/namespaces/default/secrets/super-secret-secret")

        set_keys(story, "key-2")  # key 1 removed: b1 can no longer be read, with a clear reason
        story.repo.commit("key 1 removed")
        before = targets["dst2"].store.rv
        failed = restore("dst2", "b1")
        assert (failed["phase"], failed["conditions"][-1]["reason"]) == ("Failed", "EncryptionKeyMissing")
        assert f"key id {k1}, which is not among the config's keys ({k2})" in failed["conditions"][-1]["message"]
        assert targets["dst2"].store.rv == before
        assert restore("dst3", "b2")["phase"] == "Completed"
    finally:
        source.stop()
        for cp in targets.values():
            cp.stop()
    assert not [out for out in outputs if KEY in out or KEY2 in out or "NOLEAK-ENC-KEY" in out]


def test_an_archive_and_record_of_the_earlier_format_still_restore(story):
    """Format 1 (the master key directly, no key id) with a record without MAC, as the previous
    release wrote them: restored with the same key, now one of several."""
    import dataclasses
    import hashlib
    import io

    from ctpbackup.engines.encryption import backup_context, decrypt_stream
    from tests.archive.test_encryption import encrypt_v1

    source = EmulatorServer(establish_delay=0.05).start()
    target = EmulatorServer(establish_delay=0.05).start()
    try:
        seed_crossplane(source, 20)
        write_named_key(story, "key-1", KEY)
        write_named_key(story, "key-2", KEY2)
        set_keys(story, "key-1")
        story.connect("src", source)
        story.repo.write("src.yaml", CONTROL_PLANE.format(name="src"))
        story.repo.write("b1.yaml", BACKUP.format(name="b1", control_plane="src"))
        story.repo.commit("backup")
        story.reconcile("apply")
        key = story.backup("b1")["archiveKey"]
        context = backup_context("default", "src", "b1")
        master = parse_key(KEY.encode())
        plain = b"".join(decrypt_stream(io.BytesIO(story.bucket.read(key)[0]), master, context))
        old = encrypt_v1(plain, master, context)
        story.bucket.put(key, old)
        edit_record(story, "b1", lambda r: dataclasses.replace(
            r, size=len(old), sha256=hashlib.sha256(old).hexdigest(), mac=""))

        set_keys(story, "key-2", "key-1")
        story.connect("dst", target)
        story.repo.write("dst.yaml", RESTORED.format(name="dst", source="b1"))
        story.repo.commit("restore the old backup")
        story.reconcile("apply")
        (restore,) = story.status()["restores"]
        assert restore["phase"] == "Completed"
        assert exists(target, "/api/v1/namespaces/default/secrets/super-secret-secret")
    finally:
        source.stop()
        target.stop()
