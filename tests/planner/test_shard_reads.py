"""`plan --shard I/N` and `apply --shard I/N` read only the indexes their control planes need
(BucketIndex.load(control_planes=...) through plan.planner.shard_reads), and plan for those control
planes exactly what the unsharded plan does."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from ctpbackup.desired.manifests import ManifestFile, load_desired_state
from ctpbackup.plan.planner import PlanOptions, plan, shard_of, shard_reads
from ctpbackup.storage.filesystem import FilesystemBucket
from ctpbackup.store.index import BucketIndex
from ctpbackup.store.layout import INDEX_FILE, BucketLayout
from ctpbackup.store.locations import BackupLocation, load_recorded
from ctpbackup.store.records import BackupRecord, OwnerKind, Phase

ROOT = Path(__file__).resolve().parents[2]
NOW = datetime(2026, 11, 25, 10, 30, tzinfo=UTC)
SLOT = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
LAYOUT = BucketLayout("prod")
CONTROL_PLANES = [f"ctp{i}" for i in range(12)]
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
apiVersion: spaces.upbound.io/v1alpha1
kind: SharedBackupSchedule
metadata: {name: hourly}
spec:
  schedule: "@every 1h"
  ttl: 3h
  deletionPolicy: Delete
  configRef: {kind: SharedBackupConfig, name: default}
  controlPlaneSelector: {labelSelectors: [{matchLabels: {backup: "yes"}}]}
---
apiVersion: spaces.upbound.io/v1alpha1
kind: Backup
metadata: {name: manual}
spec:
  configRef: {kind: SharedBackupConfig, name: default}
  controlPlane: ctp0
""" + "".join(f"""---
apiVersion: spaces.upbound.io/v1beta1
kind: ControlPlane
metadata: {{name: {cp}, labels: {{backup: "yes"}}}}
""" for cp in CONTROL_PLANES)
#: a control plane restored from the Backup `manual` of ctp0, whatever shard each falls in
RESTORED = """---
apiVersion: spaces.upbound.io/v1beta1
kind: ControlPlane
metadata: {name: restored}
spec:
  restore:
    source: {kind: Backup, name: manual}
"""


class CountingBucket(FilesystemBucket):
    """A real folder bucket that notes which keys were read (a subclass, nothing patched)."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.reads: list[str] = []

    def open_read(self, key: str):
        self.reads.append(key)
        return super().open_read(key)

    def read(self, key: str):
        self.reads.append(key)
        return super().read(key)


def hourly(cp: str, hours_ago: int) -> BackupRecord:
    slot = SLOT - timedelta(hours=hours_ago)
    name = f"hourly-{cp}-{slot:%Y%m%d%H%M%S}"
    return BackupRecord("default", name, cp, "default", Phase.COMPLETED, OwnerKind.SHARED_BACKUP_SCHEDULE, "hourly",
                        slot, completed_at=slot, ttl="3h", expires_at=slot + timedelta(hours=3), sha256="ab" * 32,
                        deletion_policy="Delete", archive_key=LAYOUT.archive_key("default", cp, name))


def bucket_of(tmp_path: Path) -> CountingBucket:
    bucket = CountingBucket(tmp_path / "bucket")
    index = BucketIndex(bucket, LAYOUT)
    for cp in CONTROL_PLANES:  # each: one backup expired (3 h ago), two kept, the 10:00 slot due
        for record in [hourly(cp, hours) for hours in (1, 2, 3)]:
            index.update_backup("default", cp, record.name, lambda _old, r=record: r)
    manual = BackupRecord("default", "manual", "ctp0", "default", Phase.COMPLETED, sha256="cd" * 32,
                          archive_key=LAYOUT.archive_key("default", "ctp0", "manual"))
    index.update_backup("default", "ctp0", "manual", lambda _old: manual)
    bucket.reads.clear()
    return bucket


def desired(bucket: Path, *extra: str):
    text = MANIFESTS % bucket + "".join(extra)
    return load_desired_state([ManifestFile("all.yaml", text.encode())], "abc1234def").require()


def locations(bucket: CountingBucket, desired_state) -> dict:
    config = desired_state.configs[("default", "default")]
    return {("default", "default"): BackupLocation(config, bucket, LAYOUT, BucketIndex(bucket, LAYOUT))}


def index_reads(bucket: CountingBucket) -> list[str]:
    return sorted(key.split("/")[2] for key in bucket.reads if key.endswith("/" + INDEX_FILE))


@pytest.mark.parametrize("extra", [(), (RESTORED,)], ids=["schedules", "with-a-restore-across-shards"])
def test_each_of_four_shards_reads_only_its_indexes_and_plans_what_the_unsharded_plan_gives_it(tmp_path, extra):
    bucket = bucket_of(tmp_path)
    state = desired(bucket.root, *extra)
    whole = plan(state, load_recorded(locations(bucket, state)), NOW)
    assert index_reads(bucket) == sorted(CONTROL_PLANES)
    assert whole.summary()["backup"] == 12 and whole.summary()["delete"] == 12
    shards = [sorted(cp for cp in CONTROL_PLANES if shard_of("default", cp, 4) == i) for i in range(4)]
    assert all(shards) and sum(map(len, shards)) == 12  # every shard holds some of the twelve
    restoring = shard_of("default", "restored", 4)
    for i, mine in enumerate(shards):
        bucket.reads.clear()
        sharded = plan(state, load_recorded(locations(bucket, state), shard_reads(state, (i, 4))), NOW,
                       PlanOptions(shard=(i, 4)))
        # the restore into a control plane of shard i reads the index of ctp0, which holds its source
        expected_reads = sorted(set(mine) | ({"ctp0"} if extra and i == restoring else set()))
        assert index_reads(bucket) == expected_reads
        assert sharded.actions == tuple(a for a in whole.actions if shard_of(a.namespace, a.control_plane, 4) == i)
        assert sharded.refusals == whole.refusals == ()
    assert sum(len(plan(state, load_recorded(locations(bucket, state), shard_reads(state, (i, 4))), NOW,
                        PlanOptions(shard=(i, 4))).actions) for i in range(4)) == len(whole.actions)


def test_an_unsharded_run_or_a_restore_source_git_does_not_place_reads_everything(tmp_path):
    state = desired(tmp_path, RESTORED.replace("name: manual", "name: gone-from-git"))
    assert shard_reads(state, (0, 1)) is None
    restoring = shard_of("default", "restored", 4)
    assert shard_reads(state, (restoring, 4)) is None  # its source's control plane is unknown: every index
    other = next(i for i in range(4) if i != restoring)
    keeps = shard_reads(state, (other, 4))
    assert [keeps("default", cp) for cp in CONTROL_PLANES] == [shard_of("default", cp, 4) == other for cp in CONTROL_PLANES]


def test_plan_with_a_shard_reads_only_that_shards_indexes_from_a_real_folder(tmp_path, gitops_repo):
    """Through the CLI: the index files a `plan --shard 1/4` opened are the ones whose access time it
    moved (the folder is mounted relatime: a read after the access time was set to 0 updates it)."""
    bucket = bucket_of(tmp_path)
    gitops_repo.write("all.yaml", MANIFESTS % bucket.root)
    gitops_repo.commit()
    keys = [bucket.path(LAYOUT.index_key("default", cp)) for cp in CONTROL_PLANES]
    for path in keys:
        os.utime(path, (0, path.stat().st_mtime))
    probe = keys[0].read_bytes() and keys[0].stat().st_atime
    if probe == 0:
        pytest.skip("this folder does not record access times (noatime)")
    os.utime(keys[0], (0, keys[0].stat().st_mtime))
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    result = subprocess.run([sys.executable, str(ROOT / "reconcile.py"), "plan", "--log-format", "text", "--repo", str(gitops_repo.path),
                             "--secrets-dir", str(secrets), "--shard", "1/4", "--now", "2026-11-25T10:30:00Z"],
                            capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert result.returncode in (0, 2), result.stderr
    read = sorted(cp for cp, path in zip(CONTROL_PLANES, keys, strict=True) if path.stat().st_atime > 0)
    assert read == sorted(cp for cp in CONTROL_PLANES if shard_of("default", cp, 4) == 1)
