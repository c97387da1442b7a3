"""What can be checked of the image without a Docker engine: it parses, what it copies exists, it
runs as non-root, and its entry point runs in a clean virtualenv with only the runtime lock."""

from __future__ import annotations

import shlex
import subprocess
import venv
from pathlib import Path

import pytest

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


@pytest.mark.slow
def test_entry_point_runs_in_a_clean_venv_with_the_runtime_lock(tmp_path):
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    install = subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                              "-r", str(ROOT / "requirements-runtime.lock")], capture_output=True, text=True, timeout=900)
    assert install.returncode == 0, install.stderr[-2000:]
    # the image copies only these; run the entry point from a copy holding nothing else
    app = tmp_path / "app"
    app.mkdir()
    for name in ("reconcile.py", "pyproject.toml"):
        (app / name).write_bytes((ROOT / name).read_bytes())
    subprocess.run(["cp", "-r", str(ROOT / "ctpbackup"), str(ROOT / "schemas"), str(app)], check=True)
    (app / "examples").mkdir()
    result = subprocess.run([str(python), "reconcile.py", "--help"], cwd=app, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "validate" in result.stdout and "apply" in result.stdout
    examples = subprocess.run([str(python), str(app / "reconcile.py"), "validate", "--repo", str(ROOT), "--worktree",
                               "--path", "examples"], capture_output=True, text=True, timeout=120)
    assert examples.returncode == 0, examples.stderr
