"""The bucket index: compare-and-swap under real concurrency, rebuild from records, leases."""

from __future__ import annotations

import dataclasses
import multiprocessing
from datetime import UTC, datetime, timedelta

import pytest

from ctpbackup.storage.filesystem import FilesystemBucket
from ctpbackup.store.controlplane_index import ControlPlaneIndex, IndexCorrupt
from ctpbackup.store.index import BucketIndex, RecordExists
from ctpbackup.store.layout import BucketLayout
from ctpbackup.store.lease import Lease, LeaseHeld, LeaseLost
from ctpbackup.store.records import BackupRecord, Phase, RestoreRecord
from tests.fixtures.objectstores import make_s3_bucket

LAYOUT = BucketLayout("prod/cluster1")


def record(name: str, cp: str = "ctp1", **kw) -> BackupRecord:
    return BackupRecord("default", name, cp, "default", kw.pop("phase", Phase.COMPLETED), **kw)


def _bump(spec: tuple, times: int) -> None:
    kind, where = spec
    bucket = FilesystemBucket(where) if kind == "fs" else make_s3_bucket_from(where)
    index = BucketIndex(bucket, LAYOUT)
    for _ in range(times):
        index.update_backup("default", "ctp1", "counter",
                            lambda old: dataclasses.replace(old, retries=old.retries + 1) if old else record("counter", retries=1))


def make_s3_bucket_from(where: tuple):
    from ctpbackup.storage.s3 import S3Bucket
    from tests.fixtures.objectstores import S3_KEY_ID, S3_SECRET

    endpoint, name = where
    return S3Bucket(name, {"endpoint": endpoint, "insecure": True},
                    {"aws_access_key_id": S3_KEY_ID, "aws_secret_access_key": S3_SECRET})


@pytest.mark.parametrize("kind", ["fs", "s3"])
def test_two_processes_racing_lose_no_update(kind, tmp_path, s3_server):
    if kind == "fs":
        spec = ("fs", str(tmp_path / "bucket"))
        bucket = FilesystemBucket(spec[1])
    else:
        bucket = make_s3_bucket(s3_server)
        spec = ("s3", (s3_server.host_port, bucket.name))
    ctx = multiprocessing.get_context("spawn")
    workers = [ctx.Process(target=_bump, args=(spec, 100)) for _ in range(2)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=240)
        assert w.exitcode == 0
    state = BucketIndex(bucket, LAYOUT).load()
    assert state.backups[("default", "counter")].retries == 200


class _RacedOnce(FilesystemBucket):
    """A folder bucket where, just before this writer first looks at `key`, another writer puts the
    same backup's record and lists it in the index: the window between a record's write and its
    index write that two unleased writers can meet in."""

    def __init__(self, root, key: str, other) -> None:
        super().__init__(root)
        self.key, self.other = key, other

    def read(self, key: str):
        if key == self.key and self.other is not None:
            other, self.other = self.other, None
            other()
        return super().read(key)


@pytest.mark.parametrize("first_of_control_plane", [True, False])
def test_a_record_put_by_a_racing_writer_is_a_lost_race_not_record_exists(tmp_path, first_of_control_plane):
    """Both writers start from an index that does not list `counter`; the other one's record and
    index write land in between. Ours is retried against the index that now lists it: no update is
    lost, and nothing is reported as a leftover (RecordExists)."""
    root = tmp_path / "b"
    if not first_of_control_plane:  # the control plane's index exists already, listing another backup
        BucketIndex(FilesystemBucket(root), LAYOUT).update_backup("default", "ctp1", "other", lambda _: record("other"))

    def bump(old):
        return dataclasses.replace(old, retries=old.retries + 1) if old else record("counter", retries=1)

    other = BucketIndex(FilesystemBucket(root), LAYOUT)
    raced = _RacedOnce(root, LAYOUT.backup_record_key("default", "ctp1", "counter"),
                       lambda: other.update_backup("default", "ctp1", "counter", bump))
    assert BucketIndex(raced, LAYOUT).update_backup("default", "ctp1", "counter", bump).retries == 2
    state = BucketIndex(FilesystemBucket(root), LAYOUT).load()
    assert state.backups[("default", "counter")].retries == 2


def test_a_record_no_index_lists_is_still_refused_after_the_looks(tmp_path):
    """A crashed run's record that no index write follows: RecordExists, never overwritten."""
    bucket = FilesystemBucket(tmp_path / "b")
    key = LAYOUT.backup_record_key("default", "ctp1", "left")
    bucket.put_if_absent(key, b'{"left": "by a crashed run"}')
    with pytest.raises(RecordExists, match=r"backups/left/record.json exists but the index shard does not list it; "
                                           r"it is never overwritten \(run `reconcile.py index rebuild`\)$"):
        BucketIndex(bucket, LAYOUT).update_backup("default", "ctp1", "left", lambda _: record("left"))
    assert bucket.read(key)[0] == b'{"left": "by a crashed run"}'


def test_load_reads_every_shard_and_namespaces_stay_apart(tmp_path):
    bucket = FilesystemBucket(tmp_path / "b")
    index = BucketIndex(bucket, LAYOUT)
    index.update_backup("default", "ctp1", "a", lambda _: record("a"))
    index.update_backup("default", "ctp2", "b", lambda _: record("b", "ctp2"))
    index.update_backup("team-b", "ctp1", "c", lambda _: dataclasses.replace(record("c"), namespace="team-b"))
    index.update_restore("default", "restored", lambda _: RestoreRecord("default", "restored", "Backup", "a", Phase.COMPLETED))
    everything = index.load()
    assert set(everything.backups) == {("default", "a"), ("default", "b"), ("team-b", "c")}
    only_default = index.load(namespaces=["default"])
    assert set(only_default.backups) == {("default", "a"), ("default", "b")}
    assert set(only_default.restores) == {("default", "restored")}
    keys = {o.key for o in bucket.list("")}
    assert "prod/cluster1/default/ctp1/index.json" in keys
    assert "prod/cluster1/default/ctp1/backups/a/record.json" in keys
    assert "prod/cluster1/team-b/ctp1/index.json" in keys


def test_load_of_some_control_planes_reads_only_their_shards_and_orphans(tmp_path):
    """A sharded run reads only its own control planes' index shards; a control plane of its own
    with records but no shard is still read from its records, another's is not."""
    bucket = FilesystemBucket(tmp_path / "b")
    index = BucketIndex(bucket, LAYOUT)
    for cp in ("ctp1", "ctp2", "ctp3"):
        index.update_backup("default", cp, f"{cp}-a", lambda _, cp=cp: record(f"{cp}-a", cp))
        index.update_backup("default", cp, f"{cp}-b", lambda _, cp=cp: record(f"{cp}-b", cp))
    index.update_backup("team-b", "ctp1", "c", lambda _: dataclasses.replace(record("c"), namespace="team-b"))
    bucket.delete(LAYOUT.index_key("default", "ctp3"))  # ctp3: records only
    mine = {("default", "ctp1"), ("default", "ctp3")}
    state = index.load(control_planes=lambda ns, cp: (ns, cp) in mine)
    assert sorted(state.backups) == [("default", "ctp1-a"), ("default", "ctp1-b"), ("default", "ctp3-a"), ("default", "ctp3-b")]
    assert [view.control_plane for view in state.backups.index_views()] == ["ctp1", "ctp3"]
    assert sorted(index.load(control_planes=lambda ns, cp: ns == "team-b").backups) == [("team-b", "c")]
    assert len(index.load(control_planes=lambda ns, cp: False).backups) == 0


@pytest.mark.parametrize("damage", ["delete", "corrupt"])
def test_rebuild_restores_the_same_records(tmp_path, damage):
    bucket = FilesystemBucket(tmp_path / "b")
    index = BucketIndex(bucket, LAYOUT)
    now = datetime(2026, 11, 25, tzinfo=UTC)
    for i in range(5):
        index.update_backup("default", f"ctp{i % 2}", f"b{i}", lambda _, i=i: record(
            f"b{i}", f"ctp{i % 2}", sha256="ab" * 32, size=100 + i, completed_at=now, counts={"secrets": i}))
    index.update_restore("default", "restored", lambda _: RestoreRecord("default", "restored", "Backup", "b1",
                                                                        Phase.COMPLETED, finished_at=now))
    before = index.load()
    for shard in index.index_keys():
        if damage == "delete":
            bucket.delete(shard)
        else:
            bucket.put(shard, b"{not json")
    if damage == "corrupt":
        with pytest.raises(IndexCorrupt, match="index rebuild"):
            index.load()
    else:  # no shard: read from the per-backup and restore records instead, never as if nothing were there
        assert index.load() == before
    bucket.put(LAYOUT.backup_record_key("default", "ctp0", "garbage"), b"\x00\x01")
    report = index.rebuild()
    assert report.backups == 5 and report.restores == 1
    assert report.skipped == (LAYOUT.backup_record_key("default", "ctp0", "garbage"),)
    assert index.load() == before


def test_shard_from_a_newer_release_is_refused_not_misread(tmp_path):
    bucket = FilesystemBucket(tmp_path / "b")
    bucket.put(LAYOUT.index_key("default", "ctp1"), b'{"schemaVersion": 99, "backups": {}}')
    with pytest.raises(IndexCorrupt, match="newer release"):
        BucketIndex(bucket, LAYOUT).load()


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.mark.parametrize("kind", ["fs", "s3"])
def test_lease_held_takeover_and_release(kind, tmp_path, s3_server):
    bucket = FilesystemBucket(tmp_path / "b") if kind == "fs" else make_s3_bucket(s3_server)
    clock = Clock()
    first = Lease(bucket, LAYOUT, holder="pod-a/1", duration=timedelta(minutes=10), clock=clock)
    second = Lease(bucket, LAYOUT, holder="pod-b/2", duration=timedelta(minutes=10), clock=clock)
    first.acquire()
    with pytest.raises(LeaseHeld, match="held by pod-a/1 until 2026-11-25T12:10:00Z"):
        second.acquire(wait=0)
    first.renew()
    second.release()  # not the holder: nothing happens
    assert bucket.exists(LAYOUT.lease_key())
    clock.now += timedelta(minutes=11)  # pod-a crashed: its lease expired
    second.acquire()
    with pytest.raises(LeaseLost, match=r"^lease prod/cluster1/\.ctpbackup/lease\.json was taken over by pod-b/2 \(fencing "
                                        r"token 2\) while this run \(fencing token 1\) was working; this run stopped and "
                                        r"writes nothing more$"):
        first.renew()
    first.release()  # no longer ours: must not delete pod-b's lease
    assert b"pod-b/2" in bucket.read(LAYOUT.lease_key())[0]
    second.release()
    assert not bucket.exists(LAYOUT.lease_key())


def test_sharded_runs_take_separate_leases(tmp_path):
    bucket = FilesystemBucket(tmp_path / "b")
    a = Lease(bucket, LAYOUT, holder="a", duration=timedelta(minutes=5), shard=(0, 2))
    b = Lease(bucket, LAYOUT, holder="b", duration=timedelta(minutes=5), shard=(1, 2))
    a.acquire()
    b.acquire()
    assert (a.key, b.key) == (LAYOUT.lease_key((0, 2)), LAYOUT.lease_key((1, 2)))
    assert (a.key, b.key) == (LAYOUT.root + ".ctpbackup/lease-shard-0-of-2.json",
                              LAYOUT.root + ".ctpbackup/lease-shard-1-of-2.json")


def test_shards_write_what_backups_share_once_and_read_back_every_field(tmp_path):
    bucket = FilesystemBucket(tmp_path)
    index = BucketIndex(bucket, LAYOUT)
    t = datetime(2026, 11, 25, tzinfo=UTC)
    derived = LAYOUT.archive_key("default", "ctp1", "b-done")
    records = [
        record("b-done", archive_key=derived, size=10, sha256="ab" * 32, completed_at=t, deletion_policy="Delete"),
        record("b-failed", phase=Phase.FAILED, retries=2),                      # no archive: key stays empty
        record("b-moved", archive_key="elsewhere/archive.tar.gz", size=1),       # not the pattern: kept
    ]
    for r in records:
        index.update_backup("default", "ctp1", r.name, lambda _old, r=r: r)
    raw = bucket.read(LAYOUT.index_key("default", "ctp1"))[0].decode()
    header, names, offsets, expiry, *lines = raw.splitlines()
    assert len(lines) == len(records) and raw.count(derived) == 0 and '"kind"' not in raw
    assert names == '["b-done","b-failed","b-moved"]' and expiry == '""'
    assert [int(offsets[1:-1][i:i + 10]) for i in range(0, 30, 10)] == [raw.index(line) for line in lines]
    # the shard says the control plane and the archive key pattern once; each line its name, first
    assert [line.startswith(f'{{"name":"{r.name}",') and line.count("b-") == 1 and "ctp1" not in line
            for line, r in zip(lines, records, strict=True)] == [True, True, True]
    loaded = index.load().backups
    assert [loaded[("default", r.name)] for r in records] == records


def test_version_1_shards_still_read(tmp_path):
    """Shards written before version 2 repeat every field in every record."""
    import json

    bucket = FilesystemBucket(tmp_path)
    old = record("b1", archive_key="prod/cluster1/default/ctp1/backups/b1/archive.tar.gz", size=5)
    bucket.put(LAYOUT.index_key("default", "ctp1"),
               json.dumps({"schemaVersion": 1, "backups": {"b1": old.to_dict()}, "restore": None}).encode())
    assert BucketIndex(bucket, LAYOUT).load().backups == {("default", "b1"): old}


def test_version_2_shards_still_read_and_are_rewritten_as_version_4(tmp_path):
    """Version 2 shards are one document: what the backups share once, defaults left out."""
    import json

    bucket = FilesystemBucket(tmp_path)
    key = LAYOUT.index_key("default", "ctp1")
    shared = {"namespace": "default", "controlPlane": "ctp1",
              "archiveKey": "prod/cluster1/default/ctp1/backups/{name}/archive.tar.gz"}
    bucket.put(key, json.dumps({"schemaVersion": 2, "shared": shared, "restore": None,
                                "backups": {"b1": {"config": "default", "phase": "Completed", "size": 5}}}).encode())
    old = record("b1", archive_key="prod/cluster1/default/ctp1/backups/b1/archive.tar.gz", size=5)
    index = BucketIndex(bucket, LAYOUT)
    assert index.load().backups == {("default", "b1"): old}
    index.update_backup("default", "ctp1", "b2", lambda _: record("b2"))
    assert bucket.read(key)[0].startswith(b'{"archiveKey"') and b'"schemaVersion":4' in bucket.read(key)[0]
    assert dict(index.load().backups) == {("default", "b1"): old, ("default", "b2"): record("b2")}


#: a version 3 control-plane index as release 3 wrote it: names and positions in the header
VERSION_3 = (
    b'{"archiveKey":"prod/cluster1/default/ctp1/backups/{name}/archive.tar.gz","controlPlane":"ctp1","digest":'
    b'{"expiresAt":["2026-11-25T11:00:00Z"],"expiring":[0],"lastSlots":[["SharedBackupSchedule","hourly","ctp1",'
    b'"2026-11-25T09:00:00Z"]],"live":{"default":2},"newestCompleted":[["SharedBackupSchedule","hourly",'
    b'"2026-11-25T10:00:00Z",0]],"referencedOwners":[["SharedBackupSchedule","hourly"]],"standalone":[1]},'
    b'"names":["hourly-ctp1-20261125090000","manual"],"namespace":"default","restore":null,"schemaVersion":3}\n'
    b'{"completedAt":"2026-11-25T10:00:00Z","config":"default","expiresAt":"2026-11-25T11:00:00Z","owner":'
    b'{"kind":"SharedBackupSchedule","name":"hourly"},"phase":"Completed","sha256":"' + b"ab" * 32 + b'","size":7,'
    b'"slot":"2026-11-25T09:00:00Z","ttl":"2h","useOwnerReferences":true}\n'
    b'{"archiveKey":"","config":"default","phase":"Failed","retries":1}\n')


def test_version_3_shards_still_read_and_are_rewritten_as_version_4(tmp_path):
    from ctpbackup.store.records import OwnerKind

    bucket = FilesystemBucket(tmp_path)
    key = LAYOUT.index_key("default", "ctp1")
    bucket.put(key, VERSION_3)
    t = datetime(2026, 11, 25, 10, tzinfo=UTC)
    hourly = record("hourly-ctp1-20261125090000", owner_kind=OwnerKind.SHARED_BACKUP_SCHEDULE, owner_name="hourly",
                    slot=t - timedelta(hours=1), size=7, sha256="ab" * 32, completed_at=t, ttl="2h",
                    expires_at=t + timedelta(hours=1), use_owner_references=True,
                    archive_key=LAYOUT.archive_key("default", "ctp1", "hourly-ctp1-20261125090000"))
    manual = record("manual", phase=Phase.FAILED, retries=1)
    index = BucketIndex(bucket, LAYOUT)
    state = index.load()
    assert dict(state.backups) == {("default", hourly.name): hourly, ("default", "manual"): manual}
    assert state.summary().expired(t + timedelta(hours=1)) == [("default", hourly.name)]
    assert state.summary().expired(t + timedelta(minutes=59, seconds=59)) == []
    index.update_backup("default", "ctp1", "b2", lambda _: record("b2"))
    assert b'"schemaVersion":4' in bucket.read(key)[0]
    again = index.load()
    assert dict(again.backups) == {("default", hourly.name): hourly, ("default", "manual"): manual,
                                   ("default", "b2"): record("b2")}
    assert again.summary().expired(t + timedelta(hours=1)) == [("default", hourly.name)]
    assert sorted(again.summary().standalone) == [("default", "b2"), ("default", "manual")]


def test_values_that_look_like_defaults_but_are_not_survive_the_shard(tmp_path):
    """A field is left out of a shard only when reading it back without the field gives the same."""
    bucket = FilesystemBucket(tmp_path)
    index = BucketIndex(bucket, LAYOUT)
    odd = [record("b-empty-policy", deletion_policy=""), record("b-version-0", schema_version=0),
           record("b-other-cp", cp="ctp2"), record("b-encrypted", encrypted=True, size=0)]
    for r in odd:
        index.update_backup("default", "ctp1", r.name, lambda _old, r=r: r)
    assert sorted(index.load().backups.values(), key=lambda r: r.name) == sorted(odd, key=lambda r: r.name)


def test_a_large_index_is_read_from_its_head_and_the_rest_only_when_a_line_there_is_needed(tmp_path):
    """From a local folder, a control-plane index of many backups is read up to HEAD_BYTES: the lines
    of its soonest expiries are there; a line past the head reads the whole index again, and an
    index that changed in between fails closed instead of being misread."""
    from ctpbackup.store.index import HEAD_BYTES

    bucket = FilesystemBucket(tmp_path)
    index = BucketIndex(bucket, LAYOUT)
    t = datetime(2026, 11, 25, tzinfo=UTC)
    records = [record(f"b{i:03d}", sha256="ab" * 32, size=i, completed_at=t, counts={"secrets": i},
                      ttl="1h", expires_at=t + timedelta(hours=i) if i % 2 else None) for i in range(300)]
    key = LAYOUT.index_key("default", "ctp1")
    bucket.put(key, ControlPlaneIndex({r.name: r for r in records}).to_bytes("default", "ctp1", LAYOUT))
    assert len(bucket.read(key)[0]) > 2 * HEAD_BYTES
    for name, expected_whole in [("b001", False), ("b298", True), ("b299", True)]:
        state = index.load()
        view = state.backups.index_views()[0]
        assert len(view.data) <= 2 * HEAD_BYTES + 1 < len(bucket.read(key)[0])  # the head, one byte past it
        assert state.backups[("default", name)] == records[int(name[1:])]
        assert (len(view.data) == len(bucket.read(key)[0])) is expected_whole
    state = index.load()
    assert state.summary().expired(t + timedelta(hours=3)) == [("default", "b001"), ("default", "b003")]
    assert dict(state.backups) == {r.key: r for r in records}
    state = index.load()
    index.update_backup("default", "ctp1", "b000", lambda old: dataclasses.replace(old, size=7))
    with pytest.raises(IndexCorrupt, match=r"^prod/cluster1/default/ctp1/index.json: changed while it was read; plan again$"):
        state.backups[("default", "b298")]
