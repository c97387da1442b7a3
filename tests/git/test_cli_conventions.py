"""CLI conventions, as a user meets them: a real process each time."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = Path(sys.executable).parent / "ctpbackup"  # the console script pip installs from [project.scripts]


def run(*args: str, entry: str = "reconcile.py") -> subprocess.CompletedProcess:
    command = [str(SCRIPT)] if entry == "ctpbackup" else [sys.executable, str(ROOT / "reconcile.py")]
    return subprocess.run([*command, *args], capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("entry", ["reconcile.py", "ctpbackup"])
def test_version_from_both_entry_points(entry):
    assert SCRIPT.exists(), "the console script is missing: run `make setup` (pip install -e .)"
    result = run("--version", entry=entry)
    assert (result.returncode, result.stdout, result.stderr) == (0, f"{entry} 0.1.0\n", "")


@pytest.mark.parametrize("args, message", [
    (["plan", "--detailed-exitcode", "--shard", "5/4"], "argument --shard: shard '5/4': need 0 <= I < N"),
    (["plan", "--detailed-exitcode", "--shard", "x"], "argument --shard: 'x' is not I/N (e.g. 0/4)"),
    (["plan", "--detailed-exitcode", "--no-such-option"], "unrecognized arguments: --no-such-option"),
    (["frobnicate"], "argument COMMAND: invalid choice: 'frobnicate'"),
    ([], "the following arguments are required: COMMAND"),
    (["wait", "backup"], "the following arguments are required: name"),
])
def test_usage_errors_exit_1_never_2(args, message):
    """2 is what `plan --detailed-exitcode` means by "changes": a usage error must not look like one."""
    result = run(*args)
    assert result.returncode == 1
    assert message in result.stderr
    assert result.stderr.startswith("usage: ")
    assert "Traceback" not in result.stderr


def test_a_failed_https_clone_keeps_gits_own_reason():
    url = "https://127.0.0.1:1/acme/gitops.git"
    result = run("validate", "--repo", url)
    assert result.returncode == 1
    assert result.stderr.startswith(f"error: cannot clone {url}: unable to access '{url}/': Failed to connect to "
                                    "127.0.0.1 port 1")
    assert result.stderr.count("\n") == 1


def test_a_failed_clone_reason_exactly(tmp_path):
    missing = tmp_path / "nope"
    result = run("validate", "--repo", missing.as_uri())
    assert result.stderr == (f"error: cannot clone {missing.as_uri()}: '{missing}' does not appear to be a git "
                             "repository\n")


KUBECONFIG_UNREACHABLE = """apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: u, user: {token: s3cr3t-token-value}}]
contexts: [{name: x, context: {cluster: c, user: u}}]
current-context: x
"""


@pytest.mark.parametrize("content, expected", [
    (None, "error: --host-kubeconfig {path}: no such file\n"),
    ("{not: [valid", "error: --host-kubeconfig {path}: not a usable kubeconfig: "),
    ("apiVersion: v1\nkind: Config\n", "error: --host-kubeconfig {path}: not a usable kubeconfig: "),
    (KUBECONFIG_UNREACHABLE, "error: --host-kubeconfig {path}: the cluster at https://127.0.0.1:1 does not answer: "),
], ids=["missing", "not-yaml", "no-context", "unreachable"])
def test_host_kubeconfig_problems_are_one_line(gitops_repo, tmp_path, content, expected):
    gitops_repo.copy_examples()
    gitops_repo.commit()
    path = tmp_path / "host.kubeconfig"
    if content is not None:
        path.write_text(content)
    result = run("plan", "--repo", str(gitops_repo.path), "--host-kubeconfig", str(path))
    assert result.returncode == 1
    assert result.stderr.startswith(expected.format(path=path))
    assert result.stderr.count("\n") == 1, result.stderr
    assert "Traceback" not in result.stderr and "s3cr3t" not in result.stderr


@pytest.mark.parametrize("config, with_secret, expected", [
    ("{endpoint: 'http://127.0.0.1:1', sse_config: {type: SSE-C, encryption_key: /nonexistent/key}}", True,
     "error: SharedBackupConfig default/default: sse_config.encryption_key: cannot read the key file "
     "'/nonexistent/key'\n"),
    ("{endpoint: 'http://127.0.0.1:1'}", False,
     "error: SharedBackupConfig default/default: credentials: Secret default/bucket-creds not found"),
], ids=["bad-sse-key-file", "no-credentials"])
def test_bucket_errors_name_the_config_once(gitops_repo, tmp_path, config, with_secret, expected):
    gitops_repo.copy_examples()
    text = (ROOT / "examples/config/sharedbackupconfig.yaml").read_text()
    gitops_repo.write("config/sharedbackupconfig.yaml", text.replace(
        "    config:\n      endpoint: s3.eu-west-2.amazonaws.com\n      region: eu-west-2\n", f"    config: {config}\n"))
    gitops_repo.commit()
    (tmp_path / "secrets").mkdir()
    if with_secret:
        creds = tmp_path / "secrets/default/bucket-creds/creds"
        creds.parent.mkdir(parents=True)
        creds.write_text("[default]\naws_access_key_id = AKIAEXAMPLE\naws_secret_access_key = example\n")
    result = run("plan", "--repo", str(gitops_repo.path), "--secrets-dir", str(tmp_path / "secrets"))
    assert result.returncode == 1
    assert result.stderr.startswith(expected), result.stderr
    assert result.stderr.count("SharedBackupConfig default/default") == 1
