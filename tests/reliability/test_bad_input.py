"""Bad input from Git or from the bucket: one located line, no traceback, nothing else affected."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.fixtures.cliprocess import reconcile_py

ROOT = Path(__file__).resolve().parents[2]

BACKUP = """apiVersion: spaces.upbound.io/v1alpha1
kind: Backup
metadata: {{name: b1, namespace: default}}
spec:
  configRef: {{kind: SharedBackupConfig, name: default}}
  controlPlane: ctp1
  ttl: {ttl}
"""
SCHEDULE = """apiVersion: spaces.upbound.io/v1alpha1
kind: SharedBackupSchedule
metadata: {{name: never, namespace: default}}
spec:
  schedule: "{schedule}"
  configRef: {{kind: SharedBackupConfig, name: default}}
  controlPlaneSelector: {{names: [ctp1]}}
"""


def validate(repo) -> subprocess.CompletedProcess:
    return reconcile_py("validate", "--repo", str(repo.path), timeout=60)


@pytest.mark.parametrize("ttl", ["99999999999h", "87600000h", "2562048h", "153722868m", "9223372037s",
                                 "1" + "0" * 30 + "h"])
def test_a_ttl_longer_than_go_allows_is_one_located_line(gitops_repo, ttl):
    gitops_repo.copy_examples()
    gitops_repo.write("bad.yaml", BACKUP.format(ttl=ttl))
    gitops_repo.commit()
    result = validate(gitops_repo)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert (f"bad.yaml:7: Backup default/b1: spec.ttl: {ttl!r} is longer than the longest duration Kubernetes "
            "accepts (about 2562047h, 292 years)") in result.stderr, result.stderr


@pytest.mark.parametrize("ttl", ["2562047h", "720h"])
def test_a_ttl_within_go_limits_is_valid(gitops_repo, ttl):
    gitops_repo.copy_examples()
    gitops_repo.write("bad.yaml", BACKUP.format(ttl=ttl))
    gitops_repo.commit()
    result = validate(gitops_repo)
    assert result.returncode == 0, result.stderr
    assert "Valid (0 warning(s))." in result.stdout


@pytest.mark.parametrize("schedule", ["0 0 31 2 *", "0 0 30 2 *", "0 0 31 4 *", "0 0 31 4,6,9,11 *",
                                      "30 12 30,31 2 *"])
def test_a_schedule_that_never_fires_is_a_validation_error(gitops_repo, schedule):
    gitops_repo.copy_examples()
    gitops_repo.write("bad.yaml", SCHEDULE.format(schedule=schedule))
    gitops_repo.commit()
    result = validate(gitops_repo)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert (f"bad.yaml:5: SharedBackupSchedule default/never: spec.schedule: {schedule!r} never fires "
            "(no day matches its day-of-month and month fields)") in result.stderr, result.stderr


@pytest.mark.parametrize("schedule", ["0 0 29 2 *", "0 0 31 2 1", "0 0 31 1-12 *"])
def test_a_schedule_that_fires_rarely_is_valid(gitops_repo, schedule):
    gitops_repo.copy_examples()
    gitops_repo.write("bad.yaml", SCHEDULE.format(schedule=schedule))
    gitops_repo.commit()
    result = validate(gitops_repo)
    assert result.returncode == 0, result.stderr
