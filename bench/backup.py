"""Benchmark: back up 20,000 objects over 30 types, against the same emulator in the same run.

Prints our objects/s; the raw paginated list rate (plain HTTP, no processing) and our ratio to it
(goal >= 0.7); `kubectl get <type> -A -o json` per type and our ratio to it (goal >= 10x); and the
peak RSS of a backup of 1,000 and of 100,000 objects (goal: the second within 1.5x the first).
Run: .venv/bin/python bench/backup.py [--objects 20000] [--rss-large 100000]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import urllib3
from common import ROOT, api_client, seed_types  # noqa: I001 - bench/ is on sys.path when run as a script

from ctpbackup.engines.backup import ArchiveInfo, take_backup
from ctpbackup.storage.filesystem import FilesystemBucket
from ctpbackup.store.backup_store import BackupStore
from ctpbackup.store.layout import BucketLayout
from kubeemu import EmulatorProcess

KUBECTL = str(Path(sys.executable).parent / "kubectl")


def ours(cp, bucket: FilesystemBucket) -> tuple[float, int]:
    started = time.perf_counter()
    result = take_backup(api_client(cp.kubeconfig_text()), BackupStore(bucket, BucketLayout("bench")),
                         ArchiveInfo("default", "bench", "b"))
    return time.perf_counter() - started, sum(result.counts.values())


def raw_lists(cp, types) -> tuple[float, int]:
    http = urllib3.PoolManager(maxsize=8, ca_cert_data=cp.ca_data.decode())
    headers = {"Authorization": f"Bearer {cp.token}", "Accept": "application/json"}
    started, total = time.perf_counter(), 0
    for group, version, plural in types:
        token = ""
        while True:
            url = f"{cp.url}/apis/{group}/{version}/{plural}?limit=500" + (f"&continue={token}" if token else "")
            page = json.loads(http.request("GET", url, headers=headers).data)
            total += len(page["items"])
            token = page["metadata"].get("continue", "")
            if not token:
                break
    return time.perf_counter() - started, total


def kubectl_lists(cp, types, kubeconfig: Path) -> tuple[float, int]:
    started, total = time.perf_counter(), 0
    for group, _, plural in types:
        out = subprocess.run([KUBECTL, "--kubeconfig", str(kubeconfig), "get", f"{plural}.{group}", "-A", "-o", "json"],
                             capture_output=True, text=True, check=True).stdout
        total += len(json.loads(out)["items"])
    return time.perf_counter() - started, total


def rss_of_backup(objects: int) -> int:
    """Peak RSS (KiB) of a separate process that backs up a control plane of `objects` objects.

    Read from VmHWM, not getrusage: ru_maxrss survives exec, so a child spawned with vfork by this
    (large) benchmark process would report the parent's peak, not its own."""
    with EmulatorProcess() as cp, tempfile.TemporaryDirectory() as tmp:
        seed_types(cp, objects)
        code = (f"import sys; sys.path.insert(0, {str(ROOT)!r}); sys.path.insert(0, {str(ROOT / 'bench')!r})\n"
                "from common import api_client\nfrom ctpbackup.engines.backup import take_backup, ArchiveInfo\n"
                "from ctpbackup.storage.filesystem import FilesystemBucket\n"
                "from ctpbackup.store.backup_store import BackupStore\nfrom ctpbackup.store.layout import BucketLayout\n"
                f"take_backup(api_client(sys.stdin.read()), BackupStore(FilesystemBucket({tmp!r}), BucketLayout()), "
                "ArchiveInfo('d','c','b'))\n"
                "print(next(int(line.split()[1]) for line in open('/proc/self/status') if line.startswith('VmHWM')))")
        out = subprocess.run([sys.executable, "-c", code], input=cp.kubeconfig_text(), capture_output=True, text=True, check=True)
        return int(out.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--objects", type=int, default=20000)
    parser.add_argument("--types", type=int, default=30)
    parser.add_argument("--rss-small", type=int, default=1000)
    parser.add_argument("--rss-large", type=int, default=100000)
    args = parser.parse_args()
    with EmulatorProcess() as cp, tempfile.TemporaryDirectory() as tmp:
        types = seed_types(cp, args.objects, args.types)
        kubeconfig = cp.write_kubeconfig(Path(tmp) / "kubeconfig")
        raw_s, raw_n = raw_lists(cp, types)
        our_s, our_n = ours(cp, FilesystemBucket(Path(tmp) / "bucket"))
        kubectl_s, kubectl_n = kubectl_lists(cp, types, kubeconfig)
    rss_small = rss_of_backup(args.rss_small)
    rss_large = rss_of_backup(args.rss_large)
    report = {
        "benchmark": "backup", "objects": our_n, "types": args.types,
        "ours_objects_per_s": round(our_n / our_s), "raw_list_objects_per_s": round(raw_n / raw_s),
        "ratio_to_raw_list": round((our_n / our_s) / (raw_n / raw_s), 2), "goal_ratio_to_raw_list": 0.7,
        "kubectl_objects_per_s": round(kubectl_n / kubectl_s),
        "ratio_to_kubectl": round((our_n / our_s) / (kubectl_n / kubectl_s), 1), "goal_ratio_to_kubectl": 10,
        "peak_rss_kib": {str(args.rss_small): rss_small, str(args.rss_large): rss_large},
        "rss_growth": round(rss_large / rss_small, 2), "goal_rss_growth": 1.5,
    }
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
