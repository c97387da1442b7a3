"""Starting emulated control planes: in this process (a background thread) or as a subprocess, each
on a free port of 127.0.0.1 over HTTPS with its own CA, each able to write a kubeconfig for itself
(a bearer token by default, a client certificate on request)."""

from __future__ import annotations

import base64
import json
import os
import secrets
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import yaml

from kubeemu.auth import ADMIN_USER, READ_ONLY_USER
from kubeemu.certs import CertificateAuthority, KeyPair
from kubeemu.server import ApiServer


def kubeconfig(url: str, token: str | None = None, name: str = "kubeemu", *, certificate_authority_data: bytes | None = None,
               client_certificate: KeyPair | None = None) -> str:
    """A kubeconfig for one control plane, with only the fields a connection Secret may hold:
    `server`, `certificate-authority-data`, `token`, `client-certificate-data`, `client-key-data`
    (PEM given as bytes, written base64-encoded as kubeconfigs carry them). Neither token nor
    client certificate: a kubeconfig that authenticates as nobody (for tests of 401)."""
    cluster: dict[str, str] = {"server": url}
    if certificate_authority_data is not None:
        cluster["certificate-authority-data"] = base64.b64encode(certificate_authority_data).decode()
    user: dict[str, str] = {}
    if token is not None:
        user["token"] = token
    if client_certificate is not None:
        user["client-certificate-data"] = base64.b64encode(client_certificate.cert_pem).decode()
        user["client-key-data"] = base64.b64encode(client_certificate.key_pem).decode()
    return yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": name,
        "clusters": [{"name": name, "cluster": cluster}],
        "users": [{"name": name, "user": user}],
        "contexts": [{"name": name, "context": {"cluster": name, "user": name, "namespace": "default"}}],
    }, sort_keys=False)


class _Admin:
    """Credentials, kubeconfigs, and faults and pause through the admin endpoints (works for both
    in-process and subprocess emulators). Every request verifies the emulator's CA."""

    url: str
    token: str
    read_only_token: str | None
    authority: CertificateAuthority

    @property
    def ca_data(self) -> bytes:
        """The CA certificate (PEM) clients must trust."""
        return self.authority.cert_pem

    def ssl_context(self) -> ssl.SSLContext:
        """An SSL context trusting this emulator's CA only, for urllib and http.client."""
        return self.authority.client_context()

    def _admin_context(self) -> ssl.SSLContext:
        """This emulator's CA, and the full-access client certificate: admin calls over HTTPS work
        whatever the token holds (a test's token may hold characters a header cannot carry)."""
        context = getattr(self, "_admin_ssl", None)
        if context is None:
            context = self.ssl_context()
            pair = self.client_certificate()
            with tempfile.TemporaryDirectory(prefix="kubeemu-admin-") as folder:
                cert, key = Path(folder, "admin.crt"), Path(folder, "admin.key")
                cert.write_bytes(pair.cert_pem)
                key.write_bytes(pair.key_pem)
                context.load_cert_chain(cert, key)  # read now: the files may go
            self._admin_ssl = context
        return context

    def _admin(self, method: str, path: str, body: dict | None = None) -> dict:
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Content-Type": "application/json"}
        if self.token and self.token.isprintable() and " " not in self.token:  # plain HTTP has no certificate
            headers["Authorization"] = f"Bearer {self.token}"
        request = urllib.request.Request(f"{self.url}/_emulator/{path}", data=data, method=method, headers=headers)
        with urllib.request.urlopen(request, timeout=10, context=self._admin_context()) as response:  # noqa: S310
            return json.loads(response.read())

    def inject(self, mode: str, count: int = 1, **options) -> None:
        """Answer the next `count` matching requests with a fault: mode error|throttle|slow|drop;
        options status, retry_after, delay, path_prefix, methods."""
        self._admin("POST", "faults", {"mode": mode, "count": count, **options})

    def clear_faults(self) -> None:
        self._admin("DELETE", "faults")

    def pause(self) -> None:
        self._admin("POST", "pause")

    def resume(self) -> None:
        self._admin("POST", "resume")

    def stats(self) -> dict:
        return self._admin("GET", "stats")

    def client_certificate(self, read_only: bool = False) -> KeyPair:
        """A client certificate for the full-access user (group system:masters) or the read-only one."""
        if read_only:
            return self.authority.client(READ_ONLY_USER)
        return self.authority.client(ADMIN_USER, ("system:masters",))

    def kubeconfig_text(self, name: str = "kubeemu", *, client_certificate: bool = False, read_only: bool = False) -> str:
        """A kubeconfig trusting this emulator's CA and authenticating with its token (default), or
        with a client certificate; `read_only` picks the read-only token (or certificate)."""
        if read_only and not client_certificate and self.read_only_token is None:
            raise ValueError("this emulator was started without a read-only token")
        if client_certificate:
            return kubeconfig(self.url, None, name, certificate_authority_data=self.ca_data,
                              client_certificate=self.client_certificate(read_only))
        return kubeconfig(self.url, self.read_only_token if read_only else self.token, name,
                          certificate_authority_data=self.ca_data)

    def write_kubeconfig(self, path: str | Path, name: str = "kubeemu", *, client_certificate: bool = False,
                         read_only: bool = False) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.kubeconfig_text(name, client_certificate=client_certificate, read_only=read_only))
        return path


class EmulatorServer(_Admin):
    """An emulated control plane served from a thread of this process."""

    def __init__(self, token: str | None = None, establish_delay: float = 0.15, *, read_only_token: str | None = None):
        self.token = token or secrets.token_urlsafe(24)
        self.read_only_token = read_only_token
        self.authority = CertificateAuthority()
        self.api = ApiServer(token=self.token, establish_delay=establish_delay, read_only_token=read_only_token,
                             authority=self.authority)
        self.url = self.api.url

    @property
    def store(self):
        return self.api.store

    def start(self) -> EmulatorServer:
        self.api.serve_in_thread()
        return self

    def stop(self) -> None:
        self.api.shutdown()

    def __enter__(self) -> EmulatorServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


class EmulatorProcess(_Admin):
    """An emulated control plane in its own Python process (no GIL shared with the client)."""

    def __init__(self, token: str | None = None, *, read_only_token: str | None = None, plain_http: bool = False):
        """`plain_http`: no TLS (credentials still required), for bench/emulator.py's baseline only."""
        self.token = token or secrets.token_urlsafe(24)
        self.read_only_token = read_only_token
        self.plain_http = plain_http
        self.authority = CertificateAuthority()  # made here and shared with the child, so both know it
        self.process: subprocess.Popen | None = None
        self.url = ""

    def start(self, timeout: float = 30.0) -> EmulatorProcess:
        env = {**os.environ, "KUBEEMU_TOKEN": self.token, "KUBEEMU_CA_CERT": self.authority.cert_pem.decode(),
               "KUBEEMU_CA_KEY": self.authority.key_pem.decode()}
        if self.read_only_token is not None:
            env["KUBEEMU_READ_ONLY_TOKEN"] = self.read_only_token
        command = [sys.executable, "-m", "kubeemu", "--port", "0", *(["--plain-http"] if self.plain_http else [])]
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE,
                                        stderr=subprocess.DEVNULL, env=env, text=True)
        deadline = time.monotonic() + timeout
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line.startswith("http://" if self.plain_http else "https://"):
            self.stop()
            raise RuntimeError(f"emulator did not start: {line!r}")
        self.url = line.strip()
        while time.monotonic() < deadline:
            try:
                self.stats()
                return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("emulator did not answer")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            if self.process.stdout:
                self.process.stdout.close()
            self.process = None

    def kill(self) -> None:
        """Like a control plane that disappears: no goodbye."""
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            if self.process.stdout:
                self.process.stdout.close()
            self.process = None

    def __enter__(self) -> EmulatorProcess:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
