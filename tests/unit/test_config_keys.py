"""Every Thanos objstore key of spec.objectStorage.config either does what Thanos documents (seen on
the stored object where the test server shows it) or `validate` refuses it in one line."""

from __future__ import annotations

import pytest

from ctpbackup.desired.manifests import ManifestFile, load_desired_state
from ctpbackup.storage.keys import NOT_SUPPORTED, SUPPORTED
from ctpbackup.storage.s3 import S3Bucket
from tests.fixtures.objectstores import S3_KEY_ID, S3_SECRET, s3_config

CONFIG = """apiVersion: spaces.upbound.io/v1alpha1
kind: SharedBackupConfig
metadata: {name: store}
spec:
  objectStorage:
    provider: %s
    bucket: backups
    credentials: {source: InjectedIdentity}
    config:
      %s
"""


def errors(provider: str, line: str) -> list[str]:
    result = load_desired_state([ManifestFile("c.yaml", (CONFIG % (provider, line)).encode())], "abc")
    return [str(p) for p in result.errors]


REFUSED = [(provider, key, reason) for provider, keys in sorted(NOT_SUPPORTED.items())
           for key, reason in sorted(keys.items())]


@pytest.mark.parametrize("provider, key, reason", REFUSED, ids=[f"{p}-{k}" for p, k, _ in REFUSED])
def test_a_key_not_honoured_is_refused_in_one_line(provider, key, reason):
    assert errors(provider, f"{key}: x") == [
        f"c.yaml:10: SharedBackupConfig default/store: spec.objectStorage.config.{key}: {key!r} is not supported: {reason}"]


@pytest.mark.parametrize("provider, key", [
    ("AWS", "sts_endpoint"), ("AWS", "send_content_md5"), ("AWS", "trace"), ("GCP", "use_grpc"),
    ("GCP", "grpc_conn_pool_size"), ("GCP", "http_config"), ("GCP", "max_retries"), ("Azure", "storage_connection_string"),
    ("Azure", "msi_resource"), ("Azure", "user_assigned_id"), ("Azure", "reader_config"), ("Azure", "pipeline_config"),
    ("Azure", "http_config"),
])
def test_every_key_the_issue_lists_is_refused_or_honoured(provider, key):
    """The keys once accepted and ignored: each is now in one list or the other, never both."""
    assert (key in NOT_SUPPORTED[provider]) != (key in SUPPORTED[provider])


@pytest.mark.parametrize("provider, line, expected", [
    ("AWS", "storage_class: GLACIER", "spec.objectStorage.config.storage_class: storage_class 'GLACIER' is not "
     "supported: its objects cannot be read at once, and restores and the index must read them (GLACIER_IR can)"),
    ("AWS", "storage_class: deep_archive", "spec.objectStorage.config.storage_class: storage_class 'deep_archive' is not "
     "supported: its objects cannot be read at once, and restores and the index must read them (GLACIER_IR can)"),
    ("AWS", "put_user_metadata: {team: 7}", "spec.objectStorage.config.put_user_metadata: put_user_metadata must map "
     "names to string values"),
    ("AWS", "list_objects_version: v1", "spec.objectStorage.config.list_objects_version: list_objects_version 'v1' is "
     "not supported: only 'v2' (ListObjectsV2) is"),
    ("AWS", "disable_dualstack: false", "spec.objectStorage.config.disable_dualstack: disable_dualstack: false is not "
     "supported: dual-stack endpoints are never used (only true is accepted)"),
    ("AWS", "storage_clas: STANDARD_IA", "spec.objectStorage.config.storage_clas: unknown AWS config key "
     "'storage_clas' (did you mean 'storage_class'?)"),
    ("GCP", "chunk_size: 1", "spec.objectStorage.config.chunk_size: unknown GCP config key 'chunk_size' (did you mean "
     "'chunk_size_bytes'?)"),
])
def test_a_value_not_honoured_is_refused_in_one_line(provider, line, expected):
    assert errors(provider, line) == [f"c.yaml:10: SharedBackupConfig default/store: {expected}"]


@pytest.mark.parametrize("provider, line", [
    ("AWS", "storage_class: GLACIER_IR"), ("AWS", "storage_class: STANDARD_IA"),
    ("AWS", "put_user_metadata: {team: platform}"), ("AWS", "list_objects_version: v2"),
    ("AWS", "disable_dualstack: true"), ("AWS", "aws_sdk_auth: true"), ("AWS", "aws_sdk_auth: false"),
    ("AWS", "part_size: 5242880"), ("GCP", "chunk_size_bytes: 262144"), ("Azure", "max_retries: 2"),
])
def test_a_key_honoured_passes_validate(provider, line):
    assert errors(provider, line) == []


def s3_bucket(server, **extra) -> S3Bucket:
    import uuid

    name = f"b-{uuid.uuid4().hex[:12]}"
    plain = S3Bucket(name, s3_config(server, name), {"aws_access_key_id": S3_KEY_ID, "aws_secret_access_key": S3_SECRET})
    plain.client.create_bucket(Bucket=name)
    return S3Bucket(name, {**s3_config(server, name), **extra},
                    {"aws_access_key_id": S3_KEY_ID, "aws_secret_access_key": S3_SECRET})


@pytest.mark.parametrize("storage_class", ["STANDARD_IA", "GLACIER_IR", "ONEZONE_IA"])
def test_storage_class_is_on_every_object_written(s3_server, storage_class):
    bucket = s3_bucket(s3_server, storage_class=storage_class, part_size=5 * 1024 * 1024)
    bucket.put("small", b"x")  # one PutObject
    with bucket.open_upload("large") as upload:  # a multipart upload
        upload.write(b"y" * (6 * 1024 * 1024))
        upload.commit()
    bucket.put_if_absent("index.json", b"{}")  # the index's conditional writes too
    for key in ("small", "large", "index.json"):
        assert bucket.client.head_object(Bucket=bucket.name, Key=key)["StorageClass"] == storage_class
    assert bucket.read("small")[0] == b"x"  # still readable at once


def test_no_storage_class_leaves_the_default(s3_server):
    bucket = s3_bucket(s3_server)
    bucket.put("small", b"x")
    assert "StorageClass" not in bucket.client.head_object(Bucket=bucket.name, Key="small")  # STANDARD


def test_put_user_metadata_is_on_every_object_written(s3_server):
    bucket = s3_bucket(s3_server, put_user_metadata={"team": "platform", "cost-center": "42"}, part_size=5 * 1024 * 1024)
    bucket.put("small", b"x")
    with bucket.open_upload("large") as upload:
        upload.write(b"y" * (6 * 1024 * 1024))
        upload.commit()
    version = bucket.put_if_absent("index.json", b"{}")
    bucket.put_if_match("index.json", b"{\"a\": 1}", version)
    for key in ("small", "large", "index.json"):
        assert bucket.client.head_object(Bucket=bucket.name, Key=key)["Metadata"] == {"team": "platform",
                                                                                      "cost-center": "42"}


def test_list_objects_v2_and_aws_sdk_auth_keep_working(s3_server):
    bucket = s3_bucket(s3_server, list_objects_version="v2", aws_sdk_auth=True, disable_dualstack=True)
    for i in range(3):
        bucket.put(f"p/{i}", b"z")
    assert [a.key for a in bucket.list("p/")] == ["p/0", "p/1", "p/2"]
