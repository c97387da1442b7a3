"""The deployment manifests render with kustomize and validate offline against Kubernetes' schemas."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
KUBECTL = str(Path(sys.executable).parent / "kubectl")
K8S_VERSION = "1.33.0"


def render(overlay: str) -> list[dict]:
    out = subprocess.run([KUBECTL, "kustomize", str(ROOT / "manifests" / overlay)], capture_output=True, text=True,
                         check=True, timeout=60).stdout
    return [d for d in yaml.safe_load_all(out) if d]


@pytest.fixture(scope="module", params=["base", "overlays/sharded"])
def rendered(request) -> list[dict]:
    return render(request.param)


def by_kind(docs: list[dict], kind: str) -> list[dict]:
    return [d for d in docs if d["kind"] == kind]


def test_every_rendered_object_is_valid_kubernetes(rendered):
    for doc in rendered:
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def test_every_source_file_is_valid_kubernetes():
    for file in sorted((ROOT / "manifests").rglob("*.yaml")):
        for doc in yaml.safe_load_all(file.read_text()):
            if doc and doc.get("kind") != "Kustomization":
                kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def test_cronjob_is_safe_to_run(rendered):
    (cron,) = by_kind(rendered, "CronJob")
    spec = cron["spec"]
    assert spec["concurrencyPolicy"] == "Forbid"
    assert spec["startingDeadlineSeconds"] > 0
    job = spec["jobTemplate"]["spec"]
    assert job["backoffLimit"] >= 0
    pod = job["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    (container,) = pod["containers"]
    sc = container["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"]["drop"] == ["ALL"]
    assert container["resources"]["requests"] and container["resources"]["limits"]
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert "emptyDir" in volumes[mounts["/tmp"]]
    assert container["args"][0] == "apply" and "--log-format=json" in container["args"]
    assert pod["serviceAccountName"] == "ctpbackup"


def test_rbac_reads_only_named_secrets(rendered):
    assert not by_kind(rendered, "ClusterRole") and not by_kind(rendered, "ClusterRoleBinding")
    roles = by_kind(rendered, "Role")
    assert roles
    for role in roles:
        for rule in role["rules"]:
            assert rule["apiGroups"] == [""] and rule["resources"] == ["secrets"]
            assert rule["verbs"] == ["get"], "no list/watch/write: only the Secrets it needs"
            assert rule["resourceNames"], "every Secret named, none by wildcard"
    for binding in by_kind(rendered, "RoleBinding"):
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "ctpbackup", "namespace": "ctpbackup-system"}]


def test_no_secret_is_deployed_and_the_git_credentials_example_holds_no_value(rendered):
    """Secrets are created out of band: one in the kustomization would blank them on every apply."""
    assert not by_kind(rendered, "Secret")
    (secret,) = list(yaml.safe_load_all((ROOT / "manifests" / "git-credentials.example.yaml").read_text()))
    assert secret["metadata"]["name"] == "ctpbackup-git"
    assert all(v == "" for v in secret.get("stringData", {}).values())
    assert "data" not in secret


def test_sharded_overlay_is_an_indexed_job_with_matching_shards():
    (cron,) = by_kind(render("overlays/sharded"), "CronJob")
    job = cron["spec"]["jobTemplate"]["spec"]
    assert job["completionMode"] == "Indexed"
    assert job["completions"] == job["parallelism"]
    args = job["template"]["spec"]["containers"][0]["args"]
    assert f"--shard=$(JOB_COMPLETION_INDEX)/{job['completions']}" in args


def test_configmap_names_repo_ref_and_path(rendered):
    (cm,) = by_kind(rendered, "ConfigMap")
    assert set(cm["data"]) == {"REPO_URL", "REPO_REF", "REPO_PATH"}


def test_manifests_folder_is_not_mistaken_for_backup_manifests():
    # the job's own deployment YAML is not a backup manifest: validate skips it without errors
    out = subprocess.run([sys.executable, str(ROOT / "reconcile.py"), "validate", "--repo", str(ROOT), "--worktree",
                          "--path", "manifests"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "Skipped" in out.stdout
