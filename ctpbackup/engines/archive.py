"""The backup archive format (version 1): a gzip'd tar a restore, or a person with `tar`, can read.

    resources/<resource>.<group>/cluster/<name>.json                 cluster-scoped object
    resources/<resource>.<group>/namespaces/<namespace>/<name>.json  namespaced object
    uids.jsonl       one {"path", "uid"} per line: each object's old uid, to remap ownerReferences
    metadata.json    format version, control plane, server version, times, Git commit, counts, exclusions

Core resources have no group: `resources/secrets/namespaces/default/x.json` (Velero's layout).
Names are written by one rule, shared by the writer and the reader (`encode_name`): letters, digits
and `-._:@+~=` as they are, every other byte of the name's UTF-8 as `%XX` (`%` itself is in no
Kubernetes name). So every name Kubernetes accepts can be stored, RBAC's path-segment names too
(`oidc:platform+sre`, unicode); a name no Kubernetes object can have fails the backup.
Server-owned metadata is stripped from each object; everything a restore needs is kept (status,
labels, annotations, finalizers, ownerReferences with the owner's old uid).

The writer streams: objects go into the tar as they arrive and the gzip'd bytes into the upload,
hashed (sha256) and counted on the way. The reader trusts nothing: it refuses unsafe paths, links,
oversized members and unknown format versions before anything is restored. It parses the tar
headers itself (`_TarHeaders`, tarfile's rules for each field; tarfile's per-member objects took a
third of a restore's time) and reads on to the gzip trailer, whose CRC and length are checked.
"""

from __future__ import annotations

import hashlib
import io
import re
import struct
import tarfile
import tempfile
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import unquote_to_bytes

from isal import igzip, isal_zlib

from ctpbackup.engines import jsoncodec
from ctpbackup.engines.encryption import EncryptingWriter

FORMAT_VERSION = 1
SUPPORTED_VERSIONS = {1}
METADATA = "metadata.json"
UIDS = "uids.jsonl"

#: metadata fields the API server owns; a restore must not send them
SERVER_FIELDS = ("uid", "resourceVersion", "generation", "creationTimestamp", "managedFields", "selfLink",
                 "deletionTimestamp", "deletionGracePeriodSeconds")

MAX_MEMBER_BYTES = 64 * 1024 * 1024
MAX_TOTAL_BYTES = 16 * 1024 * 1024 * 1024
MAX_MEMBERS = 5_000_000
MAX_RATIO = 200  # uncompressed / compressed: beyond this, a decompression bomb
#: the longest member name, in bytes: PATH_MAX on Linux; the format's names are far shorter (a
#: resource, a namespace and a name of at most 253 characters each)
MAX_NAME_BYTES = 4096
#: the largest pax extended header: a few records (path, size, mtime) are all a member needs
MAX_PAX_BYTES = 64 * 1024

_SEGMENT = r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?"
#: kept as they are in a member name; any other byte of the name's UTF-8 is written %XX
NAME_SAFE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._:@+~=")
_NAME = r"(?:[-A-Za-z0-9._:@+~=]|%[0-9A-F]{2})+"
_SAFE_NAME = re.compile(r"[-A-Za-z0-9._:@+~=]+")  # NAME_SAFE as a regex
_MEMBER = re.compile(
    rf"^(?:{re.escape(METADATA)}|{re.escape(UIDS)}|resources/(?P<resource>{_SEGMENT})/"
    rf"(?:cluster|namespaces/(?P<namespace>[a-z0-9]([-a-z0-9]*[a-z0-9])?))/(?P<name>{_NAME})\.json)$"
)


class ArchiveError(Exception):
    """The archive is unreadable, unsafe or of an unknown format: nothing may be restored from it."""


def encode_name(name: str) -> str:
    """An object's name as its archive member spells it. Every name Kubernetes accepts can be
    encoded: DNS subdomains and labels, and the path segments RBAC and a few other types allow
    (kube-apiserver's ValidatePathSegmentName: anything but "", ".", "..", "/" and "%"). Raises
    ArchiveError for a name no Kubernetes object can have."""
    if not isinstance(name, str) or name in ("", ".", "..") or "/" in name or "%" in name:
        raise ArchiveError(f"object name {name!r} is not a name Kubernetes accepts (it cannot be stored)")
    if _SAFE_NAME.fullmatch(name):  # the common case, once per object: one regex, not a loop per character
        return name
    try:
        data = name.encode("utf-8")
    except UnicodeEncodeError:
        raise ArchiveError(f"object name {name!r} is not valid UTF-8 (it cannot be stored)") from None
    return "".join(chr(b) if chr(b) in NAME_SAFE else f"%{b:02X}" for b in data)


def decode_name(encoded: str) -> str:
    """The inverse of encode_name; raises ArchiveError unless `encoded` is what encode_name writes."""
    try:
        name = unquote_to_bytes(encoded).decode("utf-8")
    except UnicodeDecodeError:
        raise ArchiveError(f"{encoded!r}: not an encoded object name") from None
    if encode_name(name) != encoded:
        raise ArchiveError(f"{encoded!r}: not the archive's spelling of a name")
    return name


def object_path(resource_key: str, namespace: str | None, name: str) -> str:
    """The member path of an object; raises ArchiveError for a name that cannot be stored."""
    if namespace:
        return f"resources/{resource_key}/namespaces/{namespace}/{encode_name(name)}.json"
    return f"resources/{resource_key}/cluster/{encode_name(name)}.json"


def clean_object(obj: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """The object as stored (server-owned metadata removed) and its old uid. Annotations are kept
    byte for byte, the last-applied configuration too (a restore reads explicit nodePorts from it)."""
    meta = dict(obj.get("metadata") or {})
    uid = meta.get("uid", "")
    for key in SERVER_FIELDS:
        meta.pop(key, None)
    cleaned = dict(obj)
    cleaned["metadata"] = meta
    return cleaned, uid


class _HashingSink:
    """Counts and hashes every byte on its way to the real sink."""

    def __init__(self, sink: BinaryIO):
        self.sink = sink
        self.sha256 = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.sha256.update(data)
        self.size += len(data)
        self.sink.write(data)
        return len(data)

    def flush(self) -> None:
        pass


@dataclass(frozen=True)
class WrittenArchive:
    size: int
    sha256: str


BLOCK = 512


# The fixed fields of a regular-file ustar header, and the sum of their bytes for the checksum
_MODE_IDS = b"0000644\0" + b"0000000\0" + b"0000000\0"  # offsets 100..124: mode, uid, gid
_TYPE_TO_MAGIC = b"0" + b"\0" * 100 + b"ustar\x0000" + b"\0" * 80  # offsets 156..345
_FIXED_SUM = sum(_MODE_IDS) + sum(b" " * 8) + sum(_TYPE_TO_MAGIC)
MAX_USTAR_SIZE = 0o77777777777  # 11 octal digits: larger members need a PAX size record


def _ustar_header(name: str, size: int, mtime: int) -> bytes:
    """A POSIX ustar header for a regular file (what tarfile writes, without its per-member costs);
    names that do not fit ustar get tarfile's own PAX header. Built by concatenation with the checksum
    summed over the variable fields only: this runs once per object."""
    raw = name.encode("ascii", "surrogateescape") if name.isascii() else b""
    prefix, base = b"", raw
    if len(raw) > 100:  # split at the first "/" that leaves a name of at most 100 bytes, as tarfile does
        cut = raw.find(b"/", len(raw) - 101)
        if 0 < cut <= 155 and cut < len(raw) - 1:
            prefix, base = raw[:cut], raw[cut + 1:]
        else:
            base = b""
    if not base or size > MAX_USTAR_SIZE:
        info = tarfile.TarInfo(name)
        info.size, info.mtime, info.mode = size, mtime, 0o644
        return info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")
    times = b"%011o\0%011o\0" % (size, mtime)
    checksum = _FIXED_SUM + sum(base) + sum(times) + sum(prefix)
    return b"".join((base, b"\0" * (100 - len(base)), _MODE_IDS, times, b"%06o\0 " % checksum, _TYPE_TO_MAGIC,
                     prefix, b"\0" * (167 - len(prefix))))


#: ISA-L's deflate level (0-3). Deflate was the backup's largest cost with zlib at level 6; ISA-L
#: (python-isal's igzip, Intel's ISA-L) at level 1 deflates a backup's tar about 15x faster than zlib 6
#: and writes a slightly smaller archive (bench/deflate.py measures both). The output is plain gzip:
#: any gunzip, `tar -tzf` and the standard library read it.
COMPRESS_LEVEL = 1


class ArchiveWriter:
    """Write objects into a gzip'd tar streamed to `sink` (an Upload or any binary file).

    `compresslevel` is ISA-L's (0-3, see COMPRESS_LEVEL); the gzip header's mtime is 0, so the same
    objects written at the same second give the same bytes."""

    def __init__(self, sink: BinaryIO, *, compresslevel: int = COMPRESS_LEVEL, encryption_key: bytes | None = None,
                 encryption_context: bytes = b""):
        self._sink = _HashingSink(sink)  # size and sha256 are of the bytes stored, encrypted or not
        self._encryptor = (EncryptingWriter(self._sink, encryption_key, encryption_context)
                           if encryption_key is not None else None)
        target = self._encryptor or self._sink
        self._gzip = igzip.GzipFile(fileobj=target, mode="wb", compresslevel=compresslevel, mtime=0)
        self._now = int(time.time())
        self._pending = bytearray()

    def _write(self, data: bytes) -> None:
        # compress in 1 MiB batches: zlib releases the GIL on large buffers, so listing threads run meanwhile
        self._pending += data
        if len(self._pending) >= 1024 * 1024:
            self._gzip.write(self._pending)
            self._pending.clear()

    def add_bytes(self, path: str, data: bytes) -> None:
        padding = -len(data) % BLOCK
        self._write(_ustar_header(path, len(data), self._now) + data + b"\0" * padding)

    def add_json(self, path: str, value: Any) -> int:
        data = jsoncodec.dumps(value)
        self.add_bytes(path, data)
        return len(data)

    def add_file(self, path: str, file: BinaryIO, size: int) -> None:
        self._write(_ustar_header(path, size, self._now))
        remaining = size
        while remaining:
            chunk = file.read(min(remaining, 1024 * 1024))
            if not chunk:
                raise ArchiveError(f"{path}: source ended early")
            self._write(chunk)
            remaining -= len(chunk)
        self._write(b"\0" * (-size % BLOCK))

    @property
    def bytes_written(self) -> int:
        return self._sink.size

    def close(self) -> WrittenArchive:
        self._write(b"\0" * (2 * BLOCK))  # the end-of-archive marker
        self._gzip.write(self._pending)
        self._pending.clear()
        self._gzip.close()
        if self._encryptor is not None:
            self._encryptor.close()
        return WrittenArchive(self._sink.size, self._sink.sha256.hexdigest())


@dataclass(frozen=True)
class Member:
    path: str
    resource: str  # "" for metadata.json / uids.jsonl
    namespace: str
    name: str
    size: int


class _BoundedTarInfo(tarfile.TarInfo):
    """A tar header whose GNU long-name/long-link and pax extended headers are size-checked before
    tarfile reads them: tarfile reads such a header's whole data into memory (a 149 KB gzip'd
    archive can claim a 150 MB long name), so the check must come first."""

    def _proc_gnulong(self, tarfile):  # type L (long name) and K (long link name)
        if self.size > MAX_NAME_BYTES:
            raise ArchiveError(f"a GNU long-name header of {self.size} bytes (names are at most {MAX_NAME_BYTES})")
        return super()._proc_gnulong(tarfile)

    def _proc_pax(self, tarfile):  # type x (this member) and g (global)
        if self.size > MAX_PAX_BYTES:
            raise ArchiveError(f"a pax extended header of {self.size} bytes (at most {MAX_PAX_BYTES} are read)")
        return super()._proc_pax(tarfile)


def _shown(name: str) -> str:
    """A member name as a message shows it: quoted, at most 200 characters."""
    text = repr(name)
    return text if len(text) <= 200 else text[:180] + f"...' ({len(name)} characters)"


_BOMB = "archive expands far beyond its compressed size (decompression bomb?)"


class ArchiveReader:
    """Read a downloaded (and already checksum-verified) archive, member by member, safely."""

    def __init__(self, path: Path):
        self.path = path
        self.compressed_size = path.stat().st_size

    def members(self) -> Iterator[tuple[Member, _Body]]:
        """Every member in archive order, checked (check_member, the archive's limits) before its
        body is read; a body not read is skipped. Raises ArchiveError."""
        try:
            raw = self.path.open("rb")
        except OSError as err:
            raise ArchiveError(f"not a gzip'd tar archive: {err}") from None
        with raw:
            if raw.read(2) != b"\x1f\x8b":
                raise ArchiveError("not a gzip'd tar archive: not a gzip file")
            raw.seek(0)
            # read as asked (its own 8 KiB buffer reads little ahead): a failure names the member it is in
            with igzip.IGzipFile(fileobj=raw, mode="rb") as file:
                yield from self._walk(file)

    def _walk(self, file: BinaryIO) -> Iterator[tuple[Member, _Body]]:
        """The tar headers one by one (see _TarHeaders), within MAX_MEMBERS and the expansion limits."""
        limit = min(MAX_TOTAL_BYTES, MAX_RATIO * max(self.compressed_size, 1024 * 1024))
        headers = _TarHeaders(file, limit)  # counts every header block and extended header against the limit
        specials: set[str] = set()
        for count, (name, regular, size) in enumerate(headers, 1):
            member = _check(name, regular, size)
            if not member.resource:  # metadata.json, uids.jsonl: once each
                if name in specials:
                    raise ArchiveError(f"{name}: a second member of that name")
                specials.add(name)
            headers.counted += size
            if count > MAX_MEMBERS:
                raise ArchiveError(f"more than {MAX_MEMBERS} members")
            if headers.counted > limit:
                raise ArchiveError(_BOMB)
            body = _Body(file, name, size)
            yield member, body
            body.skip()
        total = headers.counted
        # past the end-of-archive blocks: read on to the gzip trailer, whose CRC and length are checked
        while chunk := _reading(file.read, 1024 * 1024, ""):
            total += len(chunk)
            if total > limit:
                raise ArchiveError(_BOMB)

    def scan(self, uids_sink: BinaryIO) -> Iterator[tuple[Member, bytes]]:
        """Every member once, in archive order, checked (path, type, size, the archive's limits):
        metadata.json and each object with its bytes; uids.jsonl is copied into `uids_sink` in 1 MiB
        chunks (one line per object: never held whole) and yielded with b"". The bytes are not
        parsed here (see `loads_object`, `check_metadata`, `uid_lines`). Raises ArchiveError."""
        for member, body in self.members():
            if member.path == UIDS:
                body.copy_to(uids_sink)
                yield member, b""
            else:
                yield member, body.read()

    def validate(self) -> dict[str, Any]:
        """Read every member once (paths, sizes, JSON, uids.jsonl's lines) and return metadata.json;
        raises ArchiveError. A restore does not call this: it checks the same while it spools
        (engines/restore), so it reads the archive once."""
        metadata = None
        with tempfile.TemporaryFile() as uids:
            for member, data in self.scan(uids):
                if member.path == METADATA:
                    metadata = check_metadata(data)
                elif member.resource:
                    loads_object(member, data)
            uids.seek(0)
            for _ in uid_lines(uids):
                pass
        if metadata is None:
            raise ArchiveError(f"{METADATA} missing")
        return metadata

    def objects(self, resources: set[str] | None = None) -> Iterator[tuple[Member, dict[str, Any]]]:
        """Objects (optionally only of some resources), in archive order."""
        for member, body in self.members():
            if not member.resource or (resources is not None and member.resource not in resources):
                continue
            yield member, jsoncodec.loads(body.read())

    def uids(self) -> dict[str, str]:
        """Archive path -> old uid of every object (the whole map: for tests and small archives; a
        restore streams the lines with `uid_lines` and keeps only the owners')."""
        for member, body in self.members():
            if member.path == UIDS:
                return dict(uid_lines(io.BytesIO(body.read())))
        return {}


def check_metadata(data: bytes) -> dict[str, Any]:
    """metadata.json's bytes as a dict, of a format version this release reads; raises ArchiveError."""
    try:
        metadata = jsoncodec.loads(data)
    except ValueError:
        raise ArchiveError(f"{METADATA}: not JSON") from None
    if not isinstance(metadata, dict):
        raise ArchiveError(f"{METADATA}: not a JSON object")
    version = metadata.get("formatVersion")
    if version not in SUPPORTED_VERSIONS:
        raise ArchiveError(f"archive format version {version!r} is not supported (this release reads {sorted(SUPPORTED_VERSIONS)})")
    return metadata


def loads_object(member: Member, data: bytes) -> dict[str, Any]:
    """An object member's bytes as a dict; raises ArchiveError naming the member otherwise."""
    try:
        value = jsoncodec.loads(data)
    except ValueError:
        raise ArchiveError(f"{member.path}: not JSON") from None
    if not isinstance(value, dict):
        raise ArchiveError(f"{member.path}: not a Kubernetes object")
    _check_shape(member, value)
    return value


_CRD = "customresourcedefinitions.apiextensions.k8s.io"


def _check_shape(member: Member, value: dict[str, Any]) -> None:
    """The fields a restore reads before its first write, of the types every Kubernetes object has
    (a restore read `metadata: "x"` or a CRD's `spec: "x"` as a dict: AttributeError)."""
    meta = value.get("metadata")
    if meta is not None and not isinstance(meta, dict):
        raise ArchiveError(f"{member.path}: metadata is not an object")
    annotations = (meta or {}).get("annotations")
    if annotations is not None and not isinstance(annotations, dict):
        raise ArchiveError(f"{member.path}: metadata.annotations is not an object")
    refs = (meta or {}).get("ownerReferences")
    if refs is not None and not (isinstance(refs, list) and all(isinstance(r, dict) for r in refs)):
        raise ArchiveError(f"{member.path}: metadata.ownerReferences is not a list of objects")
    if refs and not all(isinstance(r.get("uid", ""), str) for r in refs):
        raise ArchiveError(f"{member.path}: an ownerReference's uid is not a string")
    if member.resource == _CRD:
        spec = value.get("spec")
        if spec is not None and not isinstance(spec, dict):
            raise ArchiveError(f"{member.path}: spec is not an object")
        for key in ("names", "conversion"):
            if (spec or {}).get(key) is not None and not isinstance(spec[key], dict):
                raise ArchiveError(f"{member.path}: spec.{key} is not an object")


def uid_lines(file: BinaryIO) -> Iterator[tuple[str, str]]:
    """uids.jsonl's (path, uid) pairs, line by line (never a list of every line: at 100,000 objects
    that costs far more than the pairs wanted); ArchiveError naming the first line that is not JSON,
    or not {"path", "uid"} with string values."""
    for number, line in enumerate(file, 1):
        try:
            entry = jsoncodec.loads(line)
        except ValueError:
            raise ArchiveError(f"{UIDS} line {number}: not JSON") from None
        if not isinstance(entry, dict) or not isinstance(entry.get("path"), str) or not isinstance(entry.get("uid"), str):
            raise ArchiveError(f"{UIDS} line {number}: not an object with a string path and uid")
        yield entry["path"], entry["uid"]


def is_object_path(path: str) -> bool:
    """Whether `path` is an object's member path (resources/<resource>/...)."""
    match = _MEMBER.match(path)
    return bool(match and match.group("resource"))


def check_member(info: tarfile.TarInfo) -> Member:
    """Refuse anything but regular files at the documented paths (a tarfile header). Messages show at
    most 200 characters of a name, whatever its length."""
    return _check(info.name, info.isreg(), info.size)


def _check(name: str, regular: bool, size: int) -> Member:
    if len(name) > MAX_NAME_BYTES:
        raise ArchiveError(f"{_shown(name)}: a member name longer than {MAX_NAME_BYTES} characters")
    if not regular:
        raise ArchiveError(f"{_shown(name)}: only regular files are allowed (links, devices and folders are refused)")
    if name.startswith("/") or ".." in name.split("/") or "\\" in name:
        raise ArchiveError(f"{_shown(name)}: unsafe path")
    match = _MEMBER.match(name)
    if not match:
        raise ArchiveError(f"{_shown(name)}: not a path of the archive format")
    if size > MAX_MEMBER_BYTES:
        raise ArchiveError(f"{_shown(name)}: {size} bytes is larger than any Kubernetes object")
    return Member(name, match.group("resource") or "", match.group("namespace") or "",
                  decode_name(match.group("name")) if match.group("name") else "", size)


#: tar type flags: regular files (tarfile's REGULAR_TYPES but GNU sparse files, which no writer of
#: this format makes), GNU long name / long link, pax extended / global headers
_REGULAR_TYPES = (b"0", b"\0", b"7")
_GNU_LONG = (b"L", b"K")
_PAX = (b"x", b"g")
_ZERO_BLOCK = bytes(BLOCK)
_SIGNED = struct.Struct("148b8x356b")
_PAX_RECORD = re.compile(rb"(\d{1,20}) ")  # a length of more digits is no length (and int() refuses 4300)
#: what a failing decompression raises: isal's BadGzipFile (an OSError: bad CRC, bad method) and
#: IsalError (bad deflate data), EOFError for a stream that ends early
_INFLATE_ERRORS = (OSError, EOFError, ValueError, zlib.error, isal_zlib.error)


def _reading(read: Any, size: int, name: str) -> bytes:
    """read(size), a decompression failure as ArchiveError naming the member (or none)."""
    try:
        return read(size)
    except _INFLATE_ERRORS as err:
        where = f" at {_shown(name)}" if name else ""
        raise ArchiveError(f"corrupt archive{where}: {err}") from None


class _Body:
    """A member's data, read (or skipped) once, in stream order."""

    __slots__ = ("_file", "_name", "_size", "_done")

    def __init__(self, file: BinaryIO, name: str, size: int):
        self._file, self._name, self._size, self._done = file, name, size, False

    def read(self) -> bytes:
        data = _reading(self._file.read, self._size, self._name)
        self._finish(len(data))
        return data

    def copy_to(self, sink: BinaryIO) -> None:
        left = self._size
        while left:
            chunk = _reading(self._file.read, min(left, 1024 * 1024), self._name)
            if not chunk:
                break
            sink.write(chunk)
            left -= len(chunk)
        self._finish(self._size - left)

    def skip(self) -> None:
        if not self._done:
            left = self._size
            while left:
                chunk = _reading(self._file.read, min(left, 1024 * 1024), self._name)
                if not chunk:
                    break
                left -= len(chunk)
            self._finish(self._size - left)

    def _finish(self, got: int) -> None:
        self._done = True
        if got != self._size:
            raise ArchiveError(f"{_shown(self._name)}: truncated")
        padding = -self._size % BLOCK
        if padding and len(_reading(self._file.read, padding, self._name)) != padding:
            raise ArchiveError(f"{_shown(self._name)}: truncated")


def _number(field: bytes) -> int:
    """A tar number field (tarfile's nti): octal text, or GNU's base-256 (first byte 0x80/0xff)."""
    if field[0] in (0o200, 0o377):
        value = int.from_bytes(field[1:], "big")
        return value - 256 ** (len(field) - 1) if field[0] == 0o377 else value
    text = field.split(b"\0", 1)[0].strip()
    if not text:
        return 0
    if not text.isdigit() or b"8" in text or b"9" in text:
        raise ArchiveError("corrupt archive: invalid header (a number field is not octal)")
    return int(text, 8)


def _text(field: bytes) -> str:
    """A NUL-terminated name field (tarfile's nts, with the encoding tarfile uses on Linux)."""
    return field.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")


def _pax_records(data: bytes) -> dict[str, str]:
    """A pax header's `<length> <key>=<value>\\n` records (POSIX.1-2008); ArchiveError if malformed."""
    records, pos = {}, 0
    while pos < len(data) and data[pos:pos + 1] != b"\0":
        match = _PAX_RECORD.match(data, pos)
        length = int(match.group(1)) if match else 0
        record = data[pos:pos + length]
        if not match or length < len(match.group(0)) + 2 or len(record) != length or not record.endswith(b"\n") \
                or b"=" not in record:
            raise ArchiveError("corrupt archive: invalid pax extended header")
        key, _, value = record[len(match.group(0)):-1].partition(b"=")
        records[key.decode("utf-8", "surrogateescape")] = value.decode("utf-8", "surrogateescape")
        pos += length
    return records


class _TarHeaders:
    """The members of a tar stream as (name, is a regular file, size), the file positioned at each
    member's data: a reader of the subset of POSIX tar that archives of this format use (ustar
    headers with a prefix, pax extended and global headers for long names and sizes, GNU long names),
    with tarfile's rules for each field (nti, nts, the two checksums), at a fraction of tarfile's
    per-member cost (its header objects took a third of a restore's time). Stricter than tarfile:
    a bad header anywhere is an error, where tarfile ends the archive there without one; GNU sparse
    files are refused as not regular. GNU long names and pax headers are size-checked before they
    are read (MAX_NAME_BYTES, MAX_PAX_BYTES)."""

    def __init__(self, file: BinaryIO, limit: int = MAX_TOTAL_BYTES):
        self._file = file
        self._limit = limit
        #: bytes of the tar read so far: headers and extended headers here, members' data by the caller
        self.counted = 0

    def __iter__(self) -> Iterator[tuple[str, bool, int]]:
        read = self._file.read
        pax_global: dict[str, str] = {}
        pax: dict[str, str] = {}
        long_name: str | None = None
        pax_bytes = global_bytes = 0  # of the pax headers that apply to the next member: bounded together
        while True:
            header = _reading(read, BLOCK, "")
            if not header or header == _ZERO_BLOCK:  # the end-of-archive blocks (or none, as in tarfile)
                if pax or long_name is not None:  # tarfile: "end of file header"
                    raise ArchiveError("corrupt archive: an extended header without its member at the end")
                return
            if len(header) < BLOCK:
                raise ArchiveError("corrupt archive: truncated header")
            stored = _number(header[148:156])
            unsigned = 256 + sum(header) - sum(header[148:156])
            if stored != unsigned and stored != 256 + sum(_SIGNED.unpack_from(header)):
                raise ArchiveError("corrupt archive: bad checksum")
            kind = header[156:157]
            size = _number(header[124:136])
            if size < 0:
                raise ArchiveError("corrupt archive: invalid header (a negative size)")
            self.counted += BLOCK
            if kind in _GNU_LONG:
                if size > MAX_NAME_BYTES:
                    raise ArchiveError(f"a GNU long-name header of {size} bytes (names are at most {MAX_NAME_BYTES})")
                self._count(size)
                data = self._data(size)
                if kind == b"L":
                    long_name = _text(data)
                continue
            if kind in _PAX:
                if size > MAX_PAX_BYTES:
                    raise ArchiveError(f"a pax extended header of {size} bytes (at most {MAX_PAX_BYTES} are read)")
                self._count(size)
                if kind == b"x":
                    pax_bytes += size
                else:
                    global_bytes += size
                if pax_bytes + global_bytes > MAX_PAX_BYTES:
                    raise ArchiveError(f"pax extended headers of {pax_bytes + global_bytes} bytes for one member "
                                       f"(at most {MAX_PAX_BYTES} are read)")
                (pax if kind == b"x" else pax_global).update(_pax_records(self._data(size)))
                continue
            name = _text(header[0:100])
            prefix = _text(header[345:500])
            if prefix:
                name = f"{prefix}/{name}"
            fields = {**pax_global, **pax}
            if "path" in fields:
                name = fields["path"]
            if "size" in fields:
                if not (fields["size"].isascii() and fields["size"].isdigit()):  # not "\u00b2", "\u0661"
                    raise ArchiveError("corrupt archive: invalid pax extended header (size)")
                size = int(fields["size"])
            if long_name is not None:
                if "path" in fields and fields["path"] != long_name:  # tarfile takes one, GNU tar the other
                    raise ArchiveError(f"corrupt archive: a member named twice ({_shown(long_name)} by a GNU long "
                                       f"name, {_shown(fields['path'])} by a pax path)")
                name = long_name
            pax, long_name, pax_bytes = {}, None, 0
            regular = kind in _REGULAR_TYPES and not (kind == b"\0" and name.endswith("/"))
            yield name, regular, size

    def _count(self, size: int) -> None:
        """An extended header's data against the expansion limit: headers without a member yield
        nothing, so a stream of them (1.9 MB of gzip'd GNU long names inflate to 1 GB) is counted here."""
        self.counted += size
        if self.counted > self._limit:
            raise ArchiveError(_BOMB)

    def _data(self, size: int) -> bytes:
        data = _reading(self._file.read, size + (-size % BLOCK), "")
        if len(data) != size + (-size % BLOCK):
            raise ArchiveError("corrupt archive: truncated header")
        return data[:size]


def _read(tar: tarfile.TarFile, info: tarfile.TarInfo) -> bytes:
    handle = tar.extractfile(info)
    if handle is None:
        raise ArchiveError(f"{_shown(info.name)}: unreadable")
    try:
        data = handle.read(MAX_MEMBER_BYTES + 1)
    except (tarfile.TarError, EOFError, OSError, zlib.error) as err:
        raise ArchiveError(f"corrupt archive at {_shown(info.name)}: {err}") from None
    if len(data) != info.size:
        raise ArchiveError(f"{_shown(info.name)}: truncated")
    return data
