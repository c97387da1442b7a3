"""Authentication, authorization and HTTP hygiene, as kube-apiserver (--anonymous-auth=false) answers them.

Raw keep-alive connections (http.client) show status codes, bodies and whether the connection
survived; the shapes come from k8s.io/apiserver (authentication filter: 401 Unauthorized;
responsewriters.Forbidden: 403 with forbiddenMessage; RequestInfoFactory: verbs and namespaces).
"""

from __future__ import annotations

import http.client
import json
import ssl

import pytest

from kubeemu import EmulatorServer
from kubeemu.certs import CertificateAuthority
from kubeemu.fixtures import crd

READ_ONLY = "read-only-token-for-tests"
UNAUTHORIZED = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": "Unauthorized",
                "reason": "Unauthorized", "code": 401}
WIDGETS = crd("example.org", "widgets", "Widget", "Namespaced", "v1")


@pytest.fixture
def cp():
    with EmulatorServer(establish_delay=0.01, read_only_token=READ_ONLY) as server:
        yield server


class Connection:
    """One keep-alive HTTPS connection; `same_socket` tells whether the server kept it open."""

    def __init__(self, cp, context: ssl.SSLContext | None = None):
        host, port = cp.url.removeprefix("https://").split(":")
        self.conn = http.client.HTTPSConnection(host, int(port), timeout=10, context=context or cp.ssl_context())
        self.conn.connect()
        self.socket = self.conn.sock

    def __call__(self, method: str, path: str, body: bytes | None = None, token: str | None = None,
                 content_type: str = "application/json", chunked: bool = False) -> tuple[int, dict]:
        headers = {"Content-Type": content_type, "Accept": "application/json"}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        if chunked:
            self.conn.request(method, path, body=iter([body[:7], body[7:]]) if body else iter([]), headers=headers,
                              encode_chunked=True)
        else:
            self.conn.request(method, path, body=body, headers=headers)
        response = self.conn.getresponse()
        data = response.read()
        return response.status, json.loads(data) if data else {}

    @property
    def same_socket(self) -> bool:
        return self.conn.sock is self.socket

    def close(self) -> None:
        self.conn.close()


@pytest.fixture
def conn(cp):
    connection = Connection(cp)
    yield connection
    connection.close()


def cm(name: str) -> bytes:
    return json.dumps({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"k": "v"}}).encode()


@pytest.mark.parametrize("authorization", [None, "Bearer wrong-token", "Bearer ", "Basic a3ViZTpwYXNz",
                                           "bearer-but-no-space"])
@pytest.mark.parametrize(("method", "path"), [("GET", "/api/v1/namespaces"), ("GET", "/version"), ("GET", "/apis"),
                                              ("POST", "/api/v1/namespaces/default/configmaps"),
                                              ("GET", "/_emulator/stats")])
def test_no_or_wrong_credentials_are_refused_with_401(cp, conn, authorization, method, path):
    headers = {"Content-Type": "application/json"}
    if authorization is not None:
        headers["Authorization"] = authorization
    conn.conn.request(method, path, body=cm("anon") if method == "POST" else None, headers=headers)
    response = conn.conn.getresponse()
    assert (response.status, json.loads(response.read())) == (401, UNAUTHORIZED)
    assert conn("GET", "/api/v1/namespaces/default/configmaps/anon", token=cp.token)[0] == 404  # nothing written
    assert conn.same_socket


def test_the_token_and_client_certificates_of_the_ca_are_accepted(cp):
    assert Connection(cp)("GET", "/api/v1/namespaces", token=cp.token)[0] == 200
    for read_only in (False, True):
        pair = cp.client_certificate(read_only=read_only)
        context = cp.ssl_context()
        _load_client_certificate(context, pair, cp)
        status, body = Connection(cp, context)("GET", "/api/v1/namespaces/default/configmaps")
        assert (status, body["kind"]) == (200, "ConfigMapList")


def test_a_client_certificate_of_another_ca_fails_the_handshake(cp):
    stranger = CertificateAuthority().client("kubeemu-admin", ("system:masters",))
    context = cp.ssl_context()
    _load_client_certificate(context, stranger, cp)
    with pytest.raises((ssl.SSLError, ConnectionError, OSError), match=r"(?i)alert|certificate|reset|EOF|closed"):
        connection = Connection(cp, context)
        connection("GET", "/api/v1/namespaces")


def test_clients_that_do_not_trust_the_ca_are_refused_by_their_own_tls(cp):
    with pytest.raises(ssl.SSLCertVerificationError, match="certificate verify failed"):
        Connection(cp, ssl.create_default_context())


# (method, path, body, expected message): the verb and scope as RequestInfoFactory derives them
FORBIDDEN = [
    ("POST", "/api/v1/namespaces/default/configmaps", cm("new"),
     'configmaps is forbidden: User "kubeemu-viewer" cannot create resource "configmaps" in API group "" '
     'in the namespace "default"'),
    ("PUT", "/api/v1/namespaces/default/configmaps/kept", cm("kept"),
     'configmaps "kept" is forbidden: User "kubeemu-viewer" cannot update resource "configmaps" in API group "" '
     'in the namespace "default"'),
    ("DELETE", "/api/v1/namespaces/default/configmaps/kept", None,
     'configmaps "kept" is forbidden: User "kubeemu-viewer" cannot delete resource "configmaps" in API group "" '
     'in the namespace "default"'),
    ("DELETE", "/api/v1/namespaces/default/configmaps", None,
     'configmaps is forbidden: User "kubeemu-viewer" cannot deletecollection resource "configmaps" in API group "" '
     'in the namespace "default"'),
    ("POST", "/api/v1/namespaces", json.dumps({"metadata": {"name": "team-a"}}).encode(),
     'namespaces is forbidden: User "kubeemu-viewer" cannot create resource "namespaces" in API group "" '
     'at the cluster scope'),
    ("DELETE", "/api/v1/namespaces/default", None,
     'namespaces "default" is forbidden: User "kubeemu-viewer" cannot delete resource "namespaces" in API group "" '
     'in the namespace "default"'),
    ("PUT", "/api/v1/namespaces/default/status", json.dumps({"metadata": {"name": "default"}}).encode(),
     'namespaces "default" is forbidden: User "kubeemu-viewer" cannot update resource "namespaces/status" '
     'in API group "" in the namespace "default"'),
    ("PATCH", "/apis/example.org/v1/namespaces/default/widgets/w/status", b'{"status": {"n": 2}}',
     'widgets.example.org "w" is forbidden: User "kubeemu-viewer" cannot patch resource "widgets/status" '
     'in API group "example.org" in the namespace "default"'),
    ("POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", json.dumps(WIDGETS).encode(),
     'customresourcedefinitions.apiextensions.k8s.io is forbidden: User "kubeemu-viewer" cannot create resource '
     '"customresourcedefinitions" in API group "apiextensions.k8s.io" at the cluster scope'),
    ("POST", "/version", b"{}", 'forbidden: User "kubeemu-viewer" cannot post path "/version"'),
]


@pytest.mark.parametrize(("method", "path", "body", "message"), FORBIDDEN)
def test_the_read_only_token_reads_but_may_not_write(cp, conn, method, path, body, message):
    conn("POST", "/api/v1/namespaces/default/configmaps", cm("kept"), token=cp.token)
    conn("POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", json.dumps(WIDGETS).encode(), token=cp.token)
    status, answer = conn(method, path, body, token=READ_ONLY, content_type="application/merge-patch+json"
                          if method == "PATCH" else "application/json")
    assert status == 403
    assert (answer["kind"], answer["status"], answer["reason"], answer["code"]) == ("Status", "Failure", "Forbidden", 403)
    assert answer["message"] == message
    assert conn("GET", "/api/v1/namespaces/default/configmaps/kept", token=READ_ONLY)[0] == 200  # reads still work
    assert conn.same_socket  # the refused body was drained
    assert conn("GET", "/api/v1/namespaces/default/configmaps/new", token=cp.token)[0] == 404


def test_a_refusal_names_the_object_in_its_details(cp, conn):
    conn("POST", "/api/v1/namespaces/default/configmaps", cm("kept"), token=cp.token)
    status, answer = conn("DELETE", "/api/v1/namespaces/default/configmaps/kept", token=READ_ONLY)
    assert (status, answer["details"]) == (403, {"name": "kept", "group": "", "kind": "configmaps"})


def test_the_read_only_token_may_not_use_the_admin_endpoints(cp, conn):
    status, answer = conn("POST", "/_emulator/pause", b"{}", token=READ_ONLY)
    assert (status, answer["reason"], answer["message"]) == (
        403, "Forbidden", 'forbidden: User "kubeemu-viewer" cannot post path "/_emulator/pause"')
    assert conn("GET", "/_emulator/stats", token=cp.token)[0] == 200


# -- HTTP hygiene: a body the server never read must not become the next request -------------------------

UNREAD = [  # answered before the route reads the body
    ("POST", "/api/v1/namespaces/default/nosuchthings", None, 404),
    ("POST", "/apis/nosuch.example.org/v1/things", None, 404),
    ("PUT", "/api/v1/namespaces/default/configmaps", None, 405),
    ("PATCH", "/api/v1/namespaces/default/configmaps/x", "text/plain", 415),
    ("POST", "/api/v1/namespaces/default/configmaps", "no-token", 401),
]


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
@pytest.mark.parametrize(("method", "path", "option", "code"), UNREAD)
def test_an_unread_body_does_not_poison_the_keep_alive_connection(cp, conn, method, path, option, code, chunked):
    token = None if option == "no-token" else cp.token
    content_type = option if option == "text/plain" else "application/json"
    for _ in range(2):
        status, _body = conn(method, path, cm("ignored"), token=token, content_type=content_type, chunked=chunked)
        assert status == code
        status, listed = conn("GET", "/api/v1/namespaces/default/configmaps", token=cp.token)
        assert (status, listed["kind"]) == (200, "ConfigMapList")
    assert conn.same_socket


@pytest.mark.parametrize("name", ["chunked-a", "chunked-b"])
def test_a_chunked_body_is_read(cp, conn, name):
    status, made = conn("POST", "/api/v1/namespaces/default/configmaps", cm(name), token=cp.token, chunked=True)
    assert (status, made["metadata"]["name"], made["data"]) == (201, name, {"k": "v"})
    status, got = conn("GET", f"/api/v1/namespaces/default/configmaps/{name}", token=cp.token)
    assert (status, got["data"]) == (200, {"k": "v"})
    patched = conn("PATCH", f"/api/v1/namespaces/default/configmaps/{name}", b'{"data": {"k": "w"}}', token=cp.token,
                   content_type="application/merge-patch+json", chunked=True)
    assert (patched[0], patched[1]["data"]) == (200, {"k": "w"})
    assert conn.same_socket


def _load_client_certificate(context: ssl.SSLContext, pair, cp) -> None:
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as folder:
        cert, key = Path(folder) / "tls.crt", Path(folder) / "tls.key"
        cert.write_bytes(pair.cert_pem)
        key.write_bytes(pair.key_pem)
        context.load_cert_chain(cert, key)


def test_a_subprocess_emulator_shares_its_ca_and_credentials_with_the_parent():
    from kubeemu import EmulatorProcess

    with EmulatorProcess(read_only_token=READ_ONLY) as cp:
        context = cp.ssl_context()
        _load_client_certificate(context, cp.client_certificate(), cp)
        status, made = Connection(cp, context)("POST", "/api/v1/namespaces/default/configmaps", cm("by-cert"))
        assert (status, made["metadata"]["name"]) == (201, "by-cert")
        status, refused = Connection(cp)("DELETE", "/api/v1/namespaces/default/configmaps/by-cert", token=READ_ONLY)
        assert (status, refused["message"]) == (403, 'configmaps "by-cert" is forbidden: User "kubeemu-viewer" cannot '
                                                     'delete resource "configmaps" in API group "" in the namespace "default"')
        assert Connection(cp)("GET", "/api/v1/namespaces", token="wrong")[0] == 401


def test_the_admin_client_verifies_the_emulators_ca(cp):
    assert cp.stats()["requests"] >= 0
    impostor = CertificateAuthority()
    trusting_the_wrong_ca = EmulatorServer.__new__(EmulatorServer)
    trusting_the_wrong_ca.url, trusting_the_wrong_ca.token, trusting_the_wrong_ca.authority = cp.url, cp.token, impostor
    with pytest.raises(OSError, match="CERTIFICATE_VERIFY_FAILED"):
        trusting_the_wrong_ca.stats()


def test_a_read_only_kubeconfig_needs_a_read_only_token(control_plane):
    with pytest.raises(ValueError, match="^this emulator was started without a read-only token$"):
        control_plane.kubeconfig_text(read_only=True)
    assert "client-certificate-data" in control_plane.kubeconfig_text(read_only=True, client_certificate=True)
