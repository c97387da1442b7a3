"""A recorded backup's archive, fetched for reading outside `apply` (dry-run restores, diffs,
downloads): the same checks a restore makes before it trusts one (the record's authenticity, the
archive's size, sha256, decryption, format and names), through the backup store, which reads the
archive at the key the layout gives (never the record's)."""

from __future__ import annotations

from pathlib import Path

from ctpbackup.engines import restore as restore_engine
from ctpbackup.rules.reasons import RefusedError
from ctpbackup.store import record_mac
from ctpbackup.store.locations import BackupLocation
from ctpbackup.store.records import BackupRecord


class ArchiveRefused(RefusedError):
    """The archive cannot be trusted or read: `reason` as a restore's failure reasons."""


def fetch_trusted(location: BackupLocation, record: BackupRecord, dest: Path, *, check_members: bool = True) -> Path:
    """Download the archive of `record` from `location`'s bucket into the folder `dest`, checked as a
    restore checks it, decrypted when it was encrypted; the path of the plain .tar.gz. Raises
    ArchiveRefused (nothing left in `dest` but what the caller cleans up). `check_members=False`:
    only for a restore that checks the members itself (`run_restore(..., backup=record)`)."""
    try:
        keys = record_mac.check_restorable(record, location.keyring,
                                           location.config.object_storage.allow_unauthenticated_backups)
        return restore_engine.fetch_verified(location.store, record, dest, keys, check_members=check_members)
    except (restore_engine.RestoreFailed, record_mac.RecordRefused) as err:
        raise ArchiveRefused(err.reason, err.message) from None


def fetch_archive(locations: dict[tuple[str, str], BackupLocation], record: BackupRecord, dest: Path) -> Path:
    """`fetch_trusted` from the bucket of the record's SharedBackupConfig. Raises ArchiveRefused."""
    return fetch_trusted(locations[(record.namespace, record.config)], record, dest)
