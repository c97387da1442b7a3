"""The whole story on this machine, in well under a minute: `make demo`.

A local-folder bucket, emulated control planes (kubeemu) seeded with Crossplane-shaped state, and a
temporary Git repository built from examples/. It commits, runs `reconcile.py apply` (backups),
loses my-awesome-ctp, commits my-awesome-restored-ctp, applies again (restore) and shows `status`.
Every step is the real CLI in its own process, as a CronJob would run it.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import git

from kubeemu import EmulatorServer
from kubeemu.fixtures import seed_crossplane

ROOT = Path(__file__).resolve().parent
CONFIG = """# The demo's bucket: a local folder (provider Filesystem, an extension of the Spaces API).
apiVersion: spaces.upbound.io/v1alpha1
kind: SharedBackupConfig
metadata:
  name: default
  namespace: default
spec:
  objectStorage:
    provider: Filesystem
    bucket: {bucket}
    prefix: demo
    credentials:
      source: InjectedIdentity
"""


def say(text: str) -> None:
    print(f"\n\033[1m==> {text}\033[0m" if sys.stdout.isatty() else f"\n==> {text}", flush=True)


def reconcile(work: Path, *args: str) -> int:
    command = [sys.executable, str(ROOT / "reconcile.py"), *args, "--repo", str(work / "gitops"), "--log-format", "text"]
    if args[0] != "validate":  # validating reads Git only
        command += ["--secrets-dir", str(work / "secrets")]
    print("$ reconcile.py " + " ".join(args), flush=True)
    return subprocess.run(command, check=False).returncode


def connect(work: Path, name: str, control_plane: EmulatorServer) -> None:
    folder = work / "secrets" / "default" / f"kubeconfig-{name}"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "kubeconfig").write_text(control_plane.kubeconfig_text(name))


def secret_in(control_plane: EmulatorServer, name: str) -> dict | None:
    request = urllib.request.Request(f"{control_plane.url}/api/v1/namespaces/default/secrets/{name}",
                                     headers={"Authorization": f"Bearer {control_plane.token}"})
    try:
        with urllib.request.urlopen(request, timeout=10, context=control_plane.ssl_context()) as response:  # noqa: S310 - loopback emulator
            return json.loads(response.read())
    except urllib.error.HTTPError:
        return None


def main() -> int:
    started = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="ctpbackup-demo-"))
    planes: dict[str, EmulatorServer] = {}
    try:
        say("Starting emulated control planes ctp1, ctp2 and my-awesome-ctp (Crossplane-shaped state)")
        for name, size in (("ctp1", 150), ("ctp2", 150), ("my-awesome-ctp", 400)):
            planes[name] = EmulatorServer(establish_delay=0.05).start()
            seeded = seed_crossplane(planes[name], size)
            connect(work, name, planes[name])
            print(f"  {name}: {planes[name].url}, {seeded.total} objects")

        say("A GitOps repository from examples/, its SharedBackupConfig pointed at a local folder")
        repo_dir = work / "gitops"
        shutil.copytree(ROOT / "examples", repo_dir, ignore=shutil.ignore_patterns("restores"))
        (repo_dir / "config" / "sharedbackupconfig.yaml").write_text(CONFIG.format(bucket=work / "bucket"))
        repo = git.Repo.init(repo_dir, initial_branch="main")
        with repo.config_writer() as cfg:
            cfg.set_value("user", "name", "Platform Team")
            cfg.set_value("user", "email", "platform@example.com")
        repo.git.add(A=True)
        repo.index.commit("Back up our control planes")
        if reconcile(work, "validate") != 0:
            return 1

        say("plan, then apply: take the backups Git asks for")
        reconcile(work, "plan")
        if reconcile(work, "apply") != 0:
            return 1
        reconcile(work, "status")

        say("Disaster: my-awesome-ctp is gone")
        planes.pop("my-awesome-ctp").stop()
        target = planes["my-awesome-restored-ctp"] = EmulatorServer(establish_delay=0.05).start()
        connect(work, "my-awesome-restored-ctp", target)
        print(f"  a fresh control plane my-awesome-restored-ctp: {target.url}; super-secret-secret there: "
              f"{secret_in(target, 'super-secret-secret') is not None}")

        say("Commit my-awesome-restored-ctp with spec.restore.source = Backup restore-me, then apply")
        shutil.copytree(ROOT / "examples" / "restores", repo_dir / "restores")
        repo.git.add(A=True)
        repo.index.commit("Restore my-awesome-ctp as my-awesome-restored-ctp")
        if reconcile(work, "apply") != 0:
            return 1
        secret = secret_in(target, "super-secret-secret")
        print(f"  super-secret-secret in my-awesome-restored-ctp: {'yes' if secret else 'NO'}"
              f" (data keys: {sorted((secret or {}).get('data', {}))})")
        reconcile(work, "status")
        reconcile(work, "describe", "restore", "my-awesome-restored-ctp")

        say("apply once more: nothing left to do, the restore never runs twice")
        reconcile(work, "apply")
        print(f"\nDemo finished in {time.monotonic() - started:.1f}s (its temporary bucket and repository are removed).")
        return 0 if secret else 1
    finally:
        for plane in planes.values():
            plane.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
