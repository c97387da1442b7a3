"""The GitHub workflows and the composite action validate against GitHub's schemas and do what they say."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHECK = str(Path(sys.executable).parent / "check-jsonschema")


def check(schema: str, *files: Path) -> None:
    result = subprocess.run([CHECK, "--builtin-schema", schema, *map(str, files)], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def test_workflows_match_githubs_schema():
    check("vendor.github-workflows", *sorted((ROOT / ".github" / "workflows").glob("*.yml")))


def test_action_matches_githubs_schema():
    check("vendor.github-actions", ROOT / "action.yml")


def test_ci_runs_the_readme_test_command():
    ci = yaml.safe_load((ROOT / ".github" / "workflows" / "ci.yml").read_text())
    steps = ci["jobs"]["test"]["steps"]
    assert any(s.get("run") == "bash .ci/run" for s in steps)
    assert "make test" in (ROOT / ".ci" / "run").read_text()
    assert "make test" in (ROOT / "README.md").read_text()


def test_plan_workflow_runs_on_manifest_changes_and_uses_the_action():
    plan = yaml.safe_load((ROOT / ".github" / "workflows" / "plan.yml").read_text())
    trigger = plan[True] if True in plan else plan["on"]  # YAML 1.1 reads a bare `on` as true
    assert trigger["pull_request"]["paths"]
    (step,) = [s for s in plan["jobs"]["plan"]["steps"] if s.get("uses") == "./"]
    assert step["with"]["bucket-credentials"].startswith("${{ secrets.")
    assert plan["permissions"]["pull-requests"] == "write"


def test_action_posts_one_comment_labels_deletions_and_fails_on_errors():
    action = yaml.safe_load((ROOT / "action.yml").read_text())
    steps = {s.get("name"): s for s in action["runs"]["steps"]}
    plan_script = steps["Plan"]["run"]
    assert "plan" in plan_script and "-o markdown --detailed-exitcode" in plan_script
    assert "$GITHUB_STEP_SUMMARY" in plan_script
    assert "validate" in plan_script, "without credentials (forks) it still validates"
    comment = steps["Comment on the pull request"]["with"]["script"]
    assert "updateComment" in comment and "createComment" in comment and "marker" in comment
    assert "addLabels" in comment and "removeLabel" in comment, "the label follows the latest plan"
    assert "head.repo.full_name == github.repository" in steps["Comment on the pull request"]["if"], \
        "no comment from forks, whose token is read-only"
    assert steps["Fail when no plan could be made"]["if"] == "${{ steps.plan.outputs.exitcode == '1' }}"
    assert "${{ inputs.bucket-credentials }}" not in plan_script, "secrets go through env, not into the script"


# -- pinned actions -------------------------------------------------------------------------------------
# Current majors, each pinned by the commit its release tag points to (read from the actions' own
# repositories: `git rev-parse vX.Y.Z^{commit}`); all four run on node24.
PINNED = {
    "actions/checkout": ("3d3c42e5aac5ba805825da76410c181273ba90b1", "v7.0.1"),
    "actions/setup-python": ("5fda3b95a4ea91299a34e894583c3862153e4b97", "v7.0.0"),
    "actions/setup-node": ("820762786026740c76f36085b0efc47a31fe5020", "v7.0.0"),
    "actions/github-script": ("ed597411d8f924073f98dfc5c65a23a2325f34cd", "v8.0.0"),
}
USES = re.compile(r"^\s*(?:-\s+)?uses:\s*(\S+?)(?:\s+#\s*(\S+))?\s*$")


def uses_lines() -> list[tuple[str, str, str | None]]:
    files = [ROOT / "action.yml", *sorted((ROOT / ".github" / "workflows").glob("*.yml"))]
    out = []
    for file in files:
        for line in file.read_text().splitlines():
            match = USES.match(line)
            if match:
                out.append((file.name, match[1], match[2]))
    return out


def test_every_action_is_a_current_major_pinned_by_commit():
    found = uses_lines()
    assert len(found) == 7
    for file, ref, comment in found:
        if ref.startswith("./"):
            continue
        name, _, sha = ref.partition("@")
        assert name in PINNED, f"{file}: {name} is not an allowed action"
        assert re.fullmatch(r"[0-9a-f]{40}", sha), f"{file}: {ref} is not pinned by a commit SHA"
        assert (sha, comment) == PINNED[name], f"{file}: {ref} # {comment}"
    assert {ref.partition("@")[0] for _, ref, _ in found} == {"./", *PINNED}


def test_python_setup_caches_pip():
    ci = yaml.safe_load((ROOT / ".github" / "workflows" / "ci.yml").read_text())
    action = yaml.safe_load((ROOT / "action.yml").read_text())
    for steps in (ci["jobs"]["test"]["steps"], action["runs"]["steps"]):
        (setup,) = [s for s in steps if s.get("uses", "").startswith("actions/setup-python@")]
        assert setup["with"]["cache"] == "pip" and setup["with"]["cache-dependency-path"].endswith(".lock")
    install = [s for s in action["runs"]["steps"] if s.get("name") == "Install the reconciler"][0]["run"]
    assert "--require-hashes -r \"$GITHUB_ACTION_PATH/requirements-runtime.lock\"" in install


# -- the action's credentials: one Secret per config, names and keys from the manifests ----------------
sys.path.insert(0, str(ROOT / ".github" / "action"))
import summarize_log  # noqa: E402
import write_credentials  # noqa: E402

USES_LIST = [
    {"namespace": "team-a", "name": "s3-a", "key": "creds", "use": "bucket-credentials",
     "usedBy": ["SharedBackupConfig team-a/default"]},
    {"namespace": "team-a", "name": "archive-key", "key": "k", "use": "encryption-key",
     "usedBy": ["SharedBackupConfig team-a/default"]},
    {"namespace": "team-b", "name": "s3-b", "key": "credentials", "use": "bucket-credentials",
     "usedBy": ["SharedBackupConfig team-b/aws", "SharedBackupConfig team-b/aws-2"]},
    {"namespace": "team-a", "name": "kubeconfig-x", "key": "kubeconfig", "use": "kubeconfig",
     "usedBy": ["ControlPlane team-a/x"]},
]


@pytest.mark.parametrize(("default", "mapping", "env", "expected"), [
    ("ALL", "", {}, {"team-a/s3-a/creds": "ALL", "team-b/s3-b/credentials": "ALL"}),
    ("", "team-a/default: CREDS_A", {"CREDS_A": "A"}, {"team-a/s3-a/creds": "A"}),
    ("ALL", "# comment\nteam-a/default: CREDS_A\n\n", {"CREDS_A": "A"},
     {"team-a/s3-a/creds": "A", "team-b/s3-b/credentials": "ALL"}),
    ("", "team-b/aws: B\nteam-b/aws-2: B2", {"B": "same", "B2": "same"}, {"team-b/s3-b/credentials": "same"}),
])
def test_credentials_land_under_each_configs_secret(default, mapping, env, expected):
    files = write_credentials.plan_files(USES_LIST, default, write_credentials.parse_mapping(mapping), env)
    assert {str(path): value for path, value in files.items()} == expected


@pytest.mark.parametrize(("mapping", "env", "message"), [
    ("team-a/default CREDS", {}, "bucket-credentials-env line 1: expected 'NAMESPACE/CONFIG: ENV_VAR'"),
    ("team-a/default: A\nteam-a/default: B", {"A": "s3cr3t-a", "B": "s3cr3t-b"}, "line 2: team-a/default given twice"),
    ("team-c/x: A", {"A": "s3cr3t-a"}, "names team-c/x: no such SharedBackupConfig with Secret credentials"),
    ("team-a/default: MISSING", {}, r"\$MISSING \(for team-a/default\) is empty or not set"),
    ("team-b/aws: B\nteam-b/aws-2: B2", {"B": "s3cr3t-one", "B2": "s3cr3t-two"},
     "Secret team-b/s3-b key credentials: two configs share it with different credentials"),
])
def test_credentials_mistakes_are_one_line_without_values(mapping, env, message):
    with pytest.raises(ValueError, match=message) as caught:
        write_credentials.plan_files(USES_LIST, "", write_credentials.parse_mapping(mapping), env)
    assert not any(value in str(caught.value) for value in env.values() if len(value) > 2)


def test_warnings_and_errors_reach_the_job_summary():
    lines = ['{"time": "t", "level": "warning", "logger": "x", "message": "a.yaml:3: deprecated field"}',
             '{"time": "t", "level": "info", "logger": "x", "message": "reading"}',
             '{"time": "t", "level": "error", "logger": "x", "message": "error: `bucket` unreadable"}',
             "error: from a helper"]
    assert summarize_log.markdown(*summarize_log.sections(lines, failed=False)) == (
        "\n#### ⚠️ Warnings\n\n- `a.yaml:3: deprecated field`\n\n#### ❌ Errors\n\n"
        "- `error: 'bucket' unreadable`\n- `error: from a helper`\n")
    assert summarize_log.sections(["b.yaml:4: spec.ttl: invalid"], failed=True) == ([], ["b.yaml:4: spec.ttl: invalid"])
    assert summarize_log.sections(["b.yaml:4: a warning"], failed=False) == (["b.yaml:4: a warning"], [])
    assert summarize_log.markdown([], []) == ""


def _plan_step() -> str:
    action = yaml.safe_load((ROOT / "action.yml").read_text())
    return [s for s in action["runs"]["steps"] if s.get("name") == "Plan"][0]["run"]


def test_the_plan_step_plans_two_configs_in_two_namespaces(tmp_path, s3_server, gitops_repo):
    """The action's own bash, run as the runner would (the install step aside): one credentials
    secret per config, each written where that config's secretRef points."""
    from tests.fixtures.objectstores import make_s3_bucket, shared_credentials_file

    buckets = [make_s3_bucket(s3_server) for _ in range(2)]
    for (namespace, config, secret, key), bucket in zip([("team-a", "default", "s3-a", "creds"),
                                                         ("team-b", "aws", "s3-b", "credentials")], buckets, strict=True):
        gitops_repo.write(f"{namespace}/config.yaml", f"""apiVersion: spaces.upbound.io/v1alpha1
kind: SharedBackupConfig
metadata: {{name: {config}, namespace: {namespace}}}
spec:
  objectStorage:
    provider: AWS
    bucket: {bucket.name}
    config: {{endpoint: "{s3_server.host_port}", region: us-east-1, insecure: true}}
    credentials:
      source: Secret
      secretRef: {{name: {secret}, key: {key}}}
""")
        gitops_repo.write(f"{namespace}/cp.yaml", f"""apiVersion: spaces.upbound.io/v1beta1
kind: ControlPlane
metadata: {{name: cp, namespace: {namespace}}}
spec: {{}}
---
apiVersion: spaces.upbound.io/v1alpha1
kind: Backup
metadata: {{name: first, namespace: {namespace}}}
spec:
  configRef: {{kind: SharedBackupConfig, name: {config}}}
  controlPlane: cp
""")
    gitops_repo.commit()
    runner = tmp_path / "runner"
    runner.mkdir()
    summary, output = runner / "summary.md", runner / "output"
    env = {**os.environ, "GITHUB_ACTION_PATH": str(ROOT), "RUNNER_TEMP": str(runner), "GITHUB_STEP_SUMMARY": str(summary),
           "GITHUB_OUTPUT": str(output), "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
           "CREDENTIALS": "", "CREDENTIALS_ENV": "team-a/default: CREDS_A\nteam-b/aws: CREDS_B",
           "CREDS_A": shared_credentials_file(), "CREDS_B": shared_credentials_file(),
           "MANIFESTS": "", "REF": "HEAD"}
    result = subprocess.run(["bash", "-e", "-c", _plan_step()], cwd=gitops_repo.path, env=env, capture_output=True,
                            text=True, timeout=240)
    assert result.returncode == 0, result.stdout + result.stderr
    outputs = dict(line.split("=", 1) for line in output.read_text().splitlines())
    assert outputs["exitcode"] == "2" and outputs["deletes"] == "false", summary.read_text()
    text = summary.read_text()
    assert text.startswith("### Control-plane backup plan\n\n**Plan: 2 backups, 0 restores, 0 deletions, 0 errors.**")
    assert "`team-a/first`" in text and "`team-b/first`" in text
    assert not (runner / "secrets").exists(), "the credentials are removed after the plan"

    env["CREDENTIALS_ENV"] = "team-a/default: CREDS_A\nteam-b/aws: UNSET_VARIABLE"
    summary.unlink()
    output.unlink()
    result = subprocess.run(["bash", "-e", "-c", _plan_step()], cwd=gitops_repo.path, env=env, capture_output=True,
                            text=True, timeout=240)
    outputs = dict(line.split("=", 1) for line in output.read_text().splitlines())
    assert outputs["exitcode"] == "1"
    assert "- `error: bucket-credentials-env: $UNSET_VARIABLE (for team-b/aws) is empty or not set in the step's env`" \
        in summary.read_text()
