"""`dryRun=All` on create, update, patch and delete, as kube-apiserver answers it: validation and
admission run, the answer is what would be stored, nothing is stored and no resourceVersion is
consumed (k8s.io/apiserver `registry/generic/registry/dryrun.go`: `DryRunnableStorage`). Any other
value is refused by apimachinery's `ValidateDryRun` in a 422 naming the request's options type."""

from __future__ import annotations

import json
import subprocess

import pytest

from kubeemu.fixtures import crd
from tests.emulator.kubehttp import call, wait_established
from tests.emulator.test_kubectl import KUBECTL

CM = "/api/v1/namespaces/default/configmaps"
WIDGETS = crd("example.org", "widgets", "Widget", "Namespaced", "v1")
WIDGET_PATH = "/apis/example.org/v1/namespaces/default/widgets"


def revision(cp) -> int:
    """The control plane's resourceVersion counter (etcd's revision): a dry run never moves it."""
    return int(call(cp, "GET", "/_emulator/stats")[2]["resourceVersion"])


def names(cp, path: str) -> list[str]:
    return [o["metadata"]["name"] for o in call(cp, "GET", path)[2]["items"]]


@pytest.mark.parametrize(("path", "body"), [
    (CM, {"metadata": {"name": "settings"}, "data": {"mode": "fast"}}),
    ("/api/v1/namespaces/default/secrets", {"metadata": {"name": "token"}, "stringData": {"password": "hunter2"}}),
    ("/apis/rbac.authorization.k8s.io/v1/clusterroles", {"metadata": {"name": "oidc:platform+sre"}, "rules": []}),
    ("/api/v1/namespaces/default/configmaps", {"metadata": {"generateName": "gen-"}, "data": {}}),
], ids=["configmap", "secret", "clusterrole", "generate-name"])
def test_a_dry_run_create_answers_the_object_with_uid_and_stores_nothing(control_plane, path, body):
    before, listed = revision(control_plane), names(control_plane, path)
    code, _, made = call(control_plane, "POST", path + "?dryRun=All", body)
    assert code == 201, made
    meta = made["metadata"]
    assert len(meta["uid"]) == 36 and meta["creationTimestamp"].endswith("Z")
    assert "resourceVersion" not in meta  # DryRunnableStorage.Create copies the object: no revision given
    assert meta["managedFields"][0]["operation"] == "Update"
    if "generateName" in body["metadata"]:
        assert meta["name"].startswith("gen-") and len(meta["name"]) == 9
    assert revision(control_plane) == before
    assert names(control_plane, path) == listed
    assert call(control_plane, "GET", f"{path}/{meta['name']}")[0] == 404


def test_a_dry_run_secret_is_answered_as_stored_stringData_folded_into_data(control_plane):
    code, _, made = call(control_plane, "POST", "/api/v1/namespaces/default/secrets?dryRun=All",
                         {"metadata": {"name": "s"}, "stringData": {"password": "hunter2"}})
    assert (code, made["data"], "stringData" in made) == (201, {"password": "aHVudGVyMg=="}, False)


def test_a_dry_run_namespace_is_not_populated_and_a_dry_run_crd_is_never_served(control_plane):
    before = revision(control_plane)
    code, _, ns = call(control_plane, "POST", "/api/v1/namespaces?dryRun=All", {"metadata": {"name": "team-a"}})
    assert (code, ns["status"], ns["metadata"]["labels"]) == (201, {"phase": "Active"}, {"kubernetes.io/metadata.name": "team-a"})
    code, _, made = call(control_plane, "POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions?dryRun=All", WIDGETS)
    assert code == 201 and made["status"]["storedVersions"] == ["v1"]
    assert revision(control_plane) == before
    assert call(control_plane, "GET", "/api/v1/namespaces/team-a")[0] == 404
    assert call(control_plane, "GET", "/api/v1/namespaces/team-a/configmaps")[2]["items"] == []  # no kube-root-ca.crt
    assert call(control_plane, "GET", "/apis/example.org/v1")[0] == 404  # never Established, never served


def test_a_dry_run_create_is_refused_as_the_real_create_would_be(control_plane):
    """Name taken (409), namespace missing (404), invalid field (422): each the same answer as without dryRun."""
    call(control_plane, "POST", CM, {"metadata": {"name": "taken"}})
    cases = [
        (CM, {"metadata": {"name": "taken"}}),
        ("/api/v1/namespaces/nowhere/configmaps", {"metadata": {"name": "c"}}),
        (CM, {"metadata": {"name": "bad"}, "data": {"no/slash": "x"}}),
        (CM, {"metadata": {"name": "Upper_Case"}}),
    ]
    before = revision(control_plane)
    for path, body in cases:
        dry = call(control_plane, "POST", path + "?dryRun=All", body)
        real = call(control_plane, "POST", path, body)
        assert (dry[0], dry[2]) == (real[0], real[2])
    assert [c[0] for c in (call(control_plane, "POST", p + "?dryRun=All", b) for p, b in cases)] == [409, 404, 422, 422]
    assert revision(control_plane) == before


def test_a_dry_run_service_allocates_nothing(control_plane):
    path = "/api/v1/namespaces/default/services"
    body = {"metadata": {"name": "web"}, "spec": {"type": "NodePort", "ports": [{"port": 80, "nodePort": 30080}],
                                                 "clusterIP": "10.96.14.7"}}
    code, _, dry = call(control_plane, "POST", path + "?dryRun=All", body)
    assert (code, dry["spec"]["clusterIPs"], dry["spec"]["ports"][0]["nodePort"]) == (201, ["10.96.14.7"], 30080)
    code, _, real = call(control_plane, "POST", path, body)  # the same IP and port are still free
    assert (code, real["spec"]["clusterIP"]) == (201, "10.96.14.7")
    code, _, taken = call(control_plane, "POST", path + "?dryRun=All", {**body, "metadata": {"name": "web2"}})
    assert code == 422 and taken["message"].endswith("failed to allocate IP 10.96.14.7: provided IP is already allocated")


def test_a_dry_run_update_answers_the_new_object_at_the_current_resource_version(control_plane):
    call(control_plane, "POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", WIDGETS)
    wait_established(control_plane, "widgets.example.org")
    _, _, widget = call(control_plane, "POST", WIDGET_PATH, {"apiVersion": "example.org/v1", "kind": "Widget",
                                                             "metadata": {"name": "w"}, "spec": {"size": 1}})
    rv, before = widget["metadata"]["resourceVersion"], revision(control_plane)
    changed = {**widget, "spec": {"size": 2}}
    code, _, dry = call(control_plane, "PUT", f"{WIDGET_PATH}/w?dryRun=All", changed)
    assert (code, dry["spec"], dry["metadata"]["generation"], dry["metadata"]["resourceVersion"]) == (200, {"size": 2}, 2, rv)
    code, _, patched = call(control_plane, "PATCH", f"{WIDGET_PATH}/w?dryRun=All", {"metadata": {"labels": {"a": "b"}}},
                            content_type="application/merge-patch+json")
    assert (code, patched["metadata"]["labels"], patched["metadata"]["resourceVersion"]) == (200, {"a": "b"}, rv)
    stale = {**changed, "metadata": {**widget["metadata"], "resourceVersion": "1"}}
    assert call(control_plane, "PUT", f"{WIDGET_PATH}/w?dryRun=All", stale)[0] == 409
    _, _, now = call(control_plane, "GET", f"{WIDGET_PATH}/w")
    assert (now, revision(control_plane)) == (widget, before)


def test_a_dry_run_server_side_apply_of_a_new_object_stores_nothing(control_plane):
    before = revision(control_plane)
    code, _, made = call(control_plane, "PATCH", f"{CM}/applied?dryRun=All&fieldManager=ctpbackup",
                         {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "applied"}, "data": {"k": "v"}},
                         content_type="application/apply-patch+yaml")
    assert (code, made["data"], "resourceVersion" in made["metadata"]) == (201, {"k": "v"}, False)
    assert (call(control_plane, "GET", f"{CM}/applied")[0], revision(control_plane)) == (404, before)


@pytest.mark.parametrize("finalizers", [[], ["example.org/keep"]], ids=["plain", "with-finalizer"])
def test_a_dry_run_delete_answers_the_deleted_object_and_keeps_it(control_plane, finalizers):
    _, _, made = call(control_plane, "POST", CM, {"metadata": {"name": "c", "finalizers": finalizers}})
    before = revision(control_plane)
    for query, body in (("?dryRun=All", None), ("", {"kind": "DeleteOptions", "apiVersion": "v1", "dryRun": ["All"]})):
        code, _, gone = call(control_plane, "DELETE", f"{CM}/c{query}", body)
        assert (code, gone["metadata"]["uid"]) == (200, made["metadata"]["uid"])
        assert gone["metadata"]["deletionTimestamp"].endswith("Z")
    assert call(control_plane, "GET", f"{CM}/c")[2] == made
    assert revision(control_plane) == before


def test_a_dry_run_namespace_delete_leaves_it_active(control_plane):
    call(control_plane, "POST", "/api/v1/namespaces", {"metadata": {"name": "team-b"}})
    code, _, ns = call(control_plane, "DELETE", "/api/v1/namespaces/team-b?dryRun=All")
    assert (code, ns["status"]["phase"]) == (200, "Terminating")
    assert call(control_plane, "GET", "/api/v1/namespaces/team-b")[2]["status"] == {"phase": "Active"}
    assert names(control_plane, "/api/v1/namespaces/team-b/configmaps") == ["kube-root-ca.crt"]


@pytest.mark.parametrize(("method", "options", "suffix"), [
    ("POST", "CreateOptions", ""), ("PUT", "UpdateOptions", "/c"), ("PATCH", "PatchOptions", "/c"),
    ("DELETE", "DeleteOptions", "/c")])
@pytest.mark.parametrize(("query", "shown"), [
    ("dryRun=Some", '["Some"]'), ("dryRun=all", '["all"]'), ("dryRun=All&dryRun=None", '["All","None"]'),
    ("dryRun=", '[""]')], ids=["other", "lower-case", "one-of-two", "blank"])
def test_a_dry_run_value_other_than_All_is_422_naming_the_options_type(control_plane, method, options, suffix, query, shown):
    call(control_plane, "POST", CM, {"metadata": {"name": "c"}})
    body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}} if method in ("POST", "PUT") else \
        ({"data": {"k": "v"}} if method == "PATCH" else None)
    before = revision(control_plane)
    code, _, status = call(control_plane, method, f"{CM}{suffix}?{query}", body,
                           content_type="application/merge-patch+json" if method == "PATCH" else "application/json")
    assert code == 422
    assert status["reason"] == "Invalid"
    assert status["message"] == f'{options}.meta.k8s.io "" is invalid: dryRun: Unsupported value: {shown}: supported values: "All"'
    assert status["details"] == {"name": "", "kind": options, "group": "meta.k8s.io", "causes": [
        {"reason": "FieldValueNotSupported", "message": f'Unsupported value: {shown}: supported values: "All"',
         "field": "dryRun"}]}
    assert revision(control_plane) == before


def test_kubectl_dry_run_server_goes_through_the_emulator_and_stores_nothing(control_plane, tmp_path):
    """The real kubectl's `--dry-run=server` sends `dryRun=All`: the same answer a real server gives."""
    kc = control_plane.write_kubeconfig(tmp_path / "kubeconfig")
    before = revision(control_plane)
    done = subprocess.run([KUBECTL, "--kubeconfig", str(kc), "create", "configmap", "app", "--from-literal=a=b",
                           "--dry-run=server", "-o", "json"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    answered = json.loads(done.stdout)
    assert (answered["data"], len(answered["metadata"]["uid"])) == ({"a": "b"}, 36)
    assert (call(control_plane, "GET", f"{CM}/app")[0], revision(control_plane)) == (404, before)
