"""The client-side encryption stream: round trips at every chunk boundary, and every way of
tampering with it (a flipped bit, a dropped, reordered or appended chunk, a cut) fails to decrypt."""

from __future__ import annotations

import base64
import hashlib
import io
import os
import struct
import tarfile

import pytest

from ctpbackup import archive
from ctpbackup.archive import ArchiveReader, ArchiveWriter
from ctpbackup.encryption import (
    CHUNK,
    MAGIC,
    EncryptingWriter,
    EncryptionError,
    backup_context,
    decrypt_stream,
    parse_key,
)

KEY = bytes(range(32))
CONTEXT = backup_context("default", "ctp1", "b1")
HEADER = len(MAGIC) + 12


def encrypt(plain: bytes, key: bytes = KEY, pieces: int = 7, context: bytes = CONTEXT) -> bytes:
    sink = io.BytesIO()
    writer = EncryptingWriter(sink, key, context)
    step = max(1, len(plain) // pieces)
    for start in range(0, len(plain), step):
        writer.write(plain[start:start + step])
    writer.close()
    return sink.getvalue()


def decrypt(stored: bytes, key: bytes = KEY, context: bytes = CONTEXT) -> bytes:
    return b"".join(decrypt_stream(io.BytesIO(stored), key, context))


def chunks(stored: bytes) -> list[bytes]:
    """The framed chunks after the header, each with its length prefix."""
    out, at = [], HEADER
    while at < len(stored):
        (length,) = struct.unpack(">I", stored[at:at + 4])
        out.append(stored[at:at + 4 + length])
        at += 4 + length
    return out


@pytest.mark.parametrize("size", [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK + 17])
def test_round_trip_at_every_chunk_boundary(size):
    plain = os.urandom(size)
    stored = encrypt(plain)
    assert stored.startswith(MAGIC)
    assert decrypt(stored) == plain
    assert len(chunks(stored)) == max(1, -(-size // CHUNK))


def test_same_plaintext_encrypts_differently_each_time():
    plain = b"super-secret-secret" * 100
    first, second = encrypt(plain), encrypt(plain)
    assert first != second
    assert plain[:19] not in first


def test_another_backups_archive_does_not_decrypt_in_its_place():
    """Same key, another backup (or control plane): someone who can write to the bucket cannot swap
    one encrypted archive for another."""
    other = encrypt(b"an older backup of another control plane", context=backup_context("default", "ctp2", "b1"))
    with pytest.raises(EncryptionError, match="another backup"):
        decrypt(other)
    assert decrypt(other, context=backup_context("default", "ctp2", "b1")) == b"an older backup of another control plane"


def test_wrong_key_fails():
    with pytest.raises(EncryptionError, match="wrong key"):
        decrypt(encrypt(b"hello"), key=bytes(32))


@pytest.mark.parametrize("position", [HEADER - 1, HEADER + 2, HEADER + 10, -1])
def test_one_flipped_bit_anywhere_fails(position):
    stored = bytearray(encrypt(os.urandom(2 * CHUNK + 5)))
    stored[position] ^= 0x01
    with pytest.raises(EncryptionError):
        decrypt(bytes(stored))


def test_dropping_the_last_chunk_fails():
    """A stream cut at a chunk boundary must not decrypt as a shorter, valid one."""
    stored = encrypt(os.urandom(2 * CHUNK + 5))
    framed = chunks(stored)
    with pytest.raises(EncryptionError):
        decrypt(stored[:HEADER] + b"".join(framed[:-1]))


def test_reordered_or_repeated_chunks_fail():
    stored = encrypt(os.urandom(3 * CHUNK + 5))
    a, b, c, d = chunks(stored)
    for tampered in ([b, a, c, d], [a, a, c, d], [a, b, c, d, d]):
        with pytest.raises(EncryptionError):
            decrypt(stored[:HEADER] + b"".join(tampered))


@pytest.mark.parametrize("cut", [0, 5, HEADER, HEADER + 3, HEADER + 100])
def test_truncated_streams_fail(cut):
    with pytest.raises(EncryptionError):
        decrypt(encrypt(os.urandom(1000))[:cut])


def test_an_encrypted_archive_reads_back_after_decryption(tmp_path):
    stored = io.BytesIO()
    writer = ArchiveWriter(stored, encryption_key=KEY, encryption_context=CONTEXT)
    path = archive.object_path("secrets", "default", "super-secret-secret")
    writer.add_json(path, {"data": {"password": "c3VwZXJzZWNyZXQ="}})
    writer.add_json(archive.METADATA, {"formatVersion": 1, "counts": {"secrets": 1}})
    written = writer.close()
    data = stored.getvalue()
    assert data.startswith(MAGIC)
    assert (written.size, written.sha256) == (len(data), hashlib.sha256(data).hexdigest()), \
        "the index records the stored (encrypted) bytes, so integrity is checked before decrypting"
    with pytest.raises(tarfile.ReadError), tarfile.open(fileobj=io.BytesIO(data), mode="r:gz"):
        pass
    plain = tmp_path / "a.tar.gz"
    plain.write_bytes(decrypt(data))
    reader = ArchiveReader(plain)
    reader.validate()
    with tarfile.open(plain, "r:gz") as tar:
        assert path in tar.getnames()


@pytest.mark.parametrize("raw", [KEY, base64.b64encode(KEY), base64.b64encode(KEY) + b"\n", KEY + b"\n"])
def test_keys_raw_or_base64(raw):
    assert parse_key(raw) == KEY


@pytest.mark.parametrize("key", [b" " + bytes(range(1, 32)), bytes(range(31)) + b"\n", b"\t" * 32])
def test_raw_keys_that_begin_or_end_with_whitespace_are_taken_whole(key):
    assert parse_key(key) == key


@pytest.mark.parametrize("raw", [b"", b"short", base64.b64encode(bytes(16)), b"!" * 44])
def test_bad_keys_are_refused_without_echoing_them(raw):
    with pytest.raises(EncryptionError) as err:
        parse_key(raw)
    assert "32 bytes" in str(err.value)
    if raw:
        assert raw.decode() not in str(err.value)
