"""Records read back exactly as written: from_dict builds frozen records without their __init__,
so a field it forgot would be missing, not defaulted. These tests catch that."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

from ctpbackup.store.records import BackupRecord, Condition, OwnerKind, Phase, RestoreRecord

T = datetime(2026, 11, 25, 10, 30, tzinfo=UTC)


def every_field_set() -> BackupRecord:
    return BackupRecord(
        "ns", "b1", "ctp", "default", Phase.DELETED, OwnerKind.SHARED_BACKUP_SCHEDULE, "hourly", T, "abc",
        (Condition("Completed", "True", "BackupCompleted", "3 objects", T),), 2, T, T, T, "p/ns/ctp/backups/b1/archive.tar.gz",
        123, "ab" * 32, {"secrets": 3}, 1, "Delete", "720h", T, ("events",), True, '{"a":1}', "Delete", T, True,
        ("a warning",), "v1:0123456789abcdef:" + "cd" * 32, "2026-11-25T10:00:00Z", "v1.31.2",
        {"objects": 3, "created": 3, "failures": {}})


def test_every_field_survives_a_round_trip():
    record = every_field_set()
    assert all(getattr(record, f.name) != f.default for f in dataclasses.fields(record) if f.name != "schema_version")
    again = BackupRecord.from_dict(record.to_dict())
    assert again == record
    assert {f.name for f in dataclasses.fields(again)} <= set(vars(again))


def test_a_minimal_record_gets_every_default():
    again = BackupRecord.from_dict({"namespace": "ns", "name": "b", "controlPlane": "c", "phase": "Pending"})
    assert again == BackupRecord("ns", "b", "c", "", Phase.PENDING)
    assert again.phase is Phase.PENDING and again.owner_kind is OwnerKind.NONE


def test_records_read_back_are_still_frozen_and_replaceable():
    record = BackupRecord.from_dict(every_field_set().to_dict())
    try:
        record.retries = 9  # type: ignore[misc]
    except dataclasses.FrozenInstanceError:
        pass
    else:
        raise AssertionError("records must stay immutable")
    assert dataclasses.replace(record, retries=3).retries == 3
    assert hash(Condition.from_dict(record.conditions[0].to_dict())) == hash(record.conditions[0])


def test_restore_records_round_trip():
    record = RestoreRecord("ns", "dst", "Backup", "b1", Phase.COMPLETED, "b1", "abc",
                           (Condition("Restored", "True", "RestoreCompleted", "", T),), 1, T, T,
                           {"secrets": {"restored": 1, "skipped": 0, "failed": 0}}, ("w",))
    assert RestoreRecord.from_dict(record.to_dict()) == record
