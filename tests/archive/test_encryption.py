"""The client-side encryption stream: round trips at every chunk boundary, and every way of
tampering with it (a flipped bit, a dropped, reordered or appended chunk, a cut) fails to decrypt.
Keys rotate: each archive names its key id and has its own HKDF-derived key; format-1 archives of
earlier releases still decrypt; record MACs verify only the fields they were made over."""

from __future__ import annotations

import base64
import hashlib
import io
import os
import struct
import tarfile

import pytest

from ctpbackup.engines import archive
from ctpbackup.engines.archive import ArchiveReader, ArchiveWriter
from ctpbackup.engines.encryption import (
    CHUNK,
    HEADER,
    MAGIC,
    EncryptingWriter,
    EncryptionError,
    Keyring,
    UnknownKey,
    backup_context,
    decrypt_stream,
    parse_key,
)

KEY = bytes(range(32))
CONTEXT = backup_context("default", "ctp1", "b1")


def encrypt(plain: bytes, key: bytes | Keyring = KEY, pieces: int = 7, context: bytes = CONTEXT) -> bytes:
    sink = io.BytesIO()
    writer = EncryptingWriter(sink, key, context)
    step = max(1, len(plain) // pieces)
    for start in range(0, len(plain), step):
        writer.write(plain[start:start + step])
    writer.close()
    return sink.getvalue()


def decrypt(stored: bytes, key: bytes | Keyring = KEY, context: bytes = CONTEXT) -> bytes:
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
    """A key the archive does not name is refused by its id, before any decryption is tried."""
    with pytest.raises(UnknownKey, match="which is not among the config's keys"):
        decrypt(encrypt(b"hello"), key=bytes(32))


DOES_NOT_DECRYPT = r"^the archive does not decrypt: wrong key, another backup's archive, or it was tampered with or cut short$"


@pytest.mark.parametrize("position, message", [
    (8, r"^encrypted or authenticated with key id [0-9a-f]{16}, which is not among the config's keys \([0-9a-f]{16}\); "
        r"put that key back in the config's secretRefs$"),  # the key id
    (16, DOES_NOT_DECRYPT), (20, DOES_NOT_DECRYPT), (HEADER - 1, DOES_NOT_DECRYPT),  # salt, nonce prefix
    (HEADER + 2, r"^corrupt encrypted archive$"),  # a segment's length
    (HEADER + 10, DOES_NOT_DECRYPT), (-1, DOES_NOT_DECRYPT),  # ciphertext, tag
])
def test_one_flipped_bit_anywhere_fails(position, message):
    stored = bytearray(encrypt(os.urandom(2 * CHUNK + 5)))
    stored[position] ^= 0x01
    with pytest.raises(EncryptionError, match=message):
        decrypt(bytes(stored))


def test_dropping_the_last_chunk_fails():
    """A stream cut at a chunk boundary must not decrypt as a shorter, valid one."""
    stored = encrypt(os.urandom(2 * CHUNK + 5))
    framed = chunks(stored)
    with pytest.raises(EncryptionError, match=DOES_NOT_DECRYPT):
        decrypt(stored[:HEADER] + b"".join(framed[:-1]))


def test_reordered_or_repeated_chunks_fail():
    stored = encrypt(os.urandom(3 * CHUNK + 5))
    a, b, c, d = chunks(stored)
    for tampered in ([b, a, c, d], [a, a, c, d], [a, b, c, d, d]):
        with pytest.raises(EncryptionError, match=DOES_NOT_DECRYPT):
            decrypt(stored[:HEADER] + b"".join(tampered))


@pytest.mark.parametrize("cut, message", [
    (0, r"^not an encrypted archive$"), (5, r"^not an encrypted archive$"), (HEADER, r"^empty encrypted archive$"),
    (HEADER + 3, r"^the encrypted archive is cut short$"), (HEADER + 100, r"^the encrypted archive is cut short$"),
])
def test_truncated_streams_fail(cut, message):
    with pytest.raises(EncryptionError, match=message):
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
    with pytest.raises(tarfile.ReadError, match=r"^not a gzip file$"), tarfile.open(fileobj=io.BytesIO(data), mode="r:gz"):
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
    with pytest.raises(EncryptionError, match=r"^the encryption key must be 32 bytes \(raw, or base64 as "
                                              r"`openssl rand -base64 32` prints\)$") as err:
        parse_key(raw)
    assert "32 bytes" in str(err.value)
    if raw:
        assert raw.decode() not in str(err.value)


# -- format 2: key ids, per-archive keys, rotation ------------------------------------------------------

K1, K2, K3 = bytes(range(32)), bytes(range(1, 33)), bytes(range(2, 34))


def test_the_header_names_the_key_and_carries_a_fresh_salt():
    ring = Keyring.of([K1])
    first, second = encrypt(b"same", key=ring), encrypt(b"same", key=ring)
    assert first[:8] == MAGIC == b"CTPBENC2"
    assert first[8:16] == second[8:16] == bytes.fromhex(ring.primary.id)
    assert first[16:48] != second[16:48], "every archive has its own salt, so its own key"
    assert K1.hex() not in ring.primary.id and len(ring.primary.id) == 16


def test_key_ids_are_stable_and_distinct():
    assert Keyring.of([K1]).ids == Keyring.of([K1, K2]).ids[:1]
    assert len(set(Keyring.of([K1, K2, K3]).ids)) == 3
    assert "material" not in repr(Keyring.of([K1])) and repr(K1) not in repr(Keyring.of([K1]))


def test_segments_follow_tink_nonces_under_a_derived_key():
    """Recompute the construction independently: HKDF-SHA256(master, salt, info) and AES-GCM with
    nonce prefix || uint32 segment || last flag, no associated data."""
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    plain = os.urandom(CHUNK + 10)
    stored = encrypt(plain, key=Keyring.of([K1]))
    key_id, salt, prefix = stored[8:16], stored[16:48], stored[48:55]
    key = HKDF(hashes.SHA256(), 32, salt, b"ctpbackup archive v2" + key_id + CONTEXT).derive(K1)
    first, second = chunks(stored)
    aead = AESGCM(key)
    assert aead.decrypt(prefix + struct.pack(">IB", 0, 0), first[4:], None) == plain[:CHUNK]
    assert aead.decrypt(prefix + struct.pack(">IB", 1, 1), second[4:], None) == plain[CHUNK:]
    with pytest.raises(InvalidTag, match=r"^$"):  # the master key itself never encrypts (the tag says nothing)
        AESGCM(K1).decrypt(prefix + struct.pack(">IB", 0, 0), first[4:], None)


def test_rotation_the_first_key_encrypts_every_key_decrypts():
    old = encrypt(b"taken with k1", key=Keyring.of([K1]))
    ring = Keyring.of([K2, K1])
    new = encrypt(b"taken with k2", key=ring)
    assert new[8:16].hex() == ring.ids[0] != old[8:16].hex()
    assert decrypt(old, key=ring) == b"taken with k1"
    assert decrypt(new, key=ring) == b"taken with k2"
    with pytest.raises(UnknownKey, match=rf"key id {Keyring.of([K1]).ids[0]}, which is not among the config's keys "
                                          rf"\({ring.ids[0]}\)") as info:
        decrypt(old, key=Keyring.of([K2]))
    assert info.value.reason == "EncryptionKeyMissing"


def test_an_edited_key_id_does_not_pick_another_key():
    ring = Keyring.of([K2, K1])
    stored = bytearray(encrypt(b"taken with k1", key=Keyring.of([K1])))
    stored[8:16] = bytes.fromhex(ring.ids[0])
    with pytest.raises(EncryptionError, match="does not decrypt"):
        decrypt(bytes(stored), key=ring)


def encrypt_v1(plain: bytes, key: bytes, context: bytes = CONTEXT) -> bytes:
    """Format 1 as earlier releases wrote it, rebuilt here from its documented layout."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    prefix, aead, out = os.urandom(12), AESGCM(key), [b"CTPBENC1"]
    out.append(prefix)
    pieces = [plain[i:i + CHUNK] for i in range(0, len(plain), CHUNK)] or [b""]
    for i, piece in enumerate(pieces):
        nonce = prefix[:4] + (int.from_bytes(prefix[4:], "big") ^ i).to_bytes(8, "big")
        sealed = aead.encrypt(nonce, piece, struct.pack(">QB", i, 1 if i == len(pieces) - 1 else 0) + context)
        out.append(struct.pack(">I", len(sealed)) + sealed)
    return b"".join(out)


@pytest.mark.parametrize("size", [0, 5, CHUNK, 2 * CHUNK + 3])
def test_format_1_archives_still_decrypt_with_any_of_the_keys(size):
    plain = os.urandom(size)
    stored = encrypt_v1(plain, K1)
    assert decrypt(stored, key=K1) == plain
    assert decrypt(stored, key=Keyring.of([K2, K3, K1])) == plain
    with pytest.raises(EncryptionError, match="does not decrypt"):
        decrypt(stored, key=Keyring.of([K2, K3]))
    with pytest.raises(EncryptionError, match="does not decrypt"):
        decrypt(stored, key=K1, context=backup_context("default", "ctp1", "b2"))


def test_format_1_tampering_still_fails():
    stored = encrypt_v1(os.urandom(2 * CHUNK + 3), K1)
    framed, at = [], 20
    while at < len(stored):
        (length,) = struct.unpack(">I", stored[at:at + 4])
        framed.append(stored[at:at + 4 + length])
        at += 4 + length
    with pytest.raises(EncryptionError, match="does not decrypt"):
        decrypt(stored[:20] + b"".join(framed[:-1]), key=K1)
    with pytest.raises(EncryptionError, match="does not decrypt"):
        decrypt(stored[:20] + framed[1] + framed[0] + framed[2], key=K1)


# -- record MACs ---------------------------------------------------------------------------------------

def test_record_macs_cover_what_a_restore_trusts():
    import dataclasses
    from datetime import UTC, datetime

    from ctpbackup.store.records import BackupRecord, Phase

    ring = Keyring.of([K1])
    record = BackupRecord("default", "b1", "ctp1", "default", Phase.COMPLETED, archive_key="p/default/ctp1/b1",
                          size=1234, sha256="ab" * 32, encrypted=True,
                          completed_at=datetime(2026, 11, 30, 10, tzinfo=UTC))
    mac = ring.mac(record.authenticated_payload())
    assert mac.startswith(f"v1:{ring.ids[0]}:") and len(mac.split(":")[2]) == 64
    ring.verify_mac(record.authenticated_payload(), mac)
    edits = {"encrypted": False, "size": 99, "sha256": "cd" * 32, "phase": Phase.FAILED, "name": "b2",
             "control_plane": "ctp2", "namespace": "team-b", "archive_key": "p/x",
             "completed_at": datetime(2031, 1, 1, tzinfo=UTC), "expires_at": datetime(2031, 1, 1, tzinfo=UTC)}
    for field_name, value in edits.items():
        edited = dataclasses.replace(record, **{field_name: value})
        with pytest.raises(EncryptionError, match="does not match: it was edited"):
            ring.verify_mac(edited.authenticated_payload(), mac)
    # fields later updates change without the key are not covered
    ring.verify_mac(dataclasses.replace(record, retries=3).authenticated_payload(), mac)
    for bad in ("", "v1:", "v2:" + mac[3:], "v1:" + ring.ids[0] + ":" + "00" * 32):
        with pytest.raises(EncryptionError, match="malformed|does not match"):
            ring.verify_mac(record.authenticated_payload(), bad)
    with pytest.raises(UnknownKey, match="not among the config's keys"):
        Keyring.of([K2]).verify_mac(record.authenticated_payload(), mac)
    Keyring.of([K2, K1]).verify_mac(record.authenticated_payload(), mac)


def test_the_encryption_keys_and_allowed_backups_are_read_from_the_config_manifest():
    from ctpbackup.desired.manifests import ManifestFile, load_desired_state
    from ctpbackup.desired.model import SecretKeyRef

    base = ("apiVersion: spaces.upbound.io/v1alpha1\nkind: SharedBackupConfig\nmetadata: {{name: c, namespace: default}}\n"
            "spec:\n  objectStorage:\n    provider: Filesystem\n    bucket: /tmp/x\n    credentials: {{source: InjectedIdentity}}\n"
            "    encryption: {encryption}\n")
    cases = {
        "{secretRef: {name: k1}}": ((SecretKeyRef("k1", "key"),), ()),
        "{secretRefs: [{name: k2, key: aes}, {name: k1}], allowUnauthenticatedBackups: [b1, b2]}":
            ((SecretKeyRef("k2", "aes"), SecretKeyRef("k1", "key")), ("b1", "b2")),
    }
    for encryption, (refs, allowed) in cases.items():
        result = load_desired_state([ManifestFile("c.yaml", base.format(encryption=encryption).encode())], "abc")
        assert result.problems == []
        storage = result.desired.configs[("default", "c")].object_storage
        assert (storage.encryption_key_refs, storage.allow_unauthenticated_backups) == (refs, allowed)
    both = base.format(encryption="{secretRef: {name: k1}, secretRefs: [{name: k2}]}")
    result = load_desired_state([ManifestFile("c.yaml", both.encode())], "abc")
    assert [str(p) for p in result.problems] == [
        "c.yaml:9: SharedBackupConfig default/c: spec.objectStorage.encryption: give exactly one of secretRef or "
        "secretRefs"]
