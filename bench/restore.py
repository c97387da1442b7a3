"""Benchmark: restore 20,000 objects, against the same emulator build in the same run.

Prints our objects/s; the emulator's raw concurrent create rate (16 threads of plain HTTP POSTs of the
same objects) and our ratio to it (goal >= 0.5); sequential `kubectl create -f` (one process per
object, measured on a sample) and our ratio to it (goal >= 5x). For scale: Velero's users report
10-20 objects/s for restores of tens of thousands of objects.
Run: .venv/bin/python bench/restore.py [--objects 20000]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from common import api_client, seed_types  # noqa: I001 - bench/ is on sys.path when run as a script

from ctpbackup.engines.archive import ArchiveReader
from ctpbackup.engines.backup import ArchiveInfo, take_backup
from ctpbackup.engines.restore import run_restore
from ctpbackup.storage.filesystem import FilesystemBucket
from kubeemu import EmulatorProcess
from kubeemu.fixtures import EmulatorClient, crd

KUBECTL = str(Path(sys.executable).parent / "kubectl")
SAMPLE = 100


def prepare_target(cp, types: int) -> None:
    """The same CRDs the archive will bring, so the raw baseline creates into served types too."""
    http = EmulatorClient(cp.url, cp.token, 4, cp.ca_data)
    for i in range(types):
        http.call("POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
                  crd("bench.example.org", f"thing{i:02d}s", f"Thing{i:02d}", "Namespaced", "v1"))
    time.sleep(0.5)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--objects", type=int, default=20000)
    parser.add_argument("--types", type=int, default=30)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        bucket = FilesystemBucket(Path(tmp) / "bucket")
        with EmulatorProcess() as source:
            seed_types(source, args.objects, args.types)
            take_backup(api_client(source.kubeconfig_text()), bucket, "a/archive.tar.gz", ArchiveInfo("d", "c", "b"))
        archive = Path(tmp) / "bucket" / "a" / "archive.tar.gz"
        objects = [obj for member, obj in ArchiveReader(archive).objects() if member.resource.endswith("bench.example.org")]

        with EmulatorProcess() as target:
            started = time.perf_counter()
            result = run_restore(api_client(target.kubeconfig_text()), archive)
            ours_s = time.perf_counter() - started
            restored = result.total("restored")

        with EmulatorProcess() as target:
            prepare_target(target, args.types)
            http = EmulatorClient(target.url, target.token, 16, target.ca_data)

            def create(obj: dict) -> None:
                meta = obj["metadata"]
                plural = obj["kind"].lower() + "s"
                http.call("POST", f"/apis/bench.example.org/v1/namespaces/{meta['namespace']}/{plural}", obj)

            started = time.perf_counter()
            with ThreadPoolExecutor(16) as pool:
                list(pool.map(create, objects))
            raw_s = time.perf_counter() - started

        with EmulatorProcess() as target:
            prepare_target(target, args.types)
            kubeconfig = target.write_kubeconfig(Path(tmp) / "kubeconfig")
            started = time.perf_counter()
            for obj in objects[:SAMPLE]:
                subprocess.run([KUBECTL, "--kubeconfig", str(kubeconfig), "create", "-f", "-"], input=json.dumps(obj),
                               capture_output=True, text=True, check=True)
            kubectl_s = time.perf_counter() - started

    ours_rate, raw_rate, kubectl_rate = restored / ours_s, len(objects) / raw_s, SAMPLE / kubectl_s
    print(json.dumps({
        "benchmark": "restore", "objects_restored": restored, "warnings": len(result.warnings),
        "ours_objects_per_s": round(ours_rate), "raw_concurrent_create_objects_per_s": round(raw_rate),
        "ratio_to_raw_create": round(ours_rate / raw_rate, 2), "goal_ratio_to_raw_create": 0.5,
        "kubectl_create_objects_per_s": round(kubectl_rate, 1), "kubectl_sample": SAMPLE,
        "ratio_to_kubectl": round(ours_rate / kubectl_rate, 1), "goal_ratio_to_kubectl": 5,
        "velero_reported_objects_per_s": "10-20",
    }, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
