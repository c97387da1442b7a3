"""A connection Secret cannot run commands or read files in the job (issue 17, item 8).

Kubeconfigs shaped like what EKS (`aws eks update-kubeconfig`), GKE (`gcloud container clusters
get-credentials`, gke-gcloud-auth-plugin; older: the gcp auth-provider with cmd-path) and AKS
(`az aks get-credentials` + kubelogin, older: the azure auth-provider) generate, plus file paths,
are refused with `InsecureKubeconfig` naming the Secret and the field, never a value; the command the
plugin names would have created a file, and it does not exist afterwards.
"""

from __future__ import annotations

import sys

import pytest
import yaml

from ctpbackup.desired.model import ConnectionSecretRef, ControlPlane
from ctpbackup.kube.connect import (
    ConnectionSecretUnusable,
    InsecureKubeconfig,
    api_client_for,
    check_kubeconfig,
)
from ctpbackup.kube.secrets import DirectorySecretSource
from kubeemu import EmulatorServer
from tests.fixtures.story import BACKUP, CONTROL_PLANE

TOKEN = "NOLEAK-kubeconfig-token-0123456789"


def kubeconfig(user: dict, cluster: dict | None = None, context: dict | None = None, **top) -> dict:
    return {
        "apiVersion": "v1", "kind": "Config", "current-context": "c", "preferences": {},
        "clusters": [{"name": "k", "cluster": cluster or {
            "server": "https://127.0.0.1:1", "certificate-authority-data": "LS0tLS1CRUdJTg=="}}],
        "users": [{"name": "u", "user": user}],
        "contexts": [{"name": "c", "context": context or {"cluster": "k", "user": "u"}}],
        **top,
    }


def touch_command(marker) -> dict:
    """An exec plugin that would create `marker` (and print a valid ExecCredential) if it ran."""
    script = (f"open({str(marker)!r}, 'w').write('ran'); "
              "print('{\"apiVersion\": \"client.authentication.k8s.io/v1beta1\", \"kind\": \"ExecCredential\", "
              "\"status\": {\"token\": \"x\"}}')")
    return {"apiVersion": "client.authentication.k8s.io/v1beta1", "command": sys.executable,
            "args": ["-c", script], "interactiveMode": "Never"}


EKS = {"exec": {"apiVersion": "client.authentication.k8s.io/v1beta1", "command": "aws",
                "args": ["--region", "us-east-1", "eks", "get-token", "--cluster-name", "prod", "--output", "json"],
                "env": [{"name": "AWS_PROFILE", "value": "prod"}]}}
GKE = {"exec": {"apiVersion": "client.authentication.k8s.io/v1beta1", "command": "gke-gcloud-auth-plugin",
                "installHint": "Install gke-gcloud-auth-plugin", "provideClusterInfo": True,
                "interactiveMode": "IfAvailable"}}
GKE_LEGACY = {"auth-provider": {"name": "gcp", "config": {
    "cmd-path": "/usr/lib/google-cloud-sdk/bin/gcloud", "cmd-args": "config config-helper --format=json",
    "expiry-key": "{.credential.token_expiry}", "token-key": "{.credential.access_token}"}}}
AKS = {"exec": {"apiVersion": "client.authentication.k8s.io/v1beta1", "command": "kubelogin",
                "args": ["get-token", "--login", "azurecli", "--server-id", "6dae42f8-4368-4678-94ff-3960e28e3630"],
                "env": None, "provideClusterInfo": False}}
AKS_LEGACY = {"auth-provider": {"name": "azure", "config": {
    "apiserver-id": "6dae42f8", "client-id": "80faf920", "tenant-id": "72f988bf", "environment": "AzurePublicCloud"}}}
OIDC = {"auth-provider": {"name": "oidc", "config": {"idp-issuer-url": "https://issuer", "client-id": "k",
                                                     "refresh-token": TOKEN}}}


@pytest.mark.parametrize(("user", "field"), [
    (EKS, "users[0].user.exec"),
    (GKE, "users[0].user.exec"),
    (GKE_LEGACY, "users[0].user.auth-provider"),
    (AKS, "users[0].user.exec"),
    (AKS_LEGACY, "users[0].user.auth-provider"),
    (OIDC, "users[0].user.auth-provider"),
    ({"tokenFile": "/var/run/secrets/kubernetes.io/serviceaccount/token"}, "users[0].user.tokenFile"),
    ({"client-certificate": "/etc/ssl/cert.pem", "client-key-data": "a2V5"}, "users[0].user.client-certificate"),
    ({"client-certificate-data": "Y2VydA==", "client-key": "/etc/ssl/key.pem"}, "users[0].user.client-key"),
    ({"username": "admin", "password": TOKEN}, "users[0].user.username"),
    ({"token": TOKEN, "as": "system:admin"}, "users[0].user.as"),
    ({"token": TOKEN, "password": TOKEN}, "users[0].user.password"),
])
def test_users_that_run_read_or_impersonate_are_refused(user, field):
    with pytest.raises(InsecureKubeconfig, match=r"^" + field.replace("[", r"\[").replace("]", r"\]") + " ") as info:
        check_kubeconfig(kubeconfig(user))
    assert info.value.field == field
    assert TOKEN not in str(info.value)


@pytest.mark.parametrize(("cluster", "field", "why"), [
    ({"server": "https://x", "certificate-authority": "/etc/ca.pem"}, "clusters[0].cluster.certificate-authority",
     "reads a local file"),
    ({"server": "https://x", "proxy-url": "http://proxy:3128"}, "clusters[0].cluster.proxy-url",
     "sends the traffic, credentials included, through a proxy the Secret chooses"),
    ({"server": "https://x", "insecure-skip-tls-verify": True}, "clusters[0].cluster.insecure-skip-tls-verify",
     "turns off the server certificate check"),
    ({"server": "https://x", "something-new": 1}, "clusters[0].cluster.something-new",
     "is not an allowed kubeconfig field"),
])
def test_clusters_that_read_files_or_reroute_are_refused(cluster, field, why):
    with pytest.raises(InsecureKubeconfig, match=r"is|reads|sends|turns") as info:
        check_kubeconfig(kubeconfig({"token": TOKEN}, cluster=cluster))
    assert (info.value.field, info.value.why) == (field, why)


def test_unknown_fields_at_any_level_are_refused():
    with pytest.raises(InsecureKubeconfig, match=r"^contexts\[0\]\.context\.exec ") as info:
        check_kubeconfig(kubeconfig({"token": TOKEN}, context={"cluster": "k", "user": "u", "exec": {}}))
    assert info.value.field == "contexts[0].context.exec"
    with pytest.raises(InsecureKubeconfig, match=r"^proxy-url sends the traffic"):  # at the top level
        check_kubeconfig(kubeconfig({"token": TOKEN}, **{"proxy-url": "http://proxy"}))
    with pytest.raises(InsecureKubeconfig, match=r"^clusters\[0\]\.x is not an allowed kubeconfig field$"):
        check_kubeconfig({"clusters": [{"name": "k", "x": 1}]})


@pytest.mark.parametrize("user", [
    {"token": TOKEN},
    {"client-certificate-data": "Y2VydA==", "client-key-data": "a2V5"},
    {"token": TOKEN, "extensions": [{"name": "x", "extension": {}}]},
    {},
])
def test_inline_credentials_are_allowed(user):
    cluster = {"server": "https://x", "certificate-authority-data": "Y2E=", "tls-server-name": "api.internal",
               "insecure-skip-tls-verify": False}
    context = {"cluster": "k", "user": "u", "namespace": "default"}
    assert check_kubeconfig(kubeconfig(user, cluster=cluster, context=context)) is None


def control_plane(secrets_dir, document, allow: bool = False) -> tuple[ControlPlane, DirectorySecretSource]:
    folder = secrets_dir / "default" / "kubeconfig-ctp1"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "kubeconfig").write_text(yaml.safe_dump(document))
    return (ControlPlane("default", "ctp1", connection_secret=ConnectionSecretRef("kubeconfig-ctp1", "default"),
                         allow_insecure_kubeconfig=allow),
            DirectorySecretSource(secrets_dir))


def test_an_exec_plugin_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "exec-ran"
    cp, secrets = control_plane(tmp_path / "secrets", kubeconfig({"exec": touch_command(marker)}))
    with pytest.raises(ConnectionSecretUnusable, match=r"users\[0\]\.user\.exec runs a command") as info:
        api_client_for(cp, secrets)
    assert info.value.reason == "InsecureKubeconfig"
    assert info.value.message == (
        "the 'kubeconfig' key of Secret default/kubeconfig-ctp1: users[0].user.exec runs a command (a client-go "
        "credential plugin); refused (only inline server, certificate and token fields are allowed unless "
        "ControlPlane default/ctp1 sets spec.allowInsecureKubeconfig)")
    assert "\n" not in info.value.message
    assert not marker.exists()


def test_a_token_file_is_never_read(tmp_path):
    secret_file = tmp_path / "host-file"
    secret_file.write_text(TOKEN)
    cp, secrets = control_plane(tmp_path / "secrets", kubeconfig({"tokenFile": str(secret_file)}))
    with pytest.raises(ConnectionSecretUnusable, match=r"users\[0\]\.user\.tokenFile reads a local file") as info:
        api_client_for(cp, secrets)
    assert TOKEN not in info.value.message


def test_the_option_lets_the_plugin_run(tmp_path):
    """The same kubeconfig with spec.allowInsecureKubeconfig: the plugin runs (so the test above
    would have seen the marker had the check not stopped it)."""
    marker = tmp_path / "exec-ran"
    cp, secrets = control_plane(tmp_path / "secrets", kubeconfig({"exec": touch_command(marker)}), allow=True)
    api_client_for(cp, secrets).close()
    assert marker.read_text() == "ran"


def test_apply_fails_the_control_plane_and_runs_nothing(story, tmp_path):
    """End to end: a ControlPlane whose Secret holds an EKS-style exec kubeconfig fails its backup with
    InsecureKubeconfig; the other control plane in the same run is backed up."""
    marker = tmp_path / "exec-ran"
    good = EmulatorServer(establish_delay=0.05).start()
    try:
        story.connect("good", good)
        bad = kubeconfig({"exec": touch_command(marker)}, cluster={"server": good.url})
        folder = story.secrets / "default" / "kubeconfig-bad"
        folder.mkdir(parents=True)
        (folder / "kubeconfig").write_text(yaml.safe_dump(bad))
        for name in ("good", "bad"):
            story.repo.write(f"{name}.yaml", CONTROL_PLANE.format(name=name))
            story.repo.write(f"b-{name}.yaml", BACKUP.format(name=f"b-{name}", control_plane=name))
        story.repo.commit("two control planes, one with an exec kubeconfig")
        result = story.reconcile("apply", check=False)
        assert result.returncode == 1
        assert story.backup("b-good")["phase"] == "Completed"
        failed = story.backup("b-bad")
        assert failed["phase"] == "Failed"
        assert failed["conditions"][-1]["reason"] == "InsecureKubeconfig"
        assert "Secret default/kubeconfig-bad: users[0].user.exec runs a command" in failed["conditions"][-1]["message"]
        assert not marker.exists()
    finally:
        good.stop()


def test_a_restore_into_a_control_plane_with_an_exec_kubeconfig_fails_and_runs_nothing(story, tmp_path):
    """The restore target's Secret is there and refused: the restore is Failed (not left waiting for
    a Secret), and the plugin never runs."""
    from tests.fixtures.story import RESTORED

    marker = tmp_path / "exec-ran"
    source = EmulatorServer(establish_delay=0.05).start()
    try:
        story.connect("src", source)
        story.repo.write("src.yaml", CONTROL_PLANE.format(name="src"))
        story.repo.write("b.yaml", BACKUP.format(name="b1", control_plane="src"))
        story.repo.commit("backup")
        story.reconcile("apply")
        folder = story.secrets / "default" / "kubeconfig-dst"
        folder.mkdir(parents=True)
        (folder / "kubeconfig").write_text(yaml.safe_dump(kubeconfig({"exec": touch_command(marker)},
                                                                     cluster={"server": source.url})))
        story.repo.write("dst.yaml", RESTORED.format(name="dst", source="b1"))
        story.repo.commit("restore into a control plane whose Secret runs a command")
        result = story.reconcile("apply", check=False)
        assert result.returncode == 1
        assert "InsecureKubeconfig: the 'kubeconfig' key of Secret default/kubeconfig-dst: users[0].user.exec" \
            in result.stdout
        (restore,) = story.status()["restores"]
        assert (restore["phase"], restore["conditions"][-1]["reason"]) == ("Failed", "InsecureKubeconfig")
        assert not marker.exists()
    finally:
        source.stop()


@pytest.mark.parametrize("spec, allowed", [("{}", False), ("{allowInsecureKubeconfig: false}", False),
                                           ("{allowInsecureKubeconfig: true}", True)])
def test_the_option_is_read_from_the_control_plane_manifest(spec, allowed):
    from ctpbackup.desired.manifests import ManifestFile, load_desired_state

    text = f"apiVersion: spaces.upbound.io/v1beta1\nkind: ControlPlane\nmetadata: {{name: ctp1, namespace: default}}\nspec: {spec}\n"
    result = load_desired_state([ManifestFile("cp.yaml", text.encode())], "abc")
    assert result.problems == []
    assert result.desired.control_planes[("default", "ctp1")].allow_insecure_kubeconfig is allowed


def test_the_token_is_scrubbed_on_its_own_from_log_lines(tmp_path):
    """The kubeconfig's lines are registered with the redactor as the Secret is read; its token, key
    and password are registered by themselves too, so a message quoting just the token is scrubbed."""
    cp, secrets = control_plane(tmp_path / "secrets", kubeconfig({"token": TOKEN}, cluster={"server": "https://127.0.0.1:1"}))
    api_client_for(cp, secrets).close()
    assert secrets.redactor.scrub(f"a {TOKEN} b") == "a *** b"
    refused = kubeconfig({"username": "admin", "password": "NOLEAK-password-0123", "client-key-data": "NOLEAK-key-4567"})
    cp, secrets = control_plane(tmp_path / "other", refused)
    with pytest.raises(ConnectionSecretUnusable, match="basic authentication"):
        api_client_for(cp, secrets)
    assert secrets.redactor.scrub("a NOLEAK-password-0123 b NOLEAK-key-4567") == "a *** b ***", \
        "registered even when the kubeconfig is refused"
