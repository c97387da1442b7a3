"""`provider: Azure`: Azure Blob Storage with azure-storage-blob, configured by Thanos' Azure keys.

`bucket` is the container. Conditional writes use `If-None-Match: *` and `If-Match: <etag>`.
Uploads stream as staged blocks committed at the end: an aborted upload leaves nothing visible
(Azure discards uncommitted blocks).
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Iterator, Mapping
from typing import Any, BinaryIO

from azure.core import exceptions as aexc
from azure.storage.blob import BlobBlock, BlobServiceClient, ContentSettings

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

KNOWN_KEYS = SUPPORTED[Provider.AZURE]  # the refused ones are said in ctpbackup.storage.keys
BLOCK_SIZE = 4 * 1024 * 1024


class _AzureUpload(Upload):
    def __init__(self, bucket: AzureBucket, key: str, content_type: str, if_absent: bool = False):
        self.key = key
        self.if_absent = if_absent
        self.bucket = bucket
        self.content_type = content_type
        self._client = bucket.container.get_blob_client(key)
        self._buffer = bytearray()
        self._blocks: list[BlobBlock] = []
        self._size = 0

    def write(self, data: bytes) -> int:
        self._buffer += data
        self._size += len(data)
        while len(self._buffer) >= BLOCK_SIZE:
            self._stage(bytes(self._buffer[:BLOCK_SIZE]))
            del self._buffer[:BLOCK_SIZE]
        return len(data)

    def _stage(self, data: bytes) -> None:
        block_id = base64.b64encode(uuid.uuid4().hex.encode()).decode()
        try:
            self._client.stage_block(block_id, data)
        except aexc.AzureError as err:
            raise self.bucket.fail("stage block", self.key, err) from None
        self._blocks.append(BlobBlock(block_id=block_id))

    def commit(self) -> ObjectAttributes:
        try:
            condition = {"if_none_match": "*"} if self.if_absent else {}
            if not self._blocks:
                result = self._client.upload_blob(bytes(self._buffer), overwrite=True, **condition,
                                                  content_settings=ContentSettings(content_type=self.content_type))
            else:
                if self._buffer:
                    self._stage(bytes(self._buffer))
                    self._buffer.clear()
                result = self._client.commit_block_list(self._blocks, **condition,
                                                        content_settings=ContentSettings(content_type=self.content_type))
        except aexc.AzureError as err:
            raise self.bucket.fail("commit", self.key, err) from None
        self._buffer.clear()
        return ObjectAttributes(self.key, self._size, result.get("etag", ""), result.get("last_modified"))

    def abort(self) -> None:
        self._buffer.clear()  # staged but uncommitted blocks are discarded by the service


class AzureBucket(Bucket):
    def __init__(self, name: str, config: Mapping[str, Any], key: bytes | None):
        unknown = set(config) - KNOWN_KEYS
        if unknown:
            raise StorageError(f"unknown Azure config key(s) {', '.join(sorted(unknown))}; valid keys: {', '.join(sorted(KNOWN_KEYS))}")
        account = str(config.get("storage_account", ""))
        endpoint = str(config.get("endpoint") or "blob.core.windows.net")
        url = endpoint if "://" in endpoint else f"https://{account}.{endpoint}"
        account_key = (key.decode().strip() if key else "") or str(config.get("storage_account_key") or "")
        retries = int(config.get("max_retries") or 5)
        if account_key:
            credential: Any = {"account_name": account, "account_key": account_key}
        else:
            from azure.identity import DefaultAzureCredential  # InjectedIdentity: workload identity, MSI

            credential = DefaultAzureCredential()
        self.service = BlobServiceClient(account_url=url, credential=credential, retry_total=retries)
        self.container = self.service.get_container_client(str(config.get("container") or name))
        self.description = f"azure://{account}/{self.container.container_name}"

    def fail(self, operation: str, key: str, err: Exception) -> StorageError:
        if isinstance(err, aexc.ResourceExistsError | aexc.ResourceModifiedError):
            return PreconditionFailed(f"{self.description}: {key}: {operation}: precondition failed")
        if isinstance(err, aexc.ResourceNotFoundError):
            return ObjectNotFound(f"{self.description}: {key} not found")
        status = getattr(err, "status_code", None)
        return StorageError(f"{self.description}: {key}: {operation} failed: {status or type(err).__name__}")

    def open_upload(self, key: str, *, content_type: str = "application/octet-stream",
                    if_absent: bool = False) -> Upload:
        return _AzureUpload(self, key, content_type, if_absent)

    def open_read(self, key: str) -> BinaryIO:
        try:
            downloader = self.container.get_blob_client(key).download_blob()
        except aexc.AzureError as err:
            raise self.fail("get", key, err) from None

        class _Stream:
            def __init__(self) -> None:
                self.chunks = downloader.chunks()
                self.buffer = b""

            def read(self, n: int = -1) -> bytes:
                while n < 0 or len(self.buffer) < n:
                    chunk = next(self.chunks, None)
                    if chunk is None:
                        break
                    self.buffer += chunk
                out, self.buffer = (self.buffer, b"") if n < 0 else (self.buffer[:n], self.buffer[n:])
                return out

            def close(self) -> None:
                pass

            def __enter__(self):
                return self

            def __exit__(self, *exc) -> None:
                pass

        return _Stream()  # type: ignore[return-value]

    def attributes(self, key: str) -> ObjectAttributes | None:
        try:
            props = self.container.get_blob_client(key).get_blob_properties()
        except aexc.ResourceNotFoundError:
            return None
        except aexc.AzureError as err:
            raise self.fail("head", key, err) from None
        return ObjectAttributes(key, int(props.size), props.etag, props.last_modified)

    def list(self, prefix: str) -> Iterator[ObjectAttributes]:
        try:
            for blob in self.container.list_blobs(name_starts_with=prefix, results_per_page=1000):
                yield ObjectAttributes(blob.name, int(blob.size), blob.etag, blob.last_modified)
        except aexc.AzureError as err:
            raise self.fail("list", prefix, err) from None

    def delete(self, key: str) -> None:
        try:
            self.container.get_blob_client(key).delete_blob()
        except aexc.ResourceNotFoundError:
            pass
        except aexc.AzureError as err:
            raise self.fail("delete", key, err) from None

    def read(self, key: str) -> tuple[bytes, str]:
        try:
            downloader = self.container.get_blob_client(key).download_blob()
            return downloader.readall(), downloader.properties.etag
        except aexc.AzureError as err:
            raise self.fail("get", key, err) from None

    def put_if_absent(self, key: str, data: bytes) -> str:
        try:
            result = self.container.get_blob_client(key).upload_blob(data, overwrite=True, if_none_match="*")
        except aexc.AzureError as err:
            raise self.fail("create", key, err) from None
        return result["etag"]

    def put_if_match(self, key: str, data: bytes, version: str) -> str:
        try:
            result = self.container.get_blob_client(key).upload_blob(data, overwrite=True, if_match=version)
        except aexc.AzureError as err:
            raise self.fail("replace", key, err) from None
        return result["etag"]
