"""Faults between the job and the bucket: 500s, 503 SlowDown, resets and truncated bodies are retried;
a fault that does not clear ends the backup Failed with its cause, and the next run succeeds."""

from __future__ import annotations

from kubeemu import EmulatorServer
from kubeemu.fixtures import seed_crossplane
from tests.fixtures.story import BACKUP, CONFIG, CONTROL_PLANE, RESTORED


def test_bucket_faults_are_retried_or_reported_then_recovered(story, s3_fault_proxy):
    story.repo.write("config/sharedbackupconfig.yaml", CONFIG.format(bucket=story.bucket.name,
                                                                     endpoint=s3_fault_proxy.host_port))
    cp = EmulatorServer(establish_delay=0.05).start()
    target = EmulatorServer(establish_delay=0.05).start()
    plan = s3_fault_proxy.plan
    try:
        seed_crossplane(cp, 120)
        story.connect("ctp1", cp)
        story.repo.write("ctp1.yaml", CONTROL_PLANE.format(name="ctp1"))
        story.repo.write("b.yaml", BACKUP.format(name="b1", control_plane="ctp1"))
        story.repo.commit("a backup through a flaky bucket")
        plan.arm("status", "PUT", 2, status=500)
        plan.arm("status", "PUT", 2, status=503)
        plan.arm("reset", "GET", 1)
        plan.arm("slow", "GET", 1, delay=0.5)
        story.reconcile("apply")
        assert story.backup("b1")["phase"] == "Completed"
        assert plan.injected == 6

        story.repo.write("b2.yaml", BACKUP.format(name="b2", control_plane="ctp1"))
        story.repo.commit("a backup while the bucket keeps refusing archives")
        plan.arm("status", "PUT", -1, status=503, path="archive.tar.gz")
        failed = story.reconcile("apply", check=False)
        assert failed.returncode == 1 and "Traceback" not in failed.stderr
        plan.clear()
        record = story.backup("b2")
        assert record["phase"] == "Failed"
        assert record["conditions"][-1]["reason"] == "BucketWriteFailed" and "SlowDown" in record["conditions"][-1]["message"]
        story.reconcile("apply")
        assert story.backup("b2")["phase"] == "Completed"

        # a truncated archive download is caught by the size/sha256 check and retried on the next run
        story.connect("restored", target)
        story.repo.write("restored.yaml", RESTORED.format(name="restored", source="b1"))
        story.repo.commit("restore through a truncating bucket")
        before = target.store.rv
        plan.arm("truncate", "GET", -1, path="archive.tar.gz")
        story.reconcile("apply", check=False)
        plan.clear()
        (restore,) = story.status()["restores"]
        assert restore["phase"] == "Failed" and restore["conditions"][-1]["reason"] in ("ArchiveUnreadable", "IntegrityCheckFailed")
        assert target.store.rv == before
        story.reconcile("apply")
        (restore,) = story.status()["restores"]
        assert restore["phase"] == "Completed"
    finally:
        cp.stop()
        target.stop()
