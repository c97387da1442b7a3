"""Shared set-up for the benchmarks: an emulated control plane in its own process, bulk-seeded."""

from __future__ import annotations

import json
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import yaml
from kubernetes import client, config

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from kubeemu.fixtures import EmulatorClient, crd  # noqa: E402


def api_client(kubeconfig_text: str) -> client.ApiClient:
    configuration = client.Configuration()
    config.kube_config.KubeConfigLoader(config_dict=yaml.safe_load(kubeconfig_text)).load_and_set(configuration)
    configuration.connection_pool_maxsize = 32
    return client.ApiClient(configuration)


def seed_types(cp, objects: int, types: int = 30, workers: int = 8) -> list[tuple[str, str, str]]:
    """`objects` custom objects spread evenly over `types` namespaced CRDs; returns (group, version, plural)."""
    http = EmulatorClient(cp.url, cp.token, workers, cp.ca_data)
    defs = [("bench.example.org", f"thing{i:02d}s", f"Thing{i:02d}") for i in range(types)]
    for group, plural, kind in defs:
        http.call("POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", crd(group, plural, kind, "Namespaced", "v1"))
    import time

    for group, plural, _ in defs:
        while True:
            obj = http.call("GET", f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{plural}.{group}")
            if any(c["type"] == "Established" for c in obj.get("status", {}).get("conditions", [])):
                break
            time.sleep(0.02)
    body = {"spec": {"forProvider": {"region": "eu-west-2", "tags": {f"k{j}": "v" * 20 for j in range(8)}}},
            "metadata": {"annotations": {"crossplane.io/external-name": "x" * 40}, "labels": {"app": "bench"}}}

    def make(i: int) -> None:
        group, plural, _ = defs[i % types]
        obj = json.loads(json.dumps(body))
        obj["metadata"]["name"] = f"obj-{i:07d}"
        http.call("POST", f"/apis/{group}/v1/namespaces/default/{plural}", obj)

    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(make, range(objects)))
    return [(g, "v1", p) for g, p, _ in defs]
