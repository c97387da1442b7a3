"""Hostile tar headers (an attacker who can write to the bucket, or a buggy older writer): each is
refused with one ArchiveError line, in bounded memory, never another exception."""

from __future__ import annotations

import re
import tarfile
import zlib
from pathlib import Path

import pytest

from ctpbackup.engines.archive import ArchiveError, ArchiveReader
from tests.archive.test_tar_reader import NS, block, gz, padded, record

META = (block(b"metadata.json", 19), padded(b'{"formatVersion":1}'))


def refused(path: Path, message: str) -> None:
    with pytest.raises(ArchiveError, match=f"^{re.escape(message)}$"):
        ArchiveReader(path).validate()


def test_a_pax_record_length_of_thousands_of_digits_is_refused_as_malformed(tmp_path):
    """int() of more than 4300 digits raises ValueError (Python 3.11's limit), not ArchiveError."""
    records = b"9" * 5000 + b" path=x\n"
    path = gz(tmp_path / "a.tar.gz", block(b"p", len(records), b"x"), padded(records), *META)
    refused(path, "corrupt archive: invalid pax extended header")


@pytest.mark.parametrize("size", ["\u00b2", "\u0661\u0669"])  # str.isdigit() is True for both
def test_a_pax_size_of_non_ascii_digits_is_refused(tmp_path, size):
    records = record(b"size", size.encode())
    path = gz(tmp_path / "a.tar.gz", block(b"p", len(records), b"x"), padded(records),
              block(NS.encode() + b"a.json", 2), padded(b"{}"), *META)
    refused(path, "corrupt archive: invalid pax extended header (size)")


def many_keys(first: int, count: int) -> bytes:
    return b"".join(record(b"k%09d" % i, b"v") for i in range(first, first + count))


@pytest.mark.parametrize("kind", [b"g", b"x"])
def test_pax_headers_cannot_add_up_past_the_pax_limit(tmp_path, kind):
    """Each header is within MAX_PAX_BYTES, but their records accumulate (global ones for the whole
    archive, extended ones until the next member): 9.7 MB of gzip'd global headers held 550 MB. Refused
    as soon as the second header passes the limit, before it is read."""
    headers = []
    for i in range(3):  # 3 x 40,000 bytes of distinct keys
        records = many_keys(i * 2500, 2500)
        headers += [block(b"p", len(records), kind), padded(records)]
    path = gz(tmp_path / "a.tar.gz", *headers, block(NS.encode() + b"a.json", 2), padded(b"{}"), *META)
    refused(path, "pax extended headers of 80000 bytes for one member (at most 65536 are read)")


def test_a_bomb_of_headers_without_members_is_refused(tmp_path):
    """Headers that yield no member (GNU long names, pax extended headers) count against the
    expansion limit (MAX_RATIO): 1.9 MB of gzip'd long-link headers inflated to 1 GB and were read
    to the end, past 200 times the archive's size, as a bomb of members is not. (Long names, L, take
    the same path; pax headers add up to MAX_PAX_BYTES before a member.)"""
    unit = (block(b"././@LongLink", 4096, b"K") + b"a" * 4096) * 64
    deflate = zlib.compressobj(9, zlib.DEFLATED, 31)
    path = tmp_path / "a.tar.gz"
    with path.open("wb") as out:
        for _ in range(800):  # 236 MB inflated, 440 KB gzip'd: the limit is 200 x 1 MiB
            out.write(deflate.compress(unit))
        out.write(deflate.compress(b"".join(META) + b"\0" * 1024) + deflate.flush())
    assert path.stat().st_size < 1024 * 1024
    refused(path, "archive expands far beyond its compressed size (decompression bomb?)")


def test_a_member_named_by_both_a_gnu_long_name_and_a_pax_path_is_refused(tmp_path):
    """tarfile (and this reader) take the GNU long name, GNU tar the pax path: `tar -tzf` would show
    one object, a restore write another. Two names for one member are refused, whichever wins."""
    long_name = (NS + "shown-by-tarfile.json").encode()
    records = record(b"path", (NS + "shown-by-gnu-tar.json").encode())
    path = gz(tmp_path / "a.tar.gz", block(b"././@LongLink", len(long_name) + 1, b"L"), padded(long_name + b"\0"),
              block(b"p", len(records), b"x"), padded(records), block(b"x", 2), padded(b"{}"), *META)
    with tarfile.open(path) as tar:
        assert tar.getnames() == [NS + "shown-by-tarfile.json", "metadata.json"]
    refused(path, f"corrupt archive: a member named twice ('{NS}shown-by-tarfile.json' by a GNU long name, "
                  f"'{NS}shown-by-gnu-tar.json' by a pax path)")


@pytest.mark.parametrize("kind, data", [(b"L", (NS + "a.json").encode() + b"\0"), (b"x", record(b"path", b"a"))])
def test_an_extended_header_without_its_member_at_the_end_is_refused(tmp_path, kind, data):
    """tarfile refuses it (ReadError: end of file header); it was taken silently, naming nothing."""
    path = gz(tmp_path / "a.tar.gz", *META, block(b"././@LongLink", len(data), kind), padded(data))
    with pytest.raises(tarfile.ReadError, match="^end of file header$"), tarfile.open(path) as tar:
        tar.getnames()
    refused(path, "corrupt archive: an extended header without its member at the end")
