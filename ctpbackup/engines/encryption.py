"""Client-side encryption of archives (an extension of the Spaces API): a leaked bucket does not leak
the control planes' Secrets, and keys can be rotated.

Keys. A config names one or more 32-byte master keys (a `Keyring`): the first encrypts, all decrypt.
Each master key has a public *key id*, 16 hex digits derived from it with HKDF (one-way), which
every archive names so that a restore picks the right key, and which messages may show.

Stream format 2 (`CTPBENC2`), written by this release. It follows Tink's AES-GCM-HKDF streaming AEAD,
an instance of the STREAM construction of Hoang, Reyhanitabar, Rogaway and Vizár ("Online
authenticated-encryption and its nonce-reuse misuse-resistance", CRYPTO 2015, nOAE):

    header  = "CTPBENC2" || key id (8 bytes) || salt (32 random bytes) || nonce prefix (7 random bytes)
    key     = HKDF-SHA256(ikm=master key, salt=salt, info="ctpbackup archive v2" || key id || context)
    segment i (0-based, at most 1 MiB of plaintext; i < 2^32):
              <4-byte big-endian length> AES-256-GCM(key, nonce = prefix || uint32_be(i) || last, plaintext)

`last` is 1 for the final segment and 0 otherwise, so a stream cut at a segment boundary, reordered,
repeated or extended fails to authenticate; the associated data of the stream (the context: the
backup's namespace/control plane/name) goes into the HKDF info as in Tink, so another backup's
archive does not decrypt in its place. Every archive has its own key (a fresh salt), so nonces never
repeat across archives and the master key never encrypts anything itself. Where we differ from Tink:
segments carry a length prefix instead of a fixed size (a changed length shifts the ciphertext and
fails the tag), and the header holds the key id.

Stream format 1 (`CTPBENC1`, earlier releases) still decrypts: the master key used directly, a
12-byte nonce prefix, chunk i sealed with nonce `prefix[:4] || (prefix[4:] xor i)` and associated
data `uint64_be(i) || last || context`. It names no key, so each of the config's keys is tried.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import os
import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import BinaryIO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from ctpbackup.rules.reasons import FailureReason

MAGIC = b"CTPBENC2"
MAGIC_V1 = b"CTPBENC1"
CHUNK = 1024 * 1024
KEY_ID_BYTES = 8
SALT_BYTES = 32
PREFIX_BYTES = 7
HEADER = len(MAGIC) + KEY_ID_BYTES + SALT_BYTES + PREFIX_BYTES
MAX_SEGMENTS = 2 ** 32
_V1_HEADER = len(MAGIC_V1) + 12


class EncryptionError(Exception):
    """A key that cannot be used, or an archive that does not decrypt (wrong key or tampered).
    `reason` is the failure reason a restore records."""

    reason = FailureReason.DECRYPTION_FAILED


class UnknownKey(EncryptionError):
    """The archive (or record) names a key id that is not among the config's keys."""

    reason = FailureReason.ENCRYPTION_KEY_MISSING


class UnauthenticatedRecord(EncryptionError):
    """A format-2 archive (this release) whose record carries no MAC: the record was edited."""

    reason = FailureReason.RECORD_NOT_AUTHENTICATED


def parse_key(raw: bytes) -> bytes:
    """A 32-byte key, given raw or base64-encoded (as `openssl rand -base64 32` prints it). A raw key
    is taken as it is before any whitespace is trimmed: its first or last byte may be whitespace."""
    if len(raw) == 32:
        return raw
    stripped = raw.strip()
    try:
        key = base64.b64decode(stripped, validate=True)
    except ValueError:
        key = b""
    if len(key) != 32 and len(stripped) == 32:
        key = stripped  # a raw key followed by a newline
    if len(key) != 32:
        raise EncryptionError("the encryption key must be 32 bytes (raw, or base64 as `openssl rand -base64 32` prints)")
    return key


def _hkdf(material: bytes, info: bytes, salt: bytes | None = None, length: int = 32) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=salt, info=info).derive(material)


@dataclass(frozen=True)
class MasterKey:
    """One 32-byte master key and its public id (HKDF-SHA256 of it, info "ctpbackup key id v1")."""

    material: bytes = field(repr=False)
    key_id: bytes = field(init=False)

    def __post_init__(self) -> None:
        if len(self.material) != 32:
            raise EncryptionError("an encryption key is 32 bytes")
        object.__setattr__(self, "key_id", _hkdf(self.material, b"ctpbackup key id v1", length=KEY_ID_BYTES))

    @property
    def id(self) -> str:
        return self.key_id.hex()


@dataclass(frozen=True)
class Keyring:
    """A config's master keys in order: the first encrypts archives and authenticates records, every
    one decrypts and verifies (so a new key goes first and the old ones stay until their backups
    expire). Never in a repr."""

    keys: tuple[MasterKey, ...] = field(repr=False)
    #: the stream formats it decrypts: (1,) for a record without a MAC, which only earlier releases,
    #: whose archives are all format 1, wrote (see ctpbackup.store.record_mac)
    formats: tuple[int, ...] = (1, 2)

    def __post_init__(self) -> None:
        if not self.keys:
            raise EncryptionError("a keyring needs at least one key")

    def format_1_only(self) -> Keyring:
        return dataclasses.replace(self, formats=(1,))

    @classmethod
    def of(cls, materials: Iterable[bytes]) -> Keyring:
        return cls(tuple(MasterKey(m) for m in materials))

    @property
    def primary(self) -> MasterKey:
        return self.keys[0]

    @property
    def ids(self) -> list[str]:
        return [k.id for k in self.keys]

    def find(self, key_id: bytes | str) -> MasterKey:
        """The key with this id; UnknownKey (naming the id and the config's ids) when it is not there."""
        wanted = key_id.hex() if isinstance(key_id, bytes) else key_id
        for key in self.keys:
            if key.id == wanted:
                return key
        raise UnknownKey(f"encrypted or authenticated with key id {wanted[:32]}, which is not among the config's "
                         f"keys ({', '.join(self.ids)}); put that key back in the config's secretRefs")

    # -- record authentication ---------------------------------------------------------------------

    @staticmethod
    def _mac_key(key: MasterKey) -> bytes:
        return _hkdf(key.material, b"ctpbackup record mac v1")

    def mac(self, payload: bytes) -> str:
        """`v1:<key id>:<hex HMAC-SHA256>` of `payload` with a key derived (HKDF) from the first key."""
        key = self.primary
        return f"v1:{key.id}:{hmac.new(self._mac_key(key), payload, hashlib.sha256).hexdigest()}"

    def verify_mac(self, payload: bytes, mac: str) -> None:
        """Raise UnknownKey when `mac` names a key the ring lacks, EncryptionError when it is malformed
        or does not match `payload`."""
        version, _, rest = mac.partition(":")
        key_id, _, digest = rest.partition(":")
        if version != "v1" or not key_id or not digest:
            raise EncryptionError("the record's authentication code is malformed")
        expected = hmac.new(self._mac_key(self.find(key_id)), payload, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, digest):
            raise EncryptionError("the record's authentication code does not match: it was edited")


def _as_keyring(keys: Keyring | bytes) -> Keyring:
    return keys if isinstance(keys, Keyring) else Keyring.of([keys])


def _segment_nonce(prefix: bytes, index: int, last: bool) -> bytes:
    return prefix + struct.pack(">IB", index, 1 if last else 0)


def _archive_key(master: MasterKey, salt: bytes, context: bytes) -> AESGCM:
    return AESGCM(_hkdf(master.material, b"ctpbackup archive v2" + master.key_id + context, salt=salt))


class EncryptingWriter:
    """A file-like sink: plaintext in, the format-2 stream out to `sink`, under a key derived for this
    archive from the keyring's first key (a bare 32-byte key is a keyring of one)."""

    def __init__(self, sink: BinaryIO, key: Keyring | bytes, context: bytes):
        master = _as_keyring(key).primary
        salt, self.prefix = os.urandom(SALT_BYTES), os.urandom(PREFIX_BYTES)
        self.sink = sink
        self.aead = _archive_key(master, salt, context)
        self.buffer = bytearray()
        self.index = 0
        sink.write(MAGIC + master.key_id + salt + self.prefix)

    def _seal(self, data: bytes, last: bool) -> None:
        if self.index >= MAX_SEGMENTS:
            raise EncryptionError("archive too large to encrypt (2^32 segments)")
        sealed = self.aead.encrypt(_segment_nonce(self.prefix, self.index, last), data, None)
        self.sink.write(struct.pack(">I", len(sealed)) + sealed)
        self.index += 1

    def write(self, data: bytes) -> int:
        self.buffer += data
        while len(self.buffer) > CHUNK:  # keep at least one byte back: the last segment is sealed at close
            self._seal(bytes(self.buffer[:CHUNK]), last=False)
            del self.buffer[:CHUNK]
        return len(data)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self._seal(bytes(self.buffer), last=True)
        self.buffer.clear()


def _framed(source: BinaryIO) -> Iterator[tuple[int, bool, bytes]]:
    """(index, last, sealed) of each length-prefixed segment; raises EncryptionError on a cut or an
    impossible length."""
    pending, index = source.read(4), 0
    while pending:
        if len(pending) != 4:
            raise EncryptionError("the encrypted archive is cut short")
        (length,) = struct.unpack(">I", pending)
        if length > CHUNK + 16:
            raise EncryptionError("corrupt encrypted archive")
        sealed = source.read(length)
        if len(sealed) != length:
            raise EncryptionError("the encrypted archive is cut short")
        pending = source.read(4)
        yield index, not pending, sealed
        index += 1
    if index == 0:
        raise EncryptionError("empty encrypted archive")


_TAMPERED = ("the archive does not decrypt: wrong key, another backup's archive, or it was tampered with or "
             "cut short")


def decrypt_stream(source: BinaryIO, keys: Keyring | bytes, context: bytes) -> Iterator[bytes]:
    """Plaintext segments of an encrypted stream (format 2, or format 1 of earlier releases); raises
    UnknownKey when the archive names a key the ring lacks, EncryptionError unless every segment,
    the last one included, authenticates with `context`, the one it was written with."""
    ring = _as_keyring(keys)
    magic = source.read(len(MAGIC))
    if magic == MAGIC:
        if 2 not in ring.formats:
            raise UnauthenticatedRecord("the archive was written by this release but its record carries no "
                                        "authentication code: the record was edited")
        header = source.read(HEADER - len(MAGIC))
        if len(header) != HEADER - len(MAGIC):
            raise EncryptionError("the encrypted archive is cut short")
        key_id, salt = header[:KEY_ID_BYTES], header[KEY_ID_BYTES:KEY_ID_BYTES + SALT_BYTES]
        prefix = header[KEY_ID_BYTES + SALT_BYTES:]
        aead = _archive_key(ring.find(key_id), salt, context)
        for index, last, sealed in _framed(source):
            if index >= MAX_SEGMENTS:
                raise EncryptionError("corrupt encrypted archive")
            try:
                yield aead.decrypt(_segment_nonce(prefix, index, last), sealed, None)
            except InvalidTag:
                raise EncryptionError(_TAMPERED) from None
    elif magic == MAGIC_V1:
        yield from _decrypt_v1(source, ring, context)
    else:
        raise EncryptionError("not an encrypted archive")


def _decrypt_v1(source: BinaryIO, ring: Keyring, context: bytes) -> Iterator[bytes]:
    prefix = source.read(_V1_HEADER - len(MAGIC_V1))
    if len(prefix) != _V1_HEADER - len(MAGIC_V1):
        raise EncryptionError("not an encrypted archive")
    candidates = [AESGCM(k.material) for k in ring.keys]  # format 1 names no key: the first that opens it
    for index, last, sealed in _framed(source):
        nonce = prefix[:4] + (int.from_bytes(prefix[4:], "big") ^ index).to_bytes(8, "big")
        aad = struct.pack(">QB", index, 1 if last else 0) + context
        for aead in candidates:
            try:
                plain = aead.decrypt(nonce, sealed, aad)
            except InvalidTag:
                continue
            candidates = [aead]
            break
        else:
            raise EncryptionError(_TAMPERED)
        yield plain


def backup_context(namespace: str, control_plane: str, backup: str) -> bytes:
    """What an encrypted archive is bound to: the backup it belongs to (not its bucket prefix, so a
    bucket can be moved)."""
    return f"ctpbackup/v1 {namespace}/{control_plane}/{backup}".encode()
