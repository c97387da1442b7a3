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


CORE_KINDS = ("secrets", "configmaps", "roles", "rolebindings")


def core_object(kind: str, namespace: str, name: str) -> tuple[str, dict]:
    """(collection path, body) of one Secret, ConfigMap, Role or RoleBinding: what a control plane of
    plain Kubernetes objects holds (one write each on restore)."""
    meta = {"name": name, "namespace": namespace, "labels": {"app": "bench"}}
    if kind == "secrets":
        return f"/api/v1/namespaces/{namespace}/secrets", {
            "apiVersion": "v1", "kind": "Secret", "metadata": meta, "type": "Opaque",
            "data": {"username": "YWRtaW4=", "password": "c2VjcmV0LXZhbHVlLTEyMzQ1Njc4OTA="}}
    if kind == "configmaps":
        return f"/api/v1/namespaces/{namespace}/configmaps", {
            "apiVersion": "v1", "kind": "ConfigMap", "metadata": meta,
            "data": {f"key{j}": "value-" + "v" * 30 for j in range(6)}}
    rbac = f"/apis/rbac.authorization.k8s.io/v1/namespaces/{namespace}"
    if kind == "roles":
        return f"{rbac}/roles", {
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": meta,
            "rules": [{"apiGroups": [""], "resources": ["configmaps", "secrets"], "verbs": ["get", "list", "watch"]}]}
    return f"{rbac}/rolebindings", {
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": meta,
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name.replace("rolebinding", "role")},
        "subjects": [{"kind": "ServiceAccount", "name": "default", "namespace": namespace}]}


def core_namespaces(cp, namespaces: int = 10) -> list[str]:
    http = EmulatorClient(cp.url, cp.token, 4, cp.ca_data)
    names = [f"team-{n:02d}" for n in range(namespaces)]
    for name in names:
        http.call("POST", "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    return names


def core_objects(objects: int, namespaces: list[str]) -> list[tuple[str, dict]]:
    """`objects` Secrets, ConfigMaps, Roles and RoleBindings in equal numbers over `namespaces`."""
    out = []
    for i in range(objects):
        kind = CORE_KINDS[i % len(CORE_KINDS)]
        out.append(core_object(kind, namespaces[i % len(namespaces)], f"{kind[:-1]}-{i:07d}"))
    return out


def seed_core(cp, objects: int, workers: int = 8) -> None:
    """A control plane of `objects` Secrets, ConfigMaps, Roles and RoleBindings (see core_objects)."""
    http = EmulatorClient(cp.url, cp.token, workers, cp.ca_data)
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(lambda item: http.call("POST", item[0], item[1]), core_objects(objects, core_namespaces(cp))))
