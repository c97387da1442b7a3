"""`reconcile.py validate` as a user runs it: a real process, real repositories."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "reconcile.py"), *args], capture_output=True, text=True, timeout=60)


def test_validate_examples_prints_commit_and_counts(gitops_repo):
    gitops_repo.copy_examples()
    sha = gitops_repo.commit()
    result = run("validate", "--repo", str(gitops_repo.path))
    assert result.returncode == 0, result.stderr
    assert sha in result.stdout
    for line in ("SharedBackupConfig    1", "ControlPlane          4", "Backup                2",
                 "SharedBackup          1", "SharedBackupSchedule  1"):
        assert line in result.stdout
    assert "Traceback" not in result.stderr


def test_validate_through_file_url_and_subfolder(gitops_repo):
    gitops_repo.copy_examples(into="gitops/prod")
    gitops_repo.write("unrelated/deploy.yaml", "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\n")
    sha = gitops_repo.commit()
    result = run("validate", "--repo", gitops_repo.url, "--path", "gitops/prod")
    assert result.returncode == 0, result.stderr
    assert f"commit {sha}" in result.stdout


def test_invalid_deletion_policy_is_reported_at_its_line(gitops_repo):
    gitops_repo.copy_examples()
    gitops_repo.write("backups/b.yaml", """apiVersion: spaces.upbound.io/v1alpha1
kind: Backup
metadata:
  name: nightly
  namespace: default
spec:
  configRef: {kind: SharedBackupConfig, name: default}
  controlPlane: ctp1
  deletionPolicy: Destroy
""")
    gitops_repo.commit()
    result = run("validate", "--repo", str(gitops_repo.path))
    assert result.returncode == 1
    assert ("backups/b.yaml:9: Backup default/nightly: spec.deletionPolicy: 'Destroy' is not one of ['Orphan', 'Delete']"
            in result.stderr)
    assert "Traceback" not in result.stderr


def test_all_problems_in_one_run_with_file_and_line(gitops_repo):
    gitops_repo.copy_examples()
    gitops_repo.write("broken.yaml", "apiVersion: v1\nkind: [unclosed\n")
    gitops_repo.write("orphan.yaml", """apiVersion: spaces.upbound.io/v1alpha1
kind: Backup
metadata:
  name: lost
spec:
  configRef: {kind: SharedBackupConfig, name: default}
  controlPlane: ghost-ctp
""")
    gitops_repo.commit()
    result = run("validate", "--repo", str(gitops_repo.path))
    assert result.returncode == 1
    assert "broken.yaml:3: invalid YAML" in result.stderr
    assert "orphan.yaml:7: Backup default/lost: spec.controlPlane: ControlPlane default/ghost-ctp not found" in result.stderr
    assert "Traceback" not in result.stderr


def test_uncommitted_changes_ignored_unless_worktree(gitops_repo):
    gitops_repo.copy_examples()
    gitops_repo.commit()
    gitops_repo.write("backups/single.yaml", "kind: [broken\n")
    assert run("validate", "--repo", str(gitops_repo.path)).returncode == 0
    result = run("validate", "--repo", str(gitops_repo.path), "--worktree")
    assert result.returncode == 1
    assert "uncommitted files included" in result.stdout


def test_committed_secret_with_data_is_a_warning(gitops_repo):
    gitops_repo.copy_examples()
    gitops_repo.write("secret.yaml", """apiVersion: v1
kind: Secret
metadata: {name: bucket-creds, namespace: default}
stringData:
  creds: hunter2
""")
    gitops_repo.commit()
    result = run("validate", "--repo", str(gitops_repo.path))
    assert result.returncode == 0
    assert "secret.yaml:4: Secret default/bucket-creds: stringData: Secret carries data in Git" in result.stderr
    assert "hunter2" not in result.stdout + result.stderr


def test_unreachable_repo_is_one_line_error(tmp_path):
    result = run("validate", "--repo", f"file://{tmp_path}/nothing-here")
    assert result.returncode == 1
    assert result.stderr.startswith("error: cannot clone")
    assert "Traceback" not in result.stderr


def test_a_tagged_value_its_tag_cannot_read_is_one_located_line(gitops_repo):
    gitops_repo.copy_examples()
    head = "apiVersion: spaces.upbound.io/v1beta1\nkind: ControlPlane\nmetadata:\n  name: {name}\nspec:\n"
    gitops_repo.write("int.yaml", head.format(name="a") + "  class: !!int x\n")
    gitops_repo.write("bool.yaml", head.format(name="b") + "  allowInsecureKubeconfig: !!bool maybe\n")
    gitops_repo.write("time.yaml", head.format(name="c") + "  restore:\n    finishedAt: !!timestamp soon\n")
    gitops_repo.write("digits.yaml", head.format(name="d") + "  class: " + "7" * 5000 + "\n")
    gitops_repo.commit()
    result = run("validate", "--repo", str(gitops_repo.path))
    assert result.returncode == 1
    assert [line for line in result.stderr.splitlines() if "invalid YAML" in line] == [
        "bool.yaml:6: invalid YAML: 'maybe' is not a valid !!bool",
        "digits.yaml:6: invalid YAML: '" + "7" * 40 + "'... (5000 characters) is not a valid !!int",
        "int.yaml:6: invalid YAML: 'x' is not a valid !!int",
        "time.yaml:7: invalid YAML: 'soon' is not a valid !!timestamp",
    ]
    assert "Traceback" not in result.stderr
