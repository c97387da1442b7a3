"""The Thanos objstore keys of `spec.objectStorage.config`, per provider: those this job honours,
and those it refuses because it does not do what Thanos documents for them. One list, read by
`validate` (one line per refused key, at its line) and by each provider (a bucket opened with a
key outside it fails). Key names and meanings: thanos-io/objstore's `providers/s3`, `gcs`, `azure`
config structs and docs/storage.md.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ctpbackup.storage.base import Provider

#: keys each provider reads and does what Thanos documents for them
SUPPORTED: dict[str, frozenset[str]] = {
    Provider.AWS: frozenset({
        "bucket", "endpoint", "region", "insecure", "signature_version2", "bucket_lookup_type", "sse_config",
        "http_config", "part_size", "max_retries", "access_key", "secret_key", "session_token",
        "storage_class",  # StorageClass on every object written
        "put_user_metadata",  # x-amz-meta-* on every object written
        "list_objects_version",  # only "v2" (ListObjectsV2, what the job uses)
        "disable_dualstack",  # only true: boto3 never uses dual-stack endpoints unless asked
        "aws_sdk_auth",  # the AWS SDK's default credential chain is what the job uses without a Secret
    }),
    Provider.GCP: frozenset({"bucket", "service_account", "endpoint", "project", "chunk_size_bytes"}),
    Provider.AZURE: frozenset({"bucket", "storage_account", "storage_account_key", "container", "endpoint", "max_retries"}),
}

#: keys Thanos knows that this job refuses, with why (one line each in `validate`)
NOT_SUPPORTED: dict[str, dict[str, str]] = {
    Provider.AWS: {
        "sts_endpoint": "the AWS SDK's default STS endpoint is used (set AWS_STS_REGIONAL_ENDPOINTS in the pod instead)",
        "send_content_md5": "boto3 sends a CRC32 checksum with every upload instead (S3 Object Lock accepts it)",
        "trace": "request tracing is not built in (use -vv for debug logging)",
    },
    Provider.GCP: {
        "use_grpc": "the JSON API over HTTP is used",
        "grpc_conn_pool_size": "the JSON API over HTTP is used",
        "http_config": "the google-cloud-storage client's own HTTP settings are used",
        "max_retries": "the google-cloud-storage client's default retry policy is used",
    },
    Provider.AZURE: {
        "storage_connection_string": "it carries the account key; put the key in the credentials Secret",
        "msi_resource": "managed identities are found by the Azure SDK's default chain (source: InjectedIdentity)",
        "user_assigned_id": "managed identities are found by the Azure SDK's default chain (source: InjectedIdentity)",
        "reader_config": "the Azure SDK's default download settings are used",
        "pipeline_config": "use max_retries",
        "http_config": "the Azure SDK's default HTTP settings are used",
    },
}

#: storage classes whose objects cannot be read at once (a restore and the index must read them)
COLD_STORAGE_CLASSES = ("GLACIER", "DEEP_ARCHIVE")


def problems(provider: str, config: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(key, message) for each key of `config` that is refused, unknown or has a value this job
    cannot honour; empty when every key will do what Thanos documents. Providers without a list
    (Filesystem, our extension) take no keys and are not checked here."""
    if provider not in SUPPORTED:
        return []
    import difflib

    found: list[tuple[str, str]] = []
    known = SUPPORTED[provider]
    for key in sorted(config):
        value = config[key]
        if key in NOT_SUPPORTED[provider]:
            found.append((key, f"{key!r} is not supported: {NOT_SUPPORTED[provider][key]}"))
        elif key not in known:
            close = difflib.get_close_matches(key, sorted(known | set(NOT_SUPPORTED[provider])), n=1, cutoff=0.6)
            hint = f" (did you mean {close[0]!r}?)" if close else f"; valid keys: {', '.join(sorted(known))}"
            found.append((key, f"unknown {provider} config key {key!r}{hint}"))
        elif provider == Provider.AWS:
            message = _aws_value(key, value)
            if message:
                found.append((key, message))
    return found


def _aws_value(key: str, value: Any) -> str:
    if key == "storage_class":
        if not isinstance(value, str) or not value:
            return "storage_class must be a storage class name such as STANDARD_IA or GLACIER_IR"
        if value.upper() in COLD_STORAGE_CLASSES:
            return (f"storage_class {value!r} is not supported: its objects cannot be read at once, and restores and "
                    "the index must read them (GLACIER_IR can)")
    if key == "put_user_metadata" and not (isinstance(value, Mapping) and all(
            isinstance(k, str) and isinstance(v, str) for k, v in value.items())):
        return "put_user_metadata must map names to string values"
    if key == "list_objects_version" and value not in ("v2", ""):
        return f"list_objects_version {value!r} is not supported: only 'v2' (ListObjectsV2) is"
    if key == "disable_dualstack" and value is not True:
        return "disable_dualstack: false is not supported: dual-stack endpoints are never used (only true is accepted)"
    if key == "aws_sdk_auth" and not isinstance(value, bool):
        return "aws_sdk_auth must be true or false"
    return ""
