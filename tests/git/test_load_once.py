"""Load once (issue 18, item 2): a run reads its manifests from Git once and parses them once; what
needs the bucket index (a restore naming a backup only the index still records) is resolved by the
plan, after the index is read. Counted through the run's own input: a Snapshot read from a real Git
repository whose files count how often their bytes are read (every parse reads each file once)."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from datetime import UTC, datetime

import pytest

from ctpbackup import run
from ctpbackup.desired.gitsource import ManifestFile, read_repository
from ctpbackup.plan.planner import ActionType, PlanOptions
from ctpbackup.storage.filesystem import FilesystemBucket
from ctpbackup.store.index import BucketIndex
from ctpbackup.store.layout import BucketLayout
from ctpbackup.store.records import BackupRecord, Phase
from tests.planner.test_cli_plan import BACKUP, MANIFESTS

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)

RESTORED = """apiVersion: spaces.upbound.io/v1beta1
kind: ControlPlane
metadata: {name: restored}
spec:
  restore:
    source: {kind: Backup, name: %s}
"""


class CountingFile:
    """A manifest file that counts how often its bytes are read."""

    def __init__(self, file: ManifestFile):
        self.path = file.path
        self._content = file.content
        self.reads = 0

    @property
    def content(self) -> bytes:
        self.reads += 1
        return self._content


class CountingSource:
    """The run's Git reader: the real `read_repository` of a real repository, counted, handing out
    counting files."""

    def __init__(self, repo: str):
        self.repo = repo
        self.reads = 0
        self.files: list[CountingFile] = []

    def __call__(self):
        self.reads += 1
        snapshot = read_repository(self.repo)
        counted = tuple(CountingFile(f) for f in snapshot.files)
        self.files.extend(counted)
        return dataclasses.replace(snapshot, files=counted)


def completed(name: str) -> BackupRecord:
    return BackupRecord("default", name, "ctp1", "default", Phase.COMPLETED, size=10, sha256="0" * 64,
                        created_at=NOW, completed_at=NOW)


@pytest.fixture
def repo(gitops_repo, tmp_path):
    (tmp_path / "secrets").mkdir()
    gitops_repo.write("config.yaml", MANIFESTS % (tmp_path / "bucket"))
    gitops_repo.write("backups/b1.yaml", BACKUP)
    return gitops_repo


@pytest.mark.parametrize("source", ["only-in-the-index", "b1"])
def test_a_plan_and_an_apply_read_git_once_and_parse_once(repo, tmp_path, source):
    """`source` stands for the family: a restore naming a backup that left Git but is in the index,
    and one naming a backup declared in Git."""
    repo.write("restored.yaml", RESTORED % source)
    repo.commit()
    BucketIndex(FilesystemBucket(tmp_path / "bucket"), BucketLayout("prod")).update_backup(
        "default", "ctp1", "only-in-the-index", lambda _old: completed("only-in-the-index"), replace_unindexed=True)
    git_source = CountingSource(str(repo.path))
    options = run.SourceOptions(repo=str(tmp_path / "no-such-repository"), secrets_dir=str(tmp_path / "secrets"))

    prepared = run.prepare(options, snapshot=git_source())
    first = run.make_plan(prepared, NOW, PlanOptions())
    run.refresh(prepared)  # apply re-reads the index under the lease: never Git
    second = run.make_plan(prepared, NOW, PlanOptions())

    assert git_source.reads == 1
    assert sorted((f.path, f.reads) for f in git_source.files) == [
        ("backups/b1.yaml", 1), ("config.yaml", 1), ("restored.yaml", 1)]
    assert prepared.load.errors == []
    kinds = sorted((a.type, a.name) for a in first.actions)
    assert (ActionType.BACKUP, "b1") in kinds
    assert [(a.type, a.name) for a in second.actions if a.type is ActionType.ERROR] == []
    if source == "only-in-the-index":
        restore = next(a for a in first.actions if a.name == "restored")
        assert (restore.type, restore.record.name) == (ActionType.RESTORE, "only-in-the-index")


def test_a_restore_naming_a_backup_nobody_knows_is_the_plans_error_not_the_parsers(repo, tmp_path):
    repo.write("restored.yaml", RESTORED % "never-taken")
    repo.commit()
    options = run.SourceOptions(repo=str(repo.path), secrets_dir=str(tmp_path / "secrets"))
    prepared = run.prepare(options)
    assert prepared.load.errors == []
    errors = [(a.type, a.name) for a in run.make_plan(prepared, NOW, PlanOptions()).actions if a.type is ActionType.ERROR]
    assert errors == [(ActionType.ERROR, "restored")]


def test_the_git_source_does_not_import_the_manifest_parser():
    code = ("import sys\nimport ctpbackup.desired.gitsource\n"
            "print(sorted(m for m in sys.modules if m.startswith(('ctpbackup.desired.manifests', "
            "'ctpbackup.desired.schemas', 'ctpbackup.desired.yamldocs'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out == "[]\n"
