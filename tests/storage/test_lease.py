"""The apply lease under faults and hostility: fencing (a stale holder's writes are refused), clock
errors (a lease held "until 2031"), unreadable lease objects, and the sweep of open uploads that
keeps to its own shard and to uploads older than a lease period (issue 17, items 2, 3, 5, 12)."""

from __future__ import annotations

import json
import logging
import time
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest

from ctpbackup.plan.planner import shard_of
from ctpbackup.run import leases
from ctpbackup.storage.filesystem import FilesystemBucket
from ctpbackup.store.index import BucketIndex
from ctpbackup.store.layout import BucketLayout
from ctpbackup.store.lease import Lease, LeaseHeld, LeaseLost
from ctpbackup.store.locations import BackupLocation
from ctpbackup.store.records import BackupRecord, Phase, RestoreRecord
from tests.fixtures.objectstores import make_s3_bucket

LAYOUT = BucketLayout("prod/cluster1")
PERIOD = timedelta(minutes=10)


class Clock:
    def __init__(self, now: datetime = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)):
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def record(name: str, phase: Phase = Phase.COMPLETED, **kw) -> BackupRecord:
    return BackupRecord("default", name, "ctp1", "default", phase, **kw)


@pytest.fixture(params=["fs", "s3"])
def bucket(request, tmp_path):
    if request.param == "fs":
        return FilesystemBucket(tmp_path / "b")
    return make_s3_bucket(request.getfixturevalue("s3_server"))


def test_a_run_frozen_past_its_lease_writes_nothing_after_the_takeover(bucket):
    """Run A is frozen (SIGSTOP) past its lease; run B takes over and records b1 Completed; A
    resumes: its record of b1 Failed is refused, its renewal too, and the message says why."""
    clock = Clock()
    a = Lease(bucket, LAYOUT, holder="pod-a/1", duration=PERIOD, clock=clock)
    b = Lease(bucket, LAYOUT, holder="pod-b/2", duration=PERIOD, clock=clock)
    index_a, index_b = BucketIndex(bucket, LAYOUT), BucketIndex(bucket, LAYOUT)
    a.acquire()
    index_a.fence = a.check
    index_a.update_backup("default", "ctp1", "b1", lambda _: record("b1", Phase.IN_PROGRESS))

    clock.now += PERIOD + timedelta(seconds=1)  # A is frozen: no renewal
    b.acquire()
    assert (a.token, b.token) == (1, 2)
    index_b.fence = b.check
    index_b.update_backup("default", "ctp1", "b1", lambda old: record("b1", size=7, sha256="ab" * 32))

    for write in (lambda: index_a.update_backup("default", "ctp1", "b1", lambda old: record("b1", Phase.FAILED)),
                  lambda: index_a.update_restore("default", "ctp1", lambda old: RestoreRecord(
                      "default", "ctp1", "Backup", "b1", Phase.PENDING)),
                  a.renew, a.check):
        with pytest.raises(LeaseLost, match=r"^lease prod/cluster1/\.ctpbackup/lease\.json was taken over by pod-b/2 "
                                            r"\(fencing token 2\) while this run \(fencing token 1\) was working; "
                                            r"this run stopped and writes nothing more$"):
            write()
    assert a.lost
    state = BucketIndex(bucket, LAYOUT).load()
    kept = state.backups[("default", "b1")]
    assert (kept.phase, kept.size, kept.sha256) == (Phase.COMPLETED, 7, "ab" * 32)
    assert json.loads(bucket.read(LAYOUT.backup_record_key("default", "ctp1", "b1"))[0])["phase"] == "Completed"
    a.release()  # not ours any more: B's lease stays
    assert json.loads(bucket.read(LAYOUT.lease_key())[0])["holder"] == "pod-b/2"


def test_a_lease_near_its_end_is_renewed_by_the_fence(bucket):
    clock = Clock()
    a = Lease(bucket, LAYOUT, holder="pod-a/1", duration=PERIOD, clock=clock)
    a.acquire()
    clock.now += PERIOD - timedelta(minutes=1)  # renewals failed for a while; nobody took it over
    a.check()
    assert json.loads(bucket.read(LAYOUT.lease_key())[0])["expiresAt"] == "2026-11-25T12:19:00Z"


@pytest.mark.parametrize("expires", ["2031-01-01T00:00:00Z", "2026-11-25T12:10:01Z", "9999-12-31T23:59:59Z"])
def test_a_lease_held_further_ahead_than_a_lease_period_is_a_clock_error_and_taken_over(bucket, caplog, expires):
    bucket.put(LAYOUT.lease_key(), json.dumps({"holder": "skewed/9", "token": 4, "id": "x",
                                               "expiresAt": expires}).encode())
    lease = Lease(bucket, LAYOUT, holder="pod-a/1", duration=PERIOD, clock=Clock())
    with caplog.at_level(logging.WARNING, logger="ctpbackup.store.lease"):
        lease.acquire()
    assert lease.token == 5
    assert caplog.messages == [
        f"took over the lease prod/cluster1/.ctpbackup/lease.json of skewed/9: held until {expires}, later than now "
        "(2026-11-25T12:00:00Z) plus a lease period: a clock error on the run that wrote it"]


@pytest.mark.parametrize("expires", ["2026-11-25T12:10:00Z", "2026-11-25T12:00:01Z"])
def test_a_lease_within_a_lease_period_is_held(bucket, expires):
    bucket.put(LAYOUT.lease_key(), json.dumps({"holder": "pod-b/2", "expiresAt": expires}).encode())
    with pytest.raises(LeaseHeld, match=f"held by pod-b/2 until {expires}"):
        Lease(bucket, LAYOUT, holder="pod-a/1", duration=PERIOD, clock=Clock()).acquire()


@pytest.mark.parametrize("body, why", [
    (b"[]", "not a JSON object"),
    (b"null", "not a JSON object"),
    (b"{not json", "not JSON"),
    (b'{"holder": "x", "expiresAt": "2026-11-25T12:05:00"}', "expiresAt: time '2026-11-25T12:05:00' has no time zone"),
    (b'{"holder": "x", "expiresAt": 5}', "expiresAt: time 5 is not a string"),
    (b'{"holder": "x", "expiresAt": "soon"}', "expiresAt: Invalid isoformat string: 'soon'"),
    (b'{"holder": "x"}', "expiresAt is missing"),
    (b'{"holder": ["x"], "expiresAt": "2026-11-25T12:05:00Z"}', "holder is not a string"),
    (b'{"holder": "x", "expiresAt": "2026-11-25T12:05:00Z", "token": "7"}', "token is not a non-negative integer"),
])
def test_an_unreadable_lease_is_taken_over_with_one_line(bucket, caplog, body, why):
    bucket.put(LAYOUT.lease_key(), body)
    lease = Lease(bucket, LAYOUT, holder="pod-a/1", duration=PERIOD, clock=Clock())
    with caplog.at_level(logging.WARNING, logger="ctpbackup.store.lease"):
        lease.acquire()
    assert caplog.messages == [f"took over the lease prod/cluster1/.ctpbackup/lease.json of an unknown run: "
                               f"unreadable (prod/cluster1/.ctpbackup/lease.json: {why})"]
    assert json.loads(bucket.read(LAYOUT.lease_key())[0])["holder"] == "pod-a/1"


# -- the sweep of open uploads ------------------------------------------------------------------------

def location_of(bucket) -> BackupLocation:
    config = SimpleNamespace(namespace="default", name="default",
                             object_storage=SimpleNamespace(provider="AWS", bucket="b", prefix="prod/cluster1"))
    return BackupLocation(config, bucket, LAYOUT, BucketIndex(bucket, LAYOUT))


def control_planes_of(shard: int, count: int, n: int) -> list[str]:
    return [cp for cp in (f"ctp{i}" for i in range(100)) if shard_of("default", cp, count) == shard][:n]


def open_upload(bucket, cp: str) -> str:
    key = LAYOUT.archive_key("default", cp, "b1")
    if isinstance(bucket, FilesystemBucket):
        upload = bucket.open_upload(key)
        upload.write(b"part")
        upload._file.flush()
    else:
        bucket.client.create_multipart_upload(Bucket=bucket.name, Key=key)
    return key


def test_a_sweep_aborts_only_its_own_shards_uploads(bucket):
    """`apply --shard 1/2` must not abort shard 0's uploads (shard 0's run is uploading them).
    Measured: moto 5.2.5 reports every multipart upload as initiated on 2010-11-10, so on S3 here
    they are all "old"; the age rule is checked on the folder provider below."""
    mine, theirs = control_planes_of(1, 2, 2), control_planes_of(0, 2, 2)
    keys = {cp: open_upload(bucket, cp) for cp in mine + theirs}
    time.sleep(1.2)
    target = location_of(bucket)
    with leases({("default", "default"): target}, 0, lambda: datetime.now(UTC), (1, 2), timedelta(seconds=1)):
        assert target.index.fence is not None
        assert target.store.fence is target.index.fence
    assert (target.index.fence, target.store.fence) == (None, None)
    assert sorted(bucket.list_incomplete_uploads(LAYOUT.root)) == sorted(keys[cp] for cp in theirs)


def test_a_sweep_spares_uploads_younger_than_a_lease_period(tmp_path):
    bucket = FilesystemBucket(tmp_path / "b")
    old = [open_upload(bucket, cp) for cp in ("ctp1", "ctp2")]
    time.sleep(1.5)
    young = [open_upload(bucket, cp) for cp in ("ctp3",)]
    with leases({("default", "default"): location_of(bucket)}, 0, lambda: datetime.now(UTC)):
        pass  # the default lease period: 10 minutes
    assert sorted(bucket.list_incomplete_uploads(LAYOUT.root)) == sorted(old + young)
    with leases({("default", "default"): location_of(bucket)}, 0, lambda: datetime.now(UTC), (0, 1),
                timedelta(seconds=1)):
        pass
    assert list(bucket.list_incomplete_uploads(LAYOUT.root)) == young
