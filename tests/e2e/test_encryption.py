"""Client-side encryption (an extension): with `objectStorage.encryption` the bucket holds only
ciphertext, a restore with the key brings the Secret back, and a missing or wrong key fails the
restore with a clear reason and writes nothing. The key itself never appears in any output."""

from __future__ import annotations

import base64
import json
import urllib.request

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
        seed_crossplane(source.url, 60, token=source.token, ca=source.ca_data)
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
        assert stored.startswith(b"CTPBENC1"), "the bucket must hold the encrypted stream"
        assert not stored[8:].startswith(b"\x1f\x8b") and b"super-secret-secret" not in stored

        # a wrong key: the restore fails after the integrity check, before writing anything
        write_key(story, base64.b64encode(bytes(32)).decode())
        before = target.store.rv
        story.connect("dst", target)
        story.repo.write("dst.yaml", RESTORED.format(name="dst", source="b1"))
        story.repo.commit("restore")
        assert run("apply", check=False).returncode == 1
        (restore,) = story.status()["restores"]
        assert (restore["phase"], restore["conditions"][-1]["reason"]) == ("Failed", "DecryptionFailed")
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
