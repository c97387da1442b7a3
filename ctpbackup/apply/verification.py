"""Verify a recorded backup and record the outcome: the `Verified` condition on its index record.

After each backup `apply` completes (and on `reconcile.py verify backup NAME`) the archive is read
back from the bucket, once, and checked offline (ctpbackup.engines.verify). The outcome goes into
the record as the condition `Verified` (True: BackupVerified; False: the most severe reason, the
message listing every reason with its count and the first problems) and `verification` (the counts).
Verification never holds a backup up and never changes its phase: a bucket that cannot be read
leaves the record as it was, and a backup that fails verification stays Completed (the plan shows it
like a Failed one; it is never taken again automatically).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from ctpbackup.engines.verify import KEY_MISSING, Expected, Verification, verify_archive
from ctpbackup.rules.reasons import FailureReason
from ctpbackup.storage.base import ObjectNotFound, StorageError
from ctpbackup.store import record_mac
from ctpbackup.store.locations import BackupLocation
from ctpbackup.store.records import BackupRecord, Condition, Phase, set_condition

log = logging.getLogger(__name__)

VERIFIED = "Verified"
ARCHIVE_MISSING = FailureReason.ARCHIVE_MISSING


class VerificationUnavailable(Exception):
    """The bucket could not be read (or the record not written): nothing was recorded; try again."""


def verify_recorded(location: BackupLocation, record: BackupRecord, *, workdir: Path | None = None) -> Verification:
    """Read the archive of a Completed `record` from `location`'s bucket (at the key the layout gives,
    never the record's) and verify it. A record a restore would refuse (its MAC, an archive that
    should be encrypted) fails verification with the restore's reason. Raises
    VerificationUnavailable when the bucket cannot be read."""
    result = Verification()
    try:
        keys = record_mac.check_restorable(record, location.keyring,
                                           location.config.object_storage.allow_unauthenticated_backups)
    except record_mac.RecordRefused as err:
        result.problem(err.reason, err.message)
        return result
    if record.encrypted and keys is None:
        result.problem(KEY_MISSING, f"Backup {record.name} is encrypted and its config names no key")
        return result
    expected = Expected(record.namespace, record.control_plane, record.name, record.size, record.sha256,
                        dict(record.counts), record.encrypted)
    try:
        with location.store.read_archive(record.namespace, record.control_plane, record.name) as stream:
            return verify_archive(stream, expected, keys, workdir=workdir)
    except ObjectNotFound:
        result.problem(ARCHIVE_MISSING, f"the archive of Backup {record.name} is not in the bucket")
        return result
    except StorageError as err:
        raise VerificationUnavailable(f"the archive of Backup {record.namespace}/{record.name} could not be read: "
                                      f"{err}") from None
    except Exception as err:  # noqa: BLE001 - a body cut off mid-read surfaces from the HTTP layer
        log.warning("verifying Backup %s/%s broke off", record.namespace, record.name, exc_info=True)
        raise VerificationUnavailable(f"reading the archive of Backup {record.namespace}/{record.name} broke off "
                                      f"({type(err).__name__})") from None


def condition_of(result: Verification, now: datetime) -> Condition:
    """`Verified=True BackupVerified` with the summary, or `Verified=False <reason>` with every reason."""
    return Condition(VERIFIED, "True" if result.verified else "False", result.reason, result.message(), now)


def record_outcome(location: BackupLocation, record: BackupRecord, result: Verification, now: datetime) -> BackupRecord:
    """Write the outcome into the backup's record (compare-and-swap); only while the record is still
    the Completed backup that was verified (same sha256): never changes its phase. Raises
    VerificationUnavailable when the index cannot be written."""

    def change(old: BackupRecord | None) -> BackupRecord:
        if old is None or old.phase is not Phase.COMPLETED or old.sha256 != record.sha256:
            return old if old is not None else record
        conditions = set_condition(old.conditions, condition_of(result, now))
        # Verified first: the last condition stays the one of the backup's own phase (Completed)
        return dataclasses.replace(old, conditions=(conditions[-1], *conditions[:-1]),
                                   verification={**result.to_dict(), "verifiedAt": now.strftime("%Y-%m-%dT%H:%M:%SZ")})

    try:
        return location.index.update_backup(record.namespace, record.control_plane, record.name, change)
    except StorageError as err:
        raise VerificationUnavailable(f"the outcome of verifying Backup {record.namespace}/{record.name} could not "
                                      f"be recorded: {err}") from None


def verify_and_record(location: BackupLocation, record: BackupRecord, clock: Callable[[], datetime], *,
                      workdir: Path | None = None) -> tuple[BackupRecord, Verification]:
    """Verify a Completed backup and record the outcome; the updated record and the outcome. Raises
    VerificationUnavailable (nothing recorded) when the bucket cannot be read or written."""
    result = verify_recorded(location, record, workdir=workdir)
    updated = record_outcome(location, record, result, clock())
    level = logging.INFO if result.verified else logging.WARNING
    log.log(level, "backup %s/%s %s: %s", record.namespace, record.name,
            "verified" if result.verified else "failed verification", result.message(), extra={"fields": {
                "event": "verify", "namespace": record.namespace, "backup": record.name,
                "controlPlane": record.control_plane, "verified": result.verified, "reason": result.reason,
                **{k: v for k, v in result.to_dict().items() if k in ("objects", "created", "skipped", "merged",
                                                                      "failed")}}})
    return updated, result
