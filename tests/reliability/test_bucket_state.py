"""The bucket's state, damaged or hand-edited, never costs a good archive: nothing is taken again
over an archive that exists, records never point a deletion or a restore at another backup's
archive, and an unreadable object in the bucket affects only what it describes (issue 17)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re

import pytest

from ctpbackup.store.index import BucketIndex
from ctpbackup.store.layout import BucketLayout
from ctpbackup.store.records import OwnerKind, Phase
from kubeemu import EmulatorServer
from kubeemu.fixtures import seed_crossplane
from tests.fixtures.story import BACKUP, CONTROL_PLANE, RESTORED

LAYOUT = BucketLayout("prod/cluster1")
DELETE_BACKUP = BACKUP.replace("controlPlane: {control_plane}\n", "controlPlane: {control_plane}\n  deletionPolicy: Delete\n")


@pytest.fixture
def source(story):
    cp = EmulatorServer(establish_delay=0.05).start()
    seed_crossplane(cp, 40)
    story.connect("ctp1", cp)
    story.repo.write("ctp1.yaml", CONTROL_PLANE.format(name="ctp1"))
    yield cp
    cp.stop()


def archive_of(story, name: str, cp: str = "ctp1") -> tuple[bytes, str]:
    data = story.bucket.read(LAYOUT.archive_key("default", cp, name))[0]
    return data, hashlib.sha256(data).hexdigest()


def take(story, *names: str) -> dict[str, tuple[bytes, str]]:
    story.repo.write("backups.yaml", "---\n".join(DELETE_BACKUP.format(name=n, control_plane="ctp1") for n in names))
    story.repo.commit("backups " + " ".join(names))
    story.reconcile("apply")
    return {n: archive_of(story, n) for n in names}


def index() -> BucketIndex:
    return BucketIndex.__new__(BucketIndex)


# -- item 1: nothing is taken again over an archive that exists ---------------------------------------

def drop_shard(story):
    story.bucket.delete(LAYOUT.index_key("default", "ctp1"))


def drop_entry(story):
    """The shard without b1 (b2 still in it): as a lost update or a hand edit would leave it."""
    key = LAYOUT.index_key("default", "ctp1")
    bucket_index = BucketIndex(story.bucket, LAYOUT)
    from ctpbackup.store.controlplane_index import ControlPlaneIndex
    shard = ControlPlaneIndex.from_bytes(story.bucket.read(key)[0], key)
    del shard.backups["b1"]
    story.bucket.put(key, shard.to_bytes("default", "ctp1", LAYOUT))
    assert ("default", "b1") not in bucket_index.load().backups


@pytest.mark.parametrize("damage", [drop_shard, drop_entry], ids=["shard-deleted", "entry-missing"])
def test_a_backup_the_index_lost_is_adopted_not_taken_again(story, source, damage):
    before = take(story, "b1", "b2")
    record_before = story.backup("b1")
    damage(story)
    result = story.reconcile("apply", check=False)
    assert "Traceback" not in result.stderr, result.stderr
    assert archive_of(story, "b1") == before["b1"] and archive_of(story, "b2") == before["b2"]
    after = story.backup("b1")
    assert (after["phase"], after["sha256"], after["startedAt"], after["gitCommit"]) == (
        "Completed", before["b1"][1], record_before["startedAt"], record_before["gitCommit"])
    assert "No changes" in story.reconcile("plan").stdout


@pytest.mark.parametrize("garbage", [b"[]", b"{not json", b"null", b'{"namespace": "default"}',
                                     b'{"namespace":"default","name":"b2","controlPlane":"ctp1","config":"default",'
                                     b'"phase":"Completed"}'],
                         ids=["list", "not-json", "null", "fields-missing", "another-backup"])
def test_rebuild_keeps_a_backup_whose_record_is_unreadable_and_apply_leaves_it(story, source, garbage):
    before = take(story, "b1", "b2")
    story.bucket.put(LAYOUT.backup_record_key("default", "ctp1", "b1"), garbage)
    drop_shard(story)
    rebuilt = story.reconcile("index", "rebuild", check=False)
    assert rebuilt.returncode == 0 and "Traceback" not in rebuilt.stderr, rebuilt.stderr
    assert ("1 backup(s) kept from their archive, record unreadable (RecordUnreadable): "
            "prod/cluster1/default/ctp1/backups/b1/record.json") in rebuilt.stdout
    record = story.backup("b1")
    assert record["phase"] == "Failed" and record["conditions"][-1]["reason"] == "RecordUnreadable"
    applied = story.reconcile("apply", check=False)
    assert "Traceback" not in applied.stderr
    assert archive_of(story, "b1") == before["b1"] and archive_of(story, "b2") == before["b2"]
    assert story.backup("b1")["phase"] == "Failed" and story.backup("b2")["phase"] == "Completed"


def test_an_archive_whose_record_was_written_but_not_the_shard_is_adopted(story, source):
    """Killed after the Completed record went next to the archive, before the shard: adopted."""
    before = take(story, "b1")
    completed = json.loads(story.bucket.read(LAYOUT.backup_record_key("default", "ctp1", "b1"))[0])
    BucketIndex(story.bucket, LAYOUT).update_backup("default", "ctp1", "b1", lambda old: dataclasses.replace(
        old, phase=Phase.IN_PROGRESS, size=0, sha256=""))
    story.bucket.put(LAYOUT.backup_record_key("default", "ctp1", "b1"), json.dumps(completed).encode())
    result = story.reconcile("apply")
    assert "adopted: the archive in the bucket matches its Completed record" in result.stdout
    assert archive_of(story, "b1") == before["b1"]
    assert story.backup("b1")["phase"] == "Completed" and story.backup("b1")["sha256"] == before["b1"][1]


@pytest.mark.parametrize("planted", [b"half an archive", None], ids=["other-bytes", "record-in-progress"])
def test_an_archive_of_an_interrupted_try_is_removed_and_taken_again(story, source, planted):
    take(story, "b1")
    BucketIndex(story.bucket, LAYOUT).update_backup("default", "ctp1", "b1", lambda old: dataclasses.replace(
        old, phase=Phase.IN_PROGRESS, size=0, sha256="", retries=0))
    if planted is not None:
        story.bucket.put(LAYOUT.archive_key("default", "ctp1", "b1"), planted)
    result = story.reconcile("apply")
    assert "+ retry default/b1" in result.stdout
    data, sha = archive_of(story, "b1")
    record = story.backup("b1")
    assert record["phase"] == "Completed" and record["sha256"] == sha and record["size"] == len(data)


def test_an_archive_no_record_describes_is_reported_and_kept(story, source):
    take(story, "b1")
    planted = b"an archive nobody recorded"
    story.bucket.put(LAYOUT.archive_key("default", "ctp1", "b9"), planted)
    story.repo.write("more.yaml", DELETE_BACKUP.format(name="b9", control_plane="ctp1"))
    story.repo.commit("b9")
    result = story.reconcile("apply", check=False)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert ("ArchiveExists: an archive of Backup b9 is in the bucket that the index does not list and no "
            "readable Completed record matches; it is kept and not taken again") in result.stdout
    assert story.bucket.read(LAYOUT.archive_key("default", "ctp1", "b9"))[0] == planted


# -- item 6: archive keys come from the layout, and an archive must say whose it is --------------------

@pytest.mark.parametrize("pointed_at", ["b2", "../b2", ""], ids=["other-backup", "path-escape", "empty"])
def test_deleting_a_backup_whose_record_points_elsewhere_deletes_only_its_own_archive(story, source, pointed_at):
    before = take(story, "b1", "b2")
    aim = LAYOUT.archive_key("default", "ctp1", "b2") if pointed_at == "b2" else (
        "prod/cluster1/default/ctp1/backups/b1/../b2/archive.tar.gz" if pointed_at else "")
    BucketIndex(story.bucket, LAYOUT).update_backup("default", "ctp1", "b1", lambda old: dataclasses.replace(
        old, archive_key=aim))
    story.repo.write("backups.yaml", DELETE_BACKUP.format(name="b2", control_plane="ctp1"))
    story.repo.commit("b1 removed from Git")
    story.reconcile("apply")
    assert not story.bucket.exists(LAYOUT.archive_key("default", "ctp1", "b1"))
    assert archive_of(story, "b2") == before["b2"]
    assert story.backup("b2")["phase"] == "Completed"


def test_a_restore_refuses_an_archive_that_names_another_backup(story, source):
    target = EmulatorServer(establish_delay=0.05).start()
    try:
        before = take(story, "b1", "b2")
        # b2's archive copied over b1's, and b1's record edited to its size and sha256
        story.bucket.put(LAYOUT.archive_key("default", "ctp1", "b1"), before["b2"][0])
        BucketIndex(story.bucket, LAYOUT).update_backup("default", "ctp1", "b1", lambda old: dataclasses.replace(
            old, size=len(before["b2"][0]), sha256=before["b2"][1]))
        story.connect("dst", target)
        story.repo.write("dst.yaml", RESTORED.format(name="dst", source="b1"))
        story.repo.commit("restore b1")
        rv = target.store.rv
        result = story.reconcile("apply", check=False)
        assert result.returncode == 1 and "Traceback" not in result.stderr
        (restore,) = story.status()["restores"]
        assert restore["phase"] == "Failed" and restore["conditions"][-1]["reason"] == "ArchiveMismatch"
        assert restore["conditions"][-1]["message"] == (
            "archive of Backup b1 is of control plane default/ctp1, Backup b2, not default/ctp1, Backup b1; refused")
        assert target.store.rv == rv, "nothing may be written to the target"
    finally:
        target.stop()


def _crc_flipped(data: bytes) -> bytes:
    return data[:-8] + bytes([data[-8] ^ 0xFF]) + data[-7:]


@pytest.mark.parametrize("damage, message", [
    (_crc_flipped, r"corrupt archive at 'metadata.json': CRC check failed \d+ != \d+"),
    (lambda data: data[:-4], "corrupt archive at 'metadata.json': Compressed file ended before the end-of-stream marker was reached"),
], ids=["gzip-crc", "gzip-length-cut"])
def test_an_archive_damaged_at_its_very_end_leaves_the_target_untouched(story, source, damage, message):
    """apply's restore reads the archive once (fetch_trusted(check_members=False), then run_restore's
    single pass): damage in the gzip trailer, the last bytes read, is still found before the first
    write. The record is edited to the damaged archive's size and sha256 (a buggy writer's, or an
    attacker's when unauthenticated backups are allowed)."""
    target = EmulatorServer(establish_delay=0.05).start()
    try:
        data = damage(take(story, "b1")["b1"][0])
        story.bucket.put(LAYOUT.archive_key("default", "ctp1", "b1"), data)
        BucketIndex(story.bucket, LAYOUT).update_backup("default", "ctp1", "b1", lambda old: dataclasses.replace(
            old, size=len(data), sha256=hashlib.sha256(data).hexdigest()))
        story.connect("dst", target)
        story.repo.write("dst.yaml", RESTORED.format(name="dst", source="b1"))
        story.repo.commit("restore b1")
        rv = target.store.rv
        result = story.reconcile("apply", check=False)
        assert result.returncode == 1 and "Traceback" not in result.stderr
        (restore,) = story.status()["restores"]
        assert restore["phase"] == "Failed" and restore["conditions"][-1]["reason"] == "ArchiveRejected"
        assert re.fullmatch(message, restore["conditions"][-1]["message"])
        assert target.store.rv == rv, "nothing may be written to the target"
    finally:
        target.stop()


# -- item 12: a time without a zone in a shard is one line, never a traceback --------------------------

def _split(data: bytes) -> tuple[dict, list, str, list[dict]]:
    """A version 4 control-plane index as (header, names, expiry line, backups' lines)."""
    header, names, _offsets, expiry, *lines = [json.loads(line) for line in data.splitlines()]
    return header, names, expiry, lines


def _join(header: dict, names: list, expiry: str, lines: list[dict]) -> bytes:
    """The same written back as version 4 lines (json.dumps' own spacing; the offsets recomputed)."""
    head = json.dumps(header).encode() + b"\n" + json.dumps(names, separators=(",", ":")).encode() + b"\n"
    tail = json.dumps(expiry).encode() + b"\n"
    body = [json.dumps(line).encode() + b"\n" for line in lines]
    start, offsets = len(head) + 10 * len(body) + 3 + len(tail), []
    for line in body:
        offsets.append(f"{start:010d}")
        start += len(line)
    return head + json.dumps("".join(offsets)).encode() + b"\n" + tail + b"".join(body)


def _zoneless_line(header: dict, lines: list[dict]) -> None:
    lines[0]["startedAt"] = "2026-11-25T10:00:00"


def _zoneless_slot(header: dict, lines: list[dict]) -> None:
    header["digest"]["lastSlots"] = [["SharedBackupSchedule", "hourly", "ctp1", "2026-11-25T10:00:00"]]


def _zoneless_restore(header: dict, lines: list[dict]) -> None:
    header["restore"] = {"namespace": "default", "controlPlane": "ctp1", "source": {"kind": "Backup", "name": "b1"},
                         "phase": "Completed", "finishedAt": "2026-11-25T10:00:00"}


@pytest.mark.parametrize("damage", [_zoneless_line, _zoneless_slot, _zoneless_restore], ids=["record", "slot", "restore"])
def test_a_time_without_a_zone_in_a_shard_is_one_line_for_status(story, damage):
    from datetime import UTC, datetime

    from ctpbackup.store.records import BackupRecord

    when = datetime(2026, 11, 25, tzinfo=UTC)
    BucketIndex(story.bucket, LAYOUT).update_backup("default", "ctp1", "b1", lambda _: BackupRecord(
        "default", "b1", "ctp1", "default", Phase.COMPLETED, started_at=when, size=3, sha256="ab" * 32))
    key = LAYOUT.index_key("default", "ctp1")
    header, names, expiry, lines = _split(story.bucket.read(key)[0])
    damage(header, lines)
    story.bucket.put(key, _join(header, names, expiry, lines))
    story.repo.commit("the config only")
    for command in (("status",), ("plan",)):
        result = story.reconcile(*command, check=False)
        assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
        events = [json.loads(text) for text in result.stderr.splitlines()]  # the story asks for JSON logs
        (line,) = [e["message"] for e in events if e["message"].startswith("error:")]
        assert "prod/cluster1/default/ctp1/index.json: unreadable" in line and "index rebuild" in line, line


def test_a_time_without_a_zone_in_a_shards_expiry_list_only_makes_a_candidate_the_record_clears(story):
    """The digest's expiry times only pick candidates; the planner reads each candidate's record,
    whose time has a zone: nothing is deleted, nothing fails."""
    from datetime import UTC, datetime

    from ctpbackup.store.records import BackupRecord

    when = datetime(2026, 11, 25, tzinfo=UTC)
    BucketIndex(story.bucket, LAYOUT).update_backup("default", "ctp1", "b1", lambda _: BackupRecord(
        "default", "b1", "ctp1", "default", Phase.COMPLETED, started_at=when, size=3, sha256="ab" * 32,
        owner_kind=OwnerKind.SHARED_BACKUP, owner_name="nightly"))
    key = LAYOUT.index_key("default", "ctp1")
    header, names, _, lines = _split(story.bucket.read(key)[0])
    # an expiry entry keeps its width (20 characters, then the position): the time padded, no zone
    story.bucket.put(key, _join(header, names, "2026-11-25T10:00:00 000000", lines))
    story.repo.commit("the config only")
    assert story.backup("b1")["phase"] == "Completed"
    assert "No changes" in story.reconcile("plan").stdout
