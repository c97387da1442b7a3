"""Isolation: a namespace (a Spaces group) never reaches into another's configs, control planes,
backups or Secrets."""

from __future__ import annotations

from datetime import UTC, datetime

from ctpbackup.desired.manifests import ManifestFile, load_desired_state
from ctpbackup.plan.planner import plan
from ctpbackup.store.records import BackupRecord, Phase
from tests.planner.test_plan import Recorded

CONFIG = """apiVersion: spaces.upbound.io/v1alpha1
kind: SharedBackupConfig
metadata: {name: default, namespace: team-a}
spec: {objectStorage: {provider: Filesystem, bucket: /tmp/b, credentials: {source: InjectedIdentity}}}
"""


def load(text: str):
    return load_desired_state([ManifestFile("all.yaml", text.encode())], "abc")


def errors(text: str) -> list[str]:
    return [str(p) for p in load(text).errors]


def test_a_backup_cannot_use_another_namespaces_config_or_control_plane():
    found = errors(CONFIG + """---
apiVersion: spaces.upbound.io/v1beta1
kind: ControlPlane
metadata: {name: ctp, namespace: team-a}
---
apiVersion: spaces.upbound.io/v1alpha1
kind: Backup
metadata: {name: sneaky, namespace: team-b}
spec: {configRef: {kind: SharedBackupConfig, name: default}, controlPlane: ctp}
""")
    assert any("SharedBackupConfig team-b/default not found in namespace 'team-b'" in e for e in found)
    assert any("ControlPlane team-b/ctp not found in namespace 'team-b'" in e for e in found)


def test_a_restore_cannot_name_another_namespaces_backup():
    text = CONFIG + """---
apiVersion: spaces.upbound.io/v1beta1
kind: ControlPlane
metadata: {name: ctp, namespace: team-a}
---
apiVersion: spaces.upbound.io/v1alpha1
kind: Backup
metadata: {name: b1, namespace: team-a}
spec: {configRef: {kind: SharedBackupConfig, name: default}, controlPlane: ctp}
---
apiVersion: spaces.upbound.io/v1beta1
kind: ControlPlane
metadata: {name: thief, namespace: team-b}
spec: {restore: {source: {kind: Backup, name: b1}}}
"""
    found = errors(text)
    # whether a source exists needs the bucket index: the plan says so, looking in team-b only
    assert found == []
    record = BackupRecord("team-a", "b1", "ctp", "default", Phase.COMPLETED, sha256="0" * 64)
    result = plan(load(text).require(), Recorded({record.key: record}), datetime(2026, 11, 25, tzinfo=UTC))
    assert [(a.type.value, a.namespace, a.name, a.reason) for a in result.actions if a.name == "thief"] == [
        ("error", "team-b", "thief", "spec.restore.source: Backup team-b/b1 is neither in Git nor recorded in the "
         "bucket index; nothing done")]


def test_a_connection_secret_cannot_live_in_another_namespace():
    found = errors("""apiVersion: spaces.upbound.io/v1beta1
kind: ControlPlane
metadata: {name: ctp, namespace: team-a}
spec: {writeConnectionSecretToRef: {name: kc, namespace: kube-system}}
""")
    assert any("references never cross namespaces" in e for e in found)


def test_a_shared_backup_selects_only_its_own_namespaces_control_planes():
    desired = load(CONFIG + """---
apiVersion: spaces.upbound.io/v1beta1
kind: ControlPlane
metadata: {name: mine, namespace: team-a, labels: {backup: enabled}}
---
apiVersion: spaces.upbound.io/v1beta1
kind: ControlPlane
metadata: {name: theirs, namespace: team-b, labels: {backup: enabled}}
---
apiVersion: spaces.upbound.io/v1alpha1
kind: SharedBackup
metadata: {name: all, namespace: team-a}
spec:
  configRef: {kind: SharedBackupConfig, name: default}
  controlPlaneSelector: {labelSelectors: [{matchLabels: {backup: enabled}}]}
""").require()
    actions = plan(desired, Recorded(), datetime(2026, 11, 25, tzinfo=UTC)).actions
    assert [(a.namespace, a.name, a.control_plane) for a in actions] == [("team-a", "all-mine", "mine")]
