"""The user's path, end to end: commit YAML, run `reconcile.py`, look in the bucket and the control planes."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.fixtures.gitrepos import GitOpsRepo
from tests.fixtures.objectstores import Server, make_s3_bucket, shared_credentials_file

ROOT = Path(__file__).resolve().parents[2]

CONFIG = """apiVersion: spaces.upbound.io/v1alpha1
kind: SharedBackupConfig
metadata: {{name: default, namespace: default}}
spec:
  objectStorage:
    provider: AWS
    bucket: {bucket}
    prefix: prod/cluster1
    config: {{endpoint: "{endpoint}", region: us-east-1, insecure: true}}
    credentials:
      source: Secret
      secretRef: {{name: bucket-creds, key: creds}}
"""
CONTROL_PLANE = """apiVersion: spaces.upbound.io/v1beta1
kind: ControlPlane
metadata: {{name: {name}, namespace: default, labels: {{backup: enabled}}}}
spec:
  writeConnectionSecretToRef: {{name: kubeconfig-{name}, namespace: default}}
"""
BACKUP = """apiVersion: spaces.upbound.io/v1alpha1
kind: Backup
metadata: {{name: {name}, namespace: default}}
spec:
  configRef: {{kind: SharedBackupConfig, name: default}}
  controlPlane: {control_plane}
"""
RESTORED = """apiVersion: spaces.upbound.io/v1beta1
kind: ControlPlane
metadata: {{name: {name}, namespace: default}}
spec:
  writeConnectionSecretToRef: {{name: kubeconfig-{name}, namespace: default}}
  restore:
    source: {{apiGroup: spaces.upbound.io, kind: Backup, name: {source}}}
"""


@dataclass
class Story:
    repo: GitOpsRepo
    secrets: Path
    bucket: object  # S3Bucket
    s3: Server

    def connect(self, name: str, control_plane) -> None:
        """Write the control plane's connection Secret, as Spaces would."""
        folder = self.secrets / "default" / f"kubeconfig-{name}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "kubeconfig").write_text(control_plane.kubeconfig_text(name))

    def reconcile(self, *args: str, check: bool = True, timeout: float = 240) -> subprocess.CompletedProcess:
        command = [sys.executable, str(ROOT / "reconcile.py"), *args, "--repo", str(self.repo.path),
                   "--secrets-dir", str(self.secrets), "--log-format", "json"]
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
        if check:
            assert result.returncode == 0, f"{' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
        return result

    def status(self) -> dict:
        return json.loads(self.reconcile("status", "-o", "json").stdout)

    def backup(self, name: str) -> dict:
        return next(b for b in self.status()["backups"] if b["name"] == name)


@pytest.fixture
def story(tmp_path, s3_server, gitops_repo) -> Story:
    bucket = make_s3_bucket(s3_server)
    secrets = tmp_path / "secrets"
    creds = secrets / "default" / "bucket-creds"
    creds.mkdir(parents=True)
    (creds / "creds").write_text(shared_credentials_file())
    gitops_repo.write("config/sharedbackupconfig.yaml", CONFIG.format(bucket=bucket.name, endpoint=s3_server.host_port))
    return Story(gitops_repo, secrets, bucket, s3_server)
