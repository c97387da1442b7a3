"""The job authenticates to every API server it talks to, as a real one demands (kubeemu refuses
anonymous requests): the control plane's connection kubeconfig (bearer token or client certificate)
for backups, and the host cluster's credentials for the Secret source (`CoreV1Api`), whose token
kubernetes 36 would not send by itself (kubernetes-client/python#2582)."""

from __future__ import annotations

import base64
import json
import subprocess
import sys

import pytest
import yaml
from kubernetes import client, config

from ctpbackup.desired.model import ConnectionSecretRef, ControlPlane
from ctpbackup.engines.backup import ArchiveInfo, take_backup
from ctpbackup.kube.api import KubeAPI, KubeError, carry_bearer_token
from ctpbackup.kube.connect import api_client_for
from ctpbackup.kube.secrets import (
    DirectorySecretSource,
    KubernetesSecretSource,
    SecretNotFound,
    SecretUnreadable,
)
from ctpbackup.storage.filesystem import FilesystemBucket
from ctpbackup.store.backup_store import BackupStore
from ctpbackup.store.layout import BucketLayout
from kubeemu import EmulatorServer, kubeconfig
from kubeemu.fixtures import SUPER_SECRET, EmulatorClient
from tests.fixtures.objectstores import shared_credentials_file
from tests.fixtures.story import BACKUP, CONTROL_PLANE, ROOT

READ_ONLY = "host-viewer-token"


@pytest.fixture
def host():
    """The host cluster (Spaces): holds connection Secrets and bucket credentials; read-only token too."""
    with EmulatorServer(establish_delay=0.01, read_only_token=READ_ONLY) as server:
        yield server


def put_secret(cp, name: str, data: dict[str, bytes]) -> None:
    http = EmulatorClient(cp.url, cp.token, 1, cp.ca_data)
    http.call("POST", "/api/v1/namespaces/default/secrets", {
        "metadata": {"name": name}, "data": {k: base64.b64encode(v).decode() for k, v in data.items()}})


def connected(tmp_path, cp, **credential) -> tuple[ControlPlane, DirectorySecretSource]:
    folder = tmp_path / "secrets" / "default" / "kubeconfig-ctp1"
    folder.mkdir(parents=True)
    (folder / "kubeconfig").write_text(cp.kubeconfig_text("ctp1", **credential))
    return (ControlPlane("default", "ctp1", connection_secret=ConnectionSecretRef("kubeconfig-ctp1", "default")),
            DirectorySecretSource(tmp_path / "secrets"))


@pytest.mark.parametrize("credential", [{}, {"client_certificate": True}], ids=["token", "client-certificate"])
def test_a_backup_authenticates_with_the_connection_kubeconfig(control_plane, tmp_path, credential):
    put_secret(control_plane, "super-secret-secret", {"password": b"supersecret"})
    plane, secrets = connected(tmp_path, control_plane, **credential)
    store = BackupStore(FilesystemBucket(tmp_path / "bucket"), BucketLayout())
    result = take_backup(api_client_for(plane, secrets), store, ArchiveInfo("default", "ctp1", "b1"))
    assert result.counts["secrets"] == 1
    assert result.counts["namespaces"] >= 1
    assert result.archive_key == "default/ctp1/backups/b1/archive.tar.gz"
    assert (tmp_path / "bucket" / "default" / "ctp1" / "backups" / "b1" / "archive.tar.gz").stat().st_size == result.size


@pytest.mark.parametrize("token", ["wrong-token", "another-wrong-one"])
def test_a_wrong_token_fails_closed_without_quoting_it(control_plane, tmp_path, token):
    folder = tmp_path / "secrets" / "default" / "kubeconfig-ctp1"
    folder.mkdir(parents=True)
    (folder / "kubeconfig").write_text(kubeconfig(control_plane.url, token, certificate_authority_data=control_plane.ca_data))
    plane = ControlPlane("default", "ctp1", connection_secret=ConnectionSecretRef("kubeconfig-ctp1", "default"))
    kube = KubeAPI(api_client_for(plane, DirectorySecretSource(tmp_path / "secrets")), attempts=1)
    with pytest.raises(KubeError, match=r"^GET /version: 401 Unauthorized$") as err:
        kube.server_version()
    assert (err.value.status, err.value.reason) == (401, "Unauthorized")
    assert token not in str(err.value)


def host_kubeconfig(host, tmp_path, **credential):
    return host.write_kubeconfig(tmp_path / "host-kubeconfig", **credential)


@pytest.mark.parametrize("credential", [{}, {"read_only": True}, {"client_certificate": True}],
                         ids=["token", "read-only-token", "client-certificate"])
def test_the_host_secret_source_authenticates(host, tmp_path, credential):
    put_secret(host, "super-secret-secret", {"password": b"supersecret"})
    source = KubernetesSecretSource.from_kubeconfig(str(host_kubeconfig(host, tmp_path, **credential)))
    assert source.get("default", "super-secret-secret", "password") == b"supersecret"
    assert source.exists("default", "super-secret-secret") is True
    assert source.exists("default", "nope") is False
    with pytest.raises(SecretNotFound, match=r"^Secret default/nope not found$"):
        source.get("default", "nope", "password")


@pytest.mark.parametrize("token", [None, "wrong-token"], ids=["anonymous", "wrong-token"])
def test_the_host_secret_source_is_refused_without_valid_credentials(host, tmp_path, token):
    put_secret(host, "super-secret-secret", {"password": b"supersecret"})
    path = tmp_path / "host-kubeconfig"
    path.write_text(kubeconfig(host.url, token, certificate_authority_data=host.ca_data))
    source = KubernetesSecretSource.from_kubeconfig(str(path))
    with pytest.raises(SecretUnreadable, match=r"^Secret default/super-secret-secret could not be read: 401 Unauthorized$") as caught:
        source.get("default", "super-secret-secret", "password")
    assert not isinstance(caught.value, SecretNotFound)  # refused is not missing
    assert source.exists("default", "super-secret-secret") is False


def test_a_refreshed_token_is_carried_to_the_generated_client_and_the_raw_transport(host, tmp_path):
    """In a pod the service-account token rotates: the loaders' refresh hook rewrites
    `api_key['authorization']`; both request paths must send the fresh value."""
    put_secret(host, "super-secret-secret", {"password": b"supersecret"})
    configuration = client.Configuration()
    config.kube_config.KubeConfigLoader(config_dict=yaml.safe_load(host.kubeconfig_text())).load_and_set(configuration)
    configuration.api_key["authorization"] = "Bearer expired-token"
    refreshed = []

    def rotate(cfg):
        refreshed.append(True)
        cfg.api_key["authorization"] = f"Bearer {host.token}"

    configuration.refresh_api_key_hook = rotate
    api_client = client.ApiClient(configuration)
    source = KubernetesSecretSource(api_client)
    assert source.get("default", "super-secret-secret", "password") == b"supersecret"
    configuration.api_key["authorization"] = "Bearer expired-again"
    assert KubeAPI(api_client, attempts=1).get(
        next(t for t in KubeAPI(api_client).discover() if t.key == "secrets"), "default", "super-secret-secret"
    )["data"] == {"password": "c3VwZXJzZWNyZXQ="}
    assert len(refreshed) >= 3
    assert carry_bearer_token(configuration) is configuration  # a second application changes nothing
    assert configuration.auth_settings()["BearerToken"]["value"] == f"Bearer {host.token}"


def test_the_job_reads_its_secrets_from_the_host_cluster_with_a_read_only_token(host, story, tmp_path):
    """`reconcile.py apply --host-kubeconfig`: bucket credentials and the connection kubeconfig come
    from the host cluster's API (CoreV1Api), the backup from the control plane's (raw transport)."""
    with EmulatorServer(establish_delay=0.01) as source:
        EmulatorClient(source.url, source.token, 1, source.ca_data).call(
            "POST", "/api/v1/namespaces/default/secrets", SUPER_SECRET)
        put_secret(host, "bucket-creds", {"creds": shared_credentials_file().encode()})
        put_secret(host, "kubeconfig-ctp1", {"kubeconfig": source.kubeconfig_text("ctp1").encode()})
        story.repo.write("ctp1.yaml", CONTROL_PLANE.format(name="ctp1"))
        story.repo.write("b.yaml", BACKUP.format(name="b1", control_plane="ctp1"))
        story.repo.commit("a backup of ctp1")
        command = [sys.executable, str(ROOT / "reconcile.py"), "apply", "--repo", str(story.repo.path),
                   "--host-kubeconfig", str(host_kubeconfig(host, tmp_path, read_only=True)), "--log-format", "json"]
        applied = subprocess.run(command, capture_output=True, text=True, timeout=240)
        assert applied.returncode == 0, applied.stdout + applied.stderr
        status = subprocess.run([*command[:2], "status", "-o", "json", *command[3:]], capture_output=True, text=True,
                                timeout=240)
        (backup,) = json.loads(status.stdout)["backups"]
        assert (backup["name"], backup["phase"]) == ("b1", "Completed")
        assert story.bucket.exists(backup["archiveKey"])
        assert source.token not in applied.stdout + applied.stderr
