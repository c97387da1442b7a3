"""A plan over a real index (shards written, read back through their digests, records decoded only
when needed) is the plan over the same records in memory."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from ctpbackup.plan.planner import plan
from ctpbackup.storage.filesystem import FilesystemBucket
from ctpbackup.store.controlplane_index import IndexCorrupt
from ctpbackup.store.index import BucketIndex, RecordedState
from ctpbackup.store.layout import BucketLayout
from ctpbackup.store.records import BackupRecord, OwnerKind, Phase
from ctpbackup.store.summary import RecordedSummary
from tests.planner.test_plan import (
    BACKUP,
    CASES,
    IMMUTABLE,
    NOW,
    SCHEDULE,
    SLOT,
    desired,
    rec,
    recorded,
    summary,
)

LAYOUT = BucketLayout("prod")


def index_of(tmp_path, records: list[BackupRecord]) -> BucketIndex:
    index = BucketIndex(FilesystemBucket(tmp_path / "bucket"), LAYOUT)
    for record in records:
        index.update_backup(record.namespace, record.control_plane, record.name, lambda _old, r=record: r)
    return index


@pytest.mark.parametrize("docs, records, expected", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_every_plan_table_case_plans_the_same_from_the_index(tmp_path, docs, records, expected):
    from_index = plan(desired(*docs), index_of(tmp_path, records).load(), NOW)
    assert summary(from_index) == expected
    assert from_index == plan(desired(*docs), recorded(*records), NOW)  # reasons and records too


def hourly(cp: str, hours_ago: int, **kw) -> BackupRecord:
    slot = SLOT - timedelta(hours=hours_ago)
    return rec(f"hourly-{cp}-{slot:%Y%m%d%H%M%S}", cp, owner_kind=OwnerKind.SHARED_BACKUP_SCHEDULE,
               owner_name="hourly", slot=slot, completed_at=slot + timedelta(minutes=1), **kw)


#: a busy bucket: every kind of owner, every phase, TTLs passed and not, owners kept by reference
BUSY = [
    *(hourly(cp, h, ttl="3h", expires_at=SLOT - timedelta(hours=h - 3)) for cp in ("ctp1", "ctp2") for h in range(1, 7)),
    hourly("ctp3", 2, phase=Phase.FAILED, retries=3),
    hourly("ctp3", 9, phase=Phase.DELETED, deleted_with="Delete"),
    rec("nightly-ctp1", owner_kind=OwnerKind.SHARED_BACKUP, owner_name="nightly", use_owner_references=True),
    rec("nightly-ctp2", owner_kind=OwnerKind.SHARED_BACKUP, owner_name="nightly", use_owner_references=True,
        phase=Phase.DELETED, deleted_with="Orphan"),
    rec("weekly-ctp2", "ctp2", owner_kind=OwnerKind.SHARED_BACKUP, owner_name="weekly", use_owner_references=False),
    rec("manual-1"), rec("manual-2", "ctp2", deletion_policy="Delete"), rec("manual-3", completed_at=None),
    rec("manual-4", ttl="1h", expires_at=NOW),  # expires at the very instant of the plan: expired
    rec("daily-ctp1-20261124000000", owner_kind=OwnerKind.BACKUP_SCHEDULE, owner_name="daily", slot=SLOT,
        completed_at=None),
]


def test_an_index_summary_reads_back_as_the_summary_of_its_records(tmp_path):
    records = [r for r in BUSY if r.control_plane == "ctp1"]
    view_summary = index_of(tmp_path, records).load().summary()
    assert view_summary == RecordedSummary.of(records)
    assert sorted(view_summary.expired(NOW)) == sorted(r.key for r in records if r.expires_at and r.expires_at <= NOW)


@pytest.mark.parametrize("docs", [
    [SCHEDULE % ("@every 1h", "false"), BACKUP % ("manual-1", "ctp1", "Orphan")],  # nightly left Git, kept by reference
    [BACKUP % ("manual-2", "ctp2", "Delete")],                                      # the schedule and two Backups left
    [],                                                                             # everything left: the guard holds it
])
def test_a_busy_bucket_plans_the_same_from_the_index(tmp_path, docs):
    from_index = plan(desired(*docs), index_of(tmp_path, BUSY).load(), NOW)
    assert from_index == plan(desired(*docs), recorded(*BUSY), NOW)
    assert from_index.actions or from_index.refusals


@pytest.mark.parametrize("damage, message", [
    ((b'{"name":"old","archiveKey":"","config"', b'{"name":"old","archiveKey":"","config_'),  # a line broken
     r"unreadable record of backup old \(JSONDecodeError\)"),
    ((b'{"name":"old",', b'{"name":"kep",'),                    # a line of another backup than its name says
     r"unreadable record of backup old \(KeyError\)"),
    ((b'{"name":"old",', b'{"name":[0,1],'),                    # a line whose name is no name
     r"unreadable record of backup old \(KeyError\)"),
    ((b'"old","kept"', b'"kept","old"'),                         # names in another order than the lines
     r"the list of names and the lines disagree on backup kept"),
    ((b'Z000000"\n', b'Z000009"\n'),                            # an expiry of a position past the backups
     r"unreadable record of backup at position 9 \(IndexError\)"),
])
def test_a_damaged_record_fails_only_the_plan_that_needs_it(tmp_path, damage, message):
    expired = rec("old", ttl="1h", expires_at=NOW - timedelta(hours=1))
    index = index_of(tmp_path, [rec("kept"), expired])
    key = LAYOUT.index_key("default", "ctp1")
    data = index.bucket.read(key)[0]
    assert data.count(damage[0]) == 1
    index.bucket.put(key, data.replace(*damage))
    state = index.load()  # the header is whole: the shard reads
    assert state.backups[("default", "kept")] == rec("kept")
    with pytest.raises(IndexCorrupt, match=r"^prod/default/ctp1/index.json: " + message + ".*index rebuild"):
        plan(desired(BACKUP % ("kept", "ctp1", "Orphan")), state, NOW)  # the expired one must be read to delete it


@pytest.mark.parametrize("edit, archive_key", [
    ((b'{"name":"kept","archiveKey":""', b'{"name": "kept", "archiveKey": "", "retries": 0'), ""),  # longer, same
    ((b'{"name":"kept","archiveKey":""', b'{"name":"kept","archiveKey":"x/y"'), "x/y"),          # longer, edited
    ((b'{"name":"old","archiveKey":""', b'{"name":"old","archiveKey":"x"'), ""),               # an earlier line
])
def test_a_line_rewritten_at_another_length_costs_no_other_line(tmp_path, edit, archive_key):
    """The lines after it are no longer where their offsets say: each is found by its name instead."""
    records = [rec("old", ttl="1h", expires_at=NOW - timedelta(hours=1)), rec("kept"), rec("later")]
    index = index_of(tmp_path, records)
    key = LAYOUT.index_key("default", "ctp1")
    data = index.bucket.read(key)[0]
    assert data.count(edit[0]) == 1
    index.bucket.put(key, data.replace(*edit))
    state = index.load()
    if edit[1].endswith(b'"x"'):
        records[0] = replace(records[0], archive_key="x")
    records[1] = replace(records[1], archive_key=archive_key)
    assert dict(state.backups) == {r.key: r for r in records}
    assert plan(desired(BACKUP % ("kept", "ctp1", "Orphan")), state, NOW) == \
        plan(desired(BACKUP % ("kept", "ctp1", "Orphan")), recorded(*records), NOW)


SCHEDULED = rec("hourly-ctp1-20261125100000", owner_kind=OwnerKind.SHARED_BACKUP_SCHEDULE, owner_name="hourly",
                slot=SLOT, use_owner_references=True)


@pytest.mark.parametrize("damage", [
    (b'"standalone":["kept"', b'"standalone":[1'),               # a standalone backup that is no name
    (b'"backups":3', b'"backups":4'),                            # more backups than offsets
    (b'"backups":3', b'"backups":-3'),                           # a count below zero
    (b'"routes":["hourly-ctp1"', b'"routes":[7'),               # a route that is no name
    (b'\n["old"', b'\n{"old"'),                                 # names that are not a list
    (b'\n"0000000', b'\n"1000000'),                              # the first line is not where its offset says
    (b'Z000000"\n', b'Z00000"\n'),                               # an expiry entry cut short
    (b'0000"}\n', b'0000"}'),                                     # the last line cut short
    (b'10:00:00Z"]]', b'10:00:00"]]'),                           # a slot without its time zone
    (b'"referencedOwners":[["SharedBackupSchedule"', b'"referencedOwners":[[""'),  # an owner of no kind
    (b'"live":{"default":3}', b'"live":{"default":-3}'),         # a count below zero
    (b'"live":{"default":3}', b'"live":{"default":4}'),          # more live backups than backups
    (b'"namespace":"default"', b'"namespace":"other"'),          # a header for another place in the bucket
    (b'"schemaVersion":4', b'"schemaVersion":"4"'),              # a version that is no number
])
def test_a_damaged_header_is_refused_when_the_index_is_read(tmp_path, damage):
    index = index_of(tmp_path, [SCHEDULED, rec("kept"), rec("old", ttl="1h", expires_at=NOW)])
    key = LAYOUT.index_key("default", "ctp1")
    data = index.bucket.read(key)[0]
    assert data.count(damage[0]) == 1
    index.bucket.put(key, data.replace(*damage))
    with pytest.raises(IndexCorrupt, match="unreadable index shard|newer release"):
        index.load()


def test_a_backup_read_twice_is_counted_once(tmp_path):
    """One bucket through two configs, or one name in two control planes' shards: the plan is the
    plan of the records the index holds (the last read), as if each were read once."""
    records = [rec(f"b{i}") for i in range(4)] + [rec("dup"), rec("dup", "ctp2", Phase.DELETED, deleted_with="Orphan")]
    index = index_of(tmp_path, records)
    twice = RecordedState.union([index.load(), index.load()])
    kept = recorded(*records)  # later records win, as the shards are read in order
    assert dict(twice.backups) == kept.backups
    assert twice.summary() == kept.summary()
    assert plan(desired(), twice, NOW) == plan(desired(), kept, NOW)  # the guard holds all four back
    assert plan(desired(), twice, NOW).refusals


@pytest.mark.parametrize("docs, records, restores, expected, words", [c[1:] for c in IMMUTABLE],
                         ids=[c[0] for c in IMMUTABLE])
def test_immutability_cases_plan_the_same_from_the_index(tmp_path, docs, records, restores, expected, words):
    index = index_of(tmp_path, records)
    for restore in restores:
        index.update_restore(restore.namespace, restore.control_plane, lambda _old, r=restore: r)
    from_index = plan(desired(*docs), index.load(), NOW)
    assert [(a.type.value, a.kind, a.name) for a in from_index.actions] == expected
    assert from_index == plan(desired(*docs), recorded(*records, restores=restores), NOW)
