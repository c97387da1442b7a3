"""`plan` and `apply` as a user (and CI) sees them: a real process, a real Git repository, a real
(folder) bucket: exit codes with a backup failed for good, and connection Secrets that are missing."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from ctpbackup.storage.filesystem import FilesystemBucket
from ctpbackup.store.index import BucketIndex
from ctpbackup.store.layout import BucketLayout
from ctpbackup.store.records import BackupRecord, Condition, OwnerKind, Phase
from tests.fixtures.cliprocess import reconcile_py

ROOT = Path(__file__).resolve().parents[2]
NOW = "2026-11-25T10:30:00Z"

MANIFESTS = """apiVersion: spaces.upbound.io/v1alpha1
kind: SharedBackupConfig
metadata: {name: default}
spec:
  objectStorage:
    provider: Filesystem
    bucket: %s
    prefix: prod
    credentials: {source: InjectedIdentity}
---
apiVersion: spaces.upbound.io/v1beta1
kind: ControlPlane
metadata: {name: ctp1, labels: {backup: "yes"}}
---
apiVersion: spaces.upbound.io/v1beta1
kind: ControlPlane
metadata: {name: ctp2, labels: {backup: "yes"}}
"""
BACKUP = """---
apiVersion: spaces.upbound.io/v1alpha1
kind: Backup
metadata: {name: b1}
spec:
  configRef: {kind: SharedBackupConfig, name: default}
  controlPlane: ctp1
"""
SHARED = """---
apiVersion: spaces.upbound.io/v1alpha1
kind: SharedBackup
metadata: {name: nightly}
spec:
  configRef: {kind: SharedBackupConfig, name: default}
  controlPlaneSelector: {labelSelectors: [{matchLabels: {backup: "yes"}}]}
  failures: {controlPlanes: %s}
"""
UNREACHABLE = (Condition("Completed", "False", "ControlPlaneUnreachable", "connection refused"),)


def run(*args: str) -> subprocess.CompletedProcess:
    """The CLI with human text (off a terminal plan would write JSON events; those are tests/ops')."""
    command, *rest = args
    return reconcile_py(command, "--log-format", "text", *rest, timeout=120)


def record(name: str, cp: str, phase: Phase, **kw) -> BackupRecord:
    return BackupRecord("default", name, cp, "default", phase, sha256="0" * 64 if phase is Phase.COMPLETED else "",
                        conditions=UNREACHABLE if phase is Phase.FAILED else (), **kw)


@pytest.fixture
def story(gitops_repo, tmp_path):
    bucket = tmp_path / "bucket"
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    index = BucketIndex(FilesystemBucket(bucket), BucketLayout("prod"))

    def setup(docs: str, *records: BackupRecord, connected: tuple[str, ...] = ()) -> list[str]:
        for name in connected:  # the connection Secret Spaces writes: kubeconfig-<name>
            folder = secrets / "default" / f"kubeconfig-{name}"
            folder.mkdir(parents=True, exist_ok=True)
            (folder / "kubeconfig").write_text("apiVersion: v1\nkind: Config\n")
        gitops_repo.write("all.yaml", MANIFESTS % bucket + docs)
        gitops_repo.commit()
        for r in records:
            index.update_backup(r.namespace, r.control_plane, r.name, lambda _old, r=r: r)
        return ["--repo", str(gitops_repo.path), "--secrets-dir", str(secrets), "--now", NOW]
    return setup


def test_plan_lists_a_failed_backup_and_keeps_its_exit_code(story):
    args = story(BACKUP, record("b1", "ctp1", Phase.FAILED, retries=3))
    result = run("plan", *args)
    assert result.returncode == 0, result.stderr
    assert "  ! failed default/b1: ControlPlaneUnreachable after 4 attempts: connection refused\n" in result.stdout
    assert "Plan: 0 backups, 0 restores, 0 deletions, 0 errors, 1 failed for good." in result.stdout
    assert "No changes" not in result.stdout
    assert run("plan", "--detailed-exitcode", *args).returncode == 0  # nothing to change: not 2


def test_apply_exits_1_while_a_backup_is_failed_for_good(story):
    result = run("apply", *story(BACKUP, record("b1", "ctp1", Phase.FAILED, retries=3)))
    assert result.returncode == 1
    assert "error: failed for good beyond the allowed failures: default/b1" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("allowance, returncode", [(0, 1), (1, 0), ('"50%"', 0), ('"49%"', 1)])
def test_apply_honours_the_shared_backups_failure_allowance(story, allowance, returncode):
    args = story(SHARED % allowance,
                 record("nightly-ctp1", "ctp1", Phase.FAILED, retries=3, owner_kind=OwnerKind.SHARED_BACKUP,
                        owner_name="nightly"),
                 record("nightly-ctp2", "ctp2", Phase.COMPLETED, owner_kind=OwnerKind.SHARED_BACKUP,
                        owner_name="nightly"))
    result = run("apply", *args)
    assert result.returncode == returncode, result.stdout + result.stderr
    assert "! failed default/nightly-ctp1: ControlPlaneUnreachable after 4 attempts" in result.stdout
    assert ("failed for good beyond the allowed failures: default/nightly-ctp1" in result.stderr) == bool(returncode)


TWO_BACKUPS = BACKUP + BACKUP.replace("name: b1", "name: b2").replace("controlPlane: ctp1", "controlPlane: ctp2")
RESTORE = """---
apiVersion: spaces.upbound.io/v1beta1
kind: ControlPlane
metadata: {name: restored}
spec: {restore: {source: {kind: Backup, name: old}}}
"""


def test_a_missing_connection_secret_is_a_wait_with_the_reason(story):
    args = story(TWO_BACKUPS + RESTORE, record("old", "ctp1", Phase.COMPLETED, owner_kind=OwnerKind.SHARED_BACKUP,
                                               owner_name="gone"), connected=("ctp1",))
    result = run("plan", "--detailed-exitcode", *args)
    assert result.returncode == 2, result.stderr
    assert "  + backup default/b1 ← ctp1\n" in result.stdout
    assert ("  . wait default/b2\n      connection Secret default/kubeconfig-ctp2 not found: the backup waits for it "
            "(Backup in Git, not in the bucket index)\n") in result.stdout
    assert ("  . wait default/restored\n      connection Secret default/kubeconfig-restored not found: the restore "
            "waits for it\n") in result.stdout
    assert "Plan: 1 backup, 0 restores, 0 deletions, 0 errors. (0 retried, 0 orphaned, 2 waiting)" in result.stdout
    assert "not checked" not in result.stdout


def test_a_secret_source_without_connection_secrets_says_so_once(story):
    args = story(TWO_BACKUPS)  # bucket credentials only, as in the pull-request action
    result = run("plan", *args)
    assert result.returncode == 0, result.stderr
    assert "  + backup default/b1 ← ctp1\n" in result.stdout and "  + backup default/b2 ← ctp2\n" in result.stdout
    assert result.stdout.count("Connection Secrets were not checked") == 1
    as_json = run("plan", "-o", "json", *args)
    assert '"connectionSecretsChecked": false' in as_json.stdout
    markdown = run("plan", "-o", "markdown", *args).stdout
    assert markdown.count("Connection Secrets were not checked") == 1


def test_all_connection_secrets_present_plans_backups(story):
    result = run("plan", "-o", "json", *story(TWO_BACKUPS, connected=("ctp1", "ctp2")))
    assert '"connectionSecretsChecked": true' in result.stdout and '"wait": 0' in result.stdout
    assert '"backup": 2' in result.stdout
