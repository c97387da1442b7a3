"""The archive format: what the writer produces is what the reader accepts; hostile archives are refused."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import subprocess
import tarfile
from pathlib import Path

import pytest

from ctpbackup.engines import archive
from ctpbackup.engines.archive import ArchiveError, ArchiveReader, ArchiveWriter

SECRET = {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
          "metadata": {"name": "super-secret-secret", "namespace": "default", "uid": "u-1", "resourceVersion": "42",
                       "creationTimestamp": "2026-01-01T00:00:00Z", "managedFields": [{"manager": "kubectl"}],
                       "generation": 3, "labels": {"a": "b"},
                       "annotations": {"crossplane.io/external-name": "ext-ÿ-1",
                                       "kubectl.kubernetes.io/last-applied-configuration": "{}"},
                       "finalizers": ["keep"], "ownerReferences": [{"apiVersion": "v1", "kind": "ConfigMap",
                                                                     "name": "owner", "uid": "owner-uid"}]},
          "data": {"password": "c3VwZXJzZWNyZXQ="}}


def write(path: Path, members: dict[str, bytes], metadata: dict | None = None) -> Path:
    with path.open("wb") as out:
        writer = ArchiveWriter(out)
        for name, data in members.items():
            writer.add_bytes(name, data)
        writer.add_json(archive.METADATA, metadata if metadata is not None else {"formatVersion": 1})
        writer.close()
    return path


def test_clean_object_strips_server_fields_and_keeps_what_restore_needs():
    cleaned, uid = archive.clean_object(SECRET)
    meta = cleaned["metadata"]
    assert uid == "u-1"
    for gone in ("uid", "resourceVersion", "creationTimestamp", "managedFields", "generation"):
        assert gone not in meta
    assert meta["annotations"] == SECRET["metadata"]["annotations"]  # byte for byte, last-applied too
    assert meta["finalizers"] == ["keep"] and meta["ownerReferences"][0]["uid"] == "owner-uid"
    assert cleaned["data"] == SECRET["data"] and SECRET["metadata"]["uid"] == "u-1"  # input untouched


def test_round_trip_checksum_and_tar_listing(tmp_path):
    out = io.BytesIO()
    writer = ArchiveWriter(out)
    cleaned, _ = archive.clean_object(SECRET)
    path = archive.object_path("secrets", "default", "super-secret-secret")
    writer.add_json(path, cleaned)
    writer.add_json(archive.object_path("customresourcedefinitions.apiextensions.k8s.io", None, "xs.example.org"), {"kind": "CRD"})
    writer.add_bytes(archive.UIDS, b'{"path":"%s","uid":"u-1"}\n' % path.encode())
    writer.add_json(archive.METADATA, {"formatVersion": 1, "counts": {"secrets": 1}})
    written = writer.close()
    data = out.getvalue()
    assert written.size == len(data) and written.sha256 == hashlib.sha256(data).hexdigest()
    file = tmp_path / "a.tar.gz"
    file.write_bytes(data)
    listing = subprocess.run(["tar", "-tzf", str(file)], capture_output=True, text=True, check=True).stdout.split()
    assert listing == [path, "resources/customresourcedefinitions.apiextensions.k8s.io/cluster/xs.example.org.json",
                       "uids.jsonl", "metadata.json"]
    reader = ArchiveReader(file)
    assert reader.validate()["counts"] == {"secrets": 1}
    assert reader.uids() == {path: "u-1"}
    objects = list(reader.objects({"secrets"}))
    assert [(m.resource, m.namespace, m.name) for m, _ in objects] == [("secrets", "default", "super-secret-secret")]
    assert objects[0][1]["metadata"]["annotations"]["crossplane.io/external-name"] == "ext-ÿ-1"


def _tar_with(tmp_path: Path, add) -> Path:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        add(tar)
        meta = json.dumps({"formatVersion": 1}).encode()
        info = tarfile.TarInfo(archive.METADATA)
        info.size = len(meta)
        tar.addfile(info, io.BytesIO(meta))
    file = tmp_path / "hostile.tar.gz"
    file.write_bytes(buffer.getvalue())
    return file


def _file(name: str, data: bytes = b"{}"):
    def add(tar):
        info = tarfile.TarInfo(name)
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return add


def _link(name: str, kind: bytes):
    def add(tar):
        info = tarfile.TarInfo(name)
        info.type = kind
        info.linkname = "/etc/passwd"
        tar.addfile(info)
    return add


@pytest.mark.parametrize("add, message", [
    (_file("../../etc/cron.d/evil"), "unsafe path"),
    (_file("/etc/passwd"), "unsafe path"),
    (_file("resources/secrets/namespaces/default/../../../x.json"), "unsafe path"),
    (_file("resources/secrets/namespaces/Default/x.json"), "not a path of the archive format"),
    (_file("notes.txt"), "not a path of the archive format"),
    (_link("resources/secrets/namespaces/default/x.json", tarfile.SYMTYPE), "only regular files"),
    (_link("resources/secrets/namespaces/default/x.json", tarfile.LNKTYPE), "only regular files"),
    (_file("resources/secrets/namespaces/default/x.json", b"not json"), "not JSON"),
], ids=["dotdot", "absolute", "nested-dotdot", "bad-namespace", "foreign-file", "symlink", "hardlink", "not-json"])
def test_hostile_members_are_refused(tmp_path, add, message):
    with pytest.raises(ArchiveError, match=message):
        ArchiveReader(_tar_with(tmp_path, add)).validate()


def test_unknown_format_version_is_refused(tmp_path):
    file = write(tmp_path / "v9.tar.gz", {}, {"formatVersion": 9})
    with pytest.raises(ArchiveError, match="format version 9 is not supported"):
        ArchiveReader(file).validate()


def test_missing_metadata_is_refused(tmp_path):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz"):
        pass
    (tmp_path / "empty.tar.gz").write_bytes(buffer.getvalue())
    with pytest.raises(ArchiveError, match="metadata.json missing"):
        ArchiveReader(tmp_path / "empty.tar.gz").validate()


def test_truncated_gzip_is_refused(tmp_path):
    file = write(tmp_path / "ok.tar.gz", {archive.object_path("secrets", "default", "x"): b"{}" * 50000})
    data = file.read_bytes()
    file.write_bytes(data[: len(data) // 2])
    with pytest.raises(ArchiveError, match=r"^corrupt archive at 'resources/secrets/namespaces/default/x\.json': "
                                           r"Compressed file ended before the end-of-stream marker was reached$"):
        ArchiveReader(file).validate()


def test_not_gzip_is_refused(tmp_path):
    (tmp_path / "junk.tar.gz").write_bytes(b"this is not an archive at all")
    with pytest.raises(ArchiveError, match=r"^not a gzip'd tar archive: not a gzip file$"):
        ArchiveReader(tmp_path / "junk.tar.gz").validate()


def test_decompression_bomb_is_refused_quickly(tmp_path):
    # 80 MiB of zeros compresses to ~80 KiB: far beyond any plausible ratio for JSON objects
    bomb = b"0" * (80 * 1024 * 1024)
    buffer = io.BytesIO()
    with gzip.GzipFile(fileobj=buffer, mode="wb", compresslevel=9) as gz, tarfile.open(fileobj=gz, mode="w|") as tar:
        info = tarfile.TarInfo(archive.object_path("configmaps", "default", "bomb"))
        info.size = len(bomb)
        tar.addfile(info, io.BytesIO(bomb))
    (tmp_path / "bomb.tar.gz").write_bytes(buffer.getvalue())
    with pytest.raises(ArchiveError, match="larger than any Kubernetes object|decompression bomb"):
        ArchiveReader(tmp_path / "bomb.tar.gz").validate()


def test_member_headers_are_what_tarfile_writes():
    """The writer builds ustar headers itself (it is on the hot path); they must be byte for byte
    what tarfile writes, for short names, long names split into prefix and name, and names that
    only fit a PAX header."""
    import random

    rng = random.Random(7)
    names = ["metadata.json", "a" * 100, "d/" + "a" * 100, "/".join(["seg"] * 60) + "/x.json"]
    for _ in range(3000):
        parts = ["".join(rng.choices("abcdefghij-.", k=rng.randint(1, 60))) for _ in range(rng.randint(1, 6))]
        names.append("resources/" + "/".join(parts) + ".json")
    for name in names:
        size, mtime = rng.randint(0, 10**9), 1_700_000_000
        info = tarfile.TarInfo(name)
        info.size, info.mtime, info.mode, info.uname, info.gname = size, mtime, 0o644, "", ""
        try:
            expected = info.tobuf(tarfile.USTAR_FORMAT, "utf-8", "surrogateescape")
        except ValueError:  # does not fit ustar: PAX
            expected = info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")
        assert archive._ustar_header(name, size, mtime) == expected, name


def test_a_member_too_large_for_ustar_gets_a_pax_size():
    header = archive._ustar_header("uids.jsonl", 9 * 1024**3, 0)
    assert len(header) % 512 == 0 and len(header) > 512
    assert tarfile.TarInfo.frombuf(header[-512:], "utf-8", "surrogateescape").name == "uids.jsonl"


@pytest.mark.parametrize("members", [0, 1, 3000])  # no object, one, and enough to cross several 1 MiB deflate batches
def test_isal_deflated_archive_is_a_gzipped_tar_that_tar_and_gunzip_read(tmp_path, members):
    """The writer deflates with ISA-L: its output must stay plain gzip that GNU tar, gzip and the
    standard library read, member for member and byte for byte."""
    expected = {}
    file = tmp_path / "a.tar.gz"
    with file.open("wb") as out:
        writer = ArchiveWriter(out)
        for i in range(members):
            path = archive.object_path("configmaps", "default", f"cm-{i:05d}")
            value = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"cm-{i:05d}", "namespace": "default"},
                     "data": {"i": str(i), "pad": "x" * (i % 700)}}
            writer.add_json(path, value)
            expected[path] = json.dumps(value, separators=(",", ":")).encode()
        big = b"uid-line\n" * 150_000  # 1.35 MB: one member larger than a deflate batch
        writer.add_file(archive.UIDS, io.BytesIO(big), len(big))
        writer.add_json(archive.METADATA, {"formatVersion": 1})
        written = writer.close()
    expected[archive.UIDS] = big
    expected[archive.METADATA] = b'{"formatVersion":1}'
    assert written.size == file.stat().st_size
    assert subprocess.run(["gzip", "-t", str(file)], capture_output=True).returncode == 0
    listing = subprocess.run(["tar", "-tzf", str(file)], capture_output=True, text=True, check=True).stdout.split()
    assert listing == list(expected)
    target = tmp_path / "x"
    target.mkdir()
    subprocess.run(["tar", "-xzf", str(file), "-C", str(target)], check=True)
    assert {p: (target / p).read_bytes() for p in expected} == expected
    with gzip.open(file) as raw:  # the standard library's zlib reads it too, to the two end blocks
        assert len(raw.read()) % 512 == 0


@pytest.mark.parametrize(("lines", "message"), [
    (b'{"path":"a","uid":"u"}\n[1,2]\n', "uids.jsonl line 2: not an object with a string path and uid"),
    (b'{"path":"a"}\n', "uids.jsonl line 1: not an object with a string path and uid"),
    (b'{"path":"a","uid":7}\n', "uids.jsonl line 1: not an object with a string path and uid"),
    (b'{"path":null,"uid":"u"}\n', "uids.jsonl line 1: not an object with a string path and uid"),
    (b'{"path":"a","uid":"u"}\n{"path"\n', "uids.jsonl line 2: not JSON"),
])
def test_uids_lines_are_checked_by_validate_and_uids(tmp_path, lines, message):
    file = write(tmp_path / "a.tar.gz", {archive.UIDS: lines})
    with pytest.raises(ArchiveError, match=f"^{message}$"):
        ArchiveReader(file).validate()
    with pytest.raises(ArchiveError, match=f"^{message}$"):
        ArchiveReader(file).uids()


def test_uids_maps_every_path_to_its_uid(tmp_path):
    file = write(tmp_path / "a.tar.gz", {archive.UIDS: b'{"path":"p1","uid":"u1"}\n{"path":"p2","uid":"u2"}\n'})
    reader = ArchiveReader(file)
    reader.validate()
    assert reader.uids() == {"p1": "u1", "p2": "u2"}
