"""Each behaviour a backup or restore can observe, as the real API server shows it."""

from __future__ import annotations

import json
import threading
import time
import urllib.request

import pytest
import yaml
from kubernetes import client, config, dynamic
from kubernetes.client.exceptions import ApiException

from ctpbackup.kube.api import carry_bearer_token
from kubeemu import EmulatorServer
from kubeemu.fixtures import crd

WIDGETS = crd("example.org", "widgets", "Widget", "Namespaced", "v1")


class Raw:
    """Plain HTTPS against the emulator (its CA trusted, its token sent), to see status codes and bodies exactly."""

    def __init__(self, cp):
        self.cp = cp

    def __call__(self, method: str, path: str, body=None, content_type: str = "application/json"):
        data = body if isinstance(body, bytes) else (json.dumps(body).encode() if body is not None else None)
        request = urllib.request.Request(self.cp.url + path, data=data, method=method, headers={
            "Authorization": f"Bearer {self.cp.token}", "Content-Type": content_type})
        try:
            with urllib.request.urlopen(request, timeout=30, context=self.cp.ssl_context()) as response:  # noqa: S310 - loopback
                return response.status, json.loads(response.read() or b"{}")
        except urllib.error.HTTPError as err:
            return err.code, json.loads(err.read() or b"{}")


@pytest.fixture
def raw(control_plane):
    return Raw(control_plane)


def established(raw, name: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        code, obj = raw("GET", f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}")
        if any(c["type"] == "Established" and c["status"] == "True" for c in obj.get("status", {}).get("conditions", [])):
            return
        time.sleep(0.02)
    raise AssertionError(f"{name} not Established")


def test_discovery_like_the_real_server(raw):
    assert raw("GET", "/version")[1]["gitVersion"].startswith("v1.")
    assert raw("GET", "/api")[1]["versions"] == ["v1"]
    resources = {r["name"]: r for r in raw("GET", "/api/v1")[1]["resources"]}
    assert {"namespaces", "secrets", "configmaps", "serviceaccounts", "events"} <= set(resources)
    assert resources["namespaces"]["namespaced"] is False and resources["secrets"]["namespaced"] is True
    assert "namespaces/status" in resources and resources["configmaps"]["shortNames"] == ["cm"]
    assert {"create", "list", "watch", "patch"} <= set(resources["secrets"]["verbs"])
    groups = {g["name"]: g for g in raw("GET", "/apis")[1]["groups"]}
    for group in ("rbac.authorization.k8s.io", "apiextensions.k8s.io", "coordination.k8s.io", "apps", "batch"):
        assert group in groups and groups[group]["preferredVersion"]["version"] == "v1"
    rbac = {r["name"] for r in raw("GET", "/apis/rbac.authorization.k8s.io/v1")[1]["resources"]}
    assert rbac == {"roles", "rolebindings", "clusterroles", "clusterrolebindings"}


def test_crd_served_only_once_established_and_removed_with_its_objects():
    # its own control plane with a 1 s establish delay: with the fixture's 0.05 s, a loaded machine
    # could let the CRD be established between the two requests (the early create then got 201)
    with EmulatorServer(establish_delay=1.0) as server:
        crd_served_only_once_established_and_removed_with_its_objects(Raw(server))


def crd_served_only_once_established_and_removed_with_its_objects(raw):
    assert raw("POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", WIDGETS)[0] == 201
    code, _ = raw("POST", "/apis/example.org/v1/namespaces/default/widgets", {"metadata": {"name": "early"}})
    assert code == 404  # not served yet: Established comes shortly after the create, not with it
    established(raw, "widgets.example.org")
    assert raw("POST", "/apis/example.org/v1/namespaces/default/widgets", {"metadata": {"name": "w"}})[0] == 201
    assert "example.org" in {g["name"] for g in raw("GET", "/apis")[1]["groups"]}
    assert raw("DELETE", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/widgets.example.org")[0] == 200
    assert "example.org" not in {g["name"] for g in raw("GET", "/apis")[1]["groups"]}
    assert raw("GET", "/apis/example.org/v1/namespaces/default/widgets/w")[0] == 404


def test_dynamic_client_discovers_and_lists_a_fresh_crd(control_plane, raw, tmp_path):
    raw("POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", WIDGETS)
    established(raw, "widgets.example.org")
    raw("POST", "/apis/example.org/v1/namespaces/default/widgets", {"metadata": {"name": "w"}, "spec": {"n": 1}})
    configuration = client.Configuration()
    config.kube_config.KubeConfigLoader(config_dict=yaml.safe_load(control_plane.kubeconfig_text())).load_and_set(configuration)
    carry_bearer_token(configuration)  # kubernetes 36's generated classes would send no token
    dyn = dynamic.DynamicClient(client.ApiClient(configuration))
    widgets = dyn.resources.get(api_version="example.org/v1", kind="Widget")
    assert [w.metadata.name for w in widgets.get(namespace="default").items] == ["w"]
    secrets = dyn.resources.get(api_version="v1", kind="Secret")
    assert secrets.get().items == []
    listable = [r for r in dyn.resources.search() if "list" in (r.verbs or [])]
    assert {"widgets", "secrets", "customresourcedefinitions"} <= {r.name for r in listable}


def test_namespaces_must_exist_and_the_initial_ones_do(raw):
    names = {n["metadata"]["name"] for n in raw("GET", "/api/v1/namespaces")[1]["items"]}
    assert {"default", "kube-system", "kube-public", "kube-node-lease"} <= names
    code, status = raw("POST", "/api/v1/namespaces/nowhere/configmaps", {"metadata": {"name": "x"}})
    assert code == 404 and status["reason"] == "NotFound" and status["message"] == 'namespaces "nowhere" not found'
    raw("POST", "/api/v1/namespaces", {"metadata": {"name": "team-a"}})
    cms = raw("GET", "/api/v1/namespaces/team-a/configmaps")[1]["items"]
    assert [c["metadata"]["name"] for c in cms] == ["kube-root-ca.crt"]  # as the real controllers add it


def test_server_owned_metadata(raw):
    code, a = raw("POST", "/api/v1/namespaces/default/configmaps", {"metadata": {"name": "a"}, "data": {"k": "v"}})
    _, b = raw("POST", "/api/v1/namespaces/default/configmaps", {"metadata": {"generateName": "gen-"}})
    assert code == 201 and a["metadata"]["uid"] and a["metadata"]["creationTimestamp"] and a["metadata"]["managedFields"]
    assert int(b["metadata"]["resourceVersion"]) > int(a["metadata"]["resourceVersion"])
    assert b["metadata"]["name"].startswith("gen-") and len(b["metadata"]["name"]) == 9
    code, status = raw("POST", "/api/v1/namespaces/default/configmaps", {"metadata": {"name": "c", "resourceVersion": "5"}})
    assert code == 500 and "resourceVersion should not be set" in status["message"]
    raw("POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", WIDGETS)
    established(raw, "widgets.example.org")
    _, w = raw("POST", "/apis/example.org/v1/namespaces/default/widgets", {"metadata": {"name": "w"}, "spec": {"n": 1}})
    assert w["metadata"]["generation"] == 1
    _, w2 = raw("PATCH", "/apis/example.org/v1/namespaces/default/widgets/w", {"metadata": {"labels": {"x": "y"}}},
                "application/merge-patch+json")
    assert w2["metadata"]["generation"] == 1  # metadata changes do not bump it
    _, w3 = raw("PATCH", "/apis/example.org/v1/namespaces/default/widgets/w", {"spec": {"n": 2}}, "application/merge-patch+json")
    assert w3["metadata"]["generation"] == 2


def test_status_only_through_its_subresource(raw):
    raw("POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", WIDGETS)
    established(raw, "widgets.example.org")
    base = "/apis/example.org/v1/namespaces/default/widgets/w"
    _, created = raw("POST", "/apis/example.org/v1/namespaces/default/widgets",
                     {"metadata": {"name": "w"}, "spec": {"n": 1}, "status": {"ready": True}})
    assert "status" not in created  # dropped on create
    _, patched = raw("PATCH", base, {"status": {"ready": True}}, "application/merge-patch+json")
    assert "status" not in patched  # dropped on the main resource
    _, with_status = raw("PATCH", base + "/status", {"status": {"ready": True}, "spec": {"n": 9}}, "application/merge-patch+json")
    assert with_status["status"] == {"ready": True} and with_status["spec"] == {"n": 1}  # spec ignored on /status


def test_conflicts(raw):
    body = {"metadata": {"name": "c"}, "data": {"a": "1"}}
    _, first = raw("POST", "/api/v1/namespaces/default/configmaps", body)
    code, status = raw("POST", "/api/v1/namespaces/default/configmaps", body)
    assert code == 409 and status["reason"] == "AlreadyExists"
    stale = dict(first, data={"a": "2"})
    assert raw("PUT", "/api/v1/namespaces/default/configmaps/c", stale)[0] == 200
    code, status = raw("PUT", "/api/v1/namespaces/default/configmaps/c", dict(first, data={"a": "3"}))
    assert code == 409 and status["reason"] == "Conflict"


def test_lists_selectors_and_consistent_pagination(raw):
    for i in range(25):
        raw("POST", "/api/v1/namespaces/default/configmaps",
            {"metadata": {"name": f"cm-{i:02d}", "labels": {"tier": "a" if i % 2 else "b", **({"x": "1"} if i < 5 else {})}}})
    raw("POST", "/api/v1/namespaces", {"metadata": {"name": "other"}})

    def names(query: str) -> list[str]:
        return [o["metadata"]["name"] for o in raw("GET", "/api/v1/namespaces/default/configmaps?" + query)[1]["items"]]

    assert len(names("labelSelector=tier%3Da")) == 12 and len(names("labelSelector=tier%3D%3Db")) == 13
    assert len(names("labelSelector=tier!%3Da")) == 14  # includes kube-root-ca.crt
    assert len(names("labelSelector=tier+in+(a,b)")) == 25 and len(names("labelSelector=tier+notin+(a)")) == 14
    assert len(names("labelSelector=x")) == 5 and len(names("labelSelector=!x")) == 21
    assert names("fieldSelector=metadata.name%3Dcm-03") == ["cm-03"]
    every_ns = raw("GET", "/api/v1/configmaps?fieldSelector=metadata.namespace%3Dother")[1]["items"]
    assert [o["metadata"]["name"] for o in every_ns] == ["kube-root-ca.crt"]
    # pages of 10 stay consistent while objects change between pages
    code, page = raw("GET", "/api/v1/namespaces/default/configmaps?limit=10")
    seen = [o["metadata"]["name"] for o in page["items"]]
    raw("DELETE", "/api/v1/namespaces/default/configmaps/cm-20")
    raw("POST", "/api/v1/namespaces/default/configmaps", {"metadata": {"name": "cm-99"}})
    while page["metadata"].get("continue"):
        page = raw("GET", "/api/v1/namespaces/default/configmaps?limit=10&continue=" + page["metadata"]["continue"])[1]
        seen += [o["metadata"]["name"] for o in page["items"]]
    assert len(seen) == 26 and "cm-20" in seen and "cm-99" not in seen  # the snapshot of the first page
    assert raw("GET", "/api/v1/configmaps?limit=5&continue=bogus")[0] == 410


def test_patch_types(raw):
    raw("POST", "/api/v1/namespaces/default/configmaps", {"metadata": {"name": "p"}, "data": {"a": "1", "b": "2"}})
    base = "/api/v1/namespaces/default/configmaps/p"
    assert raw("PATCH", base, {"data": {"a": None, "c": "3"}}, "application/merge-patch+json")[1]["data"] == {"b": "2", "c": "3"}
    ops = [{"op": "add", "path": "/data/d", "value": "4"}, {"op": "remove", "path": "/data/b"}]
    assert raw("PATCH", base, ops, "application/json-patch+json")[1]["data"] == {"c": "3", "d": "4"}
    smp = {"data": {"e": "5"}, "$setElementOrder/x": []}
    assert raw("PATCH", base, smp, "application/strategic-merge-patch+json")[1]["data"]["e"] == "5"
    apply = b"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: q}\ndata: {z: '1'}\n"
    # the patch handler answers 201 Created when an apply patch created the object (wasCreated), else 200
    assert raw("PATCH", "/api/v1/namespaces/default/configmaps/q?fieldManager=me", apply, "application/apply-patch+yaml")[0] == 201
    assert raw("PATCH", "/api/v1/namespaces/default/configmaps/q?fieldManager=me", apply, "application/apply-patch+yaml")[0] == 200
    code, status = raw("PATCH", "/api/v1/namespaces/default/configmaps/q", apply, "application/apply-patch+yaml")
    assert code == 422 and "fieldManager" in status["message"]
    _, applied = raw("PATCH", "/api/v1/namespaces/default/configmaps/q?fieldManager=me&force=true",
                     b"metadata: {name: q}\ndata: {z: '2'}\n", "application/apply-patch+yaml")
    assert applied["data"] == {"z": "2"} and any(m["operation"] == "Apply" for m in applied["metadata"]["managedFields"])


def test_finalizers_and_garbage_collection(raw):
    _, owner = raw("POST", "/api/v1/namespaces/default/configmaps", {"metadata": {"name": "owner"}})
    ref = {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner["metadata"]["uid"]}
    raw("POST", "/api/v1/namespaces/default/secrets", {"metadata": {"name": "dep", "ownerReferences": [ref]}})
    raw("POST", "/api/v1/namespaces/default/secrets", {"metadata": {"name": "kept", "finalizers": ["example.org/keep"]}})
    _, deleting = raw("DELETE", "/api/v1/namespaces/default/secrets/kept")
    assert deleting["metadata"]["deletionTimestamp"]
    assert raw("GET", "/api/v1/namespaces/default/secrets/kept")[0] == 200  # held by its finalizer
    raw("PATCH", "/api/v1/namespaces/default/secrets/kept", {"metadata": {"finalizers": None}}, "application/merge-patch+json")
    assert raw("GET", "/api/v1/namespaces/default/secrets/kept")[0] == 404
    raw("DELETE", "/api/v1/namespaces/default/configmaps/owner")
    deadline = time.monotonic() + 5
    while raw("GET", "/api/v1/namespaces/default/secrets/dep")[0] == 200 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert raw("GET", "/api/v1/namespaces/default/secrets/dep")[0] == 404  # collected in the background


def test_faults_on_demand(control_plane, raw):
    control_plane.inject("error", count=2, status=503)
    assert raw("GET", "/api/v1/namespaces")[0] == 503
    assert raw("GET", "/api/v1/namespaces")[0] == 503
    assert raw("GET", "/api/v1/namespaces")[0] == 200
    control_plane.inject("throttle", count=1, retry_after=2)
    request = urllib.request.Request(control_plane.url + "/api/v1/namespaces",
                                     headers={"Authorization": f"Bearer {control_plane.token}"})
    with pytest.raises(urllib.error.HTTPError, match=r"^HTTP Error 429: Too Many Requests$") as err:
        urllib.request.urlopen(request, timeout=5, context=control_plane.ssl_context())  # noqa: S310
    assert err.value.code == 429 and err.value.headers["Retry-After"] == "2"
    control_plane.inject("drop", count=1)
    with pytest.raises((urllib.error.URLError, ConnectionError, OSError)):
        urllib.request.urlopen(request, timeout=5, context=control_plane.ssl_context())  # noqa: S310
    control_plane.inject("slow", count=1, delay=0.5)
    started = time.monotonic()
    assert raw("GET", "/api/v1/namespaces")[0] == 200 and time.monotonic() - started >= 0.5
    control_plane.inject("slow", count=1, delay=0.1, methods=("POST",))  # a slowed write still lands, body and all
    assert raw("POST", "/api/v1/namespaces/default/configmaps", {"metadata": {"name": "slowed"}})[0] == 201
    control_plane.pause()
    results = []
    thread = threading.Thread(target=lambda: results.append(raw("GET", "/version")[0]))
    thread.start()
    time.sleep(0.3)
    assert not results  # held while paused
    control_plane.resume()
    thread.join(5)
    assert results == [200]
    assert control_plane.stats()["injected"] >= 5


def test_watch_stream(control_plane, raw):
    _, listed = raw("GET", "/api/v1/namespaces/default/configmaps")
    rv = listed["metadata"]["resourceVersion"]
    events = []

    def watch():
        request = urllib.request.Request(f"{control_plane.url}/api/v1/namespaces/default/configmaps?watch=1&resourceVersion={rv}"
                                         "&timeoutSeconds=2", headers={"Authorization": f"Bearer {control_plane.token}"})
        with urllib.request.urlopen(request, timeout=10, context=control_plane.ssl_context()) as response:  # noqa: S310
            for line in response:
                events.append(json.loads(line))

    thread = threading.Thread(target=watch)
    thread.start()
    time.sleep(0.2)
    raw("POST", "/api/v1/namespaces/default/configmaps", {"metadata": {"name": "w"}})
    raw("PATCH", "/api/v1/namespaces/default/configmaps/w", {"data": {"a": "b"}}, "application/merge-patch+json")
    raw("DELETE", "/api/v1/namespaces/default/configmaps/w")
    thread.join(10)
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [("ADDED", "w"), ("MODIFIED", "w"), ("DELETED", "w")]


def test_subprocess_mode_and_independent_instances(control_plane_process, control_plane_factory):
    a, b = control_plane_factory(), control_plane_factory()
    Raw(a)("POST", "/api/v1/namespaces/default/configmaps", {"metadata": {"name": "only-in-a"}})
    assert Raw(b)("GET", "/api/v1/namespaces/default/configmaps/only-in-a")[0] == 404
    assert Raw(control_plane_process)("GET", "/version")[0] == 200


def test_twenty_thousand_objects_created_and_listed_in_pages(control_plane_process):
    """The scale the benchmarks use; the rates are printed by bench/emulator.py."""
    from kubeemu.fixtures import EmulatorClient

    http = EmulatorClient(control_plane_process.url, control_plane_process.token, 8, control_plane_process.ca_data)
    from concurrent.futures import ThreadPoolExecutor

    started = time.monotonic()
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda i: http.call("POST", "/api/v1/namespaces/default/configmaps",
                                          {"metadata": {"name": f"cm-{i:05d}"}, "data": {"i": str(i)}}), range(20000)))
    created = time.monotonic() - started
    total, token = 0, ""
    while True:
        page = http.call("GET", "/api/v1/namespaces/default/configmaps?limit=500" + (f"&continue={token}" if token else ""))
        total += len(page["items"])
        token = page["metadata"].get("continue", "")
        if not token:
            break
    assert total == 20001  # and kube-root-ca.crt
    assert time.monotonic() - started < 60, f"created in {created:.1f}s"


def test_dynamic_client_raises_like_the_real_server(control_plane):
    configuration = client.Configuration()
    config.kube_config.KubeConfigLoader(config_dict=yaml.safe_load(control_plane.kubeconfig_text())).load_and_set(configuration)
    carry_bearer_token(configuration)  # kubernetes 36's generated classes would send no token
    core = client.CoreV1Api(client.ApiClient(configuration))
    with pytest.raises(ApiException, match=r"^\(404\)\nReason: Not Found\n") as err:
        core.read_namespaced_secret("nope", "default")
    assert err.value.status == 404
