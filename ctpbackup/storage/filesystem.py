"""`provider: Filesystem`: a local folder as a bucket (our extension of the Spaces API, for the local
demo and tests).

An upload writes to a temporary file in a hidden folder of the same filesystem and is renamed into
place on commit, so a reader never sees half an object. Conditional writes hold an exclusive `fcntl`
lock on a per-key lock file while they compare the version and rename. A version is the sha256 of
the content: it changes exactly when the bytes do.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO
from urllib.parse import quote, unquote

from ctpbackup.storage.base import (
    Bucket,
    ObjectAttributes,
    ObjectNotFound,
    PreconditionFailed,
    StorageError,
    Upload,
)

INTERNAL = ".ctpbackup-internal"  # temp files and locks; never listed


def _version(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(1024 * 1024):
            digest.update(chunk)
    return digest.hexdigest()


class _FileUpload(Upload):
    def __init__(self, bucket: FilesystemBucket, key: str, if_absent: bool = False):
        self.key = key
        self.if_absent = if_absent
        self.bucket = bucket
        # the key is in the temp name, so a sweep can keep to one prefix
        fd, name = tempfile.mkstemp(prefix=f"upload-{quote(key, safe='')}.", dir=bucket.tmp_dir)
        self._file = os.fdopen(fd, "wb")
        self._tmp = Path(name)
        self._digest = hashlib.sha256()
        self._size = 0
        self._done = False

    def write(self, data: bytes) -> int:
        self._file.write(data)
        self._digest.update(data)
        self._size += len(data)
        return len(data)

    def commit(self) -> ObjectAttributes:
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        target = self.bucket.path(self.key)
        target.parent.mkdir(parents=True, exist_ok=True)
        if self.if_absent:
            try:  # a hard link is created only where no name is: an atomic create-if-absent
                os.link(self._tmp, target)
            except FileExistsError:
                self._tmp.unlink(missing_ok=True)
                self._done = True
                raise PreconditionFailed(f"{self.bucket.description}: {self.key} already exists") from None
            self._tmp.unlink()
        else:
            os.replace(self._tmp, target)
        self._done = True
        return ObjectAttributes(self.key, self._size, self._digest.hexdigest(), datetime.now(UTC))

    def abort(self) -> None:
        if not self._done:
            self._file.close()
            self._tmp.unlink(missing_ok=True)
            self._done = True


class FilesystemBucket(Bucket):
    def __init__(self, root: str | Path):
        self.root = Path(root).resolve()
        self.description = f"file://{self.root}"
        self.tmp_dir = self.root / INTERNAL / "tmp"
        self.lock_dir = self.root / INTERNAL / "locks"
        try:
            self.tmp_dir.mkdir(parents=True, exist_ok=True)
            self.lock_dir.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise StorageError(f"cannot use folder {self.root} as a bucket: {err.strerror}") from None

    def path(self, key: str) -> Path:
        parts = key.split("/")
        if not key or key.startswith("/") or any(p in ("", ".", "..") for p in parts) or parts[0] == INTERNAL:
            raise StorageError(f"invalid key {key!r}")
        return self.root.joinpath(*parts)

    def open_upload(self, key: str, *, content_type: str = "application/octet-stream",
                    if_absent: bool = False) -> Upload:
        self.path(key)
        return _FileUpload(self, key, if_absent)

    def open_read(self, key: str) -> BinaryIO:
        try:
            return self.path(key).open("rb")
        except FileNotFoundError:
            raise ObjectNotFound(f"{self.description}: {key} not found") from None

    def attributes(self, key: str) -> ObjectAttributes | None:
        path = self.path(key)
        try:
            stat = path.stat()
        except FileNotFoundError:
            return None
        return ObjectAttributes(key, stat.st_size, _version(path), datetime.fromtimestamp(stat.st_mtime, UTC))

    def list(self, prefix: str) -> Iterator[ObjectAttributes]:
        base = self.root
        for dirpath, dirnames, filenames in os.walk(base):
            rel = os.path.relpath(dirpath, base)
            if rel == INTERNAL or rel.startswith(INTERNAL + os.sep):
                dirnames[:] = []
                continue
            dirnames.sort()
            for name in sorted(filenames):
                key = name if rel == "." else f"{rel.replace(os.sep, '/')}/{name}"
                if key.startswith(prefix):
                    stat = (Path(dirpath) / name).stat()
                    yield ObjectAttributes(key, stat.st_size, "", datetime.fromtimestamp(stat.st_mtime, UTC))

    def delete(self, key: str) -> None:
        path = self.path(key)
        with self._locked(key):
            path.unlink(missing_ok=True)

    def read(self, key: str) -> tuple[bytes, str]:
        try:
            data = self.path(key).read_bytes()
        except FileNotFoundError:
            raise ObjectNotFound(f"{self.description}: {key} not found") from None
        return data, hashlib.sha256(data).hexdigest()

    @contextlib.contextmanager
    def _locked(self, key: str) -> Iterator[None]:
        lock = self.lock_dir / (hashlib.sha256(key.encode()).hexdigest() + ".lock")
        with lock.open("a+b") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _replace(self, key: str, data: bytes) -> str:
        with self.open_upload(key) as upload:
            upload.write(data)
            return upload.commit().version

    def put_if_absent(self, key: str, data: bytes) -> str:
        with self._locked(key):
            if self.path(key).exists():
                raise PreconditionFailed(f"{key} already exists")
            return self._replace(key, data)

    def put_if_match(self, key: str, data: bytes, version: str) -> str:
        with self._locked(key):
            path = self.path(key)
            if not path.exists() or _version(path) != version:
                raise PreconditionFailed(f"{key} changed since it was read")
            return self._replace(key, data)

    def _incomplete(self, prefix: str) -> Iterator[tuple[Path, str]]:
        for tmp in sorted(self.tmp_dir.glob("upload-*")):
            key = unquote(tmp.name[len("upload-"):].rsplit(".", 1)[0])
            if key.startswith(prefix):
                yield tmp, key

    def abort_incomplete_uploads(self, prefix: str, older_than_seconds: float,
                                 select: Callable[[str], bool] | None = None) -> int:
        count = 0
        cutoff = time.time() - older_than_seconds
        for tmp, key in self._incomplete(prefix):
            if select is not None and not select(key):
                continue
            with contextlib.suppress(FileNotFoundError):
                if tmp.stat().st_mtime <= cutoff:
                    tmp.unlink()
                    count += 1
        return count

    def list_incomplete_uploads(self, prefix: str) -> Iterator[str]:
        for _, key in self._incomplete(prefix):
            yield key
