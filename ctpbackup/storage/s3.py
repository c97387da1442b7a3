"""`provider: AWS`: Amazon S3 and any S3-compatible store, with boto3, configured by Thanos' S3 keys.

Conditional writes use `If-None-Match: *` (create-if-absent) and `If-Match: <etag>`
(replace-if-unchanged), which S3 has honoured since 2024. Large objects stream as multipart uploads;
an aborted upload leaves no visible object, and `abort_incomplete_uploads` sweeps after a crash.
"""

from __future__ import annotations

import base64
import configparser
import hashlib
import json
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, BinaryIO

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

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

PART_SIZE = 8 * 1024 * 1024
#: Thanos S3 config keys this provider reads (others are refused, so a typo is not silently ignored)
KNOWN_KEYS = SUPPORTED[Provider.AWS]  # the refused ones are said in ctpbackup.storage.keys


def parse_shared_credentials(text: bytes, profile: str = "default") -> dict[str, str]:
    """An AWS shared-credentials file (`[default]`, `aws_access_key_id = ...`) to boto3 arguments.
    Values are data as the AWS CLI reads them: no `%` interpolation and no inline comments, so a
    secret holding `%`, `#` or `;` is taken whole (and never quoted in an error)."""
    parser = configparser.ConfigParser(interpolation=None)  # a `%` in a secret is data, not a reference
    try:
        parser.read_string(text.decode("utf-8"))
    except (configparser.Error, UnicodeDecodeError):
        raise StorageError("the credentials Secret is not an AWS shared-credentials file") from None
    if profile not in parser:
        raise StorageError(f"the credentials Secret has no [{profile}] profile")
    section = parser[profile]
    if "aws_access_key_id" not in section or "aws_secret_access_key" not in section:
        raise StorageError(f"the [{profile}] profile needs aws_access_key_id and aws_secret_access_key")
    out = {"aws_access_key_id": section["aws_access_key_id"].strip(),
           "aws_secret_access_key": section["aws_secret_access_key"].strip()}
    if section.get("aws_session_token"):
        out["aws_session_token"] = section["aws_session_token"].strip()
    return out


def _sse_arguments(sse: Mapping[str, Any] | None) -> tuple[dict[str, str], dict[str, str]]:
    """(arguments for writes, arguments for reads) of a Thanos sse_config."""
    if not sse:
        return {}, {}
    kind = sse.get("type", "")
    if kind == "SSE-S3":
        return {"ServerSideEncryption": "AES256"}, {}
    if kind == "SSE-KMS":
        write = {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": str(sse.get("kms_key_id", ""))}
        if sse.get("kms_encryption_context"):
            context = json.dumps(sse["kms_encryption_context"], sort_keys=True).encode()
            write["SSEKMSEncryptionContext"] = base64.b64encode(context).decode()
        return write, {}
    if kind == "SSE-C":
        key_file = sse.get("encryption_key", "")
        try:
            key = Path(key_file).read_bytes()
        except OSError:
            raise StorageError(f"sse_config.encryption_key: cannot read the key file {key_file!r}") from None
        if len(key) != 32:
            raise StorageError("sse_config.encryption_key: an SSE-C key is 32 bytes")
        both = {"SSECustomerAlgorithm": "AES256", "SSECustomerKey": base64.b64encode(key).decode(),
                "SSECustomerKeyMD5": base64.b64encode(hashlib.md5(key).digest()).decode()}  # noqa: S324 - S3 asks for MD5
        return both, both
    raise StorageError(f"sse_config.type {kind!r} is not one of SSE-S3, SSE-KMS, SSE-C")


class _S3Upload(Upload):
    def __init__(self, bucket: S3Bucket, key: str, content_type: str, if_absent: bool = False):
        self.key = key
        self.if_absent = if_absent
        self.bucket = bucket
        self.content_type = content_type
        self._buffer = bytearray()
        self._upload_id: str | None = None
        self._parts: list[dict[str, Any]] = []
        self._digest = hashlib.sha256()
        self._size = 0
        self._done = False

    def write(self, data: bytes) -> int:
        self._buffer += data
        self._size += len(data)
        while len(self._buffer) >= self.bucket.part_size:
            self._send_part(bytes(self._buffer[: self.bucket.part_size]))
            del self._buffer[: self.bucket.part_size]
        return len(data)

    def _send_part(self, data: bytes) -> None:
        b = self.bucket
        if self._upload_id is None:
            created = b.call("start upload", self.key, b.client.create_multipart_upload, Bucket=b.name, Key=self.key,
                             ContentType=self.content_type, **b.write_args)
            self._upload_id = created["UploadId"]
        number = len(self._parts) + 1
        sse = {k: v for k, v in b.write_args.items() if k.startswith("SSECustomer")}
        part = b.call("upload part", self.key, b.client.upload_part, Bucket=b.name, Key=self.key,
                      UploadId=self._upload_id, PartNumber=number, Body=data, **sse)
        self._parts.append({"PartNumber": number, "ETag": part["ETag"]})

    def commit(self) -> ObjectAttributes:
        b = self.bucket
        condition = {"IfNoneMatch": "*"} if self.if_absent else {}
        if self._upload_id is None:
            result = b.call("put", self.key, b.client.put_object, Bucket=b.name, Key=self.key, Body=bytes(self._buffer),
                            ContentType=self.content_type, **condition, **b.write_args)
        else:
            if self._buffer:
                self._send_part(bytes(self._buffer))
                self._buffer.clear()
            # S3 checks If-None-Match on CompleteMultipartUpload too (since 2024); on a 412 the upload
            # stays open: abort() discards its parts
            result = b.call("complete upload", self.key, b.client.complete_multipart_upload, Bucket=b.name,
                            Key=self.key, UploadId=self._upload_id, MultipartUpload={"Parts": self._parts},
                            **condition)
        self._done = True
        return ObjectAttributes(self.key, self._size, result.get("ETag", ""), datetime.now(UTC))

    def abort(self) -> None:
        if self._done:
            return
        self._done = True
        if self._upload_id is not None:
            b = self.bucket
            b.call("abort upload", self.key, b.client.abort_multipart_upload, Bucket=b.name, Key=self.key,
                   UploadId=self._upload_id)


class S3Bucket(Bucket):
    def __init__(self, name: str, config: Mapping[str, Any], credentials: dict[str, str] | None = None):
        unknown = set(config) - KNOWN_KEYS
        if unknown:
            raise StorageError(f"unknown S3 config key(s) {', '.join(sorted(unknown))}; valid keys: {', '.join(sorted(KNOWN_KEYS))}")
        self.name = name
        endpoint = str(config.get("endpoint", "") or "")
        insecure = bool(config.get("insecure", False))
        if endpoint and "://" not in endpoint:
            endpoint = ("http://" if insecure else "https://") + endpoint
        lookup = config.get("bucket_lookup_type", "auto")
        addressing = "path" if lookup == "path" or (lookup == "auto" and endpoint and "amazonaws.com" not in endpoint) else (
            "virtual" if lookup in ("virtual-hosted", "virtual") else "auto")
        http = config.get("http_config") or {}
        self.part_size = int(config.get("part_size") or PART_SIZE)
        boto_config = Config(
            region_name=config.get("region") or "us-east-1",
            signature_version="s3" if config.get("signature_version2") else "s3v4",
            s3={"addressing_style": addressing},
            retries={"max_attempts": int(config.get("max_retries") or 5), "mode": "standard"},
            connect_timeout=_seconds(http.get("dial_timeout"), 10),
            read_timeout=_seconds(http.get("response_header_timeout") or http.get("idle_conn_timeout"), 60),
            max_pool_connections=32,
        )
        creds = dict(credentials or {})
        if not creds and config.get("access_key") and config.get("secret_key"):
            creds = {"aws_access_key_id": str(config["access_key"]), "aws_secret_access_key": str(config["secret_key"])}
            if config.get("session_token"):
                creds["aws_session_token"] = str(config["session_token"])
        session = boto3.session.Session(**creds)  # no keys: the default chain (IRSA, instance role, env)
        self.client = session.client("s3", endpoint_url=endpoint or None, config=boto_config,
                                     verify=not bool(http.get("insecure_skip_verify", False)))
        self.write_args, self.sse_read = _sse_arguments(config.get("sse_config"))
        # Thanos' storage_class and put_user_metadata: on every object this bucket writes
        if config.get("storage_class"):
            self.write_args = {**self.write_args, "StorageClass": str(config["storage_class"])}
        if config.get("put_user_metadata"):
            self.write_args = {**self.write_args, "Metadata": {str(k): str(v) for k, v in config["put_user_metadata"].items()}}
        where = f" (endpoint {endpoint})" if endpoint else ""
        self.description = f"s3://{name}{where}"

    def call(self, operation: str, key: str, fn, **kwargs):
        try:
            return fn(**kwargs)
        except ClientError as err:
            error = err.response.get("Error", {})
            code = str(error.get("Code", ""))
            status = err.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if code in ("PreconditionFailed", "ConditionalRequestConflict") or status == 412:
                raise PreconditionFailed(f"{self.description}: {key}: {operation}: precondition failed") from None
            if code in ("NoSuchKey", "404", "NotFound"):
                raise ObjectNotFound(f"{self.description}: {key} not found") from None
            raise StorageError(f"{self.description}: {key}: {operation} failed: {code} {error.get('Message', '')}".rstrip()) from None
        except BotoCoreError as err:
            raise StorageError(f"{self.description}: {key}: {operation} failed: {type(err).__name__}") from None

    def open_upload(self, key: str, *, content_type: str = "application/octet-stream",
                    if_absent: bool = False) -> Upload:
        return _S3Upload(self, key, content_type, if_absent)

    def open_read(self, key: str) -> BinaryIO:
        result = self.call("get", key, self.client.get_object, Bucket=self.name, Key=key, **self.sse_read)
        return result["Body"]

    def attributes(self, key: str) -> ObjectAttributes | None:
        try:
            head = self.call("head", key, self.client.head_object, Bucket=self.name, Key=key, **self.sse_read)
        except ObjectNotFound:
            return None
        return ObjectAttributes(key, int(head["ContentLength"]), head.get("ETag", ""), head.get("LastModified"))

    def list(self, prefix: str) -> Iterator[ObjectAttributes]:
        paginator = self.client.get_paginator("list_objects_v2")
        try:
            for page in paginator.paginate(Bucket=self.name, Prefix=prefix, PaginationConfig={"PageSize": 1000}):
                for item in page.get("Contents", ()):
                    yield ObjectAttributes(item["Key"], int(item["Size"]), item.get("ETag", ""), item.get("LastModified"))
        except (ClientError, BotoCoreError) as err:
            raise StorageError(f"{self.description}: list {prefix!r} failed: {type(err).__name__}") from None

    def delete(self, key: str) -> None:
        self.call("delete", key, self.client.delete_object, Bucket=self.name, Key=key)

    def read(self, key: str) -> tuple[bytes, str]:
        result = self.call("get", key, self.client.get_object, Bucket=self.name, Key=key, **self.sse_read)
        return result["Body"].read(), result.get("ETag", "")

    def put_if_absent(self, key: str, data: bytes) -> str:
        result = self.call("create", key, self.client.put_object, Bucket=self.name, Key=key, Body=data, IfNoneMatch="*",
                           ContentType="application/json", **self.write_args)
        return result.get("ETag", "")

    def put_if_match(self, key: str, data: bytes, version: str) -> str:
        result = self.call("replace", key, self.client.put_object, Bucket=self.name, Key=key, Body=data, IfMatch=version,
                           ContentType="application/json", **self.write_args)
        return result.get("ETag", "")

    def list_incomplete_uploads(self, prefix: str) -> Iterator[str]:
        result = self.call("list uploads", prefix, self.client.list_multipart_uploads, Bucket=self.name, Prefix=prefix)
        for upload in result.get("Uploads", ()):
            yield upload["Key"]

    def abort_incomplete_uploads(self, prefix: str, older_than_seconds: float,
                                 select: Callable[[str], bool] | None = None) -> int:
        result = self.call("list uploads", prefix, self.client.list_multipart_uploads, Bucket=self.name, Prefix=prefix)
        cutoff = datetime.now(UTC) - timedelta(seconds=older_than_seconds)
        count = 0
        for upload in result.get("Uploads", ()):
            if select is not None and not select(upload["Key"]):
                continue
            initiated = upload.get("Initiated")
            if initiated is None or initiated <= cutoff:
                self.call("abort upload", upload["Key"], self.client.abort_multipart_upload, Bucket=self.name,
                          Key=upload["Key"], UploadId=upload["UploadId"])
                count += 1
        return count


def _seconds(value: Any, default: float) -> float:
    """Thanos durations ('90s', '1m') or numbers to seconds."""
    if value in (None, ""):
        return default
    if isinstance(value, int | float):
        return float(value)
    from ctpbackup.rules.durations import parse_duration

    try:
        return parse_duration(str(value)).total_seconds()
    except ValueError:
        return default
