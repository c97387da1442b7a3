"""Benchmark: many control planes at once. Backups of `--control-planes` control planes of 500 objects
each, taken the way `apply` takes them (the executor's thread pool, one take_backup per control plane),
at backup parallelism 1, 2, 4 and 8; total objects/s at each.

200 emulator processes do not fit a 2-CPU machine, so `--servers` emulator processes (default 4) serve
them: control plane i is server i mod N, each seeded once with 500 objects (backups only read). The
emulators share the machine's CPUs with this process, so the figures show where our side stops gaining
from parallelism (and the servers' CPU share says when they are the bound), not a production default.
Run: .venv/bin/python bench/many.py [--control-planes 200 --objects 500 --servers 4]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path

import psutil
from common import api_client, seed_types  # noqa: I001 - bench/ is on sys.path when run as a script

from ctpbackup.engines.backup import ArchiveInfo, take_backup
from ctpbackup.storage.filesystem import FilesystemBucket
from ctpbackup.store.backup_store import BackupStore
from ctpbackup.store.layout import BucketLayout
from kubeemu import EmulatorProcess


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--control-planes", type=int, default=200)
    parser.add_argument("--objects", type=int, default=500)
    parser.add_argument("--servers", type=int, default=4)
    parser.add_argument("--parallelism", type=int, nargs="+", default=[1, 2, 4, 8])
    args = parser.parse_args()
    rows = []
    with ExitStack() as stack, tempfile.TemporaryDirectory() as tmp:
        servers = [stack.enter_context(EmulatorProcess()) for _ in range(args.servers)]
        for server in servers:
            seed_types(server, args.objects, types=10)
        kubeconfigs = [server.kubeconfig_text() for server in servers]
        processes = [psutil.Process(server.process.pid) for server in servers]
        me = psutil.Process(os.getpid())
        for parallelism in args.parallelism:
            bucket = FilesystemBucket(Path(tmp) / f"p{parallelism}")

            def one(i: int, bucket: FilesystemBucket = bucket) -> int:
                result = take_backup(api_client(kubeconfigs[i % len(kubeconfigs)]), BackupStore(bucket, BucketLayout()),
                                     ArchiveInfo("default", f"cp-{i:04d}", "b"))
                return sum(result.counts.values())

            server_cpu = sum(sum(p.cpu_times()[:2]) for p in processes)
            my_cpu = sum(me.cpu_times()[:2])
            started = time.perf_counter()
            with ThreadPoolExecutor(parallelism) as pool:
                objects = sum(pool.map(one, range(args.control_planes)))
            seconds = time.perf_counter() - started
            rows.append({"parallelism": parallelism, "objects": objects, "seconds": round(seconds, 2),
                         "objects_per_s": round(objects / seconds),
                         "our_cpu_share": round((sum(me.cpu_times()[:2]) - my_cpu) / seconds, 2),
                         "servers_cpu_share": round((sum(sum(p.cpu_times()[:2]) for p in processes) - server_cpu) / seconds, 2)})
    print(json.dumps({"benchmark": "many", "control_planes": args.control_planes, "objects_each": args.objects,
                      "emulator_processes": args.servers, "cpus": os.cpu_count(), "load_average": os.getloadavg()[0],
                      "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
