"""`python -m kubeemu --port 0 [--kubeconfig PATH]`: serve an emulated control plane until killed.
Prints its URL on the first line of stdout once it accepts connections.

HTTPS with the CA given in KUBEEMU_CA_CERT/KUBEEMU_CA_KEY (PEM; how EmulatorProcess shares its CA),
or one made here; the token from --token or KUBEEMU_TOKEN; an optional read-only token from
--read-only-token or KUBEEMU_READ_ONLY_TOKEN."""

from __future__ import annotations

import argparse
import os
import secrets
import signal
import sys

from kubeemu.certs import CertificateAuthority
from kubeemu.process import kubeconfig
from kubeemu.server import ApiServer


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m kubeemu", description="An emulated Kubernetes API server.")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--kubeconfig", help="write a kubeconfig for this server here")
    parser.add_argument("--token", default=os.environ.get("KUBEEMU_TOKEN") or secrets.token_urlsafe(24))
    parser.add_argument("--read-only-token", default=os.environ.get("KUBEEMU_READ_ONLY_TOKEN") or None)
    parser.add_argument("--plain-http", action="store_true", help=argparse.SUPPRESS)  # bench/emulator.py's baseline
    args = parser.parse_args()
    cert, key = os.environ.get("KUBEEMU_CA_CERT"), os.environ.get("KUBEEMU_CA_KEY")
    authority = CertificateAuthority.from_pem(cert.encode(), key.encode()) if cert and key else CertificateAuthority()
    api = ApiServer(port=args.port, token=args.token, read_only_token=args.read_only_token, authority=authority,
                    plain_http=args.plain_http)
    if args.kubeconfig:
        with open(os.open(args.kubeconfig, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as file:
            file.write(kubeconfig(api.url, args.token, certificate_authority_data=authority.cert_pem))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print(api.url, flush=True)
    try:
        api.httpd.serve_forever(poll_interval=0.2)
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        api.store.close()
        api.httpd.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
