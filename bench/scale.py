"""Benchmark: the cost curve. Time and peak RSS of a backup and of a restore of 1k, 10k and 100k objects
(managed-resource-shaped, 30 CRDs), each in a process of its own against the emulator (validation on).

Goals: time grows linearly (objects/s within 2x from the smallest size to the largest) and memory stays
flat (peak RSS at the largest size within 1.5x of the smallest, for backups and for restores).
Peak RSS is VmHWM of the process that ran the engine, read by that process itself (ru_maxrss
survives exec, so a child forked from a large parent would report the parent's peak).
Run: .venv/bin/python bench/scale.py [--sizes 1000 10000 100000]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import ROOT, seed_types  # noqa: I001 - bench/ is on sys.path when run as a script

from kubeemu import EmulatorProcess

CHILD = """
import sys, time
sys.path.insert(0, {root!r}); sys.path.insert(0, {bench!r})
from pathlib import Path
from common import api_client
kubeconfig = sys.stdin.read()
started = time.perf_counter()
if {what!r} == "backup":
    from ctpbackup.engines.backup import ArchiveInfo, take_backup
    from ctpbackup.storage.filesystem import FilesystemBucket
    from ctpbackup.store.backup_store import BackupStore
    from ctpbackup.store.layout import BucketLayout
    take_backup(api_client(kubeconfig), BackupStore(FilesystemBucket({bucket!r}), BucketLayout()), ArchiveInfo("d", "c", "b"))
else:
    from ctpbackup.engines.restore import run_restore
    result = run_restore(api_client(kubeconfig), Path({bucket!r}) / "d/c/backups/b/archive.tar.gz")
    assert result.completed, result.summary()
seconds = time.perf_counter() - started
peak = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM"))
print(seconds, peak)
"""
GOAL_RSS_GROWTH = 1.5
GOAL_RATE_DROP = 2.0


def run(what: str, cp, bucket: Path) -> tuple[float, int]:
    code = CHILD.format(root=str(ROOT), bench=str(ROOT / "bench"), what=what, bucket=str(bucket))
    out = subprocess.run([sys.executable, "-c", code], input=cp.kubeconfig_text(), capture_output=True, text=True,
                         check=True).stdout.split()
    return float(out[-2]), int(out[-1])


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000, 100000])
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for size in args.sizes:
            bucket = Path(tmp) / f"bucket-{size}"
            with EmulatorProcess() as source:
                seed_types(source, size)
                backup_s, backup_kib = run("backup", source, bucket)
            with EmulatorProcess() as target:
                restore_s, restore_kib = run("restore", target, bucket)
            rows.append({"objects": size, "backup_seconds": round(backup_s, 2), "backup_objects_per_s": round(size / backup_s),
                         "backup_peak_rss_mib": round(backup_kib / 1024, 1), "restore_seconds": round(restore_s, 2),
                         "restore_objects_per_s": round(size / restore_s), "restore_peak_rss_mib": round(restore_kib / 1024, 1)})
            time.sleep(0.1)
    first, last = rows[0], rows[-1]
    growth = {what: round(last[f"{what}_peak_rss_mib"] / first[f"{what}_peak_rss_mib"], 2) for what in ("backup", "restore")}
    drop = {what: round(first[f"{what}_objects_per_s"] / last[f"{what}_objects_per_s"], 2) for what in ("backup", "restore")}
    print("objects    backup s  objects/s  peak RSS MiB   restore s  objects/s  peak RSS MiB")
    for r in rows:
        print(f"{r['objects']:>7,}  {r['backup_seconds']:>10}  {r['backup_objects_per_s']:>9,}  {r['backup_peak_rss_mib']:>12}"
              f"  {r['restore_seconds']:>10}  {r['restore_objects_per_s']:>9,}  {r['restore_peak_rss_mib']:>12}")
    for what in ("backup", "restore"):
        print(f"{what}: objects/s fell {drop[what]}x from {first['objects']:,} to {last['objects']:,} objects (linear if "
              f"<= {GOAL_RATE_DROP}x: {'met' if drop[what] <= GOAL_RATE_DROP else 'not met'}); peak RSS grew {growth[what]}x "
              f"(flat if <= {GOAL_RSS_GROWTH}x: {'met' if growth[what] <= GOAL_RSS_GROWTH else 'not met'})")
    print(json.dumps({
        "benchmark": "scale", "rows": rows,
        "rss_growth": growth, "goal_rss_growth": GOAL_RSS_GROWTH,
        "rate_drop": drop, "goal_rate_drop": GOAL_RATE_DROP, "load_average": round(os.getloadavg()[0], 1),
        "met": {f"{what}_memory_flat": growth[what] <= GOAL_RSS_GROWTH for what in growth}
        | {f"{what}_time_linear": drop[what] <= GOAL_RATE_DROP for what in drop},
    }, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
