"""Services as kube-apiserver's Service storage allocates them: cluster IPs from the service range
(10.96.0.0/12), node ports from 30000-32767, refusals with the real messages, releases on delete."""

from __future__ import annotations

import pytest

from tests.emulator.kubehttp import call

SVC = "/api/v1/namespaces/default/services"


def service(name: str, **spec) -> dict:
    return {"metadata": {"name": name}, "spec": {"ports": [{"port": 80, "protocol": "TCP"}], **spec}}


def refused(cp, body: dict, path: str = SVC, method: str = "POST") -> tuple[int, str, str, str]:
    code, _, status = call(cp, method, path, body)
    (cause,) = status["details"]["causes"]
    return code, status["reason"], cause["field"], status["message"]


def test_kubernetes_service_holds_the_first_address(control_plane):
    code, _, svc = call(control_plane, "GET", f"{SVC}/kubernetes")
    assert code == 200
    assert (svc["spec"]["clusterIP"], svc["spec"]["clusterIPs"]) == ("10.96.0.1", ["10.96.0.1"])
    assert svc["spec"]["ports"] == [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": 6443}]
    assert svc["metadata"]["labels"] == {"component": "apiserver", "provider": "kubernetes"}


def test_cluster_ips_allocated_in_the_range(control_plane):
    ips = []
    for i in range(3):
        code, _, made = call(control_plane, "POST", SVC, service(f"web-{i}"))
        assert code == 201
        spec = made["spec"]
        assert (spec["type"], spec["ipFamilies"], spec["ipFamilyPolicy"]) == ("ClusterIP", ["IPv4"], "SingleStack")
        assert spec["clusterIPs"] == [spec["clusterIP"]]
        assert spec["ports"] == [{"port": 80, "protocol": "TCP", "targetPort": 80}]
        ips.append(spec["clusterIP"])
    assert ips == ["10.96.0.2", "10.96.0.3", "10.96.0.4"]


@pytest.mark.parametrize("ip", ["10.96.0.1", "10.96.0.2"])
def test_a_taken_cluster_ip_is_refused(control_plane, ip):
    call(control_plane, "POST", SVC, service("first", clusterIP="10.96.0.2"))
    code, reason, field, message = refused(control_plane, service("second", clusterIP=ip))
    assert (code, reason, field) == (422, "Invalid", "spec.clusterIPs")
    assert message == (f'Service "second" is invalid: spec.clusterIPs: Invalid value: []string{{"{ip}"}}: '
                       f"failed to allocate IP {ip}: provided IP is already allocated")


@pytest.mark.parametrize("ip", ["10.0.0.10", "192.168.1.1", "10.112.0.1", "10.96.0.0", "10.111.255.255"])
def test_a_cluster_ip_outside_the_range_is_refused(control_plane, ip):
    code, reason, field, message = refused(control_plane, service("out", clusterIP=ip, clusterIPs=[ip]))
    assert (code, reason, field) == (422, "Invalid", "spec.clusterIPs")
    assert message == (f'Service "out" is invalid: spec.clusterIPs: Invalid value: []string{{"{ip}"}}: '
                       f"failed to allocate IP {ip}: the provided IP ({ip}) is not in the valid range. "
                       "The range of valid IPs is 10.96.0.0/12")


def test_requested_ip_inside_the_range_is_kept_and_headless_stays_headless(control_plane):
    _, _, made = call(control_plane, "POST", SVC, service("dns", clusterIP="10.96.0.10"))
    assert made["spec"]["clusterIPs"] == ["10.96.0.10"]
    _, _, headless = call(control_plane, "POST", SVC, service("db", clusterIP="None"))
    assert (headless["spec"]["clusterIP"], headless["spec"]["clusterIPs"]) == ("None", ["None"])
    _, _, external = call(control_plane, "POST", SVC, {"metadata": {"name": "ext"},
                                                       "spec": {"type": "ExternalName", "externalName": "example.org"}})
    assert "clusterIP" not in external["spec"]


def test_node_ports_allocated_checked_and_refused(control_plane):
    code, _, made = call(control_plane, "POST", SVC, service("np", type="NodePort"))
    assert code == 201 and made["spec"]["ports"][0]["nodePort"] == 30000
    _, _, chosen = call(control_plane, "POST", SVC, service("np2", type="NodePort",
                                                            ports=[{"port": 80, "nodePort": 30080}]))
    assert chosen["spec"]["ports"][0]["nodePort"] == 30080
    for port in (30000, 30080):
        code, reason, field, message = refused(control_plane, service("np3", type="NodePort",
                                                                      ports=[{"port": 80, "nodePort": port}]))
        assert (code, reason, field) == (422, "Invalid", "spec.ports[0].nodePort")
        assert message == f'Service "np3" is invalid: spec.ports[0].nodePort: Invalid value: {port}: provided port is already allocated'
    for port in (8080, 29999, 32768, 80):
        code, reason, field, message = refused(control_plane, service("np4", type="LoadBalancer", ports=[
            {"name": "a", "port": 81, "nodePort": 31000}, {"name": "b", "port": 80, "nodePort": port}]))
        assert (code, reason, field) == (422, "Invalid", "spec.ports[1].nodePort")
        assert message == (f'Service "np4" is invalid: spec.ports[1].nodePort: Invalid value: {port}: provided port '
                           "is not in the valid range. The range of valid ports is 30000-32767")
    # nothing of a refused Service stays allocated: its first port and its IP are free again
    code, _, ok = call(control_plane, "POST", SVC, service("np5", type="NodePort", clusterIP="10.96.0.50",
                                                           ports=[{"port": 81, "nodePort": 31000}]))
    assert code == 201 and ok["spec"]["ports"][0]["nodePort"] == 31000


def test_refused_cluster_ip_leaves_nothing_allocated(control_plane):
    code, _, _, _ = refused(control_plane, service("bad", clusterIP="10.96.0.7", type="NodePort",
                                                   ports=[{"port": 80, "nodePort": 1}]))
    assert code == 422
    code, _, made = call(control_plane, "POST", SVC, service("good", clusterIP="10.96.0.7"))
    assert (code, made["spec"]["clusterIP"]) == (201, "10.96.0.7")


def test_released_on_delete(control_plane):
    call(control_plane, "POST", SVC, service("a", type="NodePort", clusterIP="10.96.0.20",
                                             ports=[{"port": 80, "nodePort": 30500}]))
    assert call(control_plane, "DELETE", f"{SVC}/a")[0] == 200
    code, _, again = call(control_plane, "POST", SVC, service("b", type="NodePort", clusterIP="10.96.0.20",
                                                              ports=[{"port": 80, "nodePort": 30500}]))
    assert (code, again["spec"]["clusterIP"], again["spec"]["ports"][0]["nodePort"]) == (201, "10.96.0.20", 30500)


def test_released_when_its_namespace_goes(control_plane):
    import time

    call(control_plane, "POST", "/api/v1/namespaces", {"metadata": {"name": "team-a"}})
    call(control_plane, "POST", "/api/v1/namespaces/team-a/services", service("a", clusterIP="10.96.0.30"))
    call(control_plane, "DELETE", "/api/v1/namespaces/team-a")
    deadline = time.monotonic() + 10
    while call(control_plane, "GET", "/api/v1/namespaces/team-a")[0] != 404 and time.monotonic() < deadline:
        time.sleep(0.05)
    code, _, made = call(control_plane, "POST", SVC, service("b", clusterIP="10.96.0.30"))
    assert (code, made["spec"]["clusterIP"]) == (201, "10.96.0.30")


def test_update_keeps_allocations_and_refuses_a_changed_ip(control_plane):
    _, _, made = call(control_plane, "POST", SVC, service("web", type="NodePort"))
    ip, port = made["spec"]["clusterIP"], made["spec"]["ports"][0]["nodePort"]
    body = {"metadata": {"name": "web", "resourceVersion": made["metadata"]["resourceVersion"]},
            "spec": {"type": "NodePort", "ports": [{"port": 80, "protocol": "TCP"}], "selector": {"app": "web"}}}
    code, _, updated = call(control_plane, "PUT", f"{SVC}/web", body)
    assert (code, updated["spec"]["clusterIP"], updated["spec"]["ports"][0]["nodePort"]) == (200, ip, port)
    updated["spec"]["clusterIP"] = updated["spec"]["clusterIPs"][0] = "10.96.0.99"
    code, reason, field, message = refused(control_plane, updated, f"{SVC}/web", "PUT")
    assert (code, reason, field) == (422, "Invalid", "spec.clusterIPs[0]")
    assert message == ('Service "web" is invalid: spec.clusterIPs[0]: Invalid value: []string{"10.96.0.99"}: '
                       "may not change once set")
    code, _, _ = call(control_plane, "PATCH", f"{SVC}/web", {"spec": {"type": "ClusterIP"}},
                      content_type="application/merge-patch+json")
    assert code == 200
    _, _, cluster_ip = call(control_plane, "GET", f"{SVC}/web")
    assert "nodePort" not in cluster_ip["spec"]["ports"][0]  # released with the NodePort type
    code, _, other = call(control_plane, "POST", SVC, service("other", type="NodePort",
                                                              ports=[{"port": 80, "nodePort": port}]))
    assert (code, other["spec"]["ports"][0]["nodePort"]) == (201, port)
