"""Two and then four `apply` processes at once on the same commit and bucket."""

from __future__ import annotations

import subprocess
import sys

import pytest

from ctpbackup.store.records import Phase
from kubeemu import EmulatorProcess
from kubeemu.fixtures import seed_crossplane
from tests.fixtures.story import BACKUP, CONTROL_PLANE, ROOT
from tests.reliability.helpers import check_bucket
from tests.reliability.test_crash import NOW, SCHEDULE


@pytest.mark.parametrize("runs, wait", [(2, "0"), (4, "120")], ids=["two-no-wait", "four-waiting"])
def test_concurrent_applies_do_the_work_once(story, runs, wait):
    cp = EmulatorProcess().start()
    try:
        seed_crossplane(cp, 200)
        story.connect("ctp1", cp)
        story.repo.write("ctp1.yaml", CONTROL_PLANE.format(name="ctp1"))
        story.repo.write("b.yaml", BACKUP.format(name="b1", control_plane="ctp1"))
        story.repo.write("schedule.yaml", SCHEDULE)
        story.repo.commit("one backup and a schedule")
        command = [sys.executable, str(ROOT / "reconcile.py"), "apply", "--repo", str(story.repo.path), "--secrets-dir",
                   str(story.secrets), "--log-format", "json", "--now", NOW, "--lease-wait", wait]
        processes = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(runs)]
        results = [(p.wait(timeout=240), *p.communicate()) for p in processes]
        ok = [r for r in results if r[0] == 0]
        assert ok, results
        for code, _out, err in results:
            if code != 0:  # only a clear "someone else is at it", never a crash
                assert "another apply is running" in err and "Traceback" not in err, err
        did_work = [out for _, out, _ in ok if "Apply complete" in out]
        assert len(did_work) == 1, "exactly one run takes the backups"
        if wait != "0":
            assert len(ok) == runs and sum("No changes" in out for _, out, _ in ok) == runs - 1
        state = check_bucket(story.bucket)
        assert sorted(n for _, n in state["backups"]) == ["b1", "hourly-ctp1-20261125100000"]
        assert all(r.phase is Phase.COMPLETED and r.retries == 0 for r in state["backups"].values())
    finally:
        cp.kill()
