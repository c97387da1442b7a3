"""Invariants the bucket must satisfy whatever happened to the runs that wrote it."""

from __future__ import annotations

import hashlib

from ctpbackup.store.index import BucketIndex
from ctpbackup.store.layout import BucketLayout
from ctpbackup.store.records import Phase

LAYOUT = BucketLayout("prod/cluster1")


def check_bucket(bucket) -> dict:
    """Every Completed backup has its whole archive with the recorded sha256; returns the state."""
    state = BucketIndex(bucket, LAYOUT).load()
    for record in state.backups.values():
        if record.phase is Phase.COMPLETED:
            data, _ = bucket.read(record.archive_key)
            assert len(data) == record.size, f"{record.name}: archive size differs from the index"
            assert hashlib.sha256(data).hexdigest() == record.sha256, f"{record.name}: archive sha256 differs"
    slots = [(r.owner_name, r.control_plane, r.slot) for r in state.backups.values() if r.slot]
    assert len(slots) == len(set(slots)), "a schedule slot was taken twice"
    return {"backups": state.backups, "restores": state.restores}
