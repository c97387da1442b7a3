"""Benchmark: offline verification of a 20,000-object backup (issue 21).

The archive is written by the product's own writer into a filesystem bucket: 30 namespaced CRDs with
a managed-resource-like schema and a CEL rule, 20,000 custom resources spread over them (the shape
`bench/common.py` seeds), plus their namespaces, a ConfigMap and a Secret per namespace. Each
verification runs in a fresh process that reads the archive from the bucket once and reports its
time and peak RSS (VmHWM). Prints objects/s (goal >= 10,000), plain and encrypted, and the peak RSS
of verifying 1,000 and 20,000 objects (goal: the second within 1.5x the first), each with met/not met.
The baseline, measured in the same run: the same archive only streamed through tarfile and
JSON-decoded (nothing checked), per CPU-second. Objects per CPU-second and the load average are printed too: on a shared machine the wall-clock rate
says more about the neighbours than about the code.
Run: .venv/bin/python bench/verify.py [--objects 20000] [--rss-small 1000]
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from common import ROOT  # noqa: I001 - bench/ is on sys.path when run as a script

from ctpbackup.engines.archive import METADATA, UIDS, ArchiveWriter, object_path
from ctpbackup.engines.encryption import backup_context
from ctpbackup.storage.filesystem import FilesystemBucket

KEY = b"bench-verify-key-of-32-bytes!!!!"
GROUP = "bench.example.org"


def crd(plural: str, kind: str) -> dict:
    spec = {"type": "object", "required": ["forProvider"], "properties": {
        "forProvider": {"type": "object", "required": ["region"], "properties": {
            "region": {"type": "string", "minLength": 1, "maxLength": 32},
            "tags": {"type": "object", "additionalProperties": {"type": "string"}, "maxProperties": 50}}},
        "managementPolicies": {"type": "array", "items": {"type": "string"}, "default": ["*"]},
        "providerConfigRef": {"type": "object", "properties": {"name": {"type": "string"}}}},
        "x-kubernetes-validations": [{"rule": "self.forProvider.region != ''", "message": "a region is required"}]}
    schema = {"type": "object", "properties": {"spec": spec, "status": {"type": "object",
                                                                        "x-kubernetes-preserve-unknown-fields": True}}}
    return {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": f"{plural}.{GROUP}"},
            "spec": {"group": GROUP, "scope": "Namespaced",
                     "names": {"plural": plural, "singular": kind.lower(), "kind": kind, "listKind": f"{kind}List"},
                     "versions": [{"name": "v1", "served": True, "storage": True, "subresources": {"status": {}},
                                   "schema": {"openAPIV3Schema": schema}}]}}


def write_archive(bucket: FilesystemBucket, key: str, objects: int, types: int = 30, namespaces: int = 20,
                  encryption_key: bytes | None = None) -> dict:
    """Write the archive; the Expected fields (size, sha256, counts) a record would hold."""
    counts: dict[str, int] = {}
    uids: list[bytes] = []
    upload = bucket.open_upload(key)
    writer = ArchiveWriter(upload, encryption_key=encryption_key,
                           encryption_context=backup_context("default", "bench", "b"))

    def add(resource: str, obj: dict) -> None:
        meta = obj["metadata"]
        path = object_path(resource, meta.get("namespace"), meta["name"])
        writer.add_json(path, obj)
        counts[resource] = counts.get(resource, 0) + 1
        uids.append(json.dumps({"path": path, "uid": f"uid-{len(uids)}"}).encode())

    kinds = [(f"thing{i:02d}s", f"Thing{i:02d}") for i in range(types)]
    for n in range(namespaces):
        ns = f"team-{n:02d}"
        add("namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns, "labels": {"team": ns}}})
        add("configmaps", {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings", "namespace": ns},
                           "data": {"region": "eu-west-2"}})
        add("secrets", {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                        "metadata": {"name": "credentials", "namespace": ns},
                        "data": {"token": base64.b64encode(b"x" * 40).decode()}})
    for i in range(objects):
        if i == objects // 2:  # the CRDs half-way: the first half waits in the spool
            for plural, kind in kinds:
                add("customresourcedefinitions.apiextensions.k8s.io", crd(plural, kind))
        plural, kind = kinds[i % types]
        add(f"{plural}.{GROUP}", {
            "apiVersion": f"{GROUP}/v1", "kind": kind,
            "metadata": {"name": f"obj-{i:07d}", "namespace": f"team-{i % namespaces:02d}", "labels": {"app": "bench"},
                         "annotations": {"crossplane.io/external-name": "x" * 40}},
            "spec": {"forProvider": {"region": "eu-west-2", "tags": {f"k{j}": "v" * 20 for j in range(8)}},
                     "managementPolicies": ["*"], "providerConfigRef": {"name": "default"}},
            "status": {"conditions": [{"type": "Ready", "status": "True", "reason": "Available"}]}})
    writer.add_bytes(UIDS, b"\n".join(uids) + b"\n")
    writer.add_json(METADATA, {"formatVersion": 1, "controlPlane": {"namespace": "default", "name": "bench"},
                               "backup": {"namespace": "default", "name": "b"}, "counts": counts,
                               "totalObjects": sum(counts.values())})
    written = writer.close()
    upload.commit()
    return {"size": written.size, "sha256": written.sha256, "counts": counts, "encrypted": encryption_key is not None}


CHILD = """
import json, sys, time
sys.path.insert(0, {root!r})
from ctpbackup.engines.encryption import Keyring
from ctpbackup.engines.verify import Expected, verify_archive
from ctpbackup.storage.filesystem import FilesystemBucket
args = json.loads(sys.stdin.read())
expected = Expected("default", "bench", "b", args["size"], args["sha256"], args["counts"], args["encrypted"])
keys = Keyring.of([args["key"].encode()]) if args["encrypted"] else None
started, cpu = time.perf_counter(), time.process_time()
with FilesystemBucket(args["bucket"]).open_read(args["archive"]) as stream:
    result = verify_archive(stream, expected, keys)
seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
rss = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM"))
print(json.dumps({{"seconds": seconds, "cpu_seconds": cpu, "objects": result.objects, "verified": result.verified,
                  "message": result.message(), "rss_kib": rss}}))
"""


READ_ONLY = """
import json, sys, tarfile, time
sys.path.insert(0, {root!r})
from ctpbackup.engines import jsoncodec
from ctpbackup.storage.filesystem import FilesystemBucket
args = json.loads(sys.stdin.read())
started, cpu, objects = time.perf_counter(), time.process_time(), 0
with FilesystemBucket(args["bucket"]).open_read(args["archive"]) as stream, tarfile.open(fileobj=stream, mode="r|gz") as tar:
    for info in tar:
        jsoncodec.loads(tar.extractfile(info).read()) if info.name.endswith(".json") else None
        objects += 1
print(json.dumps({{"seconds": time.perf_counter() - started, "cpu_seconds": time.process_time() - cpu,
                  "objects": objects}}))
"""


def read_only_in_child(bucket_root: Path, key: str) -> dict:
    """The baseline: the same archive streamed through tarfile and JSON-decoded, nothing checked."""
    payload = json.dumps({"bucket": str(bucket_root), "archive": key})
    out = subprocess.run([sys.executable, "-c", READ_ONLY.format(root=str(ROOT))], input=payload, capture_output=True,
                         text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def verify_in_child(bucket_root: Path, key: str, expected: dict) -> dict:
    """Verify in a fresh process (its own peak RSS, read from VmHWM)."""
    payload = json.dumps({**expected, "bucket": str(bucket_root), "archive": key, "key": KEY.decode()})
    out = subprocess.run([sys.executable, "-c", CHILD.format(root=str(ROOT))], input=payload, capture_output=True,
                         text=True, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    if not result["verified"]:
        raise SystemExit(f"the benchmark archive did not verify: {result['message']}")
    return result


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--objects", type=int, default=20000)
    parser.add_argument("--rss-small", type=int, default=1000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "bucket"
        bucket = FilesystemBucket(root)
        plain = write_archive(bucket, "plain/archive.tar.gz", args.objects)
        encrypted = write_archive(bucket, "encrypted/archive.tar.gz", args.objects, encryption_key=KEY)
        small = write_archive(bucket, "small/archive.tar.gz", args.rss_small)
        large = verify_in_child(root, "plain/archive.tar.gz", plain)
        sealed = verify_in_child(root, "encrypted/archive.tar.gz", encrypted)
        baseline = verify_in_child(root, "small/archive.tar.gz", small)
        reading = read_only_in_child(root, "plain/archive.tar.gz")
        assert hashlib.sha256(bucket.read("plain/archive.tar.gz")[0]).hexdigest() == plain["sha256"]
    rate = large["objects"] / large["seconds"]
    rate_encrypted = sealed["objects"] / sealed["seconds"]
    cpu_rate = large["objects"] / large["cpu_seconds"]
    growth = large["rss_kib"] / baseline["rss_kib"]
    report = {
        "benchmark": "verify", "objects": large["objects"], "archive_bytes": plain["size"],
        "objects_per_s": round(rate), "encrypted_objects_per_s": round(rate_encrypted),
        "objects_per_cpu_s": round(cpu_rate),
        "read_only_objects_per_cpu_s": round(reading["objects"] / reading["cpu_seconds"]),
        "ratio_to_read_only": round(cpu_rate / (reading["objects"] / reading["cpu_seconds"]), 2), "load_average_1m": os.getloadavg()[0], "cpus": os.cpu_count(),
        "goal_objects_per_s": 10000, "objects_per_s_goal_met": rate >= 10000,
        "peak_rss_kib": {str(baseline["objects"]): baseline["rss_kib"], str(large["objects"]): large["rss_kib"]},
        "rss_growth": round(growth, 2), "goal_rss_growth": 1.5, "rss_goal_met": growth <= 1.5,
    }
    print(json.dumps(report, indent=2))
    print(f"goal >= 10,000 objects/s: {'met' if rate >= 10000 else 'not met'} ({rate:,.0f}/s plain, "
          f"{rate_encrypted:,.0f}/s encrypted, {cpu_rate:,.0f} per CPU-second); goal peak RSS within 1.5x of {baseline['objects']:,} objects: "
          f"{'met' if growth <= 1.5 else 'not met'} ({growth:.2f}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
