"""Faults in the control plane: retried with backoff; when they persist, Failed with the cause, and
the next run retries."""

from __future__ import annotations

from kubeemu import EmulatorProcess
from kubeemu.fixtures import seed_crossplane
from tests.fixtures.story import BACKUP, CONTROL_PLANE


def test_transient_faults_are_retried_and_persistent_ones_fail_then_recover(story):
    cp = EmulatorProcess().start()
    try:
        seed_crossplane(cp, 150)
        story.connect("ctp1", cp)
        story.repo.write("ctp1.yaml", CONTROL_PLANE.format(name="ctp1"))
        story.repo.write("b.yaml", BACKUP.format(name="flaky", control_plane="ctp1"))
        story.repo.commit("a backup through a flaky API")
        cp.inject("error", count=3, status=500, path_prefix="/api/v1/secrets")
        cp.inject("throttle", count=2, retry_after=0.2, path_prefix="/apis")
        cp.inject("drop", count=1, path_prefix="/api/v1/configmaps")
        story.reconcile("apply")
        record = story.backup("flaky")
        assert record["phase"] == "Completed" and record["retries"] == 0
        assert cp.stats()["injected"] == 6  # every fault was met, and survived

        story.repo.write("b2.yaml", BACKUP.format(name="down", control_plane="ctp1"))
        story.repo.commit("a backup while the API keeps failing")
        cp.inject("error", count=-1, status=503, path_prefix="/api/v1/secrets")
        failed = story.reconcile("apply", check=False)
        assert failed.returncode == 1
        record = story.backup("down")
        assert record["phase"] == "Failed"
        reason = record["conditions"][-1]
        assert reason["reason"] == "ControlPlaneUnreachable" and "503" in reason["message"]
        cp.clear_faults()
        story.reconcile("apply")
        record = story.backup("down")
        assert record["phase"] == "Completed" and record["retries"] == 1
    finally:
        cp.kill()


def test_unreachable_control_plane_fails_the_backup_not_the_run(story):
    cp = EmulatorProcess().start()
    story.connect("ctp1", cp)
    cp.kill()  # it was there once; now nothing answers
    story.repo.write("ctp1.yaml", CONTROL_PLANE.format(name="ctp1"))
    story.repo.write("b.yaml", BACKUP.format(name="lost", control_plane="ctp1"))
    story.repo.commit("back up a control plane that is down")
    result = story.reconcile("apply", check=False)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "ControlPlaneUnreachable" in result.stdout
    record = story.backup("lost")
    assert record["phase"] == "Failed" and "no answer" in record["conditions"][-1]["message"]
