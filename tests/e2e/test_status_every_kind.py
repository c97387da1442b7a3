"""The status of every kind through `status -o json|yaml`, `describe` and `wait`, after a real apply
against an emulated control plane and a moto S3 bucket: SharedBackupConfigs, ControlPlanes,
SharedBackups, SharedBackupSchedules and BackupSchedules."""

from __future__ import annotations

import json

import yaml

from kubeemu import EmulatorServer
from kubeemu.fixtures import seed_crossplane
from tests.fixtures.story import CONFIG, CONTROL_PLANE

KINDS = """apiVersion: spaces.upbound.io/v1alpha1
kind: SharedBackup
metadata: {name: nightly, namespace: default}
spec:
  configRef: {kind: SharedBackupConfig, name: default}
  controlPlaneSelector: {names: [ctp1, ctp2]}
  failures: {controlPlanes: 1}
---
apiVersion: spaces.upbound.io/v1alpha1
kind: BackupSchedule
metadata: {name: daily, namespace: default}
spec:
  schedule: "@every 1h"
  controlPlane: ctp1
  configRef: {kind: SharedBackupConfig, name: default}
---
apiVersion: spaces.upbound.io/v1alpha1
kind: SharedBackupSchedule
metadata: {name: hourly, namespace: default}
spec:
  schedule: "@every 1h"
  suspend: false
  configRef: {kind: SharedBackupConfig, name: default}
  controlPlaneSelector: {names: [ctp1]}
"""


def conditions(obj: dict) -> dict[str, tuple[str, str]]:
    return {c["type"]: (c["status"], c["reason"]) for c in obj["status"]["conditions"]}


def by_name(items: list[dict]) -> dict[str, dict]:
    return {o["name"]: o for o in items}


def test_status_describe_and_wait_for_every_kind(story, tmp_path):
    def status_of() -> dict:
        # exit 1 while a bucket is Unavailable (the rest is still printed): the document is what is read here
        return json.loads(story.reconcile("status", "-o", "json", "--max-retries", "0", check=False).stdout)

    cp = EmulatorServer(establish_delay=0.05).start()
    try:
        seed_crossplane(cp, 20)
        story.connect("ctp1", cp)
        broken = story.secrets / "default" / "kubeconfig-ctp2"  # ctp2's Secret is unusable: its backup fails
        broken.mkdir(parents=True)
        (broken / "kubeconfig").write_text("not: [a kubeconfig")
        story.repo.write("cps.yaml", CONTROL_PLANE.format(name="ctp1") + "---\n" + CONTROL_PLANE.format(name="ctp2"))
        story.repo.write("kinds.yaml", KINDS)
        story.repo.commit("every kind")
        applied = story.reconcile("apply", "--max-retries", "0", check=False)
        assert applied.returncode == 1  # nightly-ctp2 failed in this run
        failed = [e for e in map(json.loads, applied.stdout.splitlines()) if e.get("outcome") == "failed"]  # JSON events
        assert [(e["name"], e["message"].split(":")[0]) for e in failed] == [("nightly-ctp2", "InvalidKubeconfig")]

        status = status_of()
        (config,) = status["sharedBackupConfigs"]
        assert (config["name"], config["status"]["phase"]) == ("default", "Available")
        assert conditions(config) == {"Available": ("True", "BucketAvailable")}
        assert config["status"]["lastCheckTime"].endswith("Z")

        cps = by_name(status["controlPlanes"])
        assert conditions(cps["ctp1"]) == {"Ready": ("True", "APIAnswered")}
        assert cps["ctp1"]["status"]["serverVersion"] == "v1.33.0-kubeemu"
        assert cps["ctp1"]["status"]["lastCompletedBackup"]["name"] in ("nightly-ctp1", ) or \
            cps["ctp1"]["status"]["lastCompletedBackup"]["name"].startswith(("daily-ctp1-", "hourly-ctp1-"))
        assert conditions(cps["ctp2"]) == {"Ready": ("False", "InvalidKubeconfig")}
        assert cps["ctp2"]["status"]["lastCompletedBackup"] is None

        (shared,) = status["sharedBackups"]
        assert shared["status"]["phase"] == "Completed"  # one failure, one allowed
        assert (shared["status"]["selectedControlPlanes"], shared["status"]["completed"], shared["status"]["failed"],
                shared["status"]["allowedFailures"]) == (["ctp1", "ctp2"], ["ctp1"], ["ctp2"], 1)
        assert conditions(shared) == {"Completed": ("True", "BackupsCompleted")}

        (daily,) = status["backupSchedules"]
        assert daily["status"]["controlPlane"] == "ctp1" and daily["status"]["suspended"] is False
        assert daily["status"]["lastBackup"]["phase"] == "Completed"
        assert daily["status"]["lastBackup"]["backup"] == "daily-ctp1-" + daily["status"]["lastBackup"]["slot"] \
            .replace("-", "").replace(":", "").replace("T", "").rstrip("Z")
        assert daily["status"]["nextSlot"] > daily["status"]["lastBackup"]["slot"]
        assert conditions(daily) == {"Completed": ("True", "BackupsCompleted"), "Scheduled": ("True", "Scheduled")}

        (hourly,) = status["sharedBackupSchedules"]
        assert hourly["status"]["selectedControlPlanes"] == ["ctp1"]
        assert list(hourly["status"]["lastSlots"]) == ["ctp1"]
        assert hourly["status"]["lastSlots"]["ctp1"]["phase"] == "Completed"
        assert conditions(hourly) == {"Completed": ("True", "BackupsCompleted"), "Scheduled": ("True", "Scheduled")}

        as_yaml = yaml.safe_load(story.reconcile("status", "-o", "yaml", "--max-retries", "0").stdout)
        assert as_yaml["sharedBackups"] == status["sharedBackups"]
        assert as_yaml["backupSchedules"] == status["backupSchedules"]

        for kind, name in (("sharedbackup", "nightly"), ("backupschedule", "daily"), ("sharedbackupschedule", "hourly"),
                           ("sharedbackupconfig", "default")):
            waited = story.reconcile("wait", kind, name, "--timeout", "30s", "--max-retries", "0")
            assert waited.stdout == f"{kind} default/{name} condition met\n"
        waited = story.reconcile("wait", "controlplane", "ctp1", "--for", "condition=Ready=True", "--timeout", "30s")
        assert waited.stdout == "controlplane default/ctp1 condition met\n"

        described = story.reconcile("describe", "sharedbackup", "nightly", "--max-retries", "0").stdout
        assert "Kind:           SharedBackup\n" in described and "phase:          Completed\n" in described
        assert "  Completed=True  BackupsCompleted  1 of 2 control planes completed, 1 failed for good (1 allowed)" \
            in described
        described = story.reconcile("describe", "controlplane", "ctp2").stdout
        assert ("  Ready=False  InvalidKubeconfig  the 'kubeconfig' key of Secret default/kubeconfig-ctp2 is not a "
                "usable kubeconfig") in described

        table = story.reconcile("status", "--max-retries", "0").stdout
        assert "NAMESPACE   SHAREDBACKUP   PHASE       SELECTED   COMPLETED   FAILED   ALLOWED" in table
        assert "default     nightly        Completed   2          1           1        1" in table

        # a bucket that cannot be read is Unavailable, with the reason; the others are still shown
        broken_config = CONFIG.format(bucket="no-such-bucket-here", endpoint=story.s3.host_port).replace(
            "name: default,", "name: broken,")
        story.repo.write("broken.yaml", broken_config)
        story.repo.commit("a config whose bucket does not exist")
        status = status_of()
        configs = by_name(status["sharedBackupConfigs"])
        assert configs["broken"]["status"]["phase"] == "Unavailable"
        assert conditions(configs["broken"]) == {"Available": ("False", "BucketUnavailable")}
        assert "SharedBackupConfig default/broken" in configs["broken"]["status"]["conditions"][0]["message"]
        assert configs["default"]["status"]["phase"] == "Available"
        assert len(status["backups"]) == len([b for b in status["backups"] if b["config"] == "default"]) >= 4

        # without Git: the config's manifest file alone reads the bucket
        config_file = tmp_path / "config.yaml"
        config_file.write_text((story.repo.path / "config/sharedbackupconfig.yaml").read_text())
        offline = story.reconcile("status", "-o", "json", "--config", str(config_file), "--repo", "/nonexistent")
        assert json.loads(offline.stdout)["backups"] == status_of()["backups"]
        described = story.reconcile("describe", "backup", "nightly-ctp1", "--config", str(config_file))
        assert "Phase:          Completed" in described.stdout
    finally:
        cp.stop()


def test_wait_fails_at_once_for_a_name_neither_in_git_nor_recorded(story):
    story.repo.write("cps.yaml", CONTROL_PLANE.format(name="ctp1"))
    story.repo.commit("one control plane")
    for kind in ("backup", "restore", "sharedbackup", "backupschedule", "sharedbackupschedule", "controlplane"):
        result = story.reconcile("wait", kind, "nope", "--timeout", "1h", check=False)
        assert (result.returncode, [json.loads(line)["message"] for line in result.stderr.splitlines()]) == (
            1, [f"error: {kind} default/nope is neither in Git nor recorded in the bucket index"])
