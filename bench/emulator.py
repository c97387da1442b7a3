"""Benchmark: the emulator's own rates: 20,000 objects created concurrently and listed in pages of 500,
over HTTPS with a bearer token (as every test talks to it), against a baseline measured in the same
run over plain HTTP (the emulator before it served TLS; credentials still sent). The TLS handshake
happens once per keep-alive connection (16 of them), so what TLS adds is encryption per request.
Run: .venv/bin/python bench/emulator.py [--objects 20000]"""

from __future__ import annotations

import argparse
import json
import sys
import time
from concurrent.futures import ThreadPoolExecutor

from common import ROOT  # noqa: F401 - puts the project on sys.path

from kubeemu import EmulatorProcess
from kubeemu.fixtures import EmulatorClient

WORKERS = 16
MIN_CREATES_PER_S = 1000


def measure(objects: int, plain_http: bool) -> dict[str, float]:
    with EmulatorProcess(plain_http=plain_http) as cp:
        http = EmulatorClient(cp.url, cp.token, WORKERS, cp.ca_data)
        started = time.perf_counter()
        with ThreadPoolExecutor(WORKERS) as pool:
            list(pool.map(lambda i: http.call("POST", "/api/v1/namespaces/default/configmaps",
                                              {"metadata": {"name": f"cm-{i:06d}"}, "data": {"i": str(i)}}),
                          range(objects)))
        created = time.perf_counter() - started
        started, listed, token = time.perf_counter(), 0, ""
        while True:
            page = http.call("GET", "/api/v1/namespaces/default/configmaps?limit=500" + (f"&continue={token}" if token else ""))
            listed += len(page["items"])
            token = page["metadata"].get("continue", "")
            if not token:
                break
        listing = time.perf_counter() - started
    return {"create_objects_per_s": round(objects / created), "create_seconds": round(created, 2),
            "list_objects_per_s": round(listed / listing), "list_seconds": round(listing, 2)}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--objects", type=int, default=20000)
    args = parser.parse_args()
    before = measure(args.objects, plain_http=True)
    after = measure(args.objects, plain_http=False)
    print(json.dumps({"benchmark": "emulator", "objects": args.objects,
                      "before_plain_http": before, "after_https_token": after,
                      "create_rate_ratio": round(after["create_objects_per_s"] / before["create_objects_per_s"], 2),
                      "list_rate_ratio": round(after["list_objects_per_s"] / before["list_objects_per_s"], 2),
                      "creates_at_least_1000_per_s": after["create_objects_per_s"] >= MIN_CREATES_PER_S,
                      "under_a_minute": after["create_seconds"] + after["list_seconds"] < 60}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
