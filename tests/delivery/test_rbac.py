"""The RBAC the manifests deploy is the RBAC the job needs: rendered with the real `kubectl kustomize`,
every object in its namespace, and Kubernetes' RBAC algorithm says the job's ServiceAccount may `get`
exactly the Secrets the examples reference and nothing else."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.delivery.rbac_authorizer import Authorizer, Request, User
from tests.fixtures.cliprocess import reconcile_py

ROOT = Path(__file__).resolve().parents[2]
KUBECTL = str(Path(sys.executable).parent / "kubectl")
JOB = User.service_account("ctpbackup-system", "ctpbackup")
# what examples/ references, read off the YAML by hand: the config's credentials Secret and the
# connection Secret of each of the four control planes
EXAMPLE_SECRETS = {("default", "bucket-creds"), ("default", "kubeconfig-ctp1"), ("default", "kubeconfig-ctp2"),
                   ("default", "kubeconfig-my-awesome-ctp"), ("default", "kubeconfig-my-awesome-restored-ctp")}
VERBS = ("get", "list", "watch", "create", "update", "patch", "delete", "deletecollection", "impersonate", "*")


def render(overlay: str) -> list[dict]:
    out = subprocess.run([KUBECTL, "kustomize", str(ROOT / "manifests" / overlay)], capture_output=True, text=True,
                         check=True, timeout=60).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def reconcile(*args: str) -> subprocess.CompletedProcess:
    return reconcile_py(*args, timeout=60)


@pytest.mark.parametrize("overlay", ["base", "overlays/sharded"])
def test_every_rendered_object_lands_in_its_namespace(overlay):
    placed = sorted((d["kind"], d["metadata"]["name"], d["metadata"].get("namespace")) for d in render(overlay))
    assert placed == [
        ("ConfigMap", "ctpbackup-source", "ctpbackup-system"),
        ("CronJob", "ctpbackup", "ctpbackup-system"),
        ("Namespace", "ctpbackup-system", None),
        ("Role", "ctpbackup-read-secrets", "default"),
        ("RoleBinding", "ctpbackup-read-secrets", "default"),
        ("ServiceAccount", "ctpbackup", "ctpbackup-system"),
    ]


@pytest.mark.parametrize("overlay", ["base", "overlays/sharded"])
def test_job_can_get_exactly_the_example_secrets_and_nothing_else(overlay):
    authorizer = Authorizer(render(overlay))
    names = {n for _, n in EXAMPLE_SECRETS} | {"ctpbackup-git", "other-secret", ""}
    resources = (("", "secrets", ""), ("", "configmaps", ""), ("", "pods", ""), ("", "secrets", "status"),
                 ("spaces.upbound.io", "backups", ""), ("rbac.authorization.k8s.io", "roles", ""))
    allowed = {
        (verb, group, resource, sub, ns, name)
        for verb, (group, resource, sub), ns, name in itertools.product(
            VERBS, resources, ("default", "ctpbackup-system", "kube-system", ""), names)
        if authorizer.allowed(JOB, Request(verb, resource, ns, name, group, sub))
    }
    assert allowed == {("get", "", "secrets", "", ns, name) for ns, name in EXAMPLE_SECRETS}


def test_other_users_get_nothing_from_these_bindings():
    authorizer = Authorizer(render("base"))
    for user in (User.service_account("default", "ctpbackup"), User.service_account("ctpbackup-system", "default"),
                 User("ctpbackup", ("system:authenticated",))):
        assert not authorizer.allowed(user, Request("get", "secrets", "default", "bucket-creds"))


# the evaluator itself, on the cases of Kubernetes' rules (wildcards, subresources, subjects, scopes)
def _authz(rule: dict, subject: dict, *, cluster: bool = False) -> Authorizer:
    if cluster:
        return Authorizer([{"kind": "ClusterRole", "metadata": {"name": "r"}, "rules": [rule]},
                           {"kind": "ClusterRoleBinding", "metadata": {"name": "b"},
                            "roleRef": {"kind": "ClusterRole", "name": "r"}, "subjects": [subject]}])
    return Authorizer([{"kind": "Role", "metadata": {"name": "r", "namespace": "ns"}, "rules": [rule]},
                       {"kind": "RoleBinding", "metadata": {"name": "b", "namespace": "ns"},
                        "roleRef": {"kind": "Role", "name": "r"}, "subjects": [subject]}])


SA = {"kind": "ServiceAccount", "name": "ctpbackup", "namespace": "ctpbackup-system"}
GET_SECRETS = {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}


@pytest.mark.parametrize(("rule", "subject", "request_", "cluster", "expected"), [
    (GET_SECRETS, SA, Request("get", "secrets", "ns", "any"), False, True),  # no resourceNames: every name
    (GET_SECRETS, SA, Request("get", "secrets", "other", "any"), False, False),  # a Role grants in its namespace only
    (GET_SECRETS, SA, Request("get", "secrets", "other", "any"), True, True),  # a ClusterRoleBinding everywhere
    (GET_SECRETS, SA, Request("list", "secrets", "ns"), False, False),
    (GET_SECRETS, SA, Request("get", "secrets", "ns", "x", subresource="status"), False, False),
    ({**GET_SECRETS, "resources": ["*/status"]}, SA, Request("get", "secrets", "ns", "x", subresource="status"), False, True),
    ({**GET_SECRETS, "resources": ["*"]}, SA, Request("get", "pods", "ns", "x"), False, True),
    ({**GET_SECRETS, "verbs": ["*"]}, SA, Request("delete", "secrets", "ns", "x"), False, True),
    ({**GET_SECRETS, "apiGroups": ["*"]}, SA, Request("get", "secrets", "ns", "x", "apps"), False, True),
    (GET_SECRETS, SA, Request("get", "secrets", "ns", "x", "apps"), False, False),
    ({**GET_SECRETS, "resourceNames": ["a"]}, SA, Request("get", "secrets", "ns", "a"), False, True),
    ({**GET_SECRETS, "resourceNames": ["a"]}, SA, Request("get", "secrets", "ns", "b"), False, False),
    (GET_SECRETS, {"kind": "Group", "name": "system:serviceaccounts:ctpbackup-system"},
     Request("get", "secrets", "ns", "x"), False, True),
    (GET_SECRETS, {"kind": "Group", "name": "system:serviceaccounts:other"}, Request("get", "secrets", "ns", "x"),
     False, False),
    (GET_SECRETS, {"kind": "User", "name": "system:serviceaccount:ctpbackup-system:ctpbackup"},
     Request("get", "secrets", "ns", "x"), False, True),
    (GET_SECRETS, {**SA, "namespace": "ns"}, Request("get", "secrets", "ns", "x"), False, False),
])
def test_the_evaluator_follows_kubernetes_rbac(rule, subject, request_, cluster, expected):
    assert _authz(rule, subject, cluster=cluster).allowed(JOB, request_) is expected


def test_committed_rbac_is_what_the_rbac_command_prints_for_the_examples():
    result = reconcile("rbac", "--repo", str(ROOT), "--worktree", "--path", "examples", "-o", "json")
    assert result.returncode == 0, result.stderr
    committed = [d for d in yaml.safe_load_all((ROOT / "manifests/base/rbac/secrets.yaml").read_text()) if d]
    assert json.loads(result.stdout)["items"] == committed


def _config(ns: str, name: str, secret: str, key: str, encryption: str = "") -> str:
    enc = f"\n    encryption:\n      secretRef: {{name: {encryption}, key: k32}}" if encryption else ""
    return f"""apiVersion: spaces.upbound.io/v1alpha1
kind: SharedBackupConfig
metadata: {{name: {name}, namespace: {ns}}}
spec:
  objectStorage:
    provider: AWS
    bucket: bucket-{ns}
    config: {{region: eu-west-2}}
    credentials:
      source: Secret
      secretRef: {{name: {secret}, key: {key}}}{enc}
"""


def _control_plane(ns: str, name: str, secret: str = "") -> str:
    conn = f"\nspec:\n  writeConnectionSecretToRef: {{name: {secret}, namespace: {ns}}}" if secret else "\nspec: {}"
    return f"apiVersion: spaces.upbound.io/v1beta1\nkind: ControlPlane\nmetadata: {{name: {name}, namespace: {ns}}}{conn}\n"


def test_rbac_command_gives_one_role_per_namespace_holding_secrets(gitops_repo):
    gitops_repo.write("team-a/config.yaml", _config("team-a", "default", "s3-a", "creds", encryption="archive-key"))
    gitops_repo.write("team-a/cps.yaml", _control_plane("team-a", "alpha", "conn-alpha") + "---\n"
                      + _control_plane("team-a", "beta"))
    gitops_repo.write("team-b/config.yaml", _config("team-b", "aws", "s3-b", "credentials"))
    gitops_repo.write("team-b/cps.yaml", _control_plane("team-b", "gamma"))
    gitops_repo.commit()
    result = reconcile("rbac", "--repo", str(gitops_repo.path), "--service-account", "backup-ops/runner")
    assert result.returncode == 0, result.stderr
    docs = [d for d in yaml.safe_load_all(result.stdout) if d]
    assert [(d["kind"], d["metadata"]["namespace"]) for d in docs] == [
        ("Role", "team-a"), ("RoleBinding", "team-a"), ("Role", "team-b"), ("RoleBinding", "team-b")]
    assert docs[0]["rules"][0]["resourceNames"] == ["archive-key", "conn-alpha", "kubeconfig-beta", "s3-a"]
    assert docs[2]["rules"][0]["resourceNames"] == ["kubeconfig-gamma", "s3-b"]
    runner = User.service_account("backup-ops", "runner")
    authorizer = Authorizer(docs)
    assert authorizer.allowed(runner, Request("get", "secrets", "team-b", "s3-b"))
    assert not authorizer.allowed(runner, Request("get", "secrets", "team-a", "s3-b"))
    assert not authorizer.allowed(runner, Request("get", "secrets", "team-b", "s3-a"))
    assert not authorizer.allowed(JOB, Request("get", "secrets", "team-a", "s3-a"))

    listing = json.loads(reconcile("rbac", "--repo", str(gitops_repo.path), "-o", "secrets").stdout)
    assert listing[0] == {"namespace": "team-a", "name": "archive-key", "key": "k32", "use": "encryption-key",
                          "usedBy": ["SharedBackupConfig team-a/default"]}
    assert [(u["namespace"], u["name"], u["key"], u["use"]) for u in listing[1:]] == [
        ("team-a", "conn-alpha", "kubeconfig", "kubeconfig"), ("team-a", "kubeconfig-beta", "kubeconfig", "kubeconfig"),
        ("team-a", "s3-a", "creds", "bucket-credentials"), ("team-b", "kubeconfig-gamma", "kubeconfig", "kubeconfig"),
        ("team-b", "s3-b", "credentials", "bucket-credentials")]


@pytest.mark.parametrize(("value", "message"), [
    ("ctpbackup", "'ctpbackup' is not NAMESPACE/NAME"),
    ("/x", "'/x' is not NAMESPACE/NAME"),
    ("a/b/c", "'a/b/c' is not NAMESPACE/NAME"),
])
def test_rbac_command_refuses_a_malformed_service_account(value, message):
    result = reconcile("rbac", "--repo", str(ROOT), "--worktree", "--path", "examples", "--service-account", value)
    assert result.returncode == 1  # a usage error (2 means changes)
    assert message in result.stderr and "Traceback" not in result.stderr


def test_rbac_command_fails_closed_on_invalid_manifests(gitops_repo):
    gitops_repo.write("cp.yaml", "apiVersion: spaces.upbound.io/v1beta1\nkind: ControlPlane\n"
                      "metadata: {name: Bad_Name, namespace: default}\nspec: {}\n")
    gitops_repo.commit()
    result = reconcile("rbac", "--repo", str(gitops_repo.path))
    assert result.returncode == 1 and result.stdout == ""
    assert "cp.yaml:" in result.stderr and "Traceback" not in result.stderr
