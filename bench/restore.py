"""Benchmark: restore, against the same emulator build in the same run, in two control planes.

- core: Secrets, ConfigMaps, Roles and RoleBindings (one write each). Goals: objects/s >= 0.5x the
  emulator's raw concurrent create rate (16 threads of HTTPS POSTs of the same objects), and >= 5x
  sequential `kubectl create -f` (one process per object, measured on a sample of 100).
- crossplane: managed-resource-shaped objects over 30 CRDs; the restore creates them paused and
  unpauses them at the end (two writes each).
Both: writes per object by resource and verb (counted on the way out), and the time our writes
would take at the raw concurrent rate of each verb (POSTs at the raw create rate; the crossplane
scenario's unpause PATCHes at the rate of 16 threads of the same merge patches of the same objects)
against the time they took (goal >= 0.9: each write costs what the bare request costs). For scale: Velero's users
report 10-20 objects/s for restores of tens of thousands of objects.
Run: .venv/bin/python bench/restore.py [--objects 20000] [--scenarios core crossplane] [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psutil
from common import CORE_KINDS, api_client, core_namespaces, seed_core, seed_types  # noqa: I001 - bench/ is on sys.path

from ctpbackup.engines import restore as restore_engine
from ctpbackup.engines.archive import ArchiveReader
from ctpbackup.engines.backup import ArchiveInfo, take_backup
from ctpbackup.engines.restore import run_restore
from ctpbackup.engines.restore_order import PAUSED, PAUSED_BY_RESTORE
from ctpbackup.kube.api import KubeAPI
from ctpbackup.storage.filesystem import FilesystemBucket
from ctpbackup.store.backup_store import BackupStore
from ctpbackup.store.layout import BucketLayout
from kubeemu import EmulatorProcess
from kubeemu.fixtures import EmulatorClient, crd

KUBECTL = str(Path(sys.executable).parent / "kubectl")
SAMPLE = 100
WORKERS = 16
SEEDED = tuple(f"{kind[:-1]}-" for kind in CORE_KINDS)  # names seed_core gives (not the emulator's own)
GOALS = {"ratio_to_raw_create": 0.5, "ratio_per_write": 0.9, "ratio_to_kubectl": 5}


def resource_of(path: str) -> str:
    """`secrets`, `roles.rbac.authorization.k8s.io`: the resource a request path writes."""
    segments = path.split("?")[0].strip("/").split("/")
    group, rest = ("", segments[2:]) if segments[0] == "api" else (segments[1], segments[3:])
    resource = rest[2] if rest[0] == "namespaces" and len(rest) >= 3 else rest[0]
    return f"{resource}.{group}" if group else resource


class CountingKubeAPI(KubeAPI):
    """The engine's API access, counting every write it sends by (resource, verb)."""

    writes: Counter = Counter()
    lock = threading.Lock()

    def request(self, method, path, query=None, body=None, content_type="application/json", retry=True):
        if method != "GET":
            verb = method + (" status" if path.split("?")[0].endswith("/status") else "")
            with self.lock:
                CountingKubeAPI.writes[(resource_of(path), verb)] += 1
        return super().request(method, path, query, body, content_type, retry)


def collection_path(resource: str, namespace: str, obj: dict) -> str:
    plural, _, group = resource.partition(".")
    base = f"/apis/{obj['apiVersion']}" if group else "/api/v1"
    return f"{base}/namespaces/{namespace}/{plural}"


def raw_creates(target, objects: list[tuple[str, str, dict]], paused: bool = False) -> tuple[float, float]:
    """Seconds of 16 threads of bare POSTs of `objects`; with `paused`, the objects carry the two
    annotations the restore creates Crossplane resources with, and then the seconds of 16 threads of
    the restore's own unpause PATCH of each (merge patch), so that each of our verbs is compared with
    the raw rate of that verb (a PATCH costs the server a read, a merge and an update's validation)."""
    http = EmulatorClient(target.url, target.token, WORKERS, target.ca_data)
    if paused:
        objects = [(r, ns, {**obj, "metadata": {**obj["metadata"], "annotations": {
            **(obj["metadata"].get("annotations") or {}), PAUSED: "true", PAUSED_BY_RESTORE: "true"}}})
            for r, ns, obj in objects]
    started = time.perf_counter()
    with ThreadPoolExecutor(WORKERS) as pool:
        list(pool.map(lambda item: http.call("POST", collection_path(*item), item[2]), objects))
    create_s = time.perf_counter() - started
    if not paused:
        return create_s, 0.0
    unpause = {"metadata": {"annotations": {PAUSED: None, PAUSED_BY_RESTORE: None}}}

    def patch(item: tuple[str, str, dict]) -> None:
        path = collection_path(*item) + "/" + item[2]["metadata"]["name"]
        http.call("PATCH", path, unpause, content_type="application/merge-patch+json")

    started = time.perf_counter()
    with ThreadPoolExecutor(WORKERS) as pool:
        list(pool.map(patch, objects))
    return create_s, time.perf_counter() - started


def prepare(target, scenario: str, types: int) -> None:
    """What the raw baseline needs before it creates: the CRDs, or the namespaces."""
    if scenario == "core":
        core_namespaces(target)
        return
    http = EmulatorClient(target.url, target.token, 4, target.ca_data)
    for i in range(types):
        http.call("POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
                  crd("bench.example.org", f"thing{i:02d}s", f"Thing{i:02d}", "Namespaced", "v1"))
    time.sleep(0.5)


def measure(scenario: str, objects: int, types: int, tmp: Path, kubectl: bool) -> dict:
    tmp.mkdir(parents=True, exist_ok=True)
    bucket = FilesystemBucket(tmp / scenario)
    with EmulatorProcess() as source:
        if scenario == "core":
            seed_core(source, objects)
        else:
            seed_types(source, objects, types)
        done = take_backup(api_client(source.kubeconfig_text()), BackupStore(bucket, BucketLayout()), ArchiveInfo("d", "c", "b"))
    archive = tmp / scenario / done.archive_key
    ours_objects = [(m.resource, m.namespace, obj) for m, obj in ArchiveReader(archive).objects()
                    if (m.resource.endswith("bench.example.org") if scenario == "crossplane" else m.name.startswith(SEEDED))]

    with EmulatorProcess() as target:
        CountingKubeAPI.writes.clear()
        restore_engine.KubeAPI = CountingKubeAPI
        try:
            server = psutil.Process(target.process.pid)
            cpu = (time.process_time(), sum(server.cpu_times()[:2]))
            started = time.perf_counter()
            result = run_restore(api_client(target.kubeconfig_text()), archive)
            ours_s = time.perf_counter() - started
            ours_cpu = (time.process_time() - cpu[0], sum(server.cpu_times()[:2]) - cpu[1])
        finally:
            restore_engine.KubeAPI = KubeAPI
    writes = dict(CountingKubeAPI.writes)
    restored = result.total("restored")

    with EmulatorProcess() as target:
        prepare(target, scenario, types)
        server = psutil.Process(target.process.pid)
        cpu = (time.process_time(), sum(server.cpu_times()[:2]))
        raw_s, raw_patch_s = raw_creates(target, ours_objects, paused=scenario == "crossplane")
        raw_cpu = (time.process_time() - cpu[0], sum(server.cpu_times()[:2]) - cpu[1])
        raw_requests = len(ours_objects) * (2 if raw_patch_s else 1)

    kubectl_rate = None
    if kubectl:
        with EmulatorProcess() as target:
            prepare(target, scenario, types)
            kubeconfig = target.write_kubeconfig(tmp / "kubeconfig")
            started = time.perf_counter()
            for _, _, obj in ours_objects[:SAMPLE]:
                subprocess.run([KUBECTL, "--kubeconfig", str(kubeconfig), "create", "-f", "-"], input=json.dumps(obj),
                               capture_output=True, text=True, check=True)
            kubectl_rate = SAMPLE / (time.perf_counter() - started)

    per_resource: dict[str, dict[str, float]] = {}
    tried = {k: sum(c.values()) for k, c in result.counts.items()}  # every object tried, whatever came of it
    by_kind: Counter = Counter()  # the 30 bench CRDs are one kind here: thingNNs.bench.example.org
    for resource, n in tried.items():
        by_kind[re.sub(r"^thing\d+s", "thingNNs", resource)] += n
    for (resource, verb), n in sorted(writes.items()):
        kind = re.sub(r"^thing\d+s", "thingNNs", resource)
        per_resource.setdefault(kind, {}).setdefault(verb, 0)
        per_resource[kind][verb] += n
    per_resource = {kind: {verb: round(n / max(by_kind[kind], 1), 2) for verb, n in verbs.items()}
                    for kind, verbs in per_resource.items()}
    total_writes = sum(writes.values())
    ours_rate, raw_rate = restored / ours_s, len(ours_objects) / raw_s
    # what our writes would take at the raw rate of each verb: POSTs at the raw create rate, PATCHes
    # (the unpause) at the raw merge-patch rate of the same objects
    patches = sum(n for (_, verb), n in writes.items() if verb == "PATCH")
    raw_patch_rate = len(ours_objects) / raw_patch_s if raw_patch_s else None
    raw_s_for_our_writes = (total_writes - patches) / raw_rate + (patches / raw_patch_rate if patches and raw_patch_rate else 0)
    report = {
        "objects_restored": restored, "warnings": len(result.warnings), "seconds": round(ours_s, 2),
        "ours_objects_per_s": round(ours_rate), "writes": total_writes,
        "writes_per_object": round(total_writes / max(restored, 1), 2),
        "writes_per_object_by_resource": per_resource,
        "ours_writes_per_s": round(total_writes / ours_s), "raw_concurrent_create_objects_per_s": round(raw_rate),
        **({"raw_concurrent_unpause_patches_per_s": round(raw_patch_rate)} if raw_patch_rate else {}),
        "ratio_per_write": round(raw_s_for_our_writes / ours_s, 2), "goal_ratio_per_write": GOALS["ratio_per_write"],
        "ratio_to_raw_create": round(ours_rate / raw_rate, 2),
        # CPU milliseconds per write, of the client (this process: the restore, or the baseline's bare
        # http.client threads) and of the emulator serving it: what a write costs whom on the shared CPUs
        "client_cpu_ms_per_write": {"ours": round(1000 * ours_cpu[0] / max(total_writes, 1), 3),
                                    "raw": round(1000 * raw_cpu[0] / raw_requests, 3)},
        "server_cpu_ms_per_write": {"ours": round(1000 * ours_cpu[1] / max(total_writes, 1), 3),
                                    "raw": round(1000 * raw_cpu[1] / raw_requests, 3)},
    }
    if scenario == "core":
        report["goal_ratio_to_raw_create"] = GOALS["ratio_to_raw_create"]
    if kubectl_rate is not None:
        report.update({"kubectl_create_objects_per_s": round(kubectl_rate, 1), "kubectl_sample": SAMPLE,
                       "ratio_to_kubectl": round(ours_rate / kubectl_rate, 1), "goal_ratio_to_kubectl": GOALS["ratio_to_kubectl"]})
    report["met"] = {k: report[k] >= report[f"goal_{k}"] for k in GOALS if f"goal_{k}" in report}
    return report


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--objects", type=int, default=20000)
    parser.add_argument("--types", type=int, default=30)
    parser.add_argument("--scenarios", nargs="+", default=["core", "crossplane"], choices=["core", "crossplane"])
    parser.add_argument("--runs", type=int, default=1, help="runs per scenario; the report is the median run's")
    args = parser.parse_args()
    report: dict = {"benchmark": "restore", "objects": args.objects, "velero_reported_objects_per_s": "10-20",
                    "load_average_1m_before": round(os.getloadavg()[0], 1)}
    with tempfile.TemporaryDirectory() as tmp:
        for scenario in args.scenarios:
            runs = []
            for run in range(args.runs):
                runs.append(measure(scenario, args.objects, args.types, Path(tmp) / f"run-{run}", kubectl=scenario == "core"))
            key = "ratio_to_raw_create" if scenario == "core" else "ratio_per_write"
            report[scenario] = sorted(runs, key=lambda r: r[key])[len(runs) // 2]  # the median run (by its goal ratio)
            if args.runs > 1:
                report[scenario]["runs"] = {k: [r[k] for r in runs] for k in (
                    "ratio_to_raw_create", "ratio_per_write", "ours_objects_per_s", "raw_concurrent_create_objects_per_s",
                    "writes_per_object", "ratio_to_kubectl") if k in runs[0]}
    report["load_average_1m_after"] = round(os.getloadavg()[0], 1)
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
