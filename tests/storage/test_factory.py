"""The storage factory takes plain values (issue 18, item 4): provider, bucket, config mapping and
credential bytes; it imports nothing of manifests or Secret sources, and this test imports no model."""

from __future__ import annotations

import subprocess
import sys

import pytest

from ctpbackup.storage.factory import StorageConfigError, open_bucket
from ctpbackup.storage.filesystem import FilesystemBucket
from tests.fixtures.objectstores import S3_KEY_ID, S3_SECRET, make_s3_bucket, shared_credentials_file


def s3_config(s3_server, **extra) -> dict:
    return {"endpoint": s3_server.host_port, "insecure": True, **extra}


def test_a_folder_bucket_from_plain_values(tmp_path):
    bucket = open_bucket("Filesystem", str(tmp_path / "b"))
    assert isinstance(bucket, FilesystemBucket)
    assert bucket.description == f"file://{tmp_path / 'b'}"
    bucket.put("x/y.txt", b"z")
    assert (tmp_path / "b" / "x" / "y.txt").read_bytes() == b"z"


@pytest.mark.parametrize("config_bucket", [None, "another-bucket", ""])
def test_an_s3_bucket_from_plain_values_and_the_bucket_argument_wins(s3_server, config_bucket):
    made = make_s3_bucket(s3_server)
    extra = {} if config_bucket is None else {"bucket": config_bucket}
    seen: list[str] = []
    bucket = open_bucket("AWS", made.name, s3_config(s3_server, **extra), shared_credentials_file().encode(),
                         redact=seen.append)
    bucket.put("hello.txt", b"world")
    assert made.read("hello.txt")[0] == b"world"
    assert seen == [S3_KEY_ID, S3_SECRET]


@pytest.mark.parametrize(("text", "message"), [
    (b"just-a-token-value", r"^the credentials Secret is not an AWS shared-credentials file$"),
    (b"[other]\naws_access_key_id = a\naws_secret_access_key = b\n", r"^the credentials Secret has no \[default\] profile$"),
    (b"[default]\naws_access_key_id = a\n",
     r"^the \[default\] profile needs aws_access_key_id and aws_secret_access_key$"),
    (b"\xff\xfe", r"^the credentials Secret is not an AWS shared-credentials file$"),
])
def test_unusable_aws_credentials_are_refused_without_quoting_them(s3_server, text, message):
    seen: list[str] = []
    with pytest.raises(StorageConfigError, match=message):
        open_bucket("AWS", "any", s3_config(s3_server), text, redact=seen.append)
    assert seen == []


@pytest.mark.parametrize(("config", "message"), [
    ({"endpont": "typo"}, r"^unknown S3 config key\(s\) endpont; valid keys: "),
    ({"sse_config": {"type": "ROT13"}}, r"^sse_config.type .ROT13. is not one of SSE-S3, SSE-KMS, SSE-C$"),
])
def test_refused_config_keys_fail_at_open(s3_server, config, message):
    with pytest.raises(StorageConfigError, match=message):
        open_bucket("AWS", "any", s3_config(s3_server, **config), shared_credentials_file().encode())


@pytest.mark.parametrize("provider", ["Swift", "aws", "", "S3"])
def test_an_unknown_provider_is_refused(tmp_path, provider):
    with pytest.raises(StorageConfigError, match=rf"^provider {provider!r} is not supported$"):
        open_bucket(provider, str(tmp_path / "b"), {}, None)


def test_the_factory_imports_no_model_and_no_secret_source(tmp_path):
    code = ("import sys\nfrom ctpbackup.storage.factory import open_bucket\n"
            f"open_bucket('Filesystem', {str(tmp_path / 'b')!r})\n"
            "print(sorted(m for m in sys.modules if m.startswith(('ctpbackup.desired', 'ctpbackup.kube'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out == "[]\n"
