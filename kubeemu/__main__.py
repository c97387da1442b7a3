"""`python -m kubeemu --port 0 [--kubeconfig PATH]`: serve an emulated control plane until killed.
Prints its URL on the first line of stdout once it accepts connections."""

from __future__ import annotations

import argparse
import os
import secrets
import signal
import sys

from kubeemu.process import kubeconfig
from kubeemu.server import ApiServer


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m kubeemu", description="An emulated Kubernetes API server.")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--kubeconfig", help="write a kubeconfig for this server here")
    parser.add_argument("--token", default=os.environ.get("KUBEEMU_TOKEN") or secrets.token_urlsafe(24))
    args = parser.parse_args()
    api = ApiServer(port=args.port, token=args.token)
    if args.kubeconfig:
        with open(args.kubeconfig, "w") as file:
            file.write(kubeconfig(api.url, args.token))
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
