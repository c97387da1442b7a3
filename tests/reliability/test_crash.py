"""Crash consistency: SIGKILL `reconcile.py apply` at many points, run it again, lose nothing."""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable

from ctpbackup.records import Phase
from kubeemu import EmulatorProcess, EmulatorServer
from kubeemu.fixtures import seed_crossplane
from tests.fixtures.story import BACKUP, CONFIG, CONTROL_PLANE, RESTORED, ROOT
from tests.reliability.helpers import LAYOUT, check_bucket

SCHEDULE = """apiVersion: spaces.upbound.io/v1alpha1
kind: SharedBackupSchedule
metadata: {name: hourly, namespace: default}
spec:
  schedule: "@every 1h"
  configRef: {kind: SharedBackupConfig, name: default}
  controlPlaneSelector: {labelSelectors: [{matchLabels: {backup: enabled}}]}
"""
NOW = "2026-11-25T10:30:00Z"
KILL_AFTER = [0.3, 0.6, 0.9, 1.3, 1.8, 2.5]


def count_objects(cp) -> int:
    total = 0
    for path in ("/api/v1/secrets", "/api/v1/configmaps", "/apis/s3.aws.upbound.io/v1beta1/buckets",
                 "/apis/aws.platformref.upbound.io/v1alpha1/xclusters"):
        request = urllib.request.Request(cp.url + path, headers={"Authorization": f"Bearer {cp.token}"})
        with urllib.request.urlopen(request, timeout=30, context=cp.ssl_context()) as response:  # noqa: S310
            total += len(json.loads(response.read())["items"])
    return total


def kill_when(command: list[str], reached: Callable[[], bool], timeout: float = 60) -> bool:
    """Start an apply and SIGKILL it once `reached()` holds: the kill lands at that point however
    long the run takes to get there on this machine. False when the run had ended by itself."""
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + timeout
    while not reached() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    running = process.poll() is None
    process.send_signal(signal.SIGKILL)
    process.wait()
    return running


def test_sigkill_at_many_points_then_rerun_loses_nothing(story):
    sources = {name: EmulatorProcess().start() for name in ("ctp-a", "ctp-b")}
    target = EmulatorServer(establish_delay=0.05).start()
    try:
        for name, cp in sources.items():
            seed_crossplane(cp.url, 300, token=cp.token, ca=cp.ca_data)
            story.connect(name, cp)
            story.repo.write(f"controlplanes/{name}.yaml", CONTROL_PLANE.format(name=name))
            cp.inject("slow", count=-1, delay=0.03)  # stretch every request so kills land mid-work
        story.connect("restored", target)
        story.repo.write("backups.yaml", BACKUP.format(name="b1", control_plane="ctp-a") + "---\n"
                         + BACKUP.format(name="b2", control_plane="ctp-b"))
        story.repo.write("schedule.yaml", SCHEDULE)
        story.repo.write("restored.yaml", RESTORED.format(name="restored", source="b1"))
        story.repo.commit("backups, a schedule and a restore")
        command = [sys.executable, str(ROOT / "reconcile.py"), "apply", "--repo", str(story.repo.path), "--secrets-dir",
                   str(story.secrets), "--log-format", "json", "--now", NOW, "--lease-wait", "5"]
        for delay in KILL_AFTER:
            process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(delay)
            process.send_signal(signal.SIGKILL)
            process.wait()
            # a killed run holds the lease until it expires: later runs must take it over, so expire it now
            story.bucket.delete(LAYOUT.lease_key())
            check_bucket(story.bucket)  # the invariant holds at every instant, not only at the end
        for cp in sources.values():
            cp.clear_faults()
        first = subprocess.run(command, capture_output=True, text=True, timeout=240)  # backups done, restore now due
        assert first.returncode == 0, first.stdout + first.stderr
        target.inject("slow", count=-1, delay=0.02, methods=("POST",))
        for writes in (10, 40, 80):  # now kill mid-restore, after this many more writes to the target
            start = target.store.rv
            kill_when(command, lambda start=start, writes=writes: target.store.rv >= start + writes)
            story.bucket.delete(LAYOUT.lease_key())
            check_bucket(story.bucket)
        target.clear_faults()
        assert count_objects(target) > 0, "the kills should have landed mid-restore"
        for _ in range(4):
            result = subprocess.run(command, capture_output=True, text=True, timeout=240)
            if "No changes" in result.stdout:
                break
        assert "No changes" in result.stdout, result.stdout + result.stderr
        state = check_bucket(story.bucket)
        names = sorted(state["backups"])
        assert names == [("default", "b1"), ("default", "b2"), ("default", "hourly-ctp-a-20261125100000"),
                         ("default", "hourly-ctp-b-20261125100000")]
        assert all(r.phase is Phase.COMPLETED for r in state["backups"].values())
        (restore,) = state["restores"].values()
        assert restore.phase is Phase.COMPLETED and restore.finished_at is not None
        assert count_objects(target) == count_objects(sources["ctp-a"])  # nothing duplicated, nothing lost
        assert list(story.bucket.list_incomplete_uploads(LAYOUT.root)) == []
    finally:
        for cp in sources.values():
            cp.kill()
        target.stop()


def test_incomplete_multipart_upload_of_a_crashed_run_is_swept(story):
    key = LAYOUT.archive_key("default", "ctp-x", "crashed")
    story.bucket.client.create_multipart_upload(Bucket=story.bucket.name, Key=key)
    assert list(story.bucket.list_incomplete_uploads(LAYOUT.root)) == [key]
    story.repo.commit("nothing yet")
    story.reconcile("apply")
    assert list(story.bucket.list_incomplete_uploads(LAYOUT.root)) == []



#: the story's config, with S3's smallest part size so a 20 MiB archive takes four parts
MULTIPART_CONFIG = CONFIG.replace("insecure: true}}", "insecure: true, part_size: 5242880}}")


def test_sigkill_at_each_multipart_part_boundary_loses_nothing(story, s3_fault_proxy):
    """An archive of four parts of 5 MiB (S3's smallest), the run killed after each of the first
    three reaches the bucket and after the upload is completed but not yet recorded: never a
    Completed record, and the rerun leaves one whole archive and no open upload."""
    story.repo.write("config/sharedbackupconfig.yaml", MULTIPART_CONFIG.format(
        bucket=story.bucket.name, endpoint=s3_fault_proxy.host_port))
    cp = EmulatorServer(establish_delay=0.05).start()
    plan = s3_fault_proxy.plan
    try:
        for i in range(80):  # 20 MiB of Secret data, random bytes in base64: four parts once gzipped
            data = base64.b64encode(os.urandom(192 * 1024)).decode()
            request = urllib.request.Request(
                cp.url + "/api/v1/namespaces/default/secrets", method="POST",
                data=json.dumps({"metadata": {"name": f"blob-{i}"}, "data": {"blob": data}}).encode(),
                headers={"Authorization": f"Bearer {cp.token}", "Content-Type": "application/json"})
            urllib.request.urlopen(request, timeout=30, context=cp.ssl_context()).close()  # noqa: S310 - loopback
        story.connect("ctp1", cp)
        story.repo.write("ctp1.yaml", CONTROL_PLANE.format(name="ctp1"))
        story.repo.write("b.yaml", BACKUP.format(name="b1", control_plane="ctp1"))
        story.repo.commit("one large backup")
        command = [sys.executable, str(ROOT / "reconcile.py"), "apply", "--repo", str(story.repo.path), "--secrets-dir",
                   str(story.secrets), "--log-format", "json", "--lease-wait", "5", "--max-retries", "9"]

        archive = LAYOUT.archive_key("default", "ctp1", "b1")

        def parts_sent(count: int):
            start = len(plan.seen)
            return lambda: sum(m == "PUT" and "partNumber=" in p for m, p in plan.seen[start:]) >= count

        plan.arm("slow", "PUT", -1, delay=0.3)  # hold each request a moment, so the kill lands between parts
        for kill_point in ("part 1", "part 2", "part 3", "completed"):
            reached = (lambda: story.bucket.exists(archive)) if kill_point == "completed" else parts_sent(int(kill_point[-1]))
            assert kill_when(command, reached, timeout=120), f"the run ended before {kill_point}"
            story.bucket.delete(LAYOUT.lease_key())
            state = check_bucket(story.bucket)  # no Completed record without its whole archive
            assert state["backups"][("default", "b1")].phase is not Phase.COMPLETED, kill_point
            if kill_point == "completed":  # the archive is whole but not recorded: the next run takes it again
                assert not list(story.bucket.list_incomplete_uploads(LAYOUT.root))
            else:  # the killed run's upload stays open until the next run sweeps it
                assert list(story.bucket.list_incomplete_uploads(LAYOUT.root)) == [archive], kill_point
        plan.clear()

        story.reconcile("apply", "--max-retries", "9")  # each killed run counted as a try
        state = check_bucket(story.bucket)
        (record,) = state["backups"].values()
        assert record.phase is Phase.COMPLETED and record.size > 3 * 5 * 1024 * 1024
        assert list(story.bucket.list_incomplete_uploads(LAYOUT.root)) == []
    finally:
        cp.stop()
