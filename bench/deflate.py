"""Benchmark: deflate implementations and levels on a backup's tar (20,000 Crossplane-shaped objects).

Prints, per candidate, the best of 5 times to deflate the tar in the writer's 1 MiB batches, MB/s and
the archive size; and the chosen one (ISA-L level 1, ctpbackup.engines.archive.COMPRESS_LEVEL) against
the standard library's zlib at level 6 (what the writer used before): goal >= 3x faster, size within 5 %.
Run: .venv/bin/python bench/deflate.py [--objects 20000]
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import sys
import time
import uuid
import zlib

from common import ROOT  # noqa: F401 - puts the project on sys.path
from isal import isal_zlib

from ctpbackup.engines.archive import COMPRESS_LEVEL, ArchiveWriter, object_path


def backup_tar(objects: int) -> bytes:
    out = io.BytesIO()
    writer = ArchiveWriter(out, compresslevel=0)
    body = {"apiVersion": "bench.example.org/v1", "kind": "Thing01",
            "spec": {"forProvider": {"region": "eu-west-2", "tags": {f"k{j}": "v" * 20 for j in range(8)}}},
            "metadata": {"annotations": {"crossplane.io/external-name": "x" * 40}, "labels": {"app": "bench"},
                         "namespace": "default"}}
    for i in range(objects):
        body["metadata"]["name"], body["metadata"]["uid"] = f"obj-{i:07d}", str(uuid.uuid4())
        writer.add_json(object_path(f"thing{i % 30:02d}s.bench.example.org", "default", f"obj-{i:07d}"), body)
    writer.close()
    return gzip.decompress(out.getvalue())


def measure(raw: bytes, make) -> tuple[float, int]:
    chunks = [raw[i:i + (1 << 20)] for i in range(0, len(raw), 1 << 20)]
    best, size = float("inf"), 0
    for _ in range(5):
        started = time.perf_counter()
        compressor = make()
        size = sum(len(compressor.compress(c)) for c in chunks) + len(compressor.flush())
        best = min(best, time.perf_counter() - started)
    return best, size


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--objects", type=int, default=20000)
    args = parser.parse_args()
    raw = backup_tar(args.objects)
    rows = {}
    for level in (1, 6):
        rows[f"zlib-{level}"] = measure(raw, lambda level=level: zlib.compressobj(level, zlib.DEFLATED, 31))
    for level in (0, 1, 2, 3):
        rows[f"isal-{level}"] = measure(raw, lambda level=level: isal_zlib.compressobj(level, isal_zlib.DEFLATED, 31))
    chosen, before = rows[f"isal-{COMPRESS_LEVEL}"], rows["zlib-6"]
    speedup, size_ratio = before[0] / chosen[0], chosen[1] / before[1]
    print(json.dumps({
        "benchmark": "deflate", "objects": args.objects, "tar_bytes": len(raw),
        "candidates": {k: {"seconds": round(s, 4), "mb_per_s": round(len(raw) / s / 1e6), "archive_bytes": n}
                       for k, (s, n) in rows.items()},
        "chosen": f"isal-{COMPRESS_LEVEL}", "speedup_vs_zlib_6": round(speedup, 1), "goal_speedup_vs_zlib_6": 3,
        "size_vs_zlib_6": round(size_ratio, 3), "goal_size_vs_zlib_6": 1.05,
        "met": speedup >= 3 and size_ratio <= 1.05,
    }, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
