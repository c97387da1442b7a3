"""Benchmark: the emulator's own rates: 20,000 objects created concurrently and listed in pages of 500.
Run: .venv/bin/python bench/emulator.py [--objects 20000]"""

from __future__ import annotations

import argparse
import json
import sys
import time
from concurrent.futures import ThreadPoolExecutor

from common import ROOT  # noqa: F401 - puts the project on sys.path

from kubeemu import EmulatorProcess
from kubeemu.fixtures import _Client


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--objects", type=int, default=20000)
    args = parser.parse_args()
    with EmulatorProcess() as cp:
        http = _Client(cp.url, cp.token, 16)
        started = time.perf_counter()
        with ThreadPoolExecutor(16) as pool:
            list(pool.map(lambda i: http.call("POST", "/api/v1/namespaces/default/configmaps",
                                              {"metadata": {"name": f"cm-{i:06d}"}, "data": {"i": str(i)}}),
                          range(args.objects)))
        created = time.perf_counter() - started
        started, listed, token = time.perf_counter(), 0, ""
        while True:
            page = http.call("GET", "/api/v1/namespaces/default/configmaps?limit=500" + (f"&continue={token}" if token else ""))
            listed += len(page["items"])
            token = page["metadata"].get("continue", "")
            if not token:
                break
        listing = time.perf_counter() - started
    print(json.dumps({"benchmark": "emulator", "objects": args.objects,
                      "create_objects_per_s": round(args.objects / created), "create_seconds": round(created, 2),
                      "list_objects_per_s": round(listed / listing), "list_seconds": round(listing, 2),
                      "under_a_minute": created + listing < 60}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
