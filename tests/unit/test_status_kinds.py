"""The status of every kind, computed from Git, the index's records and the time (tables)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from ctpbackup.apply import status
from ctpbackup.desired.manifests import ManifestFile, load_desired_state
from ctpbackup.store.records import BackupRecord, Condition, OwnerKind, Phase, RestoreRecord
from tests.planner.test_plan import Recorded

NOW = datetime(2026, 11, 25, 10, 30, tzinfo=UTC)
SLOT = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
DOCS = """apiVersion: spaces.upbound.io/v1alpha1
kind: SharedBackupConfig
metadata: {name: default}
spec: {objectStorage: {provider: Filesystem, bucket: /tmp/b, credentials: {source: InjectedIdentity}}}
---
apiVersion: spaces.upbound.io/v1beta1
kind: ControlPlane
metadata: {name: ctp1}
---
apiVersion: spaces.upbound.io/v1beta1
kind: ControlPlane
metadata: {name: ctp2}
---
apiVersion: spaces.upbound.io/v1beta1
kind: ControlPlane
metadata: {name: restored}
spec: {restore: {source: {kind: Backup, name: b1}}}
---
apiVersion: spaces.upbound.io/v1alpha1
kind: Backup
metadata: {name: b1}
spec: {configRef: {kind: SharedBackupConfig, name: default}, controlPlane: ctp1}
---
apiVersion: spaces.upbound.io/v1alpha1
kind: SharedBackup
metadata: {name: nightly}
spec:
  configRef: {kind: SharedBackupConfig, name: default}
  controlPlaneSelector: {names: [ctp1, ctp2]}
  failures: {controlPlanes: %s}
---
apiVersion: spaces.upbound.io/v1alpha1
kind: SharedBackupSchedule
metadata: {name: hourly}
spec:
  schedule: "@every 1h"
  suspend: %s
  configRef: {kind: SharedBackupConfig, name: default}
  controlPlaneSelector: {names: [ctp1, ctp2]}
"""
UNREACHABLE = Condition("Completed", "False", "ControlPlaneUnreachable", "connection refused", NOW - timedelta(minutes=5))


def desired(allowance: int = 0, suspend: str = "false"):
    return load_desired_state([ManifestFile("a.yaml", (DOCS % (allowance, suspend)).encode())], "abc").require()


def rec(name: str, cp: str, phase: Phase = Phase.COMPLETED, **kw) -> BackupRecord:
    kw.setdefault("sha256", "0" * 64 if phase is Phase.COMPLETED else "")
    return BackupRecord("default", name, cp, "default", phase, **kw)


def report(*records: BackupRecord, restores: tuple[RestoreRecord, ...] = (), allowance: int = 0,
           suspend: str = "false", buckets=()) -> status.Report:
    recorded = Recorded({r.key: r for r in records}, {r.key: r for r in restores})
    return status.report(desired(allowance, suspend), recorded, NOW, buckets)


def conditions(o: status.ObjectStatus) -> dict[str, tuple[str, str]]:
    return {c.type: (c.status, c.reason) for c in o.conditions}


def test_default_wait_condition_follows_the_kind():
    assert status.DEFAULT_CONDITION == {
        "Backup": "Completed", "Restore": "Restored", "SharedBackup": "Completed", "SharedBackupSchedule": "Completed",
        "BackupSchedule": "Completed", "ControlPlane": "Ready", "SharedBackupConfig": "Available"}
    done = RestoreRecord("default", "restored", "Backup", "b1", Phase.COMPLETED, finished_at=NOW,
                         conditions=(Condition("Restored", "True", "RestoreCompleted", "12 objects", NOW),))
    found = report(rec("b1", "ctp1"), restores=(done,)).find("Restore", "default", "restored")
    assert status.status_condition_met(found, "Restored") is True
    assert status.status_condition_met(found, "Completed") is None  # the old default never met: waits


@pytest.mark.parametrize("allowance, phase, completed, met", [
    (0, "Failed", ("False", "TooManyFailures"), False),
    (1, "Completed", ("True", "BackupsCompleted"), True),
])
def test_shared_backup_status_and_wait(allowance, phase, completed, met):
    records = [rec("nightly-ctp1", "ctp1", owner_kind=OwnerKind.SHARED_BACKUP, owner_name="nightly"),
               rec("nightly-ctp2", "ctp2", Phase.FAILED, retries=3, conditions=(UNREACHABLE,),
                   owner_kind=OwnerKind.SHARED_BACKUP, owner_name="nightly")]
    (shared,) = report(*records, allowance=allowance).shared_backups
    assert shared.fields == {"phase": phase, "selectedControlPlanes": ["ctp1", "ctp2"], "completed": ["ctp1"],
                             "failed": ["ctp2"], "allowedFailures": allowance, "done": True}
    assert conditions(shared) == {"Completed": completed}
    assert status.status_condition_met(shared, "Completed") is met


def hourly(cp: str, slot: datetime, phase: Phase = Phase.COMPLETED, **kw) -> BackupRecord:
    return rec(f"hourly-{cp}-{slot:%Y%m%d%H%M%S}", cp, phase, owner_kind=OwnerKind.SHARED_BACKUP_SCHEDULE,
               owner_name="hourly", slot=slot, **kw)


@pytest.mark.parametrize("records, completed", [
    ([], ("False", "NoBackupYet")),
    ([hourly("ctp1", SLOT), hourly("ctp2", SLOT)], ("True", "BackupsCompleted")),
    ([hourly("ctp1", SLOT), hourly("ctp2", SLOT - timedelta(hours=1))], ("False", "InProgress")),
    ([hourly("ctp1", SLOT), hourly("ctp2", SLOT, Phase.FAILED, retries=3)], ("False", "BackupFailed")),
    ([hourly("ctp1", SLOT), hourly("ctp2", SLOT, Phase.FAILED, retries=1)], ("False", "InProgress")),
])
def test_shared_backup_schedule_status(records, completed):
    (schedule,) = report(*records).shared_backup_schedules
    assert conditions(schedule) == {"Completed": completed, "Scheduled": ("True", "Scheduled")}
    assert schedule.fields["nextSlot"] == "2026-11-25T11:00:00Z"
    assert schedule.fields["selectedControlPlanes"] == ["ctp1", "ctp2"]
    assert sorted(schedule.fields["lastSlots"]) == sorted({r.control_plane for r in records})


def test_suspended_schedule_has_no_next_slot():
    (schedule,) = report(suspend="true").shared_backup_schedules
    assert schedule.fields["suspended"] is True and schedule.fields["nextSlot"] is None
    assert conditions(schedule)["Scheduled"] == ("False", "Suspended")


def test_control_plane_ready_as_last_seen():
    ok = rec("b1", "ctp1", completed_at=NOW - timedelta(hours=1), server_version="v1.31.2")
    later_down = rec("nightly-ctp1", "ctp1", Phase.FAILED, retries=3, conditions=(UNREACHABLE,),
                     owner_kind=OwnerKind.SHARED_BACKUP, owner_name="nightly")
    cps = {o.name: o for o in report(ok, later_down).control_planes}
    assert conditions(cps["ctp1"]) == {"Ready": ("False", "ControlPlaneUnreachable")}
    assert cps["ctp1"].fields == {"serverVersion": "v1.31.2", "lastSeen": "2026-11-25T10:25:00Z",
                                  "lastCompletedBackup": {"name": "b1", "completedAt": "2026-11-25T09:30:00Z"}}
    cps = {o.name: o for o in report(ok).control_planes}
    assert conditions(cps["ctp1"]) == {"Ready": ("True", "APIAnswered")}
    assert conditions(cps["ctp2"]) == {"Ready": ("Unknown", "NotSeen")}
    assert conditions(cps["restored"]) == {"Ready": ("Unknown", "NotSeen"), "Restored": ("False", "Pending")}


def test_bucket_availability():
    checks = [status.BucketAvailability("default", "default", False, "SharedBackupConfig default/default: no such "
                                        "bucket", NOW)]
    (config,) = report(buckets=checks).configs
    assert config.fields == {"phase": "Unavailable", "lastCheckTime": "2026-11-25T10:30:00Z"}
    assert conditions(config) == {"Available": ("False", "BucketUnavailable")}
    assert status.status_condition_met(config, "Available") is None
    (unchecked,) = report().configs
    assert conditions(unchecked) == {"Available": ("Unknown", "NotChecked")}


@pytest.mark.parametrize("phase, retries, met", [
    (Phase.COMPLETED, 0, True), (Phase.FAILED, 3, False), (Phase.FAILED, 1, None), (Phase.IN_PROGRESS, 0, None),
])
def test_waiting_for_a_backup_ends_only_when_it_can_no_longer_complete(phase, retries, met):
    conditions_ = (Condition("Completed", "True", "BackupCompleted", "", NOW),) if phase is Phase.COMPLETED else (
        UNREACHABLE,)
    record = rec("b1", "ctp1", phase, retries=retries, conditions=conditions_)
    assert status.condition_met(record, "Completed", max_retries=3) is met


def restore(phase: Phase, reason: str, message: str, attempts: int = 1, finished: bool = False) -> RestoreRecord:
    return RestoreRecord("default", "restored", "Backup", "b1", phase, attempts=attempts,
                         finished_at=NOW if finished else None,
                         conditions=(Condition("Restored", "True" if phase is Phase.COMPLETED else "False", reason,
                                               message, NOW),))


@pytest.mark.parametrize("record, condition, met, why", [
    (restore(Phase.PARTIALLY_FAILED, "PartiallyFailed", "3 restored, 1 failed; first: configmaps a/b: 403"),
     "Restored", False, "PartiallyFailed in attempt 1; the next apply retries it: 3 restored, 1 failed; first: "
                        "configmaps a/b: 403"),
    (restore(Phase.PARTIALLY_FAILED, "PartiallyFailed", "0 failed, 2 still paused", attempts=3, finished=True),
     "restored=true", False, "PartiallyFailed after its last attempt (3); it never runs again: 0 failed, 2 still paused"),
    (restore(Phase.FAILED, "IntegrityCheckFailed", "sha256 differs", attempts=2),
     "Restored=True", False, "Failed in attempt 2; the next apply retries it: IntegrityCheckFailed: sha256 differs"),
    (restore(Phase.FAILED, "InsecureKubeconfig", "plain http", finished=True),
     "RESTORED", False, "Failed after its last attempt (1); it never runs again: InsecureKubeconfig: plain http"),
    (restore(Phase.PARTIALLY_FAILED, "PartiallyFailed", "1 failed"), "Restored=False", True, ""),
    (restore(Phase.FAILED, "ArchiveMissing", "gone"), "restored=false", True, ""),
    (restore(Phase.IN_PROGRESS, "InProgress", "restoring"), "Restored", None, ""),
    (restore(Phase.PENDING, "ControlPlaneUnreachable", "no answer"), "Restored", None, ""),
    (restore(Phase.COMPLETED, "RestoreCompleted", "12 restored"), "Restored", True, ""),
    (restore(Phase.COMPLETED, "RestoreCompleted", "12 restored"), "Restored=False", None, ""),
])
def test_waiting_for_a_restore_stops_at_a_failure_phase(record, condition, met, why):
    rep = report(rec("b1", "ctp1"), restores=(record,))
    for found in (rep.find("Restore", "default", "restored"), rep.find("ControlPlane", "default", "restored")):
        assert status.status_condition_met(found, condition) is met
        assert status.why_ended(found, condition) == why
    assert status.condition_met(record, condition) is met


@pytest.mark.parametrize("phase, retries, condition, met, why", [
    (Phase.DELETED, 0, "Completed", False, "Deleted"),
    (Phase.FAILED, 3, "completed", False, "Failed after 3 retries: ControlPlaneUnreachable: connection refused"),
    (Phase.FAILED, 2, "Completed", None, ""),
    (Phase.FAILED, 3, "Completed=False", True, ""),
])
def test_waiting_for_a_backup_stops_when_deleted_or_failed_for_good(phase, retries, condition, met, why):
    found = status.backup_status(rec("b1", "ctp1", phase, retries=retries, conditions=(UNREACHABLE,)), max_retries=3)
    assert status.status_condition_met(found, condition) is met
    assert status.why_ended(found, condition) == why


def test_schedules_and_shared_backups_that_failed_for_good_end_the_wait():
    (schedule,) = report(hourly("ctp1", SLOT), hourly("ctp2", SLOT, Phase.FAILED, retries=3)).shared_backup_schedules
    assert status.status_condition_met(schedule, "Completed") is False
    assert status.why_ended(schedule, "Completed") == (
        "BackupFailed: slot 2026-11-25T10:00:00Z: failed for good for ctp2")
    assert status.status_condition_met(schedule, "Scheduled") is True
    records = [rec("nightly-ctp1", "ctp1", Phase.FAILED, retries=3, conditions=(UNREACHABLE,),
                   owner_kind=OwnerKind.SHARED_BACKUP, owner_name="nightly"),
               rec("nightly-ctp2", "ctp2", owner_kind=OwnerKind.SHARED_BACKUP, owner_name="nightly")]
    (shared,) = report(*records).shared_backups
    assert status.why_ended(shared, "Completed") == (
        "Failed: 1 of 2 control planes completed, 1 failed for good (0 allowed)")
