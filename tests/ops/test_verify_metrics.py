"""The Verified condition of each control plane's newest Completed backup is exported (issue 21)."""

from __future__ import annotations

import dataclasses

from ctpbackup.apply import metrics
from ctpbackup.store.records import Condition, Phase
from tests.ops.test_metrics import NOW, desired, exposition, record, run_info, samples, state


def verified(r, status: str, reason: str):
    return dataclasses.replace(r, conditions=(Condition("Verified", status, reason, "", NOW),))


def test_the_newest_completed_backups_verified_status_is_a_state_set():
    recorded = state({
        "ctp1": [verified(record("a", Phase.COMPLETED, hours=1), "False", "OwnerMissing"),
                 verified(record("b", Phase.COMPLETED, hours=0), "True", "BackupVerified")],
        "ctp2": [verified(record("c", Phase.COMPLETED, cp="ctp2", hours=0), "True", "BackupVerified")],
        "ctp3": [record("d", Phase.COMPLETED, cp="ctp3")],
    })
    got = samples(exposition(metrics.build_registry(desired(), recorded, [], run_info(), NOW)))

    def states(cp: str) -> dict[str, float | None]:
        return {s: got.get(("ctpbackup_backup_last_success_verified",
                            tuple(sorted({"namespace": "default", "controlplane": cp, "status": s}.items()))))
                for s in metrics.VERIFIED_STATES}

    assert states("ctp1") == {"True": 0, "False": 1, "Unknown": 0}  # the newest (a) failed verification
    assert states("ctp2") == {"True": 1, "False": 0, "Unknown": 0}
    assert states("ctp3") == {"True": 0, "False": 0, "Unknown": 1}  # not verified (an earlier release's)
