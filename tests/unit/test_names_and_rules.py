"""What `validate` refuses from Git alone: generated backup names that collide (naming both
sources), and the ControlPlane CRD's rule on crossplane.version. And what it leaves to the plan:
whether a restore's source exists (that needs the bucket index)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from ctpbackup.desired.manifests import ManifestFile, load_desired_state
from ctpbackup.plan.planner import plan
from ctpbackup.store.records import BackupRecord, Phase
from tests.planner.test_plan import Recorded

NOW = datetime(2026, 11, 25, 10, 30, tzinfo=UTC)
CONFIG = """apiVersion: spaces.upbound.io/v1alpha1
kind: SharedBackupConfig
metadata: {name: default}
spec: {objectStorage: {provider: Filesystem, bucket: /tmp/b, credentials: {source: InjectedIdentity}}}
"""


def cp(name: str, labels: str = "{}") -> str:
    return f"---\napiVersion: spaces.upbound.io/v1beta1\nkind: ControlPlane\nmetadata: {{name: {name}, labels: {labels}}}\n"


def shared(name: str, names: str) -> str:
    return f"""---
apiVersion: spaces.upbound.io/v1alpha1
kind: SharedBackup
metadata: {{name: {name}}}
spec:
  configRef: {{kind: SharedBackupConfig, name: default}}
  controlPlaneSelector: {{names: [{names}]}}
"""


def backup(name: str, control_plane: str) -> str:
    return f"""---
apiVersion: spaces.upbound.io/v1alpha1
kind: Backup
metadata: {{name: {name}}}
spec: {{configRef: {{kind: SharedBackupConfig, name: default}}, controlPlane: {control_plane}}}
"""


def schedule(name: str, control_plane: str) -> str:
    return f"""---
apiVersion: spaces.upbound.io/v1alpha1
kind: BackupSchedule
metadata: {{name: {name}}}
spec: {{schedule: "@daily", configRef: {{kind: SharedBackupConfig, name: default}}, controlPlane: {control_plane}}}
"""


def shared_schedule(name: str, names: str) -> str:
    return f"""---
apiVersion: spaces.upbound.io/v1alpha1
kind: SharedBackupSchedule
metadata: {{name: {name}}}
spec:
  schedule: "@daily"
  configRef: {{kind: SharedBackupConfig, name: default}}
  controlPlaneSelector: {{names: [{names}]}}
"""


def load(*docs: str):
    return load_desired_state([ManifestFile("all.yaml", (CONFIG + "".join(docs)).encode())], "abc")


def errors(*docs: str) -> list[str]:
    return [str(p) for p in load(*docs).errors]


COLLISIONS = [
    # id, docs, the one expected error
    ("sharedbackup-x-sharedbackup", [cp("b-c"), cp("c"), shared("a", "b-c"), shared("a-b", "c")],
     "all.yaml:23: SharedBackup default/a-b: metadata.name: generated name collision: Backup default/a-b-c would come "
     "from both SharedBackup default/a for control plane b-c (all.yaml:16) and SharedBackup default/a-b for control "
     "plane c (all.yaml:23); rename one of them"),
    ("sharedbackup-x-backup", [cp("ctp1"), backup("nightly-ctp1", "ctp1"), shared("nightly", "ctp1")],
     "all.yaml:17: SharedBackup default/nightly: metadata.name: generated name collision: Backup default/nightly-ctp1 "
     "would come from both Backup default/nightly-ctp1 (all.yaml:12) and SharedBackup default/nightly for control "
     "plane ctp1 (all.yaml:17); rename one of them"),
    ("backupschedule-x-backupschedule", [cp("b-c"), cp("c"), schedule("a", "b-c"), schedule("a-b", "c")],
     "all.yaml:21: BackupSchedule default/a-b: metadata.name: generated name collision: the scheduled backups "
     "default/a-b-c-<UTC yyyymmddhhmmss> would come from both BackupSchedule default/a for control plane b-c "
     "(all.yaml:16) and BackupSchedule default/a-b for control plane c (all.yaml:21); rename one of them"),
    ("sharedbackupschedule-x-backupschedule", [cp("b-c"), cp("c"), schedule("a-b", "c"), shared_schedule("a", "b-c")],
     "all.yaml:21: SharedBackupSchedule default/a: metadata.name: generated name collision: the scheduled backups "
     "default/a-b-c-<UTC yyyymmddhhmmss> would come from both BackupSchedule default/a-b for control plane c "
     "(all.yaml:16) and SharedBackupSchedule default/a for control plane b-c (all.yaml:21); rename one of them"),
    ("backup-x-a-schedule-slot", [cp("ctp1"), schedule("daily", "ctp1"), backup("daily-ctp1-20261125000000", "ctp1")],
     "all.yaml:17: Backup default/daily-ctp1-20261125000000: metadata.name: generated name collision: Backup "
     "default/daily-ctp1-20261125000000 would come from both BackupSchedule default/daily for control plane ctp1 "
     "(all.yaml:12) and Backup default/daily-ctp1-20261125000000 (all.yaml:17); rename one of them"),
]


@pytest.mark.parametrize("docs, expected", [c[1:] for c in COLLISIONS], ids=[c[0] for c in COLLISIONS])
def test_generated_names_that_collide_are_one_error_naming_both(docs, expected):
    assert errors(*docs) == [expected]


@pytest.mark.parametrize("docs", [
    [cp("b-c"), cp("c"), shared("a", "b-c"), shared("x-b", "c")],
    [cp("ctp1"), cp("ctp2"), schedule("daily", "ctp1"), schedule("daily-2", "ctp2")],
    [cp("ctp1"), schedule("daily", "ctp1"), backup("daily-ctp1-manual", "ctp1")],
    [cp("ctp1"), schedule("daily", "ctp1"), shared_schedule("hourly", "ctp1"), shared("nightly", "ctp1")],
], ids=["different-names", "different-prefixes", "backup-not-a-slot", "all-kinds-no-clash"])
def test_names_that_do_not_collide_pass(docs):
    assert errors(*docs) == []


def control_plane(crossplane: str) -> str:
    return f"""---
apiVersion: spaces.upbound.io/v1beta1
kind: ControlPlane
metadata: {{name: ctp}}
spec:
  crossplane: {crossplane}
"""


@pytest.mark.parametrize("crossplane, expected", [
    ("{autoUpgrade: {channel: None}}", ['all.yaml:10: ControlPlane default/ctp: spec.crossplane.version: "version" '
                                        'cannot be empty when upgrade channel is "None"']),
    ('{autoUpgrade: {channel: None}, version: ""}', ["all.yaml:10: ControlPlane default/ctp: spec.crossplane.version: "
                                                     "'' is not a Crossplane version without a leading 'v' (e.g. '1.20.0')"]),
    ('{autoUpgrade: {channel: None}, version: "1.20.0"}', []),
    ("{autoUpgrade: {channel: Stable}}", []),
    ("{}", []),
])
def test_crossplane_version_required_when_the_upgrade_channel_is_none(crossplane, expected):
    assert errors(control_plane(crossplane)) == expected


RESTORE = """---
apiVersion: spaces.upbound.io/v1beta1
kind: ControlPlane
metadata: {name: restored}
spec: {restore: {source: {kind: %s, name: %s}}}
"""


@pytest.mark.parametrize("docs, records, expected", [
    # only the bucket index knows the source: validate passes, the plan restores
    ([RESTORE % ("Backup", "old")], [BackupRecord("default", "old", "ctp1", "default", Phase.COMPLETED, sha256="0" * 64)],
     ("restore", "restore from Backup old of ctp1")),
    # Git asks for it, not taken yet: wait
    ([backup("b1", "ctp1"), RESTORE % ("Backup", "b1")], [], ("wait", "source Backup b1 is not taken yet")),
    ([schedule("daily", "ctp1"), RESTORE % ("BackupSchedule", "daily")], [],
     ("wait", "source BackupSchedule daily has no Completed backup yet")),
    # neither: an error of the plan, not of validate
    ([RESTORE % ("Backup", "nope")], [],
     ("error", "spec.restore.source: Backup default/nope is neither in Git nor recorded in the bucket index; nothing done")),
    ([RESTORE % ("BackupSchedule", "nope")], [],
     ("error", "spec.restore.source: BackupSchedule default/nope is neither in Git nor recorded in the bucket index; "
               "nothing done")),
], ids=["index-only", "in-git-not-taken", "schedule-in-git", "backup-nowhere", "schedule-nowhere"])
def test_validate_leaves_restore_sources_to_the_plan(docs, records, expected):
    result = load(cp("ctp1"), *docs)
    assert result.errors == []  # what validate reports
    actions = plan(result.require(), Recorded({r.key: r for r in records}), NOW).actions
    assert [(a.type.value, a.reason) for a in actions if a.name == "restored"] == [expected]


@pytest.mark.parametrize("length, control_planes, expected", [
    (236, ["c"], []),  # 236 + "-c-" + 14 digits = 253
    (237, ["c"], ["c"]),
    (230, ["c", "ctp-two", "ctp-three"], ["ctp-three"]),  # 230 + 9 + 16 = 255; ctp-two makes 253
    (222, ["ctp-three", "c", "sixteen-letterss"], ["sixteen-letterss"]),
])
def test_scheduled_backup_names_longer_than_253_characters_are_refused(length, control_planes, expected):
    """`<schedule>-<control plane>-<UTC yyyymmddhhmmss>`: every control plane of the namespace for a
    SharedBackupSchedule (it may select one later), the named one for a BackupSchedule."""
    cps = [cp(name) for name in control_planes]
    shared_name, name = "a" * length, "b" * length
    message = "all.yaml:{line}: {kind} default/{name}: metadata.name: scheduled backup names for control plane {cp} would exceed 253 characters"
    line = 8 + 4 * len(control_planes)
    assert errors(*cps, shared_schedule(shared_name, control_planes[0])) == [
        message.format(line=line, kind="SharedBackupSchedule", name=shared_name, cp=c) for c in expected]
    too_long = len(name) + len(control_planes[0]) + 16 > 253
    assert errors(*cps, schedule(name, control_planes[0])) == [
        message.format(line=line, kind="BackupSchedule", name=name, cp=control_planes[0])] * too_long
