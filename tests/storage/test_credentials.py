"""Credentials from Secrets: the seed's AWS credentials file through --secrets-dir; nothing leaks."""

from __future__ import annotations

import re

import pytest

from ctpbackup.desired.model import Credentials, ObjectStorage, SecretKeyRef, SharedBackupConfig
from ctpbackup.kube.secrets import DirectorySecretSource, SecretNotFound
from ctpbackup.storage.base import StorageError
from ctpbackup.storage.factory import StorageConfigError
from ctpbackup.store.locations import open_config_bucket
from tests.fixtures.objectstores import S3_KEY_ID, S3_SECRET, make_s3_bucket, shared_credentials_file


def config(endpoint: str, bucket: str, **extra) -> SharedBackupConfig:
    return SharedBackupConfig("default", "default", ObjectStorage(
        provider="AWS", bucket=bucket, prefix="", config={"endpoint": endpoint, "insecure": True, **extra},
        credentials=Credentials("Secret", SecretKeyRef("s3-credentials", "credentials"))))


def secrets_dir(tmp_path, text: str):
    folder = tmp_path / "secrets" / "default" / "s3-credentials"
    folder.mkdir(parents=True)
    (folder / "credentials").write_text(text)
    return DirectorySecretSource(tmp_path / "secrets")


def test_seed_credentials_file_works_unchanged(tmp_path, s3_server):
    made = make_s3_bucket(s3_server)
    secrets = secrets_dir(tmp_path, shared_credentials_file())
    bucket = open_config_bucket(config(s3_server.host_port, made.name), secrets)
    bucket.put("hello.txt", b"world")
    assert made.read("hello.txt")[0] == b"world"


def test_wrong_credentials_error_names_no_secret(tmp_path, s3_server):
    made = make_s3_bucket(s3_server)
    secrets = secrets_dir(tmp_path, shared_credentials_file(S3_KEY_ID, "wrong-" + S3_SECRET))
    bucket = open_config_bucket(config(s3_server.host_port, made.name + "-missing"), secrets)
    with pytest.raises(StorageError, match=r": x: put failed: NoSuchBucket The specified bucket does not exist$") as err:
        bucket.put("x", b"y")
    assert S3_SECRET not in str(err.value) and "wrong-" not in str(err.value)
    assert secrets.redactor.scrub(f"leak: wrong-{S3_SECRET}") == "leak: ***"


def test_missing_secret_is_a_clear_error(tmp_path, s3_server):
    with pytest.raises(StorageConfigError, match="Secret default/s3-credentials not found"):
        open_config_bucket(config(s3_server.host_port, "any"), DirectorySecretSource(tmp_path / "none"))


def test_unknown_config_key_is_refused(tmp_path, s3_server):
    secrets = secrets_dir(tmp_path, shared_credentials_file())
    with pytest.raises(StorageConfigError, match="unknown S3 config key.*endpont"):
        open_config_bucket(config(s3_server.host_port, "any", endpont="typo"), secrets)


@pytest.mark.parametrize("name", ["../etc", "a/b", ".."])
def test_secret_paths_cannot_escape(tmp_path, name):
    with pytest.raises(SecretNotFound, match=f"^invalid Secret reference default/{re.escape(name)}$"):
        DirectorySecretSource(tmp_path).get("default", name, "credentials")


def test_not_a_credentials_file(tmp_path, s3_server):
    secrets = secrets_dir(tmp_path, "just-a-token-value")
    with pytest.raises(StorageConfigError, match="not an AWS shared-credentials file|no \\[default\\] profile"):
        open_config_bucket(config(s3_server.host_port, "any"), secrets)


@pytest.mark.parametrize("sse, expected", [
    ({"type": "SSE-S3"}, "AES256"),
    ({"type": "SSE-KMS", "kms_key_id": "alias/backups", "kms_encryption_context": {"team": "platform"}}, "aws:kms"),
])
def test_server_side_encryption_from_sse_config(tmp_path, s3_server, sse, expected):
    made = make_s3_bucket(s3_server)
    secrets = secrets_dir(tmp_path, shared_credentials_file())
    bucket = open_config_bucket(config(s3_server.host_port, made.name, sse_config=sse), secrets)
    bucket.put("enc/archive.tar.gz", b"x" * 1000)
    bucket.put_if_absent("enc/index.json", b"{}")
    for key in ("enc/archive.tar.gz", "enc/index.json"):
        head = made.client.head_object(Bucket=made.name, Key=key)
        assert head["ServerSideEncryption"] == expected


def test_unknown_sse_type_is_refused(tmp_path, s3_server):
    secrets = secrets_dir(tmp_path, shared_credentials_file())
    with pytest.raises(StorageConfigError, match="sse_config.type"):
        open_config_bucket(config(s3_server.host_port, "any", sse_config={"type": "ROT13"}), secrets)
