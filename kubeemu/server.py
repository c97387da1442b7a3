"""The Kubernetes REST API over HTTPS (HTTP/1.1) on 127.0.0.1, served from a `Store`.

Threaded standard-library server: one thread per connection (its TLS handshake made there, not in
the accept loop), keep-alive, chunked request bodies and chunked watch streams. Every request is
authenticated as kube-apiserver does it with `--anonymous-auth=false`: a bearer token or a client
certificate signed by the instance's CA, else 401. An optional read-only token (or client
certificate of the read-only user) may only get, list and watch: other verbs get 403 with the
message kube-apiserver's authorization filter writes. Admin endpoints under `/_emulator/` (faults,
pause, stats) are for tests only and need the full-access credentials.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import ssl
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import orjson
import yaml

from kubeemu import admission, protobuf
from kubeemu.auth import READ_VERBS, RequestAttributes, User, authenticate
from kubeemu.certs import CertificateAuthority
from kubeemu.faults import Fault, Faults
from kubeemu.resources import SUBRESOURCE_KINDS, SUBRESOURCE_VERBS
from kubeemu.selectors import SelectorError, field_selector, label_selector
from kubeemu.store import ApiError, Resource, Store
from kubevalidation import Invalid
from kubevalidation.errors import not_supported

log = logging.getLogger(__name__)

SERVER_VERSION = {"major": "1", "minor": "33", "gitVersion": "v1.33.0-kubeemu", "gitCommit": "emulated",
                  "gitTreeState": "clean", "buildDate": "2026-01-01T00:00:00Z", "goVersion": "go1.24",
                  "compiler": "gc", "platform": "linux/amd64"}
PATCH_TYPES = {
    "application/merge-patch+json": "merge",
    "application/json-patch+json": "json",
    "application/strategic-merge-patch+json": "strategic",
    "application/apply-patch+yaml": "apply",
    "application/apply-patch+json": "apply",
}
#: kube-apiserver's answer to a request without valid credentials (its authentication filter's)
UNAUTHORIZED = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": "Unauthorized",
                "reason": "Unauthorized", "code": 401}
#: metav1.DryRunAll: the only value `dryRun` accepts (apimachinery's ValidateDryRun)
DRY_RUN_ALL = "All"
#: the options type each write's query parameters are decoded into (its name is in the 422 message)
OPTIONS_KIND = {"POST": "CreateOptions", "PUT": "UpdateOptions", "PATCH": "PatchOptions", "DELETE": "DeleteOptions"}
#: kube-apiserver's default --max-request-body-bytes: an unread body up to this size is drained so the
#: keep-alive connection stays usable; a larger one closes the connection after the answer
MAX_REQUEST_BODY_BYTES = 3 * 1024 * 1024


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256

    def __init__(self, address, handler, api: ApiServer, context: ssl.SSLContext | None):
        self.api = api
        self.context = context
        super().__init__(address, handler)

    def finish_request(self, request, client_address) -> None:
        """TLS handshake in the connection's own thread: a slow or failed one holds up nobody else."""
        if self.context is None:  # plain HTTP: the benchmark's baseline only
            return super().finish_request(request, client_address)
        request.settimeout(10)
        try:
            connection = self.context.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError) as err:  # a client that does not trust the CA, or a cert not signed by it
            log.debug("TLS handshake with %s failed: %s", client_address, err)
            return
        try:
            connection.settimeout(None)
            self.RequestHandlerClass(connection, client_address, self)
        finally:
            with contextlib.suppress(OSError):
                connection.close()


class ApiServer:
    """The emulated control plane: a store, its credentials, faults, and the HTTPS server serving them.

    `token` authenticates as the full-access user (`kubeemu-admin`, group `system:masters`);
    `read_only_token`, if given, as `kubeemu-viewer`, who may only get, list and watch. Client
    certificates signed by `authority` authenticate as their subject's CN (user) and O (groups).
    `plain_http` serves without TLS (credentials still required): only bench/emulator.py uses it,
    to measure what TLS costs in the same run.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0, token: str = "kubeemu-token", establish_delay: float = 0.15,
                 *, read_only_token: str | None = None, authority: CertificateAuthority | None = None,
                 plain_http: bool = False):
        self.store = Store(establish_delay=establish_delay)
        self.token = token
        self.read_only_token = read_only_token
        self.authority = authority or CertificateAuthority()
        self.faults = Faults()
        self.httpd = _Server((host, port), _Handler, self, None if plain_http else self._tls_context())
        self.host, self.port = self.httpd.server_address[:2]
        self._thread: threading.Thread | None = None

    def _tls_context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.set_alpn_protocols(["http/1.1"])
        serving = self.authority.serving()
        with tempfile.TemporaryDirectory(prefix="kubeemu-tls-") as folder:  # the ssl module loads keys from files only
            cert, key = os.path.join(folder, "tls.crt"), os.path.join(folder, "tls.key")
            with open(cert, "wb") as file:
                file.write(serving.cert_pem)
            with open(os.open(key, os.O_WRONLY | os.O_CREAT, 0o600), "wb") as file:
                file.write(serving.key_pem)
            context.load_cert_chain(cert, key)
        # a client certificate is asked for, not required (token clients send none); one that is sent
        # must be signed by this CA, or the handshake fails
        context.verify_mode = ssl.CERT_OPTIONAL
        context.load_verify_locations(cadata=self.authority.cert_pem.decode())
        return context

    def authenticate(self, authorization: str | None, peer_certificate: dict | None) -> User | None:
        """The user of a request, or None (401): see `kubeemu.auth.authenticate`."""
        return authenticate(authorization, peer_certificate, self.token, self.read_only_token)

    @property
    def url(self) -> str:
        return f"{'http' if self.httpd.context is None else 'https'}://{self.host}:{self.port}"

    def serve_in_thread(self) -> None:
        self._thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.1},
                                        name=f"kubeemu-{self.port}", daemon=True)
        self._thread.start()

    def shutdown(self) -> None:
        self.faults.resume()
        self.store.close()
        self.httpd.shutdown()
        self.httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server
    wbufsize = 64 * 1024  # headers and body leave in one segment (no Nagle / delayed-ACK stalls)

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - signature of the base class
        log.debug("%s %s", self.address_string(), format % args)

    # -- plumbing ------------------------------------------------------------------------------------

    def _send(self, code: int, body: object, content_type: str = "application/json",
              warnings: list[str] | None = None) -> None:
        data = body if isinstance(body, bytes) else _encode(body)
        self.send_response(code)
        for warning in warnings or ():
            self.send_header("Warning", '299 - "' + warning.replace("\\", "\\\\").replace('"', '\\"') + '"')
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        self.wfile.flush()

    def _error(self, err: ApiError) -> None:
        self._send(err.code, err.status())

    def _body(self) -> bytes:
        """The request's body, read once (a fault reads it before the route does: reading again
        would wait for bytes the client never sends). `Transfer-Encoding: chunked` bodies (as
        `kubectl create --raw -f` sends them) are decoded; otherwise Content-Length bytes are read."""
        if self._request_body is None:
            if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
                self._request_body = self._read_chunked()
            else:
                length = int(self.headers.get("Content-Length") or 0)
                self._request_body = self.rfile.read(length) if length > 0 else b""
        return self._request_body

    def _read_chunked(self) -> bytes:
        """RFC 9112 section 7.1: `size[;ext]CRLF data CRLF` ... `0CRLF [trailers] CRLF`."""
        chunks: list[bytes] = []
        while True:
            line = self.rfile.readline(1024)
            try:
                size = int(line.split(b";", 1)[0].strip(), 16)
            except ValueError:
                self.close_connection = True
                raise ApiError(400, "BadRequest", "malformed chunked request body") from None
            if size == 0:
                break
            chunks.append(self.rfile.read(size))
            self.rfile.readline(8)  # the CRLF after the chunk's data
        while self.rfile.readline(8192).strip():  # trailer fields, up to the empty line
            pass
        return b"".join(chunks)

    def _has_body(self) -> bool:
        return "chunked" in (self.headers.get("Transfer-Encoding") or "").lower() \
            or int(self.headers.get("Content-Length") or 0) > 0

    def _discard_unread_body(self) -> None:
        """A body the route never read (401, 404, 405, 415 answered first) would be parsed as the next
        request on this keep-alive connection: read and drop it, as Go's net/http does after a
        handler; a body beyond the request size limit (or one that cannot be read) closes the
        connection instead."""
        try:
            if self._request_body is not None or self.close_connection or not self._has_body():
                return
            if int(self.headers.get("Content-Length") or 0) > MAX_REQUEST_BODY_BYTES:
                self.close_connection = True
                return
            self._body()
        except (ApiError, OSError, ValueError):
            self.close_connection = True

    def _json_body(self, raw: bytes) -> object:
        if (self.headers.get("Content-Type") or "").startswith("application/vnd.kubernetes.protobuf"):
            try:
                return protobuf.decode(raw)
            except protobuf.ProtobufError as err:
                raise ApiError(415, "UnsupportedMediaType", str(err)) from None
        try:
            return json.loads(raw) if raw else {}
        except ValueError:
            raise ApiError(400, "BadRequest", "the body of the request could not be decoded as JSON") from None

    def _dispatch(self, method: str) -> None:
        self._request_body: bytes | None = None
        try:
            self._authenticated(method)
        finally:
            self._discard_unread_body()

    def _authenticated(self, method: str) -> None:
        """Authentication first (401), then the admin endpoints, faults, authorization (403) and routing,
        in the order of kube-apiserver's filter chain (authentication precedes priority and fairness)."""
        api = self.server.api
        url = urlsplit(self.path)
        path, query = url.path.rstrip("/") or "/", {k: v[-1] for k, v in parse_qs(url.query).items()}
        #: every `dryRun` value (the parameter may repeat), blanks included: ValidateDryRun sees them all
        self._dry_run_values: list[str] = parse_qs(url.query, keep_blank_values=True).get("dryRun") or []
        try:
            peer = self.connection.getpeercert() if isinstance(self.connection, ssl.SSLSocket) else None
            user = api.authenticate(self.headers.get("Authorization"), peer)
            if user is None:  # apierrors.NewUnauthorized("Unauthorized"): a Status without details
                return self._send(401, UNAUTHORIZED)
            if path.startswith("/_emulator/"):
                if user.read_only:
                    raise ApiError(403, "Forbidden", f'forbidden: User "{user.name}" cannot {method.lower()} path "{path}"')
                return self._admin(method, path, self._body())
        except ApiError as err:
            return self._error(err)
        fault = api.faults.next_for(method, path)
        if fault is not None and self._inject(fault):
            return
        try:
            attributes = RequestAttributes.of(method, path, query)
            if user.read_only and attributes.verb not in READ_VERBS:
                raise attributes.forbidden(user)
            self._route(method, path, query)
        except ApiError as err:
            self._error(err)
        except (BrokenPipeError, ConnectionResetError):
            pass
        except Exception as err:  # noqa: BLE001 - an emulator bug answers 500, like a real server's would
            log.exception("internal error")
            self._error(ApiError(500, "InternalError", f"emulator error: {type(err).__name__}: {err}"))

    def _inject(self, fault: Fault) -> bool:
        self._body()
        if fault.mode == "slow":
            time.sleep(fault.delay)
            return False
        if fault.mode == "drop":
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            self.close_connection = True
            return True
        if fault.mode == "throttle":
            body = json.dumps(ApiError(429, "TooManyRequests", "the server has received too many requests and has "
                                                               "asked us to try again later").status()).encode()
            self.send_response(429)
            self.send_header("Retry-After", str(int(fault.retry_after) if fault.retry_after >= 1 else fault.retry_after))
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return True
        self._error(ApiError(fault.status, "InternalError", f"injected fault ({fault.status})"))
        return True

    def do_GET(self) -> None:  # noqa: N802
        self._dispatch("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._dispatch("POST")

    def do_PUT(self) -> None:  # noqa: N802
        self._dispatch("PUT")

    def do_PATCH(self) -> None:  # noqa: N802
        self._dispatch("PATCH")

    def do_DELETE(self) -> None:  # noqa: N802
        self._dispatch("DELETE")

    # -- admin -----------------------------------------------------------------------------------------

    def _admin(self, method: str, path: str, raw: bytes) -> None:
        faults = self.server.api.faults
        if path == "/_emulator/faults" and method == "POST":
            spec = json.loads(raw or b"{}")
            fault = faults.add(spec.pop("mode"), spec.pop("count", 1),
                               **{k: (tuple(v) if k == "methods" else v) for k, v in spec.items()})
            return self._send(200, {"added": fault.mode})
        if path == "/_emulator/faults" and method == "DELETE":
            faults.clear()
            return self._send(200, {"cleared": True})
        if path == "/_emulator/pause" and method == "POST":
            faults.pause()
            return self._send(200, {"paused": True})
        if path == "/_emulator/resume" and method == "POST":
            faults.resume()
            return self._send(200, {"paused": False})
        if path == "/_emulator/stats":
            return self._send(200, {"requests": faults.requests, "injected": faults.injected,
                                    "resourceVersion": self.server.api.store.rv})
        self._send(404, ApiError(404, "NotFound", "no such admin endpoint").status())

    # -- routing ---------------------------------------------------------------------------------------

    def _route(self, method: str, path: str, query: dict[str, str]) -> None:
        store = self.server.api.store
        if path == "/version":
            return self._send(200, SERVER_VERSION)
        if path in ("/healthz", "/readyz", "/livez"):
            return self._send(200, b"ok", "text/plain")
        if path == "/openapi/v2":  # no schemas: clients validate nothing, the server accepts any fields
            if "protobuf" in (self.headers.get("Accept") or ""):
                return self._send(200, b"", "application/octet-stream")
            return self._send(200, {"swagger": "2.0", "info": {"title": "kubeemu", "version": SERVER_VERSION["gitVersion"]},
                                    "paths": {}, "definitions": {}})
        if path.startswith("/openapi"):
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        if path in ("/api", "/apis"):
            aggregated = _aggregated_version(self.headers.get("Accept") or "")
            if aggregated:
                return self._send(200, self._aggregated(path == "/api", aggregated), AGGREGATED_TYPE.format(aggregated))
        if path == "/api":
            return self._send(200, {"kind": "APIVersions", "versions": ["v1"],
                                    "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}]})
        if path == "/apis":
            return self._send(200, self._groups())
        parts = path.strip("/").split("/")
        if parts[0] == "apis" and len(parts) == 2:
            return self._send(200, self._group(parts[1]))
        if parts[0] == "api" and len(parts) >= 2:
            group, version, rest = "", parts[1], parts[2:]
        elif parts[0] == "apis" and len(parts) >= 3:
            group, version, rest = parts[1], parts[2], parts[3:]
        else:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        if not rest:
            return self._send(200, self._resource_list(group, version))
        namespace = None
        if rest[0] == "namespaces" and len(rest) >= 3 and store.resource(group, version, rest[2]) is not None \
                and store.resource(group, version, rest[2]).namespaced:
            namespace, rest = rest[1], rest[2:]
        res = store.resource(group, version, rest[0])
        if res is None:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        name = rest[1] if len(rest) > 1 else None
        sub = rest[2] if len(rest) > 2 else ""
        if sub and sub not in res.subresources:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        if sub == "finalize" and method != "PUT":  # its only verb is update
            raise ApiError(405, "MethodNotAllowed", "the server does not allow this method on the requested resource")
        dry_run = self._dry_run(method, self._dry_run_values) if method in OPTIONS_KIND and method != "DELETE" else False
        manager = query.get("fieldManager") or (self.headers.get("User-Agent") or "unknown").split("/")[0]
        validation, warned = query.get("fieldValidation") or "Warn", []  # the real server's default since 1.27
        if name is None:
            if method == "GET":
                return self._list(res, namespace, query)
            if method == "POST":
                obj = self._json_body(self._body())
                admission.check_body(res, obj)
                created = store.create(res, namespace, obj, manager, field_validation=validation, warnings=warned,
                                       dry_run=dry_run)
                return self._send(201, created, warnings=warned)
            raise ApiError(405, "MethodNotAllowed", f"{method} is not supported on a collection")
        if method == "GET":
            return self._send(200, store.get_scale(res, namespace, name) if sub == "scale" else store.get(res, namespace, name))
        if method == "PUT":
            obj = self._json_body(self._body())
            if sub == "scale":
                return self._send(200, store.update_scale(res, namespace, name, obj, manager, dry_run=dry_run))
            admission.check_body(res, obj)
            updated = store.update(res, namespace, name, obj, manager, sub, field_validation=validation, warnings=warned,
                                   dry_run=dry_run)
            return self._send(200, updated, warnings=warned)
        if method == "PATCH":
            kind = PATCH_TYPES.get((self.headers.get("Content-Type") or "").split(";")[0].strip())
            if kind is None:
                raise ApiError(415, "UnsupportedMediaType", f"the body of the request was in an unknown format: "
                                                            f"{self.headers.get('Content-Type')}")
            raw = self._body()
            try:
                patch = yaml.safe_load(raw) if kind == "apply" else json.loads(raw or b"{}")
            except (ValueError, yaml.YAMLError):
                raise ApiError(400, "BadRequest", "the patch could not be decoded") from None
            admission.check_body(res, patch)
            with store.lock:  # an apply patch may create the object: then 201, as the patch handler answers
                creates = kind == "apply" and not sub and _absent(store, res, namespace, name)
                patched = store.patch(res, namespace, name, kind, patch, query.get("fieldManager", ""), sub,
                                      field_validation=validation, warnings=warned, dry_run=dry_run)
            return self._send(201 if creates else 200, patched, warnings=warned)
        if method == "DELETE":
            raw = self._body()
            # DeleteOptions come from the body when there is one, else from the query (the delete handler's order)
            options = self._json_body(raw) if raw else {}
            options = options if isinstance(options, dict) else {}
            if raw:
                sent = options.get("dryRun")
                values = [str(v) for v in sent] if isinstance(sent, list) else [] if sent is None else [str(sent)]
                propagation = options.get("propagationPolicy") or "Background"
            else:
                values, propagation = self._dry_run_values, query.get("propagationPolicy") or "Background"
            dry_run = self._dry_run(method, values)
            return self._send(200, store.delete(res, namespace, name, propagation, dry_run=dry_run))
        raise ApiError(405, "MethodNotAllowed", f"{method} is not supported")

    @staticmethod
    def _dry_run(method: str, values: list[str]) -> bool:
        """Whether a write is a dry run: `dryRun=All`. Any other value is refused as kube-apiserver's
        handlers refuse it: `validation.ValidateDryRun` (apimachinery pkg/apis/meta/v1/validation) in
        `errors.NewInvalid(<Create|Update|Patch|Delete>Options.meta.k8s.io, "")`, a 422."""
        if not values:
            return False
        if any(v != DRY_RUN_ALL for v in values):
            status = Invalid(OPTIONS_KIND[method], "meta.k8s.io", "",
                             [not_supported("dryRun", list(values), [DRY_RUN_ALL])]).status()
            raise ApiError(422, "Invalid", status["message"], status["details"])
        return True

    def _groups(self) -> dict:
        """The unaggregated APIGroupList: versions highest priority first, the first preferred."""
        groups = [_api_group(group, versions) for group, versions in self.server.api.store.discovery().items() if group]
        return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}

    def _group(self, group: str) -> dict:
        """/apis/<group>: one APIGroup document."""
        versions = self.server.api.store.discovery().get(group)
        if not group or not versions:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        return {"kind": "APIGroup", "apiVersion": "v1", **_api_group(group, versions)}

    def _resource_list(self, group: str, version: str) -> dict:
        resources = self.server.api.store.discovery().get(group, {}).get(version)
        if not resources:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        out = []
        for res in resources:
            entry = {"name": res.plural, "singularName": res.singular, "namespaced": res.namespaced, "kind": res.kind,
                     "verbs": list(res.verbs)}
            if "list" in res.verbs:
                entry["storageVersionHash"] = res.storage_version_hash
            if res.short_names:
                entry["shortNames"] = list(res.short_names)
            if res.categories:
                entry["categories"] = list(res.categories)
            out.append(entry)
            for sub in res.subresources:
                entry = {"name": f"{res.plural}/{sub}", "singularName": "", "namespaced": res.namespaced,
                         "kind": res.kind, "verbs": ["update"] if sub == "finalize" else list(SUBRESOURCE_VERBS)}
                if sub in SUBRESOURCE_KINDS:
                    entry["group"], entry["version"], entry["kind"] = SUBRESOURCE_KINDS[sub]
                out.append(entry)
        return {"kind": "APIResourceList", "apiVersion": "v1",
                "groupVersion": f"{group}/{version}" if group else version, "resources": out}

    def _aggregated(self, core: bool, version: str) -> dict:
        """Aggregated discovery (apidiscovery.k8s.io v2 / v2beta1 APIGroupDiscoveryList): /api holds
        the core group, /apis every other; versions highest priority first (the first preferred)."""
        items = []
        for group, versions in self.server.api.store.discovery().items():
            if (group == "") != core:
                continue
            metadata = {"creationTimestamp": None} if core else {"creationTimestamp": None, "name": group}
            items.append({"metadata": metadata, "versions": [
                {"version": v, "resources": [_aggregated_resource(r) for r in resources], "freshness": "Current"}
                for v, resources in versions.items()]})
        return {"kind": "APIGroupDiscoveryList", "apiVersion": f"apidiscovery.k8s.io/{version}", "metadata": {},
                "items": items}

    def _list(self, res: Resource, namespace: str | None, query: dict[str, str]) -> None:
        store = self.server.api.store
        try:
            labels = label_selector(query.get("labelSelector"))
            fields = field_selector(query.get("fieldSelector"))
        except SelectorError as err:
            raise ApiError(400, "BadRequest", str(err)) from None
        if query.get("watch") in ("true", "1"):
            return self._watch(res, namespace, labels, fields, query)
        limit = int(query.get("limit") or 0)
        items, rv, cont, remaining = store.list(res, namespace, labels, fields, limit, query.get("continue") or None)
        if res.group == "":  # typed built-in lists carry no per-item apiVersion/kind
            items = [{k: v for k, v in o.items() if k not in ("apiVersion", "kind")} for o in items]
        meta: dict[str, object] = {"resourceVersion": str(rv)}
        if cont:
            meta["continue"] = cont
            meta["remainingItemCount"] = remaining
        self._send(200, {"kind": f"{res.kind}List", "apiVersion": res.api_version, "metadata": meta, "items": items})

    def _watch(self, res: Resource, namespace: str | None, labels, fields, query: dict[str, str]) -> None:
        store = self.server.api.store
        timeout = float(query.get("timeoutSeconds") or 1800)
        deadline = time.monotonic() + timeout
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

        def send(event: dict) -> None:
            data = json.dumps(event, separators=(",", ":")).encode() + b"\n"
            self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            self.wfile.flush()

        def visible(obj: dict) -> bool:
            meta = obj.get("metadata") or {}
            return (not res.namespaced or not namespace or meta.get("namespace") == namespace) and labels(obj) and fields(obj)

        try:
            with store.lock:
                since = query.get("resourceVersion")
                if not since or since == "0" or query.get("sendInitialEvents") == "true":
                    items, rv, _, _ = store.list(res, namespace, labels, fields)
                    initial = [{"type": "ADDED", "object": o} for o in items]
                    if query.get("sendInitialEvents") == "true":  # watch-list: a bookmark ends the initial state
                        initial.append({"type": "BOOKMARK", "object": {
                            "kind": res.kind, "apiVersion": res.api_version,
                            "metadata": {"resourceVersion": str(rv), "annotations": {"k8s.io/initial-events-end": "true"}}}})
                    cursor = rv
                else:
                    cursor = int(since)
                    initial = []
                    if store.events and store.events[0].rv > cursor + 1 and cursor < store.rv:
                        initial = [{"type": "ERROR", "object": ApiError(410, "Expired",
                                                                        f"too old resource version: {cursor}").status()}]
            for event in initial:
                send(event)
            if initial and initial[0]["type"] == "ERROR":
                return self._end_chunks()
            while time.monotonic() < deadline and not store.closed:
                with store.lock:
                    pending = [e for e in store.events if e.rv > cursor and e.key == res.key]
                    if not pending:
                        store.changed.wait(timeout=min(1.0, max(0.0, deadline - time.monotonic())))
                        pending = [e for e in store.events if e.rv > cursor and e.key == res.key]
                    if store.events:
                        cursor = max(cursor, store.events[-1].rv)
                for event in pending:
                    if visible(event.obj):
                        obj = event.obj if event.obj.get("apiVersion") == res.api_version else {**event.obj, "apiVersion": res.api_version}
                        send({"type": event.type, "object": obj})
            self._end_chunks()
        except (BrokenPipeError, ConnectionResetError, OSError):
            self.close_connection = True

    def _end_chunks(self) -> None:
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()


def _absent(store: Store, res: Resource, namespace: str | None, name: str) -> bool:
    try:
        store.get(res, namespace, name)
    except ApiError:
        return True
    return False


AGGREGATED_TYPE = "application/json;g=apidiscovery.k8s.io;v={};as=APIGroupDiscoveryList"


def _aggregated_version(accept: str) -> str:
    """The aggregated discovery version ('v2', 'v2beta1') the Accept header asks for first, or ''
    for the unaggregated documents. kubectl and client-go send
    `application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,...,application/json`;
    protobuf forms are skipped (the emulator answers JSON only)."""
    for media in accept.split(","):
        kind, *params = [p.strip() for p in media.split(";")]
        values = dict(p.split("=", 1) for p in params if "=" in p)
        if kind in ("application/json", "*/*") and not values.get("g"):
            return ""
        if kind == "application/json" and values.get("g") == "apidiscovery.k8s.io" \
                and values.get("as") == "APIGroupDiscoveryList" and values.get("v") in ("v2", "v2beta1"):
            return values["v"]
    return ""


def _api_group(group: str, versions: dict) -> dict:
    preferred = next(iter(versions))
    return {"name": group, "versions": [{"groupVersion": f"{group}/{v}", "version": v} for v in versions],
            "preferredVersion": {"groupVersion": f"{group}/{preferred}", "version": preferred}}


def _aggregated_resource(res: Resource) -> dict:
    entry: dict = {"resource": res.plural, "responseKind": {"group": "", "version": "", "kind": res.kind},
                   "scope": "Namespaced" if res.namespaced else "Cluster", "singularResource": res.singular,
                   "verbs": list(res.verbs)}
    if res.short_names:
        entry["shortNames"] = list(res.short_names)
    if res.categories:
        entry["categories"] = list(res.categories)
    subs = []
    for sub in res.subresources:
        group, version, kind = SUBRESOURCE_KINDS.get(sub, ("", "", res.kind))
        subs.append({"subresource": sub, "responseKind": {"group": group, "version": version, "kind": kind},
                     "verbs": ["update"] if sub == "finalize" else list(SUBRESOURCE_VERBS)})
    if subs:
        entry["subresources"] = subs
    return entry


def _encode(body: object) -> bytes:
    """Response JSON: orjson keeps list pages cheap (a real API server serves them from a cache of
    encoded objects); the standard encoder for what orjson refuses (integers beyond 64 bits)."""
    try:
        return orjson.dumps(body)
    except orjson.JSONEncodeError:
        return json.dumps(body, separators=(",", ":")).encode()
