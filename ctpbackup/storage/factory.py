"""Open a bucket from plain values: (provider, bucket name, config mapping, credential bytes), the
one factory `switch` Thanos objstore has. It knows nothing of manifests or Secret sources; the
mapping from a SharedBackupConfig and its Secret to these values is `ctpbackup.store.locations`'s."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from ctpbackup.storage.base import Bucket, StorageError


class StorageConfigError(StorageError):
    """The storage settings cannot be used. The message says what, not which config: the caller
    (ctpbackup.store.locations) names the config once."""


def open_bucket(provider: str, bucket: str, config: Mapping[str, Any] | None = None,
                credentials: bytes | None = None, *, redact: Callable[[str], None] | None = None) -> Bucket:
    """A bucket of `provider` ("AWS", "GCP", "Azure", or "Filesystem": `bucket` is then a local
    folder). `config` holds the Thanos objstore keys of that provider (a `bucket` key in it is
    ignored: the `bucket` argument wins, as in Thanos); `credentials` are the bytes of the
    credential file (AWS shared-credentials file, GCP service-account JSON, Azure account key), or
    None for the SDK's default chain. `redact` is called with each secret value parsed out of
    `credentials` (AWS), so logs can scrub it. Nothing is sent to the provider here. Raises
    StorageConfigError (unknown provider, a config key or value refused, unreadable credentials)."""
    settings = dict(config or {})
    settings.pop("bucket", None)  # Thanos semantics: spec.objectStorage.bucket wins
    try:
        if provider == "Filesystem":
            from ctpbackup.storage.filesystem import FilesystemBucket

            return FilesystemBucket(bucket)
        if provider == "AWS":
            from ctpbackup.storage.s3 import S3Bucket, parse_shared_credentials

            parsed = parse_shared_credentials(credentials) if credentials is not None else None
            if redact is not None:
                for value in (parsed or {}).values():  # each value on its own, whatever its line looked like
                    redact(value)
            return S3Bucket(bucket, settings, parsed)
        if provider == "GCP":
            from ctpbackup.storage.gcs import GCSBucket

            return GCSBucket(bucket, settings, credentials)
        if provider == "Azure":
            from ctpbackup.storage.azure import AzureBucket

            return AzureBucket(bucket, settings, credentials)
    except StorageConfigError:
        raise
    except StorageError as err:
        raise StorageConfigError(str(err)) from None
    raise StorageConfigError(f"provider {provider!r} is not supported")
