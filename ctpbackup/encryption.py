"""Client-side encryption of archives (an extension of the Spaces API): a leaked bucket does not leak
the control planes' Secrets.

Stream format: `CTPBENC1`, a 12-byte random nonce prefix, then chunks of at most 1 MiB, each
`<4-byte big-endian length><AES-256-GCM ciphertext+tag>`. Chunk i is sealed with nonce
`prefix[:4] + (prefix[4:] xor i)` and associated data `i, last, context`, where the context names the
backup (namespace/control plane/name): chunks cannot be reordered, dropped or cut short without
failing to authenticate, and an archive of another backup sealed with the same key does not decrypt
in its place.
"""

from __future__ import annotations

import base64
import os
import struct
from collections.abc import Iterator
from typing import BinaryIO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

MAGIC = b"CTPBENC1"
CHUNK = 1024 * 1024


class EncryptionError(Exception):
    """A key that cannot be used, or an archive that does not decrypt (wrong key or tampered)."""


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


def _nonce(prefix: bytes, index: int) -> bytes:
    return prefix[:4] + (int.from_bytes(prefix[4:], "big") ^ index).to_bytes(8, "big")


def _aad(index: int, last: bool, context: bytes) -> bytes:
    return struct.pack(">QB", index, 1 if last else 0) + context


class EncryptingWriter:
    """A file-like sink: plaintext in, the encrypted stream out to `sink`."""

    def __init__(self, sink: BinaryIO, key: bytes, context: bytes):
        self.sink = sink
        self.context = context
        self.aead = AESGCM(key)
        self.prefix = os.urandom(12)
        self.buffer = bytearray()
        self.index = 0
        sink.write(MAGIC + self.prefix)

    def _seal(self, data: bytes, last: bool) -> None:
        sealed = self.aead.encrypt(_nonce(self.prefix, self.index), data, _aad(self.index, last, self.context))
        self.sink.write(struct.pack(">I", len(sealed)) + sealed)
        self.index += 1

    def write(self, data: bytes) -> int:
        self.buffer += data
        while len(self.buffer) > CHUNK:  # keep at least one byte back: the last chunk is sealed at close
            self._seal(bytes(self.buffer[:CHUNK]), last=False)
            del self.buffer[:CHUNK]
        return len(data)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self._seal(bytes(self.buffer), last=True)
        self.buffer.clear()


def decrypt_stream(source: BinaryIO, key: bytes, context: bytes) -> Iterator[bytes]:
    """Plaintext chunks of an encrypted stream; raises EncryptionError unless every chunk, the last
    one included, authenticates with `context`, the one it was written with."""
    header = source.read(len(MAGIC) + 12)
    if len(header) != len(MAGIC) + 12 or not header.startswith(MAGIC):
        raise EncryptionError("not an encrypted archive")
    prefix, aead, index = header[len(MAGIC):], AESGCM(key), 0
    pending = source.read(4)
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
        last = not pending
        try:
            yield aead.decrypt(_nonce(prefix, index), sealed, _aad(index, last, context))
        except InvalidTag:
            raise EncryptionError("the archive does not decrypt: wrong key, another backup's archive, "
                                  "or it was tampered with or cut short") from None
        index += 1
    if index == 0:
        raise EncryptionError("empty encrypted archive")


def backup_context(namespace: str, control_plane: str, backup: str) -> bytes:
    """What an encrypted archive is bound to: the backup it belongs to (not its bucket prefix, so a
    bucket can be moved)."""
    return f"ctpbackup/v1 {namespace}/{control_plane}/{backup}".encode()

