"""Benchmark: read the index and plan over 1,000 control planes x 200 recorded backups (Filesystem).

Goal: < 2 CPU s including reading the index (< 3 CPU s at 10,000 control planes); `--shard I/N`
reads only that shard's control planes' indexes (BucketIndex.load(control_planes=...), as
`apply --shard` does) and plans them. Prints the wall and CPU seconds of each step, the number of
index objects read, and what reading the index would cost if it parsed every record.
Records look like real Completed ones (a condition, a commit, counts), and the index is in the
steady state of an hourly SharedBackupSchedule whose TTL (`--backups` hours) and deletionPolicy
Delete are the ones in Git: every control plane has one backup due and one expired, so the plan
holds a backup and a deletion (its record read) per control plane; the bench checks it does.
Run: .venv/bin/python bench/plan.py [--control-planes 1000 --backups 200 --shard 0/1]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ctpbackup.desired.manifests import ManifestFile, load_desired_state  # noqa: E402
from ctpbackup.engines import jsoncodec  # noqa: E402
from ctpbackup.gcpause import cycle_collection_paused  # noqa: E402
from ctpbackup.plan.planner import PlanOptions, plan, shard_of  # noqa: E402
from ctpbackup.storage.filesystem import FilesystemBucket  # noqa: E402
from ctpbackup.store.controlplane_index import ControlPlaneIndex  # noqa: E402
from ctpbackup.store.index import BucketIndex  # noqa: E402
from ctpbackup.store.layout import BucketLayout  # noqa: E402
from ctpbackup.store.records import BackupRecord, Condition, OwnerKind, Phase  # noqa: E402

NOW = datetime(2026, 11, 25, 10, 30, tzinfo=UTC)


def build(root: Path, control_planes: int, backups: int) -> tuple[FilesystemBucket, BucketLayout, list[ManifestFile]]:
    bucket = FilesystemBucket(root / "bucket")
    layout = BucketLayout("bench")
    template = b""
    for c in range(control_planes):
        cp = f"ctp-{c:05d}"
        path = bucket.path(layout.index_key("default", cp))
        path.parent.mkdir(parents=True, exist_ok=True)
        if template:  # every shard is the first one with its control plane's name (same length) put in
            path.write_bytes(template.replace(b"ctp-00000", cp.encode()))
            continue
        shard = ControlPlaneIndex()
        for b in range(backups):
            slot = NOW.replace(minute=0) - timedelta(hours=backups - b)
            name = f"hourly-{cp}-{slot.strftime('%Y%m%d%H%M%S')}"
            shard.backups[name] = BackupRecord(
                "default", name, cp, "default", Phase.COMPLETED, OwnerKind.SHARED_BACKUP_SCHEDULE, "hourly", slot,
                "f" * 40, archive_key=layout.archive_key("default", cp, name), size=123456, sha256="ab" * 32,
                counts={"secrets": 10, "buckets.s3.aws.upbound.io": 40}, completed_at=slot, ttl=f"{backups}h",
                deletion_policy="Delete",
                expires_at=slot + timedelta(hours=backups),
                conditions=(Condition("Completed", "True", "BackupCompleted", "50 objects, 123456 bytes", slot),))
        template = shard.to_bytes("default", cp, layout)
        path.write_bytes(template)
    docs = [f"""apiVersion: spaces.upbound.io/v1alpha1
kind: SharedBackupConfig
metadata: {{name: default}}
spec: {{objectStorage: {{provider: Filesystem, bucket: /tmp, credentials: {{source: InjectedIdentity}}}}}}
---
apiVersion: spaces.upbound.io/v1alpha1
kind: SharedBackupSchedule
metadata: {{name: hourly}}
spec:
  schedule: "@every 1h"
  ttl: {backups}h
  deletionPolicy: Delete
  configRef: {{kind: SharedBackupConfig, name: default}}
  controlPlaneSelector: {{labelSelectors: [{{matchLabels: {{backup: enabled}}}}]}}
"""]
    docs += [f"---\napiVersion: spaces.upbound.io/v1beta1\nkind: ControlPlane\nmetadata: {{name: ctp-{c:05d}, labels: {{backup: enabled}}}}\n"
             for c in range(control_planes)]
    return bucket, layout, [ManifestFile("all.yaml", "".join(docs).encode())]


def parse_everything(bucket: FilesystemBucket, layout: BucketLayout) -> float:
    """What index_load would cost if it parsed every record: list, read and JSON-parse every line of
    every shard, building no records. Planning parses only each shard's header line."""
    started = time.perf_counter()
    index = BucketIndex(bucket, layout)
    for key in index.index_keys():
        for line in bucket.read(key)[0].splitlines():
            jsoncodec.loads(line)
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--control-planes", type=int, default=1000)
    parser.add_argument("--backups", type=int, default=200)
    parser.add_argument("--shard", default="0/1", help="I/N: plan shard I of N, reading only its control planes' index shards")
    args = parser.parse_args()
    index, count = (int(x) for x in args.shard.split("/"))
    goal = 2.0 if args.control_planes <= 1000 else 3.0
    with tempfile.TemporaryDirectory() as tmp:
        bucket, layout, files = build(Path(tmp), args.control_planes, args.backups)
        clocks = [(time.perf_counter(), time.process_time())]  # wall and this process's CPU, per step
        keep = (lambda ns, cp: shard_of(ns, cp, count) == index) if count > 1 else None
        with cycle_collection_paused():  # as store.locations.load_recorded does
            recorded = BucketIndex(bucket, layout).load(control_planes=keep)
        clocks.append((time.perf_counter(), time.process_time()))
        desired = load_desired_state(files, "f" * 40).require()
        clocks.append((time.perf_counter(), time.process_time()))
        result = plan(desired, recorded, NOW, PlanOptions(shard=(index, count)))
        clocks.append((time.perf_counter(), time.process_time()))
        everything = parse_everything(bucket, layout) if args.control_planes <= 1000 else None
    # the steady state promised above: one backup and one deletion per control plane planned
    planned = sum(1 for ns, cp in desired.control_planes if count == 1 or shard_of(ns, cp, count) == index)
    honest = result.summary()["backup"] == planned and result.summary()["delete"] == planned
    steps = ("index_load", "manifests", "plan")
    wall = {step: round(clocks[i + 1][0] - clocks[i][0], 3) for i, step in enumerate(steps)}
    cpu = {step: round(clocks[i + 1][1] - clocks[i][1], 3) for i, step in enumerate(steps)}
    wall["total"], cpu["total"] = round(clocks[-1][0] - clocks[0][0], 3), round(clocks[-1][1] - clocks[0][1], 3)
    if everything is not None:
        wall["index_read_and_json_parse_every_record"] = round(everything, 3)
    print(json.dumps({
        "benchmark": "plan", "control_planes": args.control_planes, "records": len(recorded.backups),
        "shard": args.shard, "index_objects_read": len(recorded.backups.index_views()),
        "seconds": wall, "cpu_seconds": cpu,
        "actions": result.summary(), "deletions_as_promised": honest, "goal_seconds": goal,
        # single-threaded work on a shared machine: judged on its CPU time (the wall time includes
        # waiting for a CPU while other work runs)
        "met": cpu["total"] < goal and honest,
    }, indent=2))
    return 0 if honest else 1


if __name__ == "__main__":
    sys.exit(main())
