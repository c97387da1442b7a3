"""A recorded backup's archive, fetched for reading outside `apply` (dry-run restores, diffs): the same
checks a restore makes before it trusts one (the record's authenticity, the archive's size, sha256,
decryption, format and names), through the archive key the layout gives (never the record's)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from ctpbackup.engines import restore as restore_engine
from ctpbackup.store import record_mac
from ctpbackup.store.records import BackupRecord
from ctpbackup.store.targets import Target


class ArchiveRefused(Exception):
    """The archive cannot be trusted or read: `reason` as a restore's failure reasons."""

    def __init__(self, reason: str, message: str):
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.message = message


def fetch_archive(targets: dict[tuple[str, str], Target], record: BackupRecord, dest: Path) -> Path:
    """Download and check the archive of `record` into the folder `dest`; the plain .tar.gz's path.
    Raises ArchiveRefused."""
    target = targets[(record.namespace, record.config)]
    try:
        keys = record_mac.check_restorable(record, target.keyring,
                                           target.config.object_storage.allow_unauthenticated_backups)
        record = dataclasses.replace(record, archive_key=target.layout.archive_key(
            record.namespace, record.control_plane, record.name))
        return restore_engine.fetch_verified(target.bucket, record, dest, keys)
    except (restore_engine.RestoreFailed, record_mac.RecordRefused) as err:
        raise ArchiveRefused(err.reason, err.message) from None
