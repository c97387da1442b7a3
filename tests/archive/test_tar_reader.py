"""The archive reader's own tar parser (archive._TarHeaders) reads what tarfile reads, member for
member, in every header form a writer of this format can produce (ustar with a prefix, pax extended
and global headers, GNU long names), and refuses damaged headers that tarfile would have taken as
the archive's end."""

from __future__ import annotations

import gzip
import io
import re
import tarfile
from pathlib import Path

import pytest

from ctpbackup.engines import archive
from ctpbackup.engines.archive import ArchiveError, ArchiveReader, ArchiveWriter

NS = "resources/configmaps/namespaces/default/"
#: names of every length class: ustar name, ustar prefix + name, too long for ustar (pax or GNU)
NAMES = [NS + "a.json", NS + "b" * 90 + ".json", NS + "c" * 200 + ".json",
         "resources/roles.rbac.authorization.k8s.io/cluster/" + "d" * 240 + ".json",
         archive.object_path("clusterroles.rbac.authorization.k8s.io", None, "oidc:platform/sre\u00ff".replace("/", "+"))]


def scanned(path: Path) -> list[tuple[str, int, bytes]]:
    with io.BytesIO() as uids:
        return [(m.path, m.size, data) for m, data in ArchiveReader(path).scan(uids)]


def by_tarfile(path: Path) -> list[tuple[str, int, bytes]]:
    with tarfile.open(path, "r:gz") as tar:
        return [(i.name, i.size, tar.extractfile(i).read()) for i in tar]


def body(i: int) -> bytes:
    return b'{"i":%d,"pad":"%s"}' % (i, b"x" * (i * 131 % 700))


def test_what_our_writer_writes_is_read_as_tarfile_reads_it(tmp_path):
    path = tmp_path / "ours.tar.gz"
    with path.open("wb") as out:
        writer = ArchiveWriter(out)
        for i, name in enumerate(NAMES):
            writer.add_bytes(name, body(i))
        writer.add_json(archive.METADATA, {"formatVersion": 1})
        writer.close()
    expected = [*((n, len(body(i)), body(i)) for i, n in enumerate(NAMES)), ("metadata.json", 19, b'{"formatVersion":1}')]
    assert scanned(path) == by_tarfile(path) == expected


@pytest.mark.parametrize("fmt, pax_headers", [
    (tarfile.USTAR_FORMAT, None),
    (tarfile.GNU_FORMAT, None),  # long names as GNU 'L' headers
    (tarfile.PAX_FORMAT, None),  # long names as pax 'x' headers
    (tarfile.PAX_FORMAT, {"comment": "a global header", "mtime": "1700000000"}),  # a pax 'g' header first
])
def test_archives_tarfile_writes_are_read_member_for_member(tmp_path, fmt, pax_headers):
    path = tmp_path / "t.tar.gz"
    names = NAMES[:2] if fmt == tarfile.USTAR_FORMAT else NAMES
    with tarfile.open(path, "w:gz", format=fmt, pax_headers=pax_headers or {}) as tar:
        for i, name in enumerate(names):
            info = tarfile.TarInfo(name)
            info.size = len(body(i))
            tar.addfile(info, io.BytesIO(body(i)))
        info = tarfile.TarInfo(archive.METADATA)
        info.size = 19
        tar.addfile(info, io.BytesIO(b'{"formatVersion":1}'))
    got = scanned(path)
    assert got == by_tarfile(path)
    assert [p for p, _, _ in got] == [*names, "metadata.json"]
    assert ArchiveReader(path).validate() == {"formatVersion": 1}


def block(name: bytes, size: int, kind: bytes = b"0", damage=None) -> bytes:
    info = tarfile.TarInfo("x")
    info.size, info.type = size, kind
    header = bytearray(info.tobuf(format=tarfile.USTAR_FORMAT))
    header[0:100] = name.ljust(100, b"\0")
    if damage:
        damage(header)
    header[148:156] = b"        "
    header[148:156] = b"%06o\0 " % sum(header)
    return bytes(header)


def gz(path: Path, *parts: bytes) -> Path:
    path.write_bytes(gzip.compress(b"".join(parts) + b"\0" * 1024))
    return path


def padded(data: bytes) -> bytes:
    return data + b"\0" * (-len(data) % 512)


def test_a_bad_checksum_anywhere_is_refused_where_tarfile_would_end_the_archive_there(tmp_path):
    good = block(NS.encode() + b"a.json", 2) + padded(b"{}")
    bad = bytearray(block(b"metadata.json", 19))
    bad[0] ^= 0x01  # the name changed, the checksum not
    path = gz(tmp_path / "a.tar.gz", good, bytes(bad), padded(b'{"formatVersion":1}'))
    with tarfile.open(path, "r:gz") as tar:
        assert [i.name for i in tar] == [NS + "a.json"]  # tarfile: the archive ends there
    with pytest.raises(ArchiveError, match="^corrupt archive: bad checksum$"):
        ArchiveReader(path).validate()


def set_field(start: int, end: int, value: bytes):
    def damage(header: bytearray) -> None:
        header[start:end] = value.ljust(end - start, b"\0")
    return damage


@pytest.mark.parametrize("kind, damage, message", [
    (b"0", set_field(124, 136, b"00000000009"), "corrupt archive: invalid header (a number field is not octal)"),
    (b"0", set_field(124, 136, b"\xff" + b"\xff" * 11), "corrupt archive: invalid header (a negative size)"),
    (b"S", None, f"'{NS}s.json': only regular files are allowed (links, devices and folders are refused)"),
    (b"5", None, f"'{NS}s.json': only regular files are allowed (links, devices and folders are refused)"),
    (b"X", None, f"'{NS}s.json': only regular files are allowed (links, devices and folders are refused)"),
])
def test_damaged_or_unsupported_headers_are_refused(tmp_path, kind, damage, message):
    path = gz(tmp_path / "a.tar.gz", block(NS.encode() + b"s.json", 2, kind, damage), padded(b"{}"))
    with pytest.raises(ArchiveError, match=f"^{re.escape(message)}$"):
        ArchiveReader(path).validate()


def record(key: bytes, value: bytes) -> bytes:
    """A pax record, its length counting its own digits."""
    text = b" %s=%s\n" % (key, value)
    length = len(text) + 1
    while len(b"%d" % length) + len(text) != length:
        length += 1
    return b"%d%s" % (length, text)


@pytest.mark.parametrize("records, message", [
    (b"6 a=b\n", None),
    (record(b"path", NS.encode() + b"p.json") + record(b"comment", b"x"), None),
    (b"30 path=" + NS.encode() + b"p.json\n", "corrupt archive: invalid pax extended header"),
    (b"x path=y\n", "corrupt archive: invalid pax extended header"),
    (b"8 path\n", "corrupt archive: invalid pax extended header"),
    (b"12 size=abc\n", "corrupt archive: invalid pax extended header (size)"),
])
def test_pax_records_are_parsed_strictly(tmp_path, records, message):
    path = gz(tmp_path / "a.tar.gz", block(b"././@PaxHeader", len(records), b"x"), padded(records),
              block(NS.encode() + b"p.json", 2), padded(b"{}"),
              block(b"metadata.json", 19), padded(b'{"formatVersion":1}'))
    if message is None:
        assert [p for p, _, _ in scanned(path)] == [NS + "p.json", "metadata.json"]
        return
    with pytest.raises(ArchiveError, match=f"^{re.escape(message)}$"):
        ArchiveReader(path).validate()


def test_a_pax_path_and_size_override_the_header(tmp_path):
    records = record(b"path", NS.encode() + b"q.json") + record(b"size", b"19")
    path = gz(tmp_path / "a.tar.gz", block(b"././@PaxHeader", len(records), b"x"), padded(records),
              block(b"short", 0), padded(b'{"formatVersion":1}'),
              block(b"metadata.json", 19), padded(b'{"formatVersion":1}'))
    assert scanned(path) == by_tarfile(path) == [(NS + "q.json", 19, b'{"formatVersion":1}'),
                                                 ("metadata.json", 19, b'{"formatVersion":1}')]
