"""`provider: GCP`: Google Cloud Storage with google-cloud-storage, configured by Thanos' GCS keys.

Conditional writes use generation preconditions (`if_generation_match=0` creates only if absent; a
generation number replaces only that exact version). `endpoint` (an extension, not a Thanos key)
points the client at an emulator or a private endpoint.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator, Mapping
from typing import Any, BinaryIO

from google.api_core import exceptions as gexc
from google.cloud import storage

from ctpbackup.storage.base import (
    Bucket,
    ObjectAttributes,
    ObjectNotFound,
    PreconditionFailed,
    Provider,
    StorageError,
    Upload,
)
from ctpbackup.storage.keys import SUPPORTED

KNOWN_KEYS = SUPPORTED[Provider.GCP]  # the refused ones are said in ctpbackup.storage.keys
SPOOL_IN_MEMORY = 8 * 1024 * 1024


def _credentials(service_account: bytes | str | None, anonymous: bool):
    if anonymous:
        from google.auth.credentials import AnonymousCredentials

        return AnonymousCredentials(), None
    if service_account:
        from google.oauth2 import service_account as sa

        try:
            info = json.loads(service_account)
        except ValueError:
            raise StorageError("the GCP credentials are not a service-account key JSON") from None
        return sa.Credentials.from_service_account_info(info), info.get("project_id")
    return None, None  # the default chain (workload identity)


class _GCSUpload(Upload):
    """Spooled to memory, then to disk past 8 MiB; sent as a resumable upload on commit."""

    def __init__(self, bucket: GCSBucket, key: str, content_type: str, if_absent: bool = False):
        self.key = key
        self.if_absent = if_absent
        self.bucket = bucket
        self.content_type = content_type
        self._spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY)  # noqa: SIM115 - closed in commit/abort
        self._size = 0

    def write(self, data: bytes) -> int:
        self._size += len(data)
        return self._spool.write(data)

    def commit(self) -> ObjectAttributes:
        blob = self.bucket.bucket.blob(self.key, chunk_size=self.bucket.chunk_size)
        self._spool.seek(0)
        try:
            blob.upload_from_file(self._spool, size=self._size, content_type=self.content_type, rewind=False,
                                  if_generation_match=0 if self.if_absent else None)
        except gexc.GoogleAPICallError as err:
            if isinstance(err, gexc.PreconditionFailed):
                raise PreconditionFailed(f"{self.bucket.description}: {self.key} already exists") from None
            raise StorageError(f"{self.bucket.description}: {self.key}: upload failed: {err.code}") from None
        finally:
            self._spool.close()
        return ObjectAttributes(self.key, self._size, str(blob.generation or ""), blob.updated)

    def abort(self) -> None:
        self._spool.close()


class GCSBucket(Bucket):
    def __init__(self, name: str, config: Mapping[str, Any], credentials: bytes | None, *, anonymous: bool = False):
        unknown = set(config) - KNOWN_KEYS
        if unknown:
            raise StorageError(f"unknown GCS config key(s) {', '.join(sorted(unknown))}; valid keys: {', '.join(sorted(KNOWN_KEYS))}")
        creds, project = _credentials(credentials or config.get("service_account"), anonymous)
        options = {"api_endpoint": config["endpoint"]} if config.get("endpoint") else None
        self.client = storage.Client(project=config.get("project") or project or "ctpbackup", credentials=creds,
                                     client_options=options)
        self.bucket = self.client.bucket(name)
        self.chunk_size = int(config.get("chunk_size_bytes") or 8 * 1024 * 1024)
        self.description = f"gs://{name}" + (f" (endpoint {config['endpoint']})" if config.get("endpoint") else "")

    def _fail(self, operation: str, key: str, err: Exception) -> StorageError:
        if isinstance(err, gexc.PreconditionFailed):
            return PreconditionFailed(f"{self.description}: {key}: {operation}: precondition failed")
        if isinstance(err, gexc.NotFound):
            return ObjectNotFound(f"{self.description}: {key} not found")
        code = getattr(err, "code", "")
        return StorageError(f"{self.description}: {key}: {operation} failed: {code or type(err).__name__}")

    def open_upload(self, key: str, *, content_type: str = "application/octet-stream",
                    if_absent: bool = False) -> Upload:
        return _GCSUpload(self, key, content_type, if_absent)

    def open_read(self, key: str) -> BinaryIO:
        try:
            blob = self.bucket.get_blob(key)
            if blob is None:
                raise ObjectNotFound(f"{self.description}: {key} not found")
            return blob.open("rb", if_generation_match=blob.generation)
        except gexc.GoogleAPICallError as err:
            raise self._fail("get", key, err) from None

    def attributes(self, key: str) -> ObjectAttributes | None:
        try:
            blob = self.bucket.get_blob(key)
        except gexc.GoogleAPICallError as err:
            raise self._fail("head", key, err) from None
        if blob is None:
            return None
        return ObjectAttributes(key, int(blob.size or 0), str(blob.generation), blob.updated)

    def list(self, prefix: str) -> Iterator[ObjectAttributes]:
        try:
            for blob in self.client.list_blobs(self.bucket, prefix=prefix, page_size=1000):
                yield ObjectAttributes(blob.name, int(blob.size or 0), str(blob.generation), blob.updated)
        except gexc.GoogleAPICallError as err:
            raise self._fail("list", prefix, err) from None

    def delete(self, key: str) -> None:
        try:
            self.bucket.blob(key).delete()
        except gexc.NotFound:
            pass
        except gexc.GoogleAPICallError as err:
            raise self._fail("delete", key, err) from None

    def read(self, key: str) -> tuple[bytes, str]:
        for _ in range(5):
            try:
                blob = self.bucket.get_blob(key)
                if blob is None:
                    raise ObjectNotFound(f"{self.description}: {key} not found")
                return blob.download_as_bytes(if_generation_match=blob.generation), str(blob.generation)
            except gexc.PreconditionFailed:
                continue  # replaced between the two calls: read again
            except gexc.GoogleAPICallError as err:
                raise self._fail("get", key, err) from None
        raise StorageError(f"{self.description}: {key}: changing too fast to read")

    def _put(self, key: str, data: bytes, generation: int) -> str:
        blob = self.bucket.blob(key)
        try:
            blob.upload_from_string(data, content_type="application/json", if_generation_match=generation)
        except gexc.GoogleAPICallError as err:
            raise self._fail("conditional put", key, err) from None
        return str(blob.generation)

    def put_if_absent(self, key: str, data: bytes) -> str:
        return self._put(key, data, 0)

    def put_if_match(self, key: str, data: bytes, version: str) -> str:
        return self._put(key, data, int(version))
