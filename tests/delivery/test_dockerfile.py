"""What can be checked of the image without a Docker engine: it parses, what it copies exists, it
runs as non-root, and its entry point runs in a clean virtualenv with only the runtime lock."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import venv
from pathlib import Path

import pytest

from kubeemu import EmulatorProcess
from kubeemu.fixtures import seed_crossplane

ROOT = Path(__file__).resolve().parents[2]
INSTRUCTIONS = {"FROM", "RUN", "COPY", "ADD", "ENV", "WORKDIR", "USER", "ENTRYPOINT", "CMD", "ARG", "LABEL", "EXPOSE"}


def instructions() -> list[tuple[str, str]]:
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    out = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        word, _, rest = line.partition(" ")
        out.append((word.upper(), rest.strip()))
    return out


def test_dockerfile_parses_with_known_instructions():
    parsed = instructions()
    assert parsed[0][0] == "FROM" and "python:3.11" in parsed[0][1]
    assert all(word in INSTRUCTIONS for word, _ in parsed)


def test_every_copied_file_exists_and_is_not_ignored():
    ignore = (ROOT / ".dockerignore").read_text()
    for word, rest in instructions():
        if word == "COPY":
            *sources, _ = shlex.split(rest)
            for source in sources:
                assert (ROOT / source).exists(), f"COPY {source}: missing"
                assert f"!{source}" in ignore, f"{source} is excluded by .dockerignore"


def test_runs_as_non_root_with_git_and_reconcile_entrypoint():
    parsed = instructions()
    users = [rest for word, rest in parsed if word == "USER"]
    assert users and not users[-1].startswith(("0", "root"))
    assert any(word == "RUN" and "git" in rest for word, rest in parsed)
    (entry,) = [rest for word, rest in parsed if word == "ENTRYPOINT"]
    assert "reconcile.py" in entry


def test_base_image_is_a_current_python_pinned_to_a_patch_release():
    (base,) = [rest for word, rest in instructions() if word == "FROM"]
    match = re.fullmatch(r"python:3\.(\d+)\.(\d+)-slim-(bookworm|trixie)(@sha256:[0-9a-f]{64})?", base)
    assert match, base
    minor, patch = int(match[1]), int(match[2])
    assert (minor, patch) >= (11, 15), "3.11.15 (March 2026) or newer"


def test_apt_packages_are_pinned_and_pip_checks_hashes():
    runs = [rest for word, rest in instructions() if word == "RUN"]
    (apt,) = [r for r in runs if "apt-get install" in r]
    packages = [word for word in apt.split("apt-get install", 1)[1].split("&&")[0].split() if not word.startswith("-")]
    assert packages and all(re.fullmatch(r"[a-z0-9.+-]+=[\w.:~+-]+", p) for p in packages), packages
    assert [p.split("=")[0] for p in packages] == ["git", "openssh-client", "ca-certificates"]
    (pip,) = [r for r in runs if "pip install" in r]
    assert "--require-hashes -r requirements-runtime.lock" in pip


@pytest.mark.parametrize("lock", ["requirements.lock", "requirements-runtime.lock"])
def test_locks_pin_every_package_with_hashes(lock):
    requirements = [e for e in (ROOT / lock).read_text().replace("\\\n", " ").splitlines()
                    if e and not e.lstrip().startswith("#")]
    assert len(requirements) > 20
    for line in requirements:
        name, _, rest = line.partition("==")
        assert re.fullmatch(r"[A-Za-z0-9._-]+", name) and rest, line
        assert re.search(r"--hash=sha256:[0-9a-f]{64}", rest), f"{lock}: {name} has no hash"
    names = {line.partition("==")[0].lower() for line in requirements}
    assert {"kubernetes", "prometheus-client", "rich", "gitpython"} <= names
    if lock == "requirements.lock":
        assert {"pip-tools", "pytest", "check-jsonschema"} <= names


def test_make_lock_regenerates_both_locks_with_hashes_and_setup_checks_them():
    makefile = (ROOT / "Makefile").read_text()
    assert "--require-hashes -r requirements.lock" in makefile
    lock = makefile.split("\nlock:")[1].split("\n\n")[0]
    assert "-o requirements-runtime.lock pyproject.toml" in lock and "--extra test -o requirements.lock pyproject.toml" in lock
    assert "--generate-hashes" in makefile.split("LOCK :=")[1]
    # make demo needs no Node.js: npm runs for the tests only
    setup = makefile.split("$(STAMP):")[1].split("\n\n")[0]
    assert "npm" not in setup and "demo: setup\n" in makefile
    assert "test: setup $(NODE_STAMP)" in makefile


def copy_image_files(app: Path) -> None:
    """What the Dockerfile COPYs into /app, and nothing else (read from its COPY instructions)."""
    for word, rest in instructions():
        if word != "COPY":
            continue
        *sources, destination = shlex.split(rest)
        for source in sources:
            target = app / destination if destination.endswith("/") and destination != "./" else app
            if (ROOT / source).is_dir():
                shutil.copytree(ROOT / source, app / destination, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                target.mkdir(parents=True, exist_ok=True)
                shutil.copy2(ROOT / source, target / Path(source).name)


CONFIG = """apiVersion: spaces.upbound.io/v1alpha1
kind: SharedBackupConfig
metadata: {{name: default, namespace: default}}
spec:
  objectStorage:
    provider: Filesystem
    bucket: {bucket}
    credentials: {{source: InjectedIdentity}}
---
apiVersion: spaces.upbound.io/v1beta1
kind: ControlPlane
metadata: {{name: ctp1, namespace: default}}
spec: {{}}
---
apiVersion: spaces.upbound.io/v1alpha1
kind: Backup
metadata: {{name: first, namespace: default}}
spec:
  configRef: {{kind: SharedBackupConfig, name: default}}
  controlPlane: ctp1
"""


@pytest.mark.slow
def test_the_images_files_in_a_clean_venv_from_the_runtime_lock_run_version_and_a_backup(tmp_path, gitops_repo):
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    # --no-compile, as the Dockerfile installs it: byte-compiling every module of the SDKs is most of pip's time
    install = subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                              "--no-compile", "--require-hashes", "-r", str(ROOT / "requirements-runtime.lock")],
                             capture_output=True, text=True, timeout=900)
    assert install.returncode == 0, install.stderr[-2000:]
    app = tmp_path / "app"
    app.mkdir()
    copy_image_files(app)
    assert sorted(p.name for p in app.iterdir()) == ["ctpbackup", "kubevalidation", "pyproject.toml", "reconcile.py",
                                                       "requirements-runtime.lock", "schemas"]
    clean = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "PYTHONDONTWRITEBYTECODE": "1"}
    version = subprocess.run([str(python), str(app / "reconcile.py"), "--version"], cwd=tmp_path,
                             capture_output=True, text=True, timeout=120, env=clean)
    assert (version.returncode, version.stdout) == (0, "reconcile.py 0.1.0\n"), version.stderr

    source = EmulatorProcess().start()
    try:
        seed_crossplane(source, 10)
        secrets = tmp_path / "secrets" / "default" / "kubeconfig-ctp1"
        secrets.mkdir(parents=True)
        (secrets / "kubeconfig").write_text(source.kubeconfig_text("ctp1"))
        bucket = tmp_path / "bucket"
        bucket.mkdir()
        gitops_repo.write("all.yaml", CONFIG.format(bucket=bucket))
        gitops_repo.commit()
        applied = subprocess.run([str(python), str(app / "reconcile.py"), "apply", "--repo", str(gitops_repo.path),
                                  "--secrets-dir", str(tmp_path / "secrets")], cwd=tmp_path, capture_output=True,
                                 text=True, timeout=300, env=clean)
        assert applied.returncode == 0, applied.stdout + applied.stderr
        summary = [json.loads(line) for line in applied.stdout.splitlines()][-1]
        assert (summary["event"], summary["result"], summary["done"]) == ("apply", "success", 1)
        archives = sorted(p.relative_to(bucket).as_posix() for p in bucket.rglob("archive.tar.gz"))
        assert archives == ["default/ctp1/backups/first/archive.tar.gz"]
    finally:
        source.stop()
