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

from ctpbackup.store.records import Phase
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
            seed_crossplane(cp, 300)
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


def _seed_large(cp, count: int) -> None:
    """`count` Secrets of 256 KB of base64'd random bytes: about 200 KB each once gzipped."""
    for i in range(count):
        data = base64.b64encode(os.urandom(192 * 1024)).decode()
        request = urllib.request.Request(
            cp.url + "/api/v1/namespaces/default/secrets", method="POST",
            data=json.dumps({"metadata": {"name": f"blob-{i}"}, "data": {"blob": data}}).encode(),
            headers={"Authorization": f"Bearer {cp.token}", "Content-Type": "application/json"})
        urllib.request.urlopen(request, timeout=30, context=cp.ssl_context()).close()  # noqa: S310 - loopback


def _apply_command(story, *extra: str) -> list[str]:
    return [sys.executable, str(ROOT / "reconcile.py"), "apply", "--repo", str(story.repo.path), "--secrets-dir",
            str(story.secrets), "--log-format", "json", *extra]


def _wait_for(condition: Callable[[], bool], timeout: float = 120) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


def _phase(story, name: str):
    from ctpbackup.store.index import BucketIndex

    record = BucketIndex(story.bucket, LAYOUT).load().backups.get(("default", name))
    return record.phase if record else None


def test_a_run_frozen_past_its_lease_stops_when_it_wakes_and_writes_nothing(story):
    """Run A is frozen (SIGSTOP) mid-backup past its lease; run B takes the lease over and
    completes b1; A resumes: it stops at once with a clear message and records nothing, so b1
    stays Completed with the size and sha256 of the archive in the bucket (issue 17, item 2)."""
    cp = EmulatorProcess().start()
    try:
        seed_crossplane(cp, 200)
        story.connect("ctp1", cp)
        story.repo.write("ctp1.yaml", CONTROL_PLANE.format(name="ctp1"))
        story.repo.write("b.yaml", BACKUP.format(name="b1", control_plane="ctp1"))
        story.repo.commit("one backup")
        command = _apply_command(story, "--lease-duration", "3s")
        cp.inject("slow", count=-1, delay=0.2)  # A stays mid-backup for a long while
        frozen = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            assert _wait_for(lambda: _phase(story, "b1") is Phase.IN_PROGRESS), "A never started b1"
            frozen.send_signal(signal.SIGSTOP)
            time.sleep(4)  # past A's 3s lease: nobody renews it
            cp.clear_faults()
            second = subprocess.run(command, capture_output=True, text=True, timeout=240)
            assert second.returncode == 0, second.stdout + second.stderr
            assert "took over the lease" in second.stderr
            state = check_bucket(story.bucket)
            completed = state["backups"][("default", "b1")]
            assert completed.phase is Phase.COMPLETED
        finally:
            frozen.send_signal(signal.SIGCONT)
        out, err = frozen.communicate(timeout=240)
        assert frozen.returncode == 1, out + err
        assert "Traceback" not in err
        messages = [json.loads(text)["message"] for text in err.splitlines()]  # the story asks for JSON logs
        (line,) = [text for text in messages if text.startswith("error:")]
        assert line.startswith("error: lease prod/cluster1/.ctpbackup/lease.json was taken over by ")
        assert line.endswith("; this run stopped and writes nothing more")
        state = check_bucket(story.bucket)  # A wrote nothing: B's record and archive stand
        after = state["backups"][("default", "b1")]
        assert (after.phase, after.size, after.sha256, after.started_at) == (
            Phase.COMPLETED, completed.size, completed.sha256, completed.started_at)
        assert list(story.bucket.list_incomplete_uploads(LAYOUT.root)) == []
    finally:
        cp.kill()


def test_two_shards_at_once_never_abort_each_others_uploads(story):
    """`apply --shard 0/2` and `--shard 1/2` run at the same time, each over its own control planes;
    then one is killed mid-run while the other goes on: neither sweeps the other's uploads, and
    after a rerun every backup is Completed with its whole archive (issue 17, item 3)."""
    from ctpbackup.plan.planner import shard_of

    names = [f"ctp{i}" for i in range(40)]
    per_shard = {s: [n for n in names if shard_of("default", n, 2) == s][:2] for s in (0, 1)}
    cps = {}
    # S3's smallest part size and archives of two parts or more: each run has open multipart uploads
    # while the other sweeps
    story.repo.write("config/sharedbackupconfig.yaml", MULTIPART_CONFIG.format(
        bucket=story.bucket.name, endpoint=story.s3.host_port))
    try:
        for name in per_shard[0] + per_shard[1]:
            cps[name] = EmulatorProcess().start()
            _seed_large(cps[name], 32)
            story.connect(name, cps[name])
            story.repo.write(f"{name}.yaml", CONTROL_PLANE.format(name=name))
        story.repo.write("b.yaml", "---\n".join(BACKUP.format(name=f"first-{n}", control_plane=n) for n in cps))
        story.repo.commit("a backup of each control plane")
        for cp in cps.values():
            cp.inject("slow", count=-1, delay=0.02)
        runs = [subprocess.Popen(_apply_command(story, "--shard", f"{s}/2", "--lease-duration", "2s"),
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for s in (0, 1)]
        for run in runs:
            out, err = run.communicate(timeout=300)
            assert run.returncode == 0, out + err
            assert "left by an interrupted run" not in out + err
        state = check_bucket(story.bucket)
        assert sorted(n for _, n in state["backups"]) == sorted(f"first-{n}" for n in cps)
        assert all(r.phase is Phase.COMPLETED for r in state["backups"].values())

        # now shard 0 is killed mid-upload while shard 1 runs on
        story.repo.write("c.yaml", "---\n".join(BACKUP.format(name=f"second-{n}", control_plane=n) for n in cps))
        story.repo.commit("a second backup of each")
        survivor = subprocess.Popen(_apply_command(story, "--shard", "1/2", "--lease-duration", "2s"),
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        kill_when(_apply_command(story, "--shard", "0/2", "--lease-duration", "2s"),
                  lambda: _phase(story, f"second-{per_shard[0][0]}") is Phase.IN_PROGRESS)
        out, err = survivor.communicate(timeout=300)
        assert survivor.returncode == 0, out + err
        check_bucket(story.bucket)
        for cp in cps.values():
            cp.clear_faults()
        time.sleep(2.5)  # the killed run's lease (2s) expires; its upload is older than a lease period
        rerun = subprocess.run(_apply_command(story, "--shard", "0/2", "--lease-duration", "2s"), capture_output=True,
                               text=True, timeout=300)
        assert rerun.returncode == 0, rerun.stdout + rerun.stderr
        state = check_bucket(story.bucket)
        assert len(state["backups"]) == 2 * len(cps)
        assert all(r.phase is Phase.COMPLETED for r in state["backups"].values())
        assert list(story.bucket.list_incomplete_uploads(LAYOUT.root)) == []
    finally:
        for cp in cps.values():
            cp.kill()
