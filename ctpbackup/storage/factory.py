"""Open the bucket a SharedBackupConfig names, with its credentials. Nothing above this module knows
which provider it talks to."""

from __future__ import annotations

from ctpbackup.desired.model import SharedBackupConfig
from ctpbackup.kube.secrets import SecretSource, SecretUnreadable
from ctpbackup.storage.base import Bucket, StorageError


class StorageConfigError(StorageError):
    """The SharedBackupConfig's storage settings cannot be used. The message says what, not which
    config: the caller (ctpbackup.store.locations) names the config once."""


def _credentials(config: SharedBackupConfig, secrets: SecretSource) -> bytes | None:
    creds = config.object_storage.credentials
    if creds.source != "Secret":
        return None  # InjectedIdentity: the SDK's default chain
    ref = creds.secret_ref
    assert ref is not None  # the schema requires it for source Secret
    try:
        return secrets.get(config.namespace, ref.name, ref.key)
    except SecretUnreadable as err:
        raise StorageConfigError(f"credentials: {err}") from None


def open_bucket(config: SharedBackupConfig, secrets: SecretSource) -> Bucket:
    storage = config.object_storage
    settings = dict(storage.config)
    settings.pop("bucket", None)  # Thanos semantics: spec.objectStorage.bucket wins
    raw = _credentials(config, secrets)
    try:
        if storage.provider == "Filesystem":
            from ctpbackup.storage.filesystem import FilesystemBucket

            return FilesystemBucket(storage.bucket)
        if storage.provider == "AWS":
            from ctpbackup.storage.s3 import S3Bucket, parse_shared_credentials

            credentials = parse_shared_credentials(raw) if raw is not None else None
            for value in (credentials or {}).values():  # each value on its own, whatever its line looked like
                secrets.redactor.add(value)
            return S3Bucket(storage.bucket, settings, credentials)
        if storage.provider == "GCP":
            from ctpbackup.storage.gcs import GCSBucket

            return GCSBucket(storage.bucket, settings, raw)
        if storage.provider == "Azure":
            from ctpbackup.storage.azure import AzureBucket

            return AzureBucket(storage.bucket, settings, raw)
    except StorageConfigError:
        raise
    except StorageError as err:
        raise StorageConfigError(str(err)) from None
    raise StorageConfigError(f"provider {storage.provider!r} is not supported")
