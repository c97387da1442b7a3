"""Profile: where a backup's and a restore's time goes, against the emulator (validation on).

The engine runs in a child process sampled by py-spy (all threads, 200 samples/s, idle threads left
out); each sample is put in one bucket by the frames on its stack: deflate/inflate, tar, JSON, sha256,
HTTP/TLS, object clean-up, waiting. The emulator's CPU seconds over the same wall time say how busy
the server side was (at 1.0 it saturates a CPU and bounds what any client gets).
Run: .venv/bin/python bench/profiling.py [--objects 20000] [--what backup restore]
"""

from __future__ import annotations

import argparse
import collections
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
from common import ROOT, api_client, seed_types  # noqa: I001 - bench/ is on sys.path when run as a script

from ctpbackup.engines.backup import ArchiveInfo, take_backup
from ctpbackup.storage.filesystem import FilesystemBucket
from ctpbackup.store.backup_store import BackupStore
from ctpbackup.store.layout import BucketLayout
from kubeemu import EmulatorProcess

PY_SPY = str(Path(sys.executable).parent / "py-spy")

#: (bucket, frames that put a sample in it, as function@file or @file): the innermost frame that
#: matches decides, so a JSON parse inside an HTTP call counts as JSON
BUCKETS = (
    ("deflate (ISA-L)", ("@igzip.py", "compress@")),
    ("inflate + tar read", ("@tarfile.py", "@gzip.py", "@_compression.py")),
    ("sha256 + file writes", ("@hashlib.py", "write@archive.py", "@filesystem.py")),
    ("JSON parse", ("loads@jsoncodec.py",)),
    ("JSON encode", ("dumps@jsoncodec.py",)),
    ("tar headers + names", ("_ustar_header@", "encode_name@", "object_path@", "check_member@", "decode_name@")),
    ("HTTP/TLS (client side)", ("@ssl.py", "@connectionpool.py", "@connection.py", "@response.py", "@client.py",
                                "@socket.py", "@poolmanager.py", "@wait.py", "@api.py")),
    ("waiting (queue, locks, pool)", ("@threading.py", "@queue.py")),
    ("object clean-up, skip rules, restore order", ("@restore_order.py", "@restore.py", "@backup.py", "@archive.py")),
)
_FRAME = re.compile(r"^(?P<function>.*) \((?P<file>[^()]*?):\d+\)$")

CHILD = """
import sys, json
sys.path.insert(0, {root!r}); sys.path.insert(0, {bench!r})
from pathlib import Path
from common import api_client
kubeconfig = sys.stdin.read()
if {what!r} == "backup":
    from ctpbackup.engines.backup import ArchiveInfo, take_backup
    from ctpbackup.storage.filesystem import FilesystemBucket
    from ctpbackup.store.backup_store import BackupStore
    from ctpbackup.store.layout import BucketLayout
    take_backup(api_client(kubeconfig), BackupStore(FilesystemBucket({bucket!r}), BucketLayout("p")), ArchiveInfo("d", "c", "b"))
else:
    from ctpbackup.engines.restore import run_restore
    run_restore(api_client(kubeconfig), Path({archive!r}))
"""


def categorize(raw: Path) -> dict[str, float]:
    """Share of the engine's samples per bucket (import-time samples left out)."""
    counts: collections.Counter = collections.Counter()
    for line in raw.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        if "_find_and_load" in stack or "take_backup" not in stack and "run_restore" not in stack and "_worker" not in stack:
            continue
        for frame in reversed(stack.split(";")):
            match = _FRAME.match(frame)
            name = f"{match['function']}@{Path(match['file']).name}" if match else frame
            hit = next((b for b, keys in BUCKETS if any(k in name for k in keys)), None)
            if hit:
                counts[hit] += int(n)
                break
        else:
            counts["other"] += int(n)
    total = sum(counts.values()) or 1
    return {k: round(v / total, 3) for k, v in counts.most_common()}


def profile(what: str, cp, tmp: Path, archive: Path | None = None) -> dict:
    raw = tmp / f"{what}.raw"
    code = CHILD.format(root=str(ROOT), bench=str(ROOT / "bench"), what=what, bucket=str(tmp / f"bucket-{what}"),
                        archive=str(archive or ""))
    server = psutil.Process(cp.process.pid)
    cpu_before, started = sum(server.cpu_times()[:2]), time.perf_counter()
    subprocess.run([PY_SPY, "record", "--nonblocking", "-r", "200", "--format", "raw", "-o", str(raw), "--",
                    sys.executable, "-c", code], input=cp.kubeconfig_text(), capture_output=True, text=True, check=True)
    wall = time.perf_counter() - started
    server_cpu = sum(server.cpu_times()[:2]) - cpu_before
    return {"wall_seconds": round(wall, 2), "emulator_cpu_share_of_one_cpu": round(server_cpu / wall, 2),
            "engine_samples_by_bucket": categorize(raw)}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--objects", type=int, default=20000)
    parser.add_argument("--what", nargs="+", default=["backup", "restore"], choices=["backup", "restore"])
    args = parser.parse_args()
    report: dict = {"benchmark": "profile", "objects": args.objects}
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        with EmulatorProcess() as source:
            seed_types(source, args.objects)
            if "backup" in args.what:
                report["backup"] = profile("backup", source, tmp)
            done = take_backup(api_client(source.kubeconfig_text()), BackupStore(FilesystemBucket(tmp / "bucket"), BucketLayout()),
                               ArchiveInfo("d", "c", "b"))
        if "restore" in args.what:
            with EmulatorProcess() as target:
                report["restore"] = profile("restore", target, tmp, tmp / "bucket" / done.archive_key)
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
