"""The backup store (issue 18, item 3): the one way archives are put, opened, deleted and swept, each
at the layout's key, against a folder and a real S3 server (moto)."""

from __future__ import annotations

import hashlib
import io
import json
import time

import pytest

from ctpbackup.storage.base import PreconditionFailed, StorageError
from ctpbackup.storage.filesystem import FilesystemBucket
from ctpbackup.store.backup_store import ArchiveCheckFailed, BackupStore
from ctpbackup.store.layout import BucketLayout
from ctpbackup.store.lease import LeaseLost
from ctpbackup.store.records import BackupRecord, Phase
from tests.fixtures.objectstores import make_s3_bucket

LAYOUT = BucketLayout("prod/cluster1")
BODY = b"an archive's bytes " * 100


@pytest.fixture(params=["fs", "s3"])
def store(request, tmp_path) -> BackupStore:
    if request.param == "fs":
        return BackupStore(FilesystemBucket(tmp_path / "b"), LAYOUT)
    return BackupStore(make_s3_bucket(request.getfixturevalue("s3_server")), LAYOUT)


def put(store: BackupStore, cp: str, name: str, body: bytes = BODY) -> None:
    with store.put_archive("default", cp, name) as upload:
        upload.write(body)
        upload.commit()


def record(name: str, cp: str = "ctp1", body: bytes = BODY, **kw) -> BackupRecord:
    fields = {"size": len(body), "sha256": hashlib.sha256(body).hexdigest()} | kw
    return BackupRecord("default", name, cp, "default", Phase.COMPLETED, **fields)


@pytest.mark.parametrize(("cp", "name"), [("ctp1", "b1"), ("ctp-2", "nightly-20261130"), ("x", "y")])
def test_an_archive_is_put_at_the_layouts_key_and_never_replaced(store, cp, name):
    put(store, cp, name)
    key = f"prod/cluster1/default/{cp}/backups/{name}/archive.tar.gz"
    assert store.archive_key("default", cp, name) == key
    assert store.bucket.read(key)[0] == BODY
    assert store.archive_attributes("default", cp, name).size == len(BODY)
    assert store.archive_sha256("default", cp, name) == hashlib.sha256(BODY).hexdigest()
    with pytest.raises(PreconditionFailed, match=r"."):
        put(store, cp, name, b"another body")
    assert store.bucket.read(key)[0] == BODY


def test_a_missing_archive_has_no_attributes(store):
    assert store.archive_attributes("default", "ctp1", "never") is None


def test_an_archive_is_fetched_from_the_layouts_key_whatever_the_record_says(store, tmp_path):
    put(store, "ctp1", "b1")
    put(store, "ctp1", "b2", b"the other backup's archive")
    dest = tmp_path / "dest"
    dest.mkdir()
    path = store.fetch_archive(record("b1", archive_key=store.archive_key("default", "ctp1", "b2")), dest)
    assert path == dest / "archive.tar.gz"
    assert path.read_bytes() == BODY


@pytest.mark.parametrize(("change", "reason", "message"), [
    ({"sha256": ""}, "ArchiveMissing", r"^Backup b1 has no recorded archive$"),
    ({"size": 0}, "ArchiveRejected", r"^recorded archive size 0 is not plausible$"),
    ({"size": -5}, "ArchiveRejected", r"^recorded archive size -5 is not plausible$"),
    ({"size": 51 * 1024 ** 3}, "ArchiveRejected", rf"^recorded archive size {51 * 1024 ** 3} is not plausible$"),
    ({"size": len(BODY) + 1}, "IntegrityCheckFailed",
     rf"^archive of Backup b1 is {len(BODY)} bytes; the index recorded {len(BODY) + 1}$"),
    ({"sha256": "0" * 64}, "IntegrityCheckFailed",
     r"^archive of Backup b1 does not match the sha256 recorded in the index$"),
    ({"name": "b9"}, "ArchiveMissing", r"^archive of Backup b9 is not in the bucket$"),
    ({"control_plane": "ctp9"}, "ArchiveMissing", r"^archive of Backup b1 is not in the bucket$"),
])
def test_an_archive_that_is_not_the_recorded_one_is_refused(store, tmp_path, change, reason, message):
    put(store, "ctp1", "b1")
    fields = {"namespace": "default", "name": "b1", "control_plane": "ctp1", "config": "default",
              "phase": Phase.COMPLETED, "size": len(BODY), "sha256": hashlib.sha256(BODY).hexdigest()} | change
    with pytest.raises(ArchiveCheckFailed, match=message) as err:
        store.fetch_archive(BackupRecord(**fields), tmp_path)
    assert err.value.reason == reason


class FailingReads(FilesystemBucket):
    """A folder bucket whose reads fail as a cloud's do: at once, or after the first chunk."""

    def __init__(self, root, failure: str):
        super().__init__(root)
        self.failure = failure

    def open_read(self, key: str):
        if self.failure == "at-once":
            raise StorageError(f"read {key}: connection reset by peer")
        stream = super().open_read(key)

        class BreaksOff(io.RawIOBase):
            def read(self, n=-1):
                if stream.tell() > 0:
                    stream.close()
                    raise ConnectionResetError("peer closed the connection")
                return stream.read(100)

        return BreaksOff()


@pytest.mark.parametrize(("failure", "message"), [
    ("at-once", r"^cannot read the archive of Backup b1: read prod/cluster1/default/ctp1/backups/b1/archive.tar.gz: "
                r"connection reset by peer$"),
    ("mid-download", r"^the download of Backup b1's archive broke off \(ConnectionResetError\)$"),
])
def test_an_unreadable_archive_is_archive_unreadable(tmp_path, failure, message):
    store = BackupStore(FailingReads(tmp_path / "b", failure), LAYOUT)
    put(store, "ctp1", "b1")
    with pytest.raises(ArchiveCheckFailed, match=message) as err:
        store.fetch_archive(record("b1"), tmp_path)
    assert err.value.reason == "ArchiveUnreadable"


def test_a_deletion_passes_the_fence_first(store):
    put(store, "ctp1", "b1")
    put(store, "ctp1", "b2")
    calls = []
    store.fence = lambda: calls.append("fence")
    store.delete_archive("default", "ctp1", "b1")
    assert calls == ["fence"]
    assert store.archive_attributes("default", "ctp1", "b1") is None
    store.delete_archive("default", "ctp1", "b1")  # a missing archive is not an error
    assert calls == ["fence", "fence"]

    def lost() -> None:
        calls.append("lost")
        raise LeaseLost("the lease was taken over")

    store.fence = lost
    with pytest.raises(LeaseLost, match=r"^the lease was taken over$"):
        store.delete_archive("default", "ctp1", "b2", attempts=3, backoff_seconds=0)
    assert calls == ["fence", "fence", "lost", "lost", "lost"]
    assert store.archive_attributes("default", "ctp1", "b2").size == len(BODY)


def test_a_record_beside_the_archive_is_read_from_the_layouts_key(store):
    assert store.backup_record_beside("default", "ctp1", "b1") == (None, True)
    key = LAYOUT.backup_record_key("default", "ctp1", "b1")
    store.bucket.put(key, json.dumps(record("b1", archive_key="elsewhere").to_dict()).encode())
    beside, readable = store.backup_record_beside("default", "ctp1", "b1")
    assert readable is True
    assert (beside.name, beside.size, beside.archive_key) == ("b1", len(BODY), store.archive_key("default", "ctp1", "b1"))


@pytest.mark.parametrize("body", [
    b"{", b"[]", b"null", json.dumps(record("b2").to_dict()).encode(),
    json.dumps(record("b1", cp="ctp2").to_dict()).encode(),
    json.dumps(record("b1").to_dict() | {"sha256": None}).encode(),
    json.dumps(record("b1").to_dict() | {"sha256": 5}).encode(),
    json.dumps(record("b1").to_dict() | {"size": "x"}).encode(),
], ids=["truncated", "list", "null", "another-backup", "another-control-plane", "no-sha256", "sha256-a-number",
        "size-not-a-number"])
def test_a_record_beside_that_is_not_this_backups_is_unreadable(store, body):
    store.bucket.put(LAYOUT.backup_record_key("default", "ctp1", "b1"), body)
    assert store.backup_record_beside("default", "ctp1", "b1") == (None, False)


def test_the_sweep_aborts_only_old_uploads_of_the_control_planes_asked_for(tmp_path):
    bucket = FilesystemBucket(tmp_path / "b")
    store = BackupStore(bucket, LAYOUT)
    for key in (store.archive_key("default", "ctp1", "b1"), store.archive_key("default", "ctp2", "b1"),
                store.archive_key("other", "ctp1", "b1"), "prod/cluster1/.ctpbackup/lease.json",
                "elsewhere/default/ctp1/backups/b1/archive.tar.gz"):
        upload = bucket.open_upload(key)
        upload.write(b"part")
        upload._file.flush()
    time.sleep(1.2)
    assert store.sweep_uploads(3600) == 0
    assert store.sweep_uploads(1, lambda namespace, name: (namespace, name) == ("default", "ctp2")) == 1
    assert sorted(bucket.list_incomplete_uploads("")) == sorted([
        "elsewhere/default/ctp1/backups/b1/archive.tar.gz", "prod/cluster1/.ctpbackup/lease.json",
        "prod/cluster1/default/ctp1/backups/b1/archive.tar.gz", "prod/cluster1/other/ctp1/backups/b1/archive.tar.gz"])
    assert store.sweep_uploads(1) == 2
    assert sorted(bucket.list_incomplete_uploads("")) == [
        "elsewhere/default/ctp1/backups/b1/archive.tar.gz", "prod/cluster1/.ctpbackup/lease.json"]


@pytest.mark.parametrize(("shard", "key"), [
    ((0, 1), "prod/cluster1/.ctpbackup/lease.json"),
    ((0, 2), "prod/cluster1/.ctpbackup/lease-shard-0-of-2.json"),
    ((3, 4), "prod/cluster1/.ctpbackup/lease-shard-3-of-4.json"),
])
def test_the_lease_key_comes_from_the_layout(shard, key):
    assert LAYOUT.lease_key(shard) == key
    assert BucketLayout("").lease_key(shard) == key.removeprefix("prod/cluster1/")
