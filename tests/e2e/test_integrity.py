"""A restore of a tampered archive writes nothing to the target."""

from __future__ import annotations

from kubeemu import EmulatorServer
from kubeemu.fixtures import seed_crossplane
from tests.fixtures.story import BACKUP, CONTROL_PLANE, RESTORED


def test_one_changed_byte_and_the_restore_writes_nothing(story):
    source = EmulatorServer(establish_delay=0.05).start()
    target = EmulatorServer(establish_delay=0.05).start()
    try:
        seed_crossplane(source.url, 150, token=source.token)
        story.connect("src", source)
        story.repo.write("src.yaml", CONTROL_PLANE.format(name="src"))
        story.repo.write("b.yaml", BACKUP.format(name="b1", control_plane="src"))
        story.repo.commit("backup")
        story.reconcile("apply")
        key = story.backup("b1")["archiveKey"]
        data = bytearray(story.bucket.read(key)[0])
        data[len(data) // 2] ^= 0x01  # one bit of one byte
        story.bucket.put(key, bytes(data))
        before = target.store.rv

        story.connect("dst", target)
        story.repo.write("dst.yaml", RESTORED.format(name="dst", source="b1"))
        story.repo.commit("restore from the tampered archive")
        result = story.reconcile("apply", check=False)
        assert result.returncode == 1
        (restore,) = story.status()["restores"]
        assert restore["phase"] == "Failed"
        assert restore["conditions"][-1]["reason"] == "IntegrityCheckFailed"
        assert target.store.rv == before, "nothing may be written to the target"
    finally:
        source.stop()
        target.stop()
