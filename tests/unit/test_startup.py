"""Every `reconcile.py` command starts a Python process; the kubernetes package alone takes about
half of its start-up (its client imports every API and model module). Commands that never connect
to a control plane (plan, status, describe, wait, validate) must not load it, nor any bucket
provider's SDK until a bucket of that provider is opened, nor prometheus_client (only apply writes metrics)."""

from __future__ import annotations

import json
import subprocess
import sys


def test_the_cli_loads_no_kubernetes_client_and_no_cloud_sdk_until_needed():
    code = ("import json, sys, ctpbackup.cli; print(json.dumps(sorted(m for m in ('kubernetes', 'boto3', "
            "'google.cloud.storage', 'azure.storage.blob', 'prometheus_client') if m in sys.modules)))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert json.loads(loaded.stdout) == []

