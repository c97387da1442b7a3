"""The planner against a hostile or damaged bucket state: clocks that ran ahead, runs killed at
every try, and the mass-deletion guard counting per (namespace, config). Pure: tables of inputs."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest

from ctpbackup.desired.manifests import ManifestFile, load_desired_state
from ctpbackup.plan.planner import ActionType, PlanOptions, plan
from ctpbackup.store.records import BackupRecord, OwnerKind, Phase
from ctpbackup.store.summary import RecordedSummary

NOW = datetime(2026, 11, 25, 10, 30, 0, tzinfo=UTC)
CONFIG = """---
apiVersion: spaces.upbound.io/v1alpha1
kind: SharedBackupConfig
metadata: {{name: default, namespace: {ns}}}
spec:
  objectStorage:
    provider: Filesystem
    bucket: /tmp/bucket
    credentials: {{source: InjectedIdentity}}
"""
CP = """---
apiVersion: spaces.upbound.io/v1beta1
kind: ControlPlane
metadata: {{name: {name}, namespace: {ns}, labels: {{backup: "yes"}}}}
"""
BACKUP = """---
apiVersion: spaces.upbound.io/v1alpha1
kind: Backup
metadata: {{name: {name}, namespace: {ns}}}
spec:
  configRef: {{kind: SharedBackupConfig, name: default}}
  controlPlane: ctp1
  deletionPolicy: Delete
"""
SCHEDULE = """---
apiVersion: spaces.upbound.io/v1alpha1
kind: SharedBackupSchedule
metadata: {name: hourly, namespace: default}
spec:
  schedule: "@every 1h"
  configRef: {kind: SharedBackupConfig, name: default}
  controlPlaneSelector: {labelSelectors: [{matchLabels: {backup: "yes"}}]}
"""


@dataclass(frozen=True)
class Recorded:
    backups: dict = field(default_factory=dict)
    restores: dict = field(default_factory=dict)

    def summary(self):
        return RecordedSummary.of(self.backups.values())

    def kept_by(self, owners):
        return []


def desired(*docs: str, namespaces=("default",)):
    text = "".join(CONFIG.format(ns=ns) + CP.format(name="ctp1", ns=ns) for ns in namespaces) + "".join(docs)
    result = load_desired_state([ManifestFile("all.yaml", text.encode())], "abc1234def")
    assert not result.errors, [str(p) for p in result.errors]
    return result.require()


def rec(name: str, ns: str = "default", phase: Phase = Phase.COMPLETED, **kw) -> BackupRecord:
    kw.setdefault("sha256", "0" * 64 if phase is Phase.COMPLETED else "")
    return BackupRecord(namespace=ns, name=name, control_plane="ctp1", config="default", phase=phase, **kw)


def recorded(*records: BackupRecord) -> Recorded:
    return Recorded({r.key: r for r in records})


# -- item 7: the mass-deletion guard counts per (namespace, config) ------------------------------------

GONE = "every recorded backup of SharedBackupConfig team-b/default (5) while Git holds nothing that uses it"
LIMIT = "{} of {} recorded backups of SharedBackupConfig team-b/default, more than the limit (10 backups or 50%)"


@pytest.mark.parametrize("a_count, b_count, b_removed, refusal", [
    (6, 5, 5, GONE),  # the issue: team B removes all 5 of its Backups while team A holds 6 under its own `default`
    (0, 5, 5, GONE),
    (100, 5, 3, LIMIT.format(3, 5)),  # 3 of B's 5 is more than half, however many A has
    (6, 4, 2, ""),  # half of B's: allowed
    (20, 20, 10, ""),
    (20, 20, 11, LIMIT.format(11, 20)),
])
def test_mass_delete_guard_counts_per_namespace_and_config(a_count, b_count, b_removed, refusal):
    keep = [BACKUP.format(name=f"a{i}", ns="team-a") for i in range(a_count)]
    keep += [BACKUP.format(name=f"b{i}", ns="team-b") for i in range(b_removed, b_count)]
    records = [rec(f"a{i}", "team-a", deletion_policy="Delete") for i in range(a_count)]
    records += [rec(f"b{i}", "team-b", deletion_policy="Delete") for i in range(b_count)]
    result = plan(desired(*keep, namespaces=("team-a", "team-b")), recorded(*records), NOW)
    assert result.count(ActionType.DELETE) == (0 if refusal else b_removed)
    assert [r.split(";")[0] for r in result.refusals] == ([f"refusing to delete or orphan {refusal}"] if refusal else [])


def test_mass_delete_guard_other_namespace_does_not_hide_a_config_gone_from_git():
    """Team B's config keeps its name but nothing in Git uses it; team A's `default` is in use."""
    keep = [BACKUP.format(name=f"a{i}", ns="team-a") for i in range(6)]
    records = [rec(f"a{i}", "team-a", deletion_policy="Delete") for i in range(6)]
    records += [rec(f"b{i}", "team-b", deletion_policy="Delete") for i in range(2)]
    result = plan(desired(*keep, namespaces=("team-a", "team-b")), recorded(*records), NOW)
    assert result.count(ActionType.DELETE) == 0
    assert [r.split(";")[0] for r in result.refusals] == [
        "refusing to delete or orphan every recorded backup of SharedBackupConfig team-b/default (2) while Git "
        "holds nothing that uses it"]


# -- item 4: a backup killed at every try ends Failed, reason Interrupted ---------------------------

@pytest.mark.parametrize("phase, retries, max_retries, expected", [
    (Phase.IN_PROGRESS, 0, 3, "retry"),
    (Phase.IN_PROGRESS, 2, 3, "retry"),
    (Phase.IN_PROGRESS, 3, 3, "give-up"),
    (Phase.PENDING, 3, 3, "give-up"),
    (Phase.IN_PROGRESS, 7, 3, "give-up"),
    (Phase.IN_PROGRESS, 0, 0, "give-up"),
    (Phase.FAILED, 3, 3, "failed"),  # failed for good: listed as `! failed`, never retaken
    (Phase.COMPLETED, 3, 3, None),
])
def test_interrupted_at_every_try_is_given_up(phase, retries, max_retries, expected):
    d = desired(BACKUP.format(name="b1", ns="default"))
    result = plan(d, recorded(rec("b1", phase=phase, retries=retries)), NOW, PlanOptions(max_retries=max_retries))
    assert [(a.type.value, a.name) for a in result.actions] == ([(expected, "b1")] if expected else [])
    if expected == "give-up":
        (action,) = result.actions
        assert action.reason == (f"left {phase.value} by an interrupted run at each of {retries + 1} tries; the retry "
                                 f"limit ({max_retries}) is reached: recorded Failed, reason Interrupted")
        assert result.has_changes


# -- item 5: a slot later than now plus a lease period is a clock error ------------------------------

def scheduled(slot: datetime, phase: Phase = Phase.COMPLETED) -> BackupRecord:
    return rec(f"hourly-ctp1-{slot.strftime('%Y%m%d%H%M%S')}", phase=phase, owner_kind=OwnerKind.SHARED_BACKUP_SCHEDULE,
               owner_name="hourly", slot=slot)


@pytest.mark.parametrize("future", [
    datetime(2031, 1, 1, tzinfo=UTC), NOW + timedelta(minutes=11), NOW + timedelta(days=400),
])
def test_a_slot_from_a_clock_that_ran_ahead_is_warned_and_the_next_slot_comes_from_now(future):
    result = plan(desired(SCHEDULE), recorded(scheduled(future)), NOW)
    assert [(a.type.value, a.name) for a in result.actions] == [("backup", "hourly-ctp1-20261125100000")]
    assert result.warnings == (
        f"SharedBackupSchedule default/hourly on ctp1: the recorded slot {future.strftime('%Y-%m-%d %H:%M:%S UTC')} "
        "is later than now plus 10m (a clock error); the next slot is computed from now",)
    # once the slot from now is taken, nothing more is planned (and the warning stays)
    again = plan(desired(SCHEDULE), recorded(scheduled(future), scheduled(datetime(2026, 11, 25, 10, tzinfo=UTC))), NOW)
    assert again.actions == () and len(again.warnings) == 1


@pytest.mark.parametrize("ahead", [timedelta(0), timedelta(minutes=9), timedelta(minutes=10)])
def test_a_slot_within_the_tolerance_is_no_clock_error(ahead):
    result = plan(desired(SCHEDULE), recorded(scheduled(NOW + ahead)), NOW)
    assert result.actions == () and result.warnings == ()
