"""The small object-storage interface every provider implements (Thanos objstore's `Bucket`, in Python).

Nothing above this module knows which cloud it talks to. Keys are plain strings built by
`ctpbackup.store.layout`; a `version` is an opaque token (S3/Azure ETag, GCS generation, a content hash on a
local folder) used only to make conditional writes compare-and-swap.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import BinaryIO


class Provider(StrEnum):
    """The object stores a SharedBackupConfig may name (`spec.objectStorage.provider`, Spaces' enum),
    plus `Filesystem`, a local folder: our extension for demos and tests."""

    AWS = "AWS"
    GCP = "GCP"
    AZURE = "Azure"
    FILESYSTEM = "Filesystem"


class StorageError(Exception):
    """A bucket operation failed. Messages never carry credentials."""


class ObjectNotFound(StorageError):
    """The key does not exist."""


class PreconditionFailed(StorageError):
    """A conditional write lost the race: the object exists (create-if-absent) or changed
    (replace-if-unchanged). Retryable: re-read, re-apply, try again."""


@dataclass(frozen=True)
class ObjectAttributes:
    key: str
    size: int
    version: str
    last_modified: datetime | None = None


class Upload(abc.ABC):
    """A streaming write: bytes go out in parts as they are written; nothing is visible under `key`
    until `commit()`. `abort()` (or leaving the `with` block on an exception) discards every part."""

    key: str

    @abc.abstractmethod
    def write(self, data: bytes) -> int: ...

    @abc.abstractmethod
    def commit(self) -> ObjectAttributes: ...

    @abc.abstractmethod
    def abort(self) -> None: ...

    # file-object protocol, so tarfile/gzip can write straight into an upload
    def writable(self) -> bool:
        return True

    def flush(self) -> None:
        return None  # parts go out as they fill; commit() sends the rest

    def __enter__(self) -> Upload:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            self.abort()


class Bucket(abc.ABC):
    """One bucket (or container) of one provider."""

    #: human description without secrets, e.g. "s3://my-bucket (endpoint http://127.0.0.1:9000)"
    description: str

    @abc.abstractmethod
    def open_upload(self, key: str, *, content_type: str = "application/octet-stream",
                    if_absent: bool = False) -> Upload:
        """Start a streaming (multipart for large objects) upload. With `if_absent`, `commit()` creates
        the object only if nothing is at `key` (S3 `If-None-Match: *`, GCS `ifGenerationMatch=0`, Azure
        `If-None-Match: *`, a hard link on a folder) and raises PreconditionFailed otherwise, leaving
        the object that is there untouched: how archives are written, so none is ever replaced."""

    @abc.abstractmethod
    def open_read(self, key: str) -> BinaryIO:
        """Stream an object's bytes. Raises ObjectNotFound."""

    @abc.abstractmethod
    def attributes(self, key: str) -> ObjectAttributes | None:
        """Size and version of an object, or None when it does not exist."""

    @abc.abstractmethod
    def list(self, prefix: str) -> Iterator[ObjectAttributes]:
        """Every object whose key starts with `prefix`, recursively, paginating as needed."""

    @abc.abstractmethod
    def delete(self, key: str) -> None:
        """Delete a key; deleting a missing key is not an error."""

    @abc.abstractmethod
    def read(self, key: str) -> tuple[bytes, str]:
        """A small object's bytes and its version, read together so a later conditional put
        compares against exactly what was read. Raises ObjectNotFound."""

    @abc.abstractmethod
    def put_if_absent(self, key: str, data: bytes) -> str:
        """Create `key` only if it does not exist; returns the new version.
        Raises PreconditionFailed when it exists."""

    @abc.abstractmethod
    def put_if_match(self, key: str, data: bytes, version: str) -> str:
        """Replace `key` only if its version is still `version`; returns the new version.
        Raises PreconditionFailed when it changed or was deleted."""

    def put(self, key: str, data: bytes, *, content_type: str = "application/octet-stream") -> ObjectAttributes:
        """Unconditional small write."""
        with self.open_upload(key, content_type=content_type) as upload:
            upload.write(data)
            return upload.commit()

    def exists(self, key: str) -> bool:
        return self.attributes(key) is not None

    def list_incomplete_uploads(self, prefix: str) -> Iterator[str]:
        """Keys of multipart uploads started under `prefix` and never committed (for cleanup)."""
        return iter(())

    def abort_incomplete_uploads(self, prefix: str, older_than_seconds: float,
                                 select: Callable[[str], bool] | None = None) -> int:
        """Abort uploads left behind by a crashed run: those under `prefix` started more than
        `older_than_seconds` ago whose key `select` accepts (all when None); returns how many."""
        return 0
