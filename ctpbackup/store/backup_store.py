"""The one way to archives (Velero's `persistence.BackupStore`): every archive is put, opened,
deleted and swept here, at the key `ctpbackup.store.layout` builds from (namespace, control plane,
backup), never at a key taken from a record (whoever can edit a record must not point it at
another archive).

- put: create-if-absent, so an archive is never replaced (`Bucket.open_upload(if_absent=True)`);
- open: the whole archive downloaded to a local file and proved to be the one the index recorded
  (size before the download, then size and sha256 of the bytes read);
- delete: after the lease's fence (a run that lost its lease removes nothing);
- sweep: multipart uploads left by a crashed run, only of archives of the control planes asked for.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from ctpbackup.engines import jsoncodec
from ctpbackup.rules.reasons import FailureReason, ReasonedError
from ctpbackup.storage.base import Bucket, ObjectAttributes, ObjectNotFound, StorageError, Upload
from ctpbackup.store.layout import BucketLayout
from ctpbackup.store.records import BackupRecord

log = logging.getLogger(__name__)

#: an archive whose recorded size is above this is refused before a byte is downloaded
MAX_ARCHIVE_BYTES = 50 * 1024 * 1024 * 1024
#: the name of the verified download in the caller's directory
DOWNLOAD_NAME = "archive.tar.gz"
CHUNK_BYTES = 1024 * 1024


class ArchiveCheckFailed(ReasonedError):
    """The archive of a backup is not the one its record describes, or cannot be read. `reason` is
    ArchiveMissing, ArchiveRejected, IntegrityCheckFailed or ArchiveUnreadable; `message` names the
    backup, never a secret."""


class BackupStore:
    """The archives of one bucket location (bucket + prefix). `fence`, while an apply holds the
    location's lease, is the lease's check: called before every deletion, it raises LeaseLost once
    another run has taken the lease over."""

    def __init__(self, bucket: Bucket, layout: BucketLayout):
        self.bucket = bucket
        self.layout = layout
        self.fence: Callable[[], None] | None = None

    def archive_key(self, namespace: str, control_plane: str, backup: str) -> str:
        """The key of a backup's archive: what records carry in `archiveKey` (informational only)."""
        return self.layout.archive_key(namespace, control_plane, backup)

    # -- put ---------------------------------------------------------------------------------------

    def put_archive(self, namespace: str, control_plane: str, backup: str) -> Upload:
        """A streaming upload of a backup's archive (its `key` attribute says where). Nothing is
        visible until `commit()`, which raises PreconditionFailed when an archive is already there
        (it is left untouched); `abort()` discards the parts. Raises StorageError."""
        return self.bucket.open_upload(self.archive_key(namespace, control_plane, backup),
                                       content_type="application/gzip", if_absent=True)

    # -- read --------------------------------------------------------------------------------------

    def archive_attributes(self, namespace: str, control_plane: str, backup: str) -> ObjectAttributes | None:
        """Size and version of a backup's archive, None when there is none. Raises StorageError."""
        return self.bucket.attributes(self.archive_key(namespace, control_plane, backup))

    def archive_sha256(self, namespace: str, control_plane: str, backup: str) -> str:
        """The hex sha256 of a backup's archive as it is in the bucket, read as a stream (memory
        stays flat). Raises StorageError (ObjectNotFound when it is gone)."""
        digest = hashlib.sha256()
        with self.bucket.open_read(self.archive_key(namespace, control_plane, backup)) as stream:
            while chunk := stream.read(CHUNK_BYTES):
                digest.update(chunk)
        return digest.hexdigest()

    def backup_record_beside(self, namespace: str, control_plane: str,
                             backup: str) -> tuple[BackupRecord | None, bool]:
        """The per-backup record next to the archive's key, and whether it could be read (True when
        there is none). A record naming another backup, or without a size and sha256, counts as
        unreadable. Its `archiveKey` is replaced by the layout's. Raises StorageError when the
        bucket cannot tell."""
        try:
            data, _ = self.bucket.read(self.layout.backup_record_key(namespace, control_plane, backup))
        except ObjectNotFound:
            return None, True
        try:
            doc = jsoncodec.loads(data)
            if not isinstance(doc, dict):
                raise ValueError("not a JSON object")
            record = BackupRecord.from_dict(doc)
            if (record.namespace, record.control_plane, record.name) != (namespace, control_plane, backup):
                raise ValueError("a record of another backup")
            if not isinstance(record.sha256, str) or type(record.size) is not int:
                raise ValueError("size or sha256")
        except (ValueError, KeyError, TypeError, AttributeError, IndexError, RecursionError):
            return None, False
        return dataclasses.replace(record, archive_key=self.archive_key(namespace, control_plane, backup)), True

    def read_archive(self, namespace: str, control_plane: str, backup: str) -> BinaryIO:
        """A stream of a backup's archive as stored (encrypted or not), at the layout's key, for a
        reader that checks size and sha256 itself as it goes (verification reads each archive once).
        Raises ObjectNotFound when it is not there, StorageError when the bucket cannot be read."""
        return self.bucket.open_read(self.archive_key(namespace, control_plane, backup))

    def fetch_archive(self, record: BackupRecord, dest: Path) -> Path:
        """Download the archive of `record` (at the layout's key for its namespace, control plane
        and name; the record's own `archiveKey` is not used) to `dest/archive.tar.gz` and prove it is
        the one the index recorded: its size is plausible and matches before the download, and the
        bytes read match the recorded size and sha256. Not retried here (the providers retry each
        request). Raises ArchiveCheckFailed: ArchiveMissing (no sha256 recorded, or no object),
        ArchiveRejected (implausible size), IntegrityCheckFailed, ArchiveUnreadable (the bucket
        failed, or the download broke off)."""
        if not record.sha256:
            raise ArchiveCheckFailed(FailureReason.ARCHIVE_MISSING, f"Backup {record.name} has no recorded archive")
        if record.size <= 0 or record.size > MAX_ARCHIVE_BYTES:
            raise ArchiveCheckFailed(FailureReason.ARCHIVE_REJECTED, f"recorded archive size {record.size} is not plausible")
        key = self.archive_key(record.namespace, record.control_plane, record.name)
        try:
            attrs = self.bucket.attributes(key)
            if attrs is None:
                raise ArchiveCheckFailed(FailureReason.ARCHIVE_MISSING, f"archive of Backup {record.name} is not in the bucket")
            if attrs.size != record.size:
                raise ArchiveCheckFailed(FailureReason.INTEGRITY_CHECK_FAILED, f"archive of Backup {record.name} is {attrs.size} "
                                                                 f"bytes; the index recorded {record.size}")
            path = dest / DOWNLOAD_NAME
            digest = hashlib.sha256()
            size = 0
            with self.bucket.open_read(key) as stream, path.open("wb") as out:
                while chunk := stream.read(CHUNK_BYTES):
                    size += len(chunk)
                    if size > record.size:
                        raise ArchiveCheckFailed(FailureReason.INTEGRITY_CHECK_FAILED,
                                                 f"archive of Backup {record.name} is longer than recorded")
                    digest.update(chunk)
                    out.write(chunk)
        except ArchiveCheckFailed:
            raise
        except StorageError as err:
            raise ArchiveCheckFailed(FailureReason.ARCHIVE_UNREADABLE,
                                     f"cannot read the archive of Backup {record.name}: {err}") from None
        except Exception as err:  # noqa: BLE001 - a body cut off mid-download surfaces from the HTTP layer
            raise ArchiveCheckFailed(FailureReason.ARCHIVE_UNREADABLE, f"the download of Backup {record.name}'s archive broke off "
                                                          f"({type(err).__name__})") from None
        if size != record.size or digest.hexdigest() != record.sha256:
            raise ArchiveCheckFailed(FailureReason.INTEGRITY_CHECK_FAILED,
                                     f"archive of Backup {record.name} does not match the sha256 recorded in the index")
        return path

    # -- delete and sweep --------------------------------------------------------------------------

    def delete_archive(self, namespace: str, control_plane: str, backup: str, *, attempts: int = 1,
                       backoff_seconds: float = 0.5) -> None:
        """Remove a backup's archive (a missing one is not an error), each try after the fence. Up
        to `attempts` tries, waiting `backoff_seconds` × the try's number between them; any error
        of the last try (StorageError, LeaseLost, …) is raised."""
        key = self.archive_key(namespace, control_plane, backup)
        for attempt in range(attempts):
            try:
                if self.fence is not None:
                    self.fence()
                self.bucket.delete(key)
                return
            except Exception:
                if attempt == attempts - 1:
                    raise
                time.sleep(backoff_seconds * (attempt + 1))

    def sweep_uploads(self, older_than_seconds: float,
                      control_planes: Callable[[str, str], bool] | None = None) -> int:
        """Abort multipart uploads under this layout's prefix left by an interrupted run: those
        started more than `older_than_seconds` ago whose key is under a control plane that
        `control_planes(namespace, name)` accepts (every one when None; keys outside any control
        plane are never touched). Returns how many. Raises StorageError."""
        def owned(key: str) -> bool:
            parsed = self.layout.parse(key)
            if parsed is None:
                return False
            return control_planes is None or control_planes(parsed[0], parsed[1])

        return self.bucket.abort_incomplete_uploads(self.layout.root, older_than_seconds=older_than_seconds,
                                                    select=owned)
