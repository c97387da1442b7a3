"""Table-driven tests of the pure planner: desired (YAML) x recorded (records) x now -> actions."""

from __future__ import annotations

import dataclasses
import gc
import json
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

import pytest

from ctpbackup.desired.manifests import ManifestFile, load_desired_state
from ctpbackup.plan.planner import (
    Action,
    ActionType,
    DeletionCause,
    PlanOptions,
    _guard_mass_delete,
    plan,
    selector_text,
    shard_of,
)
from ctpbackup.store.records import BackupRecord, Condition, OwnerKind, Phase, RestoreRecord
from ctpbackup.store.summary import RecordedSummary

NOW = datetime(2026, 11, 25, 10, 30, 0, tzinfo=UTC)

CONFIG = """apiVersion: spaces.upbound.io/v1alpha1
kind: SharedBackupConfig
metadata: {name: default}
spec:
  objectStorage:
    provider: Filesystem
    bucket: /tmp/bucket
    credentials: {source: InjectedIdentity}
"""
CP = """---
apiVersion: spaces.upbound.io/v1beta1
kind: ControlPlane
metadata: {name: %s, labels: {backup: "%s"}}
"""
BACKUP = """---
apiVersion: spaces.upbound.io/v1alpha1
kind: Backup
metadata: {name: %s}
spec:
  configRef: {kind: SharedBackupConfig, name: default}
  controlPlane: %s
  deletionPolicy: %s
"""
SHARED = """---
apiVersion: spaces.upbound.io/v1alpha1
kind: SharedBackup
metadata: {name: nightly}
spec:
  configRef: {kind: SharedBackupConfig, name: default}
  controlPlaneSelector: {labelSelectors: [{matchLabels: {backup: "yes"}}]}
  useOwnerReferencesInBackup: %s
  failures: {controlPlanes: %s}
"""
SCHEDULE = """---
apiVersion: spaces.upbound.io/v1alpha1
kind: SharedBackupSchedule
metadata: {name: hourly}
spec:
  schedule: "%s"
  suspend: %s
  configRef: {kind: SharedBackupConfig, name: default}
  controlPlaneSelector: {labelSelectors: [{matchLabels: {backup: "yes"}}]}
"""
RESTORED = """---
apiVersion: spaces.upbound.io/v1beta1
kind: ControlPlane
metadata: {name: restored}
spec:
  restore:
    source: {kind: %s, name: %s}
"""


@dataclass(frozen=True)
class Recorded:
    backups: dict = field(default_factory=dict)
    restores: dict = field(default_factory=dict)

    def summary(self):
        return RecordedSummary.of(self.backups.values())

    def control_planes(self):
        return {(r.namespace, r.control_plane) for r in self.backups.values()}

    def kept_by(self, owners):
        return [r for r in self.backups.values() if r.use_owner_references and r.phase is not Phase.DELETED
                and (r.owner_kind, r.namespace, r.owner_name) in owners]


def desired(*docs: str):
    text = CONFIG + CP % ("ctp1", "yes") + CP % ("ctp2", "yes") + CP % ("ctp3", "no") + "".join(docs)
    result = load_desired_state([ManifestFile("all.yaml", text.encode())], "abc1234def")
    assert not result.errors, [str(p) for p in result.errors]
    return result.require()


def rec(name: str, cp: str = "ctp1", phase: Phase = Phase.COMPLETED, **kw) -> BackupRecord:
    kw.setdefault("sha256", "0" * 64 if phase is Phase.COMPLETED else "")
    return BackupRecord(namespace="default", name=name, control_plane=cp, config="default", phase=phase, **kw)


def recorded(*records: BackupRecord, restores: tuple[RestoreRecord, ...] = ()) -> Recorded:
    return Recorded({r.key: r for r in records}, {r.key: r for r in restores})


def summary(p) -> list[tuple[str, str]]:
    return [(a.type.value, a.name) for a in p.actions]


SLOT = datetime(2026, 11, 25, 10, 0, 0, tzinfo=UTC)
SB_SELECTOR = None  # filled lazily: selector_text of the SharedBackup in SHARED


def shared_selector() -> str:
    return selector_text(desired(SHARED % ("true", 0)).shared_backups[("default", "nightly")].selector)


CASES = [
    # id, docs, records, expected [(action, name)]
    ("backup-not-in-index", [BACKUP % ("b1", "ctp1", "Orphan")], [], [("backup", "b1")]),
    ("backup-completed-no-changes", [BACKUP % ("b1", "ctp1", "Orphan")], [rec("b1")], []),
    ("backup-failed-retried", [BACKUP % ("b1", "ctp1", "Orphan")],
     [rec("b1", phase=Phase.FAILED, retries=1)], [("retry", "b1")]),
    ("backup-failed-limit-reached", [BACKUP % ("b1", "ctp1", "Orphan")],
     [rec("b1", phase=Phase.FAILED, retries=3)], [("failed", "b1")]),
    ("backup-interrupted-in-progress", [BACKUP % ("b1", "ctp1", "Orphan")],
     [rec("b1", phase=Phase.IN_PROGRESS)], [("retry", "b1")]),
    ("backup-deleted-by-ttl-not-retaken", [BACKUP % ("b1", "ctp1", "Orphan")],
     [rec("b1", phase=Phase.DELETED, deleted_with="Orphan")], []),
    ("sharedbackup-expands-selected-only", [SHARED % ("false", 0)], [],
     [("backup", "nightly-ctp1"), ("backup", "nightly-ctp2")]),
    ("sharedbackup-partially-done", [SHARED % ("false", 0)],
     [rec("nightly-ctp1", owner_kind=OwnerKind.SHARED_BACKUP, owner_name="nightly")], [("backup", "nightly-ctp2")]),
    ("schedule-first-slot", [SCHEDULE % ("@every 1h", "false")], [],
     [("backup", "hourly-ctp1-20261125100000"), ("backup", "hourly-ctp2-20261125100000")]),
    ("schedule-slot-taken", [SCHEDULE % ("@every 1h", "false")],
     [rec(f"hourly-{cp}-20261125100000", cp, owner_kind=OwnerKind.SHARED_BACKUP_SCHEDULE, owner_name="hourly", slot=SLOT)
      for cp in ("ctp1", "ctp2")], []),
    ("schedule-catch-up-once-after-downtime", [SCHEDULE % ("@every 1h", "false")],
     [rec(f"hourly-{cp}-20261125050000", cp, owner_kind=OwnerKind.SHARED_BACKUP_SCHEDULE, owner_name="hourly",
          slot=SLOT - timedelta(hours=5)) for cp in ("ctp1", "ctp2")],
     [("backup", "hourly-ctp1-20261125100000"), ("backup", "hourly-ctp2-20261125100000")]),
    ("schedule-suspended", [SCHEDULE % ("@every 1h", "true")], [], []),
    ("schedule-failed-slot-retried-not-duplicated", [SCHEDULE % ("@every 1h", "false")],
     [rec("hourly-ctp1-20261125100000", "ctp1", Phase.FAILED, owner_kind=OwnerKind.SHARED_BACKUP_SCHEDULE,
          owner_name="hourly", slot=SLOT, retries=0),
      rec("hourly-ctp2-20261125100000", "ctp2", owner_kind=OwnerKind.SHARED_BACKUP_SCHEDULE, owner_name="hourly", slot=SLOT)],
     [("retry", "hourly-ctp1-20261125100000")]),
    ("ttl-expired-delete", [BACKUP % ("b1", "ctp1", "Delete")],
     [rec("b1", ttl="1h", expires_at=NOW - timedelta(minutes=1), deletion_policy="Delete")], [("delete", "b1")]),
    ("ttl-expired-orphan", [BACKUP % ("b1", "ctp1", "Orphan")],
     [rec("b1", ttl="1h", expires_at=NOW - timedelta(minutes=1))], [("orphan", "b1")]),
    ("ttl-not-yet", [BACKUP % ("b1", "ctp1", "Orphan")], [rec("b1", ttl="1h", expires_at=NOW + timedelta(minutes=1))], []),
    ("removed-from-git-delete", [BACKUP % ("keep", "ctp1", "Orphan")],
     [rec("keep"), rec("gone", deletion_policy="Delete")], [("delete", "gone")]),
    ("removed-from-git-orphan", [BACKUP % ("keep", "ctp1", "Orphan")], [rec("keep"), rec("gone")], [("orphan", "gone")]),
    ("owner-removed-with-owner-references", [BACKUP % ("keep", "ctp1", "Orphan")],
     [rec("keep"), rec("nightly-ctp1", owner_kind=OwnerKind.SHARED_BACKUP, owner_name="nightly", use_owner_references=True,
                       deletion_policy="Delete")], [("delete", "nightly-ctp1")]),
    ("owner-removed-without-owner-references", [BACKUP % ("keep", "ctp1", "Orphan")],
     [rec("keep"), rec("nightly-ctp1", owner_kind=OwnerKind.SHARED_BACKUP, owner_name="nightly", use_owner_references=False)],
     []),
    ("owner-in-git-control-plane-deselected-keeps-backup", [SHARED % ("true", 0)],
     [rec(f"nightly-{cp}", cp, owner_kind=OwnerKind.SHARED_BACKUP, owner_name="nightly", use_owner_references=True)
      for cp in ("ctp1", "ctp2", "ctp3")], []),
    ("immutable-control-plane", [BACKUP % ("b1", "ctp2", "Orphan")], [rec("b1", "ctp1")], [("error", "b1")]),
    ("immutable-excluded-resources", [BACKUP % ("b1", "ctp1", "Orphan")],
     [rec("b1", excluded_resources=("secrets",))], [("error", "b1")]),
    ("immutable-change-blocks-deletion-too", [BACKUP % ("b1", "ctp2", "Delete")],
     [rec("b1", "ctp1", ttl="1h", expires_at=NOW - timedelta(hours=1))], [("error", "b1")]),
    ("restore-from-completed-backup", [BACKUP % ("b1", "ctp1", "Orphan"), RESTORED % ("Backup", "b1")], [rec("b1")],
     [("restore", "restored")]),
    ("restore-waits-for-backup", [BACKUP % ("b1", "ctp1", "Orphan"), RESTORED % ("Backup", "b1")], [],
     [("backup", "b1"), ("wait", "restored")]),
    ("restore-waits-while-in-progress", [BACKUP % ("b1", "ctp1", "Orphan"), RESTORED % ("Backup", "b1")],
     [rec("b1", phase=Phase.IN_PROGRESS, retries=3)], [("give-up", "b1"), ("wait", "restored")]),
    ("restore-from-orphaned-record", [RESTORED % ("Backup", "old")],
     [rec("old", phase=Phase.DELETED, deleted_with="Orphan", sha256="ab" * 32)], [("restore", "restored")]),
]


@pytest.mark.parametrize("docs, records, expected", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_plan_table(docs, records, expected):
    result = plan(desired(*docs), recorded(*records), NOW)
    assert summary(result) == expected


def test_no_changes_when_everything_recorded():
    result = plan(desired(BACKUP % ("b1", "ctp1", "Orphan")), recorded(rec("b1")), NOW)
    assert result.actions == () and not result.has_changes and not result.has_errors


def test_restore_finished_never_runs_again():
    d = desired(BACKUP % ("b1", "ctp1", "Orphan"), RESTORED % ("Backup", "b1"))
    done = RestoreRecord("default", "restored", "Backup", "b1", Phase.COMPLETED, backup_name="b1", finished_at=NOW)
    assert summary(plan(d, recorded(rec("b1"), restores=(done,)), NOW)) == []


def test_a_backup_restored_from_is_not_deleted_by_the_same_plan():
    """A restore that fails must find its source again next run: the deletion waits for it to finish."""
    d = desired(RESTORED % ("Backup", "old"))
    source = rec("old", ttl="1h", expires_at=NOW - timedelta(minutes=1), deletion_policy="Delete")
    assert summary(plan(d, recorded(source), NOW)) == [("restore", "restored")]
    done = RestoreRecord("default", "restored", "Backup", "old", Phase.COMPLETED, backup_name="old", finished_at=NOW)
    assert summary(plan(d, recorded(source, restores=(done,)), NOW)) == [("delete", "old")]


def test_restore_source_change_is_an_error():
    d = desired(BACKUP % ("b1", "ctp1", "Orphan"), BACKUP % ("b2", "ctp1", "Orphan"), RESTORED % ("Backup", "b2"))
    done = RestoreRecord("default", "restored", "Backup", "b1", Phase.COMPLETED, finished_at=NOW)
    result = plan(d, recorded(rec("b1"), rec("b2"), restores=(done,)), NOW)
    assert summary(result) == [("error", "restored")]
    assert "immutable" in result.actions[0].reason


def test_restore_from_backup_schedule_takes_newest_completed():
    schedule = """---
apiVersion: spaces.upbound.io/v1alpha1
kind: BackupSchedule
metadata: {name: daily}
spec:
  schedule: "@daily"
  controlPlane: ctp1
  configRef: {kind: SharedBackupConfig, name: default}
"""
    d = desired(schedule, RESTORED % ("BackupSchedule", "daily"))
    day = datetime(2026, 11, 25, tzinfo=UTC)
    older = rec("daily-ctp1-20261124000000", owner_kind=OwnerKind.BACKUP_SCHEDULE, owner_name="daily",
                slot=day - timedelta(days=1), completed_at=day - timedelta(days=1))
    newer = rec("daily-ctp1-20261125000000", owner_kind=OwnerKind.BACKUP_SCHEDULE, owner_name="daily",
                slot=day, completed_at=day + timedelta(minutes=5))
    failed = rec("daily-ctp1-20261123000000", phase=Phase.FAILED, retries=3, owner_kind=OwnerKind.BACKUP_SCHEDULE,
                 owner_name="daily", slot=day - timedelta(days=2))
    result = plan(d, recorded(older, newer, failed), NOW)
    assert summary(result) == [("restore", "restored")]
    assert result.actions[0].restore_backup == "daily-ctp1-20261125000000"


@pytest.mark.parametrize("cron, now, slot", [
    ("0 0 * * *", datetime(2026, 1, 1, 0, 0, 0, tzinfo=UTC), "20260101000000"),
    ("0 0 * * *", datetime(2025, 12, 31, 23, 59, 59, tzinfo=UTC), "20251231000000"),
    ("@monthly", datetime(2026, 3, 1, 0, 0, 1, tzinfo=UTC), "20260301000000"),
    ("@monthly", datetime(2026, 2, 28, 23, 0, 0, tzinfo=UTC), "20260201000000"),
    ("30 23 * * *", datetime(2026, 11, 25, 0, 10, 0, tzinfo=UTC), "20261124233000"),
    ("@every 1h30m", datetime(2026, 11, 25, 10, 29, 59, tzinfo=UTC), "20261125090000"),
    ("@every 1h30m", datetime(2026, 11, 25, 10, 30, 0, tzinfo=UTC), "20261125103000"),
    ("@every 24h", datetime(2026, 11, 25, 10, 30, 0, tzinfo=UTC), "20261125000000"),
])
def test_schedule_slots_across_utc_boundaries(cron, now, slot):
    result = plan(desired(SCHEDULE % (cron, "false")), recorded(), now)
    assert [a.name for a in result.actions] == [f"hourly-ctp1-{slot}", f"hourly-ctp2-{slot}"]


def test_next_slot_after_taken_one_is_due_exactly_once():
    d = desired(SCHEDULE % ("@every 1h", "false"))
    first = plan(d, recorded(), NOW)
    taken = [rec(a.name, a.control_plane, owner_kind=OwnerKind.SHARED_BACKUP_SCHEDULE, owner_name="hourly",
                 slot=a.request.slot) for a in first.actions]
    assert plan(d, recorded(*taken), NOW + timedelta(minutes=29)).actions == ()
    later = plan(d, recorded(*taken), NOW + timedelta(minutes=30))
    assert [a.name for a in later.actions] == ["hourly-ctp1-20261125110000", "hourly-ctp2-20261125110000"]


def test_selector_change_is_an_error():
    d = desired(SHARED % ("false", 0))
    old = rec("nightly-ctp1", owner_kind=OwnerKind.SHARED_BACKUP, owner_name="nightly", selector='{"names":["ctp1"]}')
    result = plan(d, recorded(old), NOW)
    assert [(a.type.value, a.kind, a.name) for a in result.actions] == [("error", "SharedBackup", "nightly")]
    assert "controlPlaneSelector" in result.actions[0].reason


def test_same_selector_is_not_an_error():
    d = desired(SHARED % ("false", 0))
    old = rec("nightly-ctp1", owner_kind=OwnerKind.SHARED_BACKUP, owner_name="nightly", selector=shared_selector())
    assert summary(plan(d, recorded(old), NOW)) == [("backup", "nightly-ctp2")]


def test_mass_delete_guard_config_gone_from_git():
    d = desired()  # Git holds nothing that uses config "default"
    records = [rec(f"b{i}", deletion_policy="Delete") for i in range(3)]
    result = plan(d, recorded(*records), NOW)
    assert result.count(ActionType.DELETE, ActionType.ORPHAN) == 0
    assert result.refusals and "--allow-mass-delete" in result.refusals[0]
    assert result.has_errors
    allowed = plan(d, recorded(*records), NOW, PlanOptions(allow_mass_delete=True))
    assert allowed.count(ActionType.DELETE) == 3 and not allowed.refusals


@pytest.mark.parametrize("total, removed, refused", [(20, 10, False), (20, 11, True), (4, 2, False), (4, 3, True)])
def test_mass_delete_guard_threshold(total, removed, refused):
    keep = [BACKUP % (f"b{i}", "ctp1", "Orphan") for i in range(total - removed)]
    records = [rec(f"b{i}", deletion_policy="Delete") for i in range(total)]
    result = plan(desired(*keep), recorded(*records), NOW)
    assert bool(result.refusals) == refused
    assert result.count(ActionType.DELETE) == (0 if refused else removed)


def test_mass_delete_guard_keeps_new_backups_going():
    d = desired(BACKUP % ("new", "ctp1", "Orphan"))
    records = [rec(f"old{i}", deletion_policy="Delete") for i in range(12)]
    result = plan(d, recorded(*records), NOW)
    assert summary(result) == [("backup", "new")] and result.refusals


def test_ttl_expiry_is_not_held_by_the_guard():
    records = [rec(f"b{i}", ttl="1h", expires_at=NOW - timedelta(hours=1), deletion_policy="Delete") for i in range(12)]
    d = desired(*[BACKUP % (f"b{i}", "ctp1", "Delete") for i in range(12)])
    result = plan(d, recorded(*records), NOW)
    assert result.count(ActionType.DELETE) == 12 and not result.refusals


@pytest.mark.parametrize("docs, record, cause, reason", [
    ([BACKUP % ("b1", "ctp1", "Delete"), BACKUP % ("keep", "ctp1", "Orphan")], rec("b1", ttl="1h", expires_at=NOW - timedelta(minutes=5), deletion_policy="Delete"),
     DeletionCause.TTL_EXPIRED, "TTL 1h expired at 2026-11-25 10:25:00 UTC; deletionPolicy Delete: archive removed"),
    ([BACKUP % ("keep", "ctp1", "Orphan")], rec("b1", deletion_policy="Orphan"),
     DeletionCause.REMOVED_FROM_GIT, "Backup removed from Git; deletionPolicy Orphan: archive kept in the bucket"),
    ([BACKUP % ("keep", "ctp1", "Orphan")], rec("nightly-ctp1", owner_kind=OwnerKind.SHARED_BACKUP, owner_name="nightly",
                                                 use_owner_references=True, deletion_policy="Delete"),
     DeletionCause.OWNER_REMOVED_FROM_GIT,
     "owner SharedBackup nightly removed from Git (useOwnerReferencesInBackup); deletionPolicy Delete: archive removed"),
])
def test_each_deletion_says_why_in_a_field(docs, record, cause, reason):
    keep = [rec("keep")]
    result = plan(desired(*docs), recorded(record, *keep), NOW)
    [action] = [a for a in result.actions if a.type in (ActionType.DELETE, ActionType.ORPHAN)]
    assert (action.name, action.deletion_cause, action.reason) == (record.name, cause, reason)


def _removal(i: int, cause: DeletionCause, reason: str) -> Action:
    return Action(ActionType.DELETE, "Backup", "default", f"b{i}", "ctp1", reason, config="default", deletion_cause=cause)


@pytest.mark.parametrize("cause, reason, held", [
    # the guard reads the cause, never the text: a reason that mentions "TTL" is still a removal from Git
    (DeletionCause.REMOVED_FROM_GIT, "Backup removed from Git (its TTL was 1h); deletionPolicy Delete: archive removed", 12),
    (DeletionCause.OWNER_REMOVED_FROM_GIT, "owner SharedBackup ttl-nightly removed from Git", 12),
    # and an expiry is never held, whatever its text says
    (DeletionCause.TTL_EXPIRED, "expired; deletionPolicy Delete: archive removed", 0),
])
def test_the_mass_delete_guard_decides_on_the_cause(cause, reason, held):
    d = desired(BACKUP % ("other", "ctp1", "Orphan"))
    actions = [_removal(i, cause, reason) for i in range(12)]
    kept, refusals = _guard_mass_delete(actions, d, {("default", "default"): 13}, PlanOptions())
    assert len(actions) - len(kept) == held
    assert refusals == ([] if not held else [
        "refusing to delete or orphan 12 of 13 recorded backups of SharedBackupConfig default/default, more than "
        "the limit (10 backups or 50%); check the --repo/--ref/--path and the commit, or pass --allow-mass-delete"])


def test_broken_manifest_alongside_valid_ones_plans_nothing():
    text = CONFIG + CP % ("ctp1", "yes") + BACKUP % ("b1", "ctp1", "Orphan") + BACKUP % ("b2", "ctp1", "Destroy")
    result = load_desired_state([ManifestFile("all.yaml", text.encode())], "abc")
    assert result.errors and result.desired is None  # nothing to plan from: fail closed


@pytest.mark.parametrize("budget, failed, phase", [(0, 1, "Failed"), (1, 1, "Completed"), ('"50%"', 1, "Completed"),
                                                   ('"49%"', 1, "Failed")])
def test_shared_backup_status_failure_budget(budget, failed, phase):
    d = desired(SHARED % ("false", budget))
    records = [rec("nightly-ctp1", phase=Phase.FAILED, retries=3, owner_kind=OwnerKind.SHARED_BACKUP, owner_name="nightly",
                   conditions=(Condition("Completed", "False", "ControlPlaneUnreachable", "connection refused"),)),
               rec("nightly-ctp2", "ctp2", owner_kind=OwnerKind.SHARED_BACKUP, owner_name="nightly")]
    status = plan(d, recorded(*records[:failed + 1]), NOW).shared_backups[0]
    assert status.selected == ("ctp1", "ctp2")
    assert status.failed == ("ctp1",) and status.completed == ("ctp2",)
    assert status.phase == phase


def test_retry_reason_names_the_recorded_cause():
    cause = Condition("Completed", "False", "ControlPlaneUnreachable", "connection refused by 127.0.0.1:1")
    result = plan(desired(BACKUP % ("b1", "ctp1", "Orphan")), recorded(rec("b1", phase=Phase.FAILED, conditions=(cause,))), NOW)
    assert "connection refused" in result.actions[0].reason and "retry 1 of 3" in result.actions[0].reason


def test_shards_split_actions_without_overlap():
    d = desired(SHARED % ("false", 0), SCHEDULE % ("@every 1h", "false"), BACKUP % ("b3", "ctp3", "Orphan"))
    full = plan(d, recorded(), NOW)
    parts = [plan(d, recorded(), NOW, PlanOptions(shard=(i, 3))) for i in range(3)]
    names = [a.name for p in parts for a in p.actions]
    assert sorted(names) == sorted(a.name for a in full.actions)
    assert len(names) == len(set(names))
    for i, p in enumerate(parts):
        assert all(shard_of(a.namespace, a.control_plane, 3) == i for a in p.actions)


def _snapshot(value):
    """A plain, deep copy of `value` to compare before and after (MappingProxyType cannot be deep-copied)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return (type(value).__name__, tuple((f.name, _snapshot(getattr(value, f.name))) for f in dataclasses.fields(value)))
    if isinstance(value, Mapping):
        return ("mapping", tuple(sorted(((repr(k), _snapshot(v)) for k, v in value.items()), key=lambda kv: kv[0])))
    if isinstance(value, (list, tuple)):
        return (type(value).__name__, tuple(_snapshot(v) for v in value))
    if isinstance(value, (set, frozenset)):
        return ("set", tuple(sorted(repr(v) for v in value)))
    return repr(value)


class _Watch:
    """What the code under watch did that a pure function may not: I/O (Python's audit events for
    files, sockets, processes, directory listings) and clock reads (calls seen by the profiler)."""

    IO = ("open", "os.", "socket.", "subprocess.", "shutil.", "urllib.", "http.", "glob.", "pathlib.")
    CLOCKS = {"now", "utcnow", "today", "time", "time_ns", "monotonic", "monotonic_ns", "perf_counter", "process_time"}

    def __init__(self) -> None:
        self.active = False
        self.io: list[str] = []
        self.clock: list[str] = []

    def audit(self, event: str, args) -> None:  # installed once: audit hooks cannot be removed
        if self.active and event.startswith(self.IO):
            self.io.append(event)

    def profile(self, frame, event: str, arg) -> None:
        if event == "c_call" and getattr(arg, "__name__", "") in self.CLOCKS and \
                getattr(arg, "__module__", None) in ("time", "datetime", None):
            self.clock.append(f"{getattr(arg, '__qualname__', arg)}")


_WATCH = _Watch()
sys.addaudithook(_WATCH.audit)


def test_plan_is_pure_no_io_no_clock_inputs_untouched():
    """`plan(desired, recorded, now)` is a function of its arguments: it reads no file, socket or clock,
    changes none of its inputs, and gives the same plan every time."""
    d = desired(SHARED % ("true", 0), SCHEDULE % ("@every 1h", "false"), BACKUP % ("b1", "ctp1", "Orphan"),
                RESTORED % ("Backup", "b1"))
    r = recorded(rec("b1"), rec("gone", deletion_policy="Delete"),
                 rec("old", ttl="1h", expires_at=NOW - timedelta(hours=1), deletion_policy="Delete"),
                 rec("nightly-ctp3", "ctp3", owner_kind=OwnerKind.SHARED_BACKUP, owner_name="gone-owner",
                     use_owner_references=True))
    before = _snapshot((d, r.backups, r.restores, NOW))
    # gc callbacks are not the plan's: Hypothesis (loaded by other tests in this process) registers one
    # that reads perf_counter whenever a collection happens to run, inside plan() or not
    callbacks, gc.callbacks[:] = gc.callbacks[:], []
    _WATCH.active = True
    sys.setprofile(_WATCH.profile)
    try:
        first, second = plan(d, r, NOW), plan(d, r, NOW)
    finally:
        sys.setprofile(None)
        _WATCH.active = False
        gc.callbacks[:] = callbacks
    assert (_WATCH.io, _WATCH.clock) == ([], [])
    assert _snapshot((d, r.backups, r.restores, NOW)) == before
    assert first == second
    assert [(a.type.value, a.name) for a in first.actions] == [
        ("backup", "hourly-ctp1-20261125100000"), ("backup", "hourly-ctp2-20261125100000"), ("backup", "nightly-ctp1"),
        ("backup", "nightly-ctp2"), ("restore", "restored"), ("delete", "gone"), ("delete", "old"), ("orphan", "nightly-ctp3")]


def test_the_purity_watch_sees_io_and_clock_reads(tmp_path):
    """The watch above is not blind: it sees a file read and a clock read."""
    watch = _Watch()
    sys.addaudithook(watch.audit)
    watch.active = True
    sys.setprofile(watch.profile)
    try:
        (tmp_path / "f").write_text("x")
        datetime.now(UTC)
    finally:
        sys.setprofile(None)
        watch.active = False
    assert "open" in watch.io and watch.clock == ["datetime.now"]


def test_new_backup_request_carries_owner_and_options():
    result = plan(desired(SCHEDULE % ("@every 1h", "false")), recorded(), NOW)
    request = result.actions[0].request
    assert request.owner_kind is OwnerKind.SHARED_BACKUP_SCHEDULE and request.owner_name == "hourly"
    assert request.slot == SLOT and request.options.config == "default"
    assert replace(request, slot=None).slot is None


# -- the Spaces CRDs' immutability rules that no backup name shows --------------------------------------

BACKUP_SCHEDULE = """---
apiVersion: spaces.upbound.io/v1alpha1
kind: BackupSchedule
metadata: {name: daily}
spec:
  schedule: "@daily"
  controlPlane: %s
  configRef: {kind: SharedBackupConfig, name: default}
"""
NAMED_SHARED = """---
apiVersion: spaces.upbound.io/v1alpha1
kind: SharedBackup
metadata: {name: nightly}
spec:
  configRef: {kind: SharedBackupConfig, name: default}
  controlPlaneSelector: %s
"""
DAY = datetime(2026, 11, 25, tzinfo=UTC)


def daily(cp: str, slot: datetime = DAY, phase: Phase = Phase.COMPLETED, **kw) -> BackupRecord:
    return rec(f"daily-{cp}-{slot.strftime('%Y%m%d%H%M%S')}", cp, phase, owner_kind=OwnerKind.BACKUP_SCHEDULE,
               owner_name="daily", slot=slot, **kw)


def nightly(cp: str, selector: str, phase: Phase = Phase.COMPLETED) -> BackupRecord:
    return rec(f"nightly-{cp}", cp, phase, owner_kind=OwnerKind.SHARED_BACKUP, owner_name="nightly", selector=selector)


def names_selector(*names: str) -> str:
    return json.dumps({"labelSelectors": [], "names": sorted(names)}, sort_keys=True, separators=(",", ":"))


IMMUTABLE = [
    # id, docs, records, restores, expected [(action, kind, name)], words in the error
    ("backupschedule-controlplane-changed", [BACKUP_SCHEDULE % "ctp2"], [daily("ctp1")], (),
     [("error", "BackupSchedule", "daily")], "spec.controlPlane (target can not be changed after creation: "
     "recorded 'ctp1', Git says 'ctp2')"),
    ("backupschedule-controlplane-changed-only-failed-recorded", [BACKUP_SCHEDULE % "ctp3"],
     [daily("ctp1", phase=Phase.FAILED, retries=3)], (), [("error", "BackupSchedule", "daily")], "recorded 'ctp1'"),
    ("backupschedule-controlplane-changed-old-slot-deleted", [BACKUP_SCHEDULE % "ctp2"],
     [daily("ctp1", DAY - timedelta(days=3), Phase.DELETED, deleted_with="Orphan")], (),
     [("error", "BackupSchedule", "daily")], "Git says 'ctp2'"),
    ("backupschedule-controlplane-unchanged", [BACKUP_SCHEDULE % "ctp1"], [daily("ctp1")], (), [], ""),
    ("sharedbackup-selector-to-disjoint-names", [NAMED_SHARED % "{names: [ctp2]}"],
     [nightly("ctp1", names_selector("ctp1"))], (), [("error", "SharedBackup", "nightly")],
     "spec.controlPlaneSelector (shared backup ControlPlane selectors can not be changed after creation"),
    ("sharedbackup-selector-to-disjoint-labels", [NAMED_SHARED % "{labelSelectors: [{matchLabels: {backup: 'no'}}]}"],
     [nightly("ctp1", names_selector("ctp1")), nightly("ctp2", names_selector("ctp1"))], (),
     [("error", "SharedBackup", "nightly")], 'recorded {"labelSelectors":[],"names":["ctp1"]}'),
    ("sharedbackup-selector-to-overlapping", [NAMED_SHARED % "{names: [ctp1, ctp2]}"],
     [nightly("ctp1", names_selector("ctp1"))], (), [("error", "SharedBackup", "nightly")], "controlPlaneSelector"),
    ("sharedbackup-selector-unchanged", [NAMED_SHARED % "{names: [ctp2, ctp1]}"],
     [nightly("ctp1", names_selector("ctp1", "ctp2"))], (), [("backup", "Backup", "nightly-ctp2")], ""),
    ("restore-added-to-known-control-plane", [BACKUP % ("b1", "ctp1", "Orphan"),
                                              RESTORED % ("Backup", "b1")],
     [rec("b1"), rec("gone-restored", "restored", owner_kind=OwnerKind.SHARED_BACKUP, owner_name="gone")], (), [("error", "ControlPlane", "restored")],
     "spec.restore: restore source can not be set after creation (the bucket index already records backups of "
     "ControlPlane default/restored)"),
    ("restore-added-to-known-control-plane-whose-backups-failed", [BACKUP % ("old", "ctp1", "Orphan"),
                                                                  RESTORED % ("Backup", "old")],
     [rec("old"), rec("x", "restored", Phase.FAILED, retries=3, owner_kind=OwnerKind.SHARED_BACKUP, owner_name="x")], (), [("error", "ControlPlane", "restored")],
     "can not be set after creation"),
    ("restore-of-new-control-plane", [BACKUP % ("old", "ctp1", "Orphan"), RESTORED % ("Backup", "old")], [rec("old")], (),
     [("restore", "ControlPlane", "restored")], ""),
    ("restore-recorded-then-control-plane-backed-up", [BACKUP % ("old", "ctp1", "Orphan"), RESTORED % ("Backup", "old")],
     [rec("old"), rec("after", "restored", owner_kind=OwnerKind.SHARED_BACKUP, owner_name="gone")],
     (RestoreRecord("default", "restored", "Backup", "old", Phase.PENDING),), [("restore", "ControlPlane", "restored")],
     ""),
]


@pytest.mark.parametrize("docs, records, restores, expected, words", [c[1:] for c in IMMUTABLE],
                         ids=[c[0] for c in IMMUTABLE])
def test_immutable_fields_no_backup_name_shows(docs, records, restores, expected, words):
    result = plan(desired(*docs), recorded(*records, restores=restores), NOW)
    assert [(a.type.value, a.kind, a.name) for a in result.actions] == expected
    errors = [a.reason for a in result.actions if a.type is ActionType.ERROR]
    assert all(words in reason for reason in errors)
    assert result.has_errors == bool(errors)


def test_error_on_schedule_control_plane_holds_its_deletions_too():
    d = desired(BACKUP_SCHEDULE % "ctp2")
    old = daily("ctp1", ttl="1h", expires_at=NOW - timedelta(hours=1), deletion_policy="Delete")
    assert summary(plan(d, recorded(old), NOW)) == [("error", "daily")]


# -- failed for good: listed, counted, and what apply exits with ----------------------------------------

UNREACHABLE = (Condition("Completed", "False", "ControlPlaneUnreachable", "connection refused by 127.0.0.1:1"),)


@pytest.mark.parametrize("retries, max_retries, expected", [
    (3, 3, [("failed", "b1")]), (2, 3, [("retry", "b1")]), (5, 3, [("failed", "b1")]), (0, 0, [("failed", "b1")]),
])
def test_failed_for_good_is_listed(retries, max_retries, expected):
    records = recorded(rec("b1", phase=Phase.FAILED, retries=retries, conditions=UNREACHABLE))
    result = plan(desired(BACKUP % ("b1", "ctp1", "Orphan")), records, NOW, PlanOptions(max_retries=max_retries))
    assert summary(result) == expected
    if expected[0][0] == "failed":
        action = result.actions[0]
        assert action.sign == "!"
        assert action.reason == (f"ControlPlaneUnreachable after {retries + 1} attempt{'s' if retries else ''}: "
                                 "connection refused by 127.0.0.1:1")
        assert not result.has_changes and not result.has_errors
        assert result.summary()["failed"] == 1
        assert result.failed_beyond_allowance == (("default", "b1"),)


def test_failed_schedule_slot_stays_listed_until_a_newer_slot():
    d = desired(BACKUP_SCHEDULE % "ctp1")
    failed = daily("ctp1", phase=Phase.FAILED, retries=3, conditions=UNREACHABLE)
    result = plan(d, recorded(failed), NOW)
    assert summary(result) == [("failed", "daily-ctp1-20261125000000")]
    assert result.failed_beyond_allowance == (("default", "daily-ctp1-20261125000000"),)
    next_day = plan(d, recorded(failed), NOW + timedelta(days=1))
    assert summary(next_day) == [("backup", "daily-ctp1-20261126000000")]
    assert next_day.failed_beyond_allowance == ()


@pytest.mark.parametrize("budget, failed_cps, beyond", [
    (0, ("ctp1",), (("default", "nightly-ctp1"),)),
    (1, ("ctp1",), ()),
    (1, ("ctp1", "ctp2"), (("default", "nightly-ctp1"), ("default", "nightly-ctp2"))),
    ('"50%"', ("ctp1",), ()),
    ('"49%"', ("ctp2",), (("default", "nightly-ctp2"),)),
])
def test_failed_beyond_shared_backup_allowance(budget, failed_cps, beyond):
    records = [rec(f"nightly-{cp}", cp, Phase.FAILED if cp in failed_cps else Phase.COMPLETED,
                   retries=3 if cp in failed_cps else 0, owner_kind=OwnerKind.SHARED_BACKUP, owner_name="nightly",
                   conditions=UNREACHABLE if cp in failed_cps else (), selector=shared_selector())
               for cp in ("ctp1", "ctp2")]
    result = plan(desired(SHARED % ("false", budget)), recorded(*records), NOW)
    assert summary(result) == [("failed", f"nightly-{cp}") for cp in failed_cps]
    assert result.failed_beyond_allowance == beyond


RETRY_ME = """---
apiVersion: spaces.upbound.io/v1alpha1
kind: Backup
metadata:
  name: b1
  annotations: {backup.ctpbackup.io/retryRequestedAt: "%s"}
spec:
  configRef: {kind: SharedBackupConfig, name: default}
  controlPlane: ctp1
"""


@pytest.mark.parametrize("annotation, honoured, expected", [
    ("2026-11-25T10:00:00Z", "", "retry"),
    ("2026-11-25T10:00:00Z", "2026-11-24T08:00:00Z", "retry"),
    ("2026-11-25T10:00:00Z", "2026-11-25T10:00:00Z", "failed"),  # the same value: already honoured
    ("again", "", "retry"),
])
def test_retry_annotation_asks_for_a_fresh_attempt(annotation, honoured, expected):
    record = rec("b1", phase=Phase.FAILED, retries=3, conditions=UNREACHABLE, retry_request=honoured)
    result = plan(desired(RETRY_ME % annotation), recorded(record), NOW)
    assert summary(result) == [(expected, "b1")]
    if expected == "retry":
        assert result.actions[0].request.retry_request == annotation
        assert result.actions[0].reason == (
            "failed for good (connection refused by 127.0.0.1:1); a fresh attempt asked for by "
            f"backup.ctpbackup.io/retryRequestedAt={annotation!r}")


def test_retry_annotation_on_a_shared_backup_reaches_its_backups():
    shared = SHARED.replace("metadata: {name: nightly}",
                            'metadata: {name: nightly, annotations: {backup.ctpbackup.io/retryRequestedAt: "1"}}')
    records = [rec(f"nightly-{cp}", cp, Phase.FAILED, retries=3, owner_kind=OwnerKind.SHARED_BACKUP,
                   owner_name="nightly", conditions=UNREACHABLE, selector=shared_selector()) for cp in ("ctp1", "ctp2")]
    result = plan(desired(shared % ("false", 0)), recorded(*records), NOW)
    assert summary(result) == [("retry", "nightly-ctp1"), ("retry", "nightly-ctp2")]


# -- connection Secrets known to be missing: wait, record nothing, use no retry ------------------------

@pytest.mark.parametrize("docs, records, missing, expected", [
    ([BACKUP % ("b1", "ctp1", "Orphan")], [], {"ctp1"}, [("wait", "b1")]),
    ([BACKUP % ("b1", "ctp1", "Orphan")], [], {"ctp2"}, [("backup", "b1")]),
    ([BACKUP % ("b1", "ctp1", "Orphan")], [rec("b1", phase=Phase.FAILED, retries=1, conditions=UNREACHABLE)], {"ctp1"},
     [("wait", "b1")]),
    ([BACKUP % ("b1", "ctp1", "Orphan")], [rec("b1", phase=Phase.FAILED, retries=3, conditions=UNREACHABLE)], {"ctp1"},
     [("failed", "b1")]),  # failed for good stays in view
    ([SHARED % ("false", 0)], [], {"ctp2"}, [("backup", "nightly-ctp1"), ("wait", "nightly-ctp2")]),
    ([BACKUP % ("b1", "ctp1", "Orphan"), RESTORED % ("Backup", "b1")], [rec("b1")], {"restored"}, [("wait", "restored")]),
    ([BACKUP % ("b1", "ctp1", "Orphan"), RESTORED % ("Backup", "b1")], [rec("b1")], {"ctp1"}, [("restore", "restored")]),
], ids=["backup", "other-control-plane", "retry", "failed-for-good", "shared-backup", "restore-target", "restore-source-cp"])
def test_missing_connection_secret_waits(docs, records, missing, expected):
    reasons = {("default", cp): f"connection Secret default/kubeconfig-{cp} not found" for cp in missing}
    result = plan(desired(*docs), recorded(*records), NOW, PlanOptions(), reasons)
    assert summary(result) == expected
    for action in result.actions:
        if action.type is ActionType.WAIT:
            assert action.reason.startswith(f"connection Secret default/kubeconfig-{action.control_plane} not found: the ")
    assert not result.has_errors
