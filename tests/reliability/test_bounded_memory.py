"""Bad input costs bounded memory and yields a bounded message (issue 17, item 11): limits are
checked before anything is allocated, in archives (GNU long names, pax headers) and in YAML (nodes
counted through merge keys and aliases)."""

from __future__ import annotations

import gzip
import tarfile
import tracemalloc
from pathlib import Path

import pytest

from ctpbackup.desired.yamldocs import YamlError, parse_documents
from ctpbackup.engines.archive import ArchiveError, ArchiveReader
from ctpbackup.store.records import MAX_MESSAGE, Condition, bounded, set_condition

BLOCK = 512


def header(name: bytes, size: int, typeflag: bytes) -> bytes:
    info = tarfile.TarInfo("x")
    info.size = size
    info.type = typeflag
    block = bytearray(info.tobuf(format=tarfile.USTAR_FORMAT))
    block[0:100] = name[:100].ljust(100, b"\0")
    block[148:156] = b"        "
    block[148:156] = b"%06o\0 " % sum(block)
    return bytes(block)


def bomb(path: Path, typeflag: bytes, size: int, fill: bytes = b"a") -> Path:
    """A tar.gz whose first header claims `size` bytes of name (or pax) data, streamed out so the
    test itself never holds it: ~150 KB on disk for 150 MB claimed."""
    with gzip.open(path, "wb", compresslevel=9) as out:
        out.write(header(b"././@LongLink", size, typeflag))
        chunk = fill * (1024 * 1024)
        left = size
        while left:
            n = min(left, len(chunk))
            out.write(chunk[:n])
            left -= n
        out.write(b"\0" * (-size % BLOCK))
        out.write(header(b"metadata.json", 2, tarfile.REGTYPE) + b"{}".ljust(BLOCK, b"\0") + b"\0" * (2 * BLOCK))
    return path


def peak_while(fn) -> tuple[int, Exception | None]:
    tracemalloc.start()
    try:
        fn()
        raised = None
    except Exception as err:  # noqa: BLE001 - returned to the test, which asserts its type and text
        raised = err
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak, raised


@pytest.mark.parametrize("typeflag, size, message", [
    (tarfile.GNUTYPE_LONGNAME, 150 * 1024 * 1024, "a GNU long-name header of 157286400 bytes (names are at most 4096)"),
    (tarfile.GNUTYPE_LONGLINK, 150 * 1024 * 1024, "a GNU long-name header of 157286400 bytes (names are at most 4096)"),
    (tarfile.GNUTYPE_LONGNAME, 4097, "a GNU long-name header of 4097 bytes (names are at most 4096)"),
    (tarfile.XHDTYPE, 150 * 1024 * 1024, "a pax extended header of 157286400 bytes (at most 65536 are read)"),
    (tarfile.XGLTYPE, 80 * 1024 * 1024, "a pax extended header of 83886080 bytes (at most 65536 are read)"),
])
def test_an_oversized_name_or_pax_header_is_refused_before_it_is_read(tmp_path, typeflag, size, message):
    path = bomb(tmp_path / "bomb.tar.gz", typeflag, size)
    assert path.stat().st_size < 400 * 1024
    peak, raised = peak_while(lambda: ArchiveReader(path).validate())
    assert isinstance(raised, ArchiveError) and str(raised) == message
    assert peak < 8 * 1024 * 1024, f"{peak} bytes allocated to refuse it"


def test_a_long_name_within_limits_is_refused_with_a_bounded_message(tmp_path):
    path = bomb(tmp_path / "long.tar.gz", tarfile.GNUTYPE_LONGNAME, 4000, b"n")
    with pytest.raises(ArchiveError, match=r"\(4000 characters\): not a path of the archive format$") as caught:
        ArchiveReader(path).validate()
    assert str(caught.value) == "'" + "n" * 179 + "...' (4000 characters): not a path of the archive format"


@pytest.mark.parametrize("length", [0, 499, 500, 501, 150 * 1024 * 1024])
def test_messages_stored_in_records_are_bounded(length):
    message = "m" * length
    (condition,) = set_condition((), Condition("Restored", "False", "ArchiveRejected", message))
    assert len(condition.message) == min(length, MAX_MESSAGE)
    assert condition.message == bounded(message)
    if length > MAX_MESSAGE:
        assert condition.message.endswith(f"... ({length - MAX_MESSAGE} more characters)")
    read = Condition.from_dict({"type": "Restored", "status": "False", "reason": "r" * 1000, "message": message})
    assert len(read.message) == min(length, MAX_MESSAGE) and len(read.reason) == 128


def merge_bomb(levels: int) -> str:
    """A few hundred bytes whose merge keys expand to 2**levels pairs when flattened: each level is
    defined inline inside the merge that uses it twice, so nothing is built before the expansion."""
    inner = "&a0 {k0: v}"
    for i in range(1, levels + 1):
        inner = f"&a{i} {{<<: [{inner}, *a{i - 1}], k{i}: v}}"
    return f"spec: {{<<: [{inner}, *a{levels}]}}\n"


@pytest.mark.parametrize("levels", [18, 24, 30])
def test_yaml_merge_keys_are_counted_before_they_are_expanded(levels):
    text = merge_bomb(levels)
    assert len(text) < 1200
    peak, raised = peak_while(lambda: list(parse_documents(text.encode())))
    assert isinstance(raised, YamlError)
    assert raised.message == "document too large (more than 200000 values, merge keys and aliases expanded)"
    assert peak < 32 * 1024 * 1024, f"{peak} bytes allocated to refuse it"


def test_yaml_merge_keys_within_the_limit_still_merge():
    (doc,) = parse_documents(b"base: &b {x: 1, y: 2}\nspec: {<<: [*b], y: 3}\n")
    assert doc.data == {"base": {"x": 1, "y": 2}, "spec": {"x": 1, "y": 3}}


@pytest.mark.parametrize("text, data", [
    (b"b: &b {x: 1}\nc: &c {x: 2, z: 0}\nspec: {<<: [*b, *c]}\n", {"x": 1, "z": 0}),  # earlier mapping wins
    (b"b: &b {x: 1}\nspec: {<<: *b, x: 5}\n", {"x": 5}),
])
def test_yaml_merge_key_precedence(text, data):
    (doc,) = parse_documents(text)
    assert doc.data["spec"] == data


def test_a_mappings_own_keys_must_still_be_distinct_next_to_a_merge():
    with pytest.raises(YamlError, match="^duplicate key 'x'$"):
        list(parse_documents(b"b: &b {y: 1}\nspec: {<<: *b, x: 1, x: 2}\n"))
