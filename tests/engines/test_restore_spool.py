"""A restore reads its archive once: the same pass checks every member and spools each object to its
tier's file (engines/restore._spool_archive). Objects naming an owner wait for uids.jsonl, which the
writer puts after the objects; the result does not depend on that order."""

from __future__ import annotations

import json
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from ctpbackup.engines import archive
from ctpbackup.engines.archive import ArchiveReader, ArchiveWriter
from ctpbackup.engines.conversion_webhooks import ConversionWebhooks
from ctpbackup.engines.restore import (
    RestoreFailed,
    _Entry,
    _generations,
    _Paused,
    _PausedSpool,
    _spool_archive,
)
from ctpbackup.engines.restore_order import TIERS
from ctpbackup.kube.api import ResourceType
from ctpbackup.rules.reasons import FailureReason

TIER = {t.name: i for i, t in enumerate(TIERS)}
CRD = "customresourcedefinitions.apiextensions.k8s.io"
REVISION = "providerrevisions.pkg.crossplane.io"


def ref(kind: str, name: str, uid: str, api_version: str = "example.org/v1", controller: bool = True) -> dict:
    return {"apiVersion": api_version, "kind": kind, "name": name, "uid": uid, "controller": controller}


#: (resource, namespace, name, old uid, object): a Crossplane control plane in miniature
OBJECTS = [
    (CRD, None, "buckets.example.org", "u-crd", {
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "buckets.example.org",
                     "ownerReferences": [ref("ProviderRevision", "p-abc", "u-rev", "pkg.crossplane.io/v1")]},
        "spec": {"group": "example.org", "names": {"plural": "buckets", "kind": "Bucket"}, "scope": "Cluster",
                 "conversion": {"strategy": "Webhook"}}}),
    ("configmaps", "default", "plain", "u-cm", {"apiVersion": "v1", "kind": "ConfigMap",
                                                "metadata": {"name": "plain", "namespace": "default"}}),
    ("buckets.example.org", None, "mr-1", "u-mr1", {"apiVersion": "example.org/v1", "kind": "Bucket",
                                                    "metadata": {"name": "mr-1", "ownerReferences": [ref("XBucket", "xr", "u-xr")]}}),
    ("secrets", "default", "conn", "u-conn", {"apiVersion": "v1", "kind": "Secret", "type": "connection.crossplane.io/v1alpha1",
                                              "metadata": {"name": "conn", "namespace": "default",
                                                           "ownerReferences": [ref("XBucket", "xr", "u-xr")]}}),
    ("secrets", "default", "tok", "u-tok", {"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/service-account-token",
                                            "metadata": {"name": "tok", "namespace": "default"}}),
    ("configmaps", "default", "by-token", "u-bt", {"apiVersion": "v1", "kind": "ConfigMap",
                                                   "metadata": {"name": "by-token", "namespace": "default",
                                                                "ownerReferences": [ref("Secret", "tok", "u-tok", "v1")]}}),
    ("configmaps", "default", "by-plain", "u-bp", {"apiVersion": "v1", "kind": "ConfigMap",
                                                   "metadata": {"name": "by-plain", "namespace": "default",
                                                                "ownerReferences": [ref("ConfigMap", "plain", "u-cm", "v1")]}}),
    ("configmaps", "default", "orphan", "u-or", {"apiVersion": "v1", "kind": "ConfigMap",
                                                 "metadata": {"name": "orphan", "namespace": "default",
                                                              "ownerReferences": [ref("Thing", "gone", "u-gone")]}}),
    ("xbuckets.example.org", None, "xr", "u-xr", {"apiVersion": "example.org/v1", "kind": "XBucket",
                                                  "metadata": {"name": "xr"}}),
    (REVISION, None, "p-abc", "u-rev", {"apiVersion": "pkg.crossplane.io/v1", "kind": "ProviderRevision",
                                        "metadata": {"name": "p-abc", "ownerReferences": [
                                            ref("Provider", "provider-aws", "u-prov", "pkg.crossplane.io/v1")]}}),
]


def make(path: Path, *, uids_first: bool = False, pretty: bool = False, metadata: dict | None = None,
         uids: bytes | None = None, extra: dict[str, bytes] | None = None) -> Path:
    lines = b"".join(b'{"path":"%s","uid":"%s"}\n' % (archive.object_path(r, ns, n).encode(), u.encode())
                     for r, ns, n, u, _ in OBJECTS) if uids is None else uids
    with path.open("wb") as out:
        writer = ArchiveWriter(out)
        if uids_first:
            writer.add_bytes(archive.UIDS, lines)
        for resource, namespace, name, _, obj in OBJECTS:
            if pretty:
                writer.add_bytes(archive.object_path(resource, namespace, name), json.dumps(obj, indent=2).encode())
            else:
                writer.add_json(archive.object_path(resource, namespace, name), obj)
        for name, data in (extra or {}).items():
            writer.add_bytes(name, data)
        if not uids_first:
            writer.add_bytes(archive.UIDS, lines)
        if metadata != {}:
            writer.add_json(archive.METADATA, metadata or {"formatVersion": 1, "totalObjects": len(OBJECTS)})
        writer.close()
    return path


class CountingReader(ArchiveReader):
    """Our own reader, counting how often the archive is read."""

    opened = 0

    def members(self):
        CountingReader.opened += 1
        return super().members()


def spool(archive_path: Path, tmp_path: Path, reader_class=ArchiveReader):
    work = tmp_path / "work"
    work.mkdir(exist_ok=True)
    webhooks = ConversionWebhooks()
    return _spool_archive(reader_class(archive_path), work, webhooks), webhooks


def names_in(spool_file: Path) -> list[str]:
    return [json.loads(line.partition(b"\t")[2])["metadata"]["name"] for line in spool_file.read_bytes().splitlines()]


@pytest.mark.parametrize("uids_first, pretty", [(False, False), (True, False), (False, True)])
def test_one_pass_spools_each_object_to_the_tier_of_its_latest_owner(tmp_path, uids_first, pretty):
    CountingReader.opened = 0
    spooled, webhooks = spool(make(tmp_path / "a.tar.gz", uids_first=uids_first, pretty=pretty), tmp_path, CountingReader)
    assert CountingReader.opened == 1
    tiers = spooled.tiers
    assert {TIERS[i].name: names_in(t.spool) for i, t in tiers.items()} == {
        "CustomResourceDefinitions": ["buckets.example.org"],
        "Namespaced basics": ["plain", "by-plain", "orphan"],
        "Service-account tokens": ["tok", "by-token"],
        "Everything else": ["xr", "mr-1", "conn", "p-abc"],  # the connection Secret waits for its owner's tier
    }
    assert {TIERS[i].name: (t.count, sorted(t.resources)) for i, t in tiers.items()} == {
        "CustomResourceDefinitions": (1, [CRD]),
        "Namespaced basics": (3, ["configmaps"]),
        "Service-account tokens": (2, ["configmaps", "secrets"]),
        "Everything else": (4, ["buckets.example.org", REVISION, "secrets", "xbuckets.example.org"]),
    }
    # only objects naming an owner have an entry; only the uids of objects named as owners are kept
    linked = {TIERS[i].name: [(e.resource, e.old_uid, e.owners, e.path) for e in t.linked] for i, t in tiers.items() if t.linked}
    assert linked == {
        "CustomResourceDefinitions": [(CRD, "", ("u-rev",), "")],
        "Namespaced basics": [("configmaps", "", ("u-cm",), ""), ("configmaps", "", ("u-gone",), "")],
        "Service-account tokens": [("configmaps", "", ("u-tok",), "")],
        "Everything else": [("buckets.example.org", "", ("u-xr",), ""), ("secrets", "", ("u-xr",), ""),
                            (REVISION, "u-rev", ("u-prov",), "")],
    }
    assert {TIERS[i].name: t.roots for i, t in tiers.items() if t.roots} == {
        "Namespaced basics": {"u-cm"}, "Service-account tokens": {"u-tok"}, "Everything else": {"u-xr"}}
    assert spooled.owner_uid == {
        archive.object_path("configmaps", "default", "plain"): "u-cm",
        archive.object_path("secrets", "default", "tok"): "u-tok",
        archive.object_path("xbuckets.example.org", None, "xr"): "u-xr",
        archive.object_path(REVISION, None, "p-abc"): "u-rev",
    }
    assert spooled.crd_types == {"buckets.example.org"}
    assert spooled.metadata == {"formatVersion": 1, "totalObjects": 10}
    assert webhooks.revision_owner == {"p-abc": "provider-aws", "u-rev": "provider-aws"}
    assert webhooks.crds == {"buckets.example.org": ("buckets.example.org", [ref("ProviderRevision", "p-abc", "u-rev", "pkg.crossplane.io/v1")])}
    # each entry's offset is its line in its tier's spool
    for t in tiers.values():
        data = t.spool.read_bytes()
        for e in t.linked:
            path = data[e.offset:].partition(b"\t")[0].decode()
            assert path.split("/")[1] == e.resource


@pytest.mark.parametrize("extra, metadata, uids, message", [
    ({"resources/secrets/namespaces/default/z.json": b'{"broken'}, None, None,
     "resources/secrets/namespaces/default/z.json: not JSON"),
    ({"resources/secrets/namespaces/default/z.json": b'["a list"]'}, None, None,
     "resources/secrets/namespaces/default/z.json: not a Kubernetes object"),
    ({"resources/secrets/../z.json": b"{}"}, None, None, "'resources/secrets/../z.json': unsafe path"),
    (None, {}, None, "metadata.json missing"),
    (None, {"formatVersion": 2}, None, "archive format version 2 is not supported (this release reads [1])"),
    (None, None, b'{"path":"a","uid":"u"}\n{"path":"b"}\n', "uids.jsonl line 2: not an object with a string path and uid"),
    (None, None, b'{"path":"a","uid":"u"}\nnot json\n', "uids.jsonl line 2: not JSON"),
    # a line naming an owner's uid (u-xr) with a path that is no object's: was an IndexError
    *((None, None, b'{"path":"a","uid":"u"}\n{"path":%s,"uid":"u-xr"}\n' % json.dumps(bad).encode(),
       f"uids.jsonl line 2: {bad!r} is not an object path of the archive format")
      for bad in ("zzz", "metadata.json", "resources", "/etc/passwd", "resources/x/../../y.json")),
    # fields the single pass reads as objects or lists: AttributeError/TypeError before
    *(({path: body}, None, None, f"{path}: {what}") for path, body, what in (
        ("resources/secrets/namespaces/default/z.json", b'{"metadata":"x"}', "metadata is not an object"),
        ("resources/secrets/namespaces/default/z.json", b'{"metadata":{"ownerReferences":5}}',
         "metadata.ownerReferences is not a list of objects"),
        ("resources/secrets/namespaces/default/z.json", b'{"metadata":{"ownerReferences":["u"]}}',
         "metadata.ownerReferences is not a list of objects"),
        (f"resources/{CRD}/cluster/z.json", b'{"spec":"x"}', "spec is not an object"),
        (f"resources/{CRD}/cluster/z.json", b'{"spec":{"names":"x"}}', "spec.names is not an object"),
        (f"resources/{CRD}/cluster/z.json", b'{"spec":{"conversion":[]}}', "spec.conversion is not an object"))),
    # twice: which one counts would be the reader's choice (the last, in tarfile, GNU tar and this pass)
    ({"metadata.json": b'{"formatVersion":1}'}, None, None, "metadata.json: a second member of that name"),
    ({"uids.jsonl": b""}, None, None, "uids.jsonl: a second member of that name"),
])
def test_a_damaged_archive_is_refused_by_the_same_pass(tmp_path, extra, metadata, uids, message):
    path = make(tmp_path / "a.tar.gz", extra=extra, metadata=metadata, uids=uids)
    with pytest.raises(RestoreFailed, match=f"^{re.escape(message)}$") as caught:
        spool(path, tmp_path)
    assert caught.value.reason is FailureReason.ARCHIVE_REJECTED


def test_a_truncated_archive_is_refused_by_the_same_pass(tmp_path):
    """Cut anywhere, the gzip trailer's CRC and length included (the reader reads on past the tar's
    end-of-archive blocks to check them): refused before anything could be written."""
    path = make(tmp_path / "a.tar.gz")
    data = path.read_bytes()
    ended = "corrupt archive: Compressed file ended before the end-of-stream marker was reached"
    for keep in (len(data) // 2, len(data) - 30, len(data) - 8, len(data) - 1):
        cut = tmp_path / f"cut-{keep}.tar.gz"
        cut.write_bytes(data[:keep])
        with pytest.raises(RestoreFailed, match=f"^{ended}$") as caught:
            spool(cut, tmp_path)
        assert caught.value.reason is FailureReason.ARCHIVE_REJECTED


def test_a_damaged_gzip_trailer_is_refused(tmp_path):
    path = make(tmp_path / "a.tar.gz")
    data = bytearray(path.read_bytes())
    data[-6] ^= 0xFF  # the CRC-32 of the uncompressed tar
    path.write_bytes(bytes(data))
    with pytest.raises(RestoreFailed, match=r"^corrupt archive: CRC check failed \d+ != \d+$"):
        spool(path, tmp_path)


def test_owners_without_an_entry_put_their_dependents_one_generation_later():
    first = _Entry(0, "configmaps", "", ("root",))
    second = _Entry(1, "configmaps", "b", ("root",))
    third = _Entry(2, "configmaps", "", ("b",))
    fourth = _Entry(3, "configmaps", "", ("elsewhere",))
    entries = [first, second, third, fourth]
    assert [[e.offset for e in g] for g in _generations(entries, {"root"})] == [[3], [0, 1], [2]]
    assert [[e.offset for e in g] for g in _generations(entries)] == [[0, 1, 3], [2]]


def test_a_long_chain_of_owners_listed_dependents_first_is_ordered_without_recursion():
    """3,000 ConfigMaps, each owned by the next one listed (an archive's order is the attacker's, or
    the names'): ordered owners first. The recursive walk raised RecursionError from 500 on, in the
    middle of a restore (after the tiers before it were written)."""
    n = 3000
    entries = [_Entry(n - 1 - i, "configmaps", f"u{i}", (f"u{i - 1}",) if i else ()) for i in reversed(range(n))]
    assert [[e.offset for e in g] for g in _generations(entries)] == [[i] for i in reversed(range(n))]
    cycle = [_Entry(i, "configmaps", f"u{i}", (f"u{(i + 1) % n}",)) for i in range(n)]  # one cycle of 3,000
    assert [[e.offset for e in g] for g in _generations(cycle)] == [[i] for i in reversed(range(n))]


def test_the_objects_a_restore_paused_wait_on_disk_not_in_memory(tmp_path):
    buckets = ResourceType("s3.aws.upbound.io", "v1beta1", "buckets", "Bucket", False, ("create",), True)
    claims = ResourceType("example.org", "v1", "xclaims", "XClaim", True, ("create",), True)
    added = [_Paused(buckets if i % 3 else claims, "" if i % 3 else f"ns-{i}", f"obj-{i}",
                     None if i % 2 else "false", bool(i % 2)) for i in range(300)]
    with (tmp_path / "paused.jsonl").open("w+b") as file:
        paused = _PausedSpool(file)
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(paused.add, added))
        assert paused.count == 300
        assert sorted(paused, key=lambda p: int(p.name[4:])) == added
        assert len((tmp_path / "paused.jsonl").read_bytes().splitlines()) == 300
        paused.add(added[0])  # still writable after a read, and read again whole
        assert paused.count == 301 and len(list(paused)) == 301


def test_a_restore_given_its_record_refuses_an_archive_of_another_backup_before_any_write(tmp_path, monkeypatch):
    """apply fetches without reading the members (fetch_trusted(check_members=False)) and hands the
    record to run_restore, whose one pass also checks the archive's names: the archive is read once,
    and an archive of another backup is refused (ArchiveMismatch) before the target sees a write."""
    from bench.common import api_client
    from ctpbackup.engines import restore
    from ctpbackup.store.records import BackupRecord, Phase
    from kubeemu import EmulatorServer

    metadata = {"formatVersion": 1, "totalObjects": len(OBJECTS),
                "controlPlane": {"namespace": "default", "name": "ctp1"}, "backup": {"namespace": "default", "name": "b2"}}
    path = make(tmp_path / "a.tar.gz", metadata=metadata)
    monkeypatch.setattr(restore, "ArchiveReader", CountingReader)
    CountingReader.opened = 0
    target = EmulatorServer().start()
    try:
        rv = target.store.rv
        with api_client(target.kubeconfig_text()) as api:
            for wanted, control_plane in (("b1", "ctp1"), ("b2", "ctp2")):
                record = BackupRecord("default", wanted, control_plane, "default", Phase.COMPLETED)
                with pytest.raises(RestoreFailed, match=re.escape(
                        f"archive of Backup {wanted} is of control plane default/ctp1, Backup b2, not "
                        f"default/{control_plane}, Backup {wanted}; refused")) as caught:
                    restore.run_restore(api, path, backup=record)
                assert caught.value.reason is FailureReason.ARCHIVE_MISMATCH
        assert target.store.rv == rv, "nothing may be written to the target"
        assert CountingReader.opened == 2, "one read per restore"
    finally:
        target.stop()


@pytest.mark.parametrize("total", ["abc", 1e300, [3], {"n": 1}, -5, True, None])
def test_a_total_objects_that_is_not_a_count_is_only_a_missing_progress_total(tmp_path, total):
    """metadata.json's totalObjects sizes the progress display and nothing else: a value that is no
    count (a string raised ValueError, a huge float OverflowError, a list TypeError, each a traceback
    after the archive was accepted) restores the archive as one without it."""
    from bench.common import api_client
    from ctpbackup.engines import restore
    from kubeemu import EmulatorServer

    path = tmp_path / "a.tar.gz"
    with path.open("wb") as out:
        writer = ArchiveWriter(out)
        writer.add_json(archive.object_path("configmaps", "default", "cm"), {
            "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm", "namespace": "default"}})
        writer.add_bytes(archive.UIDS, b'{"path":"resources/configmaps/namespaces/default/cm.json","uid":"u"}\n')
        writer.add_json(archive.METADATA, {"formatVersion": 1, "totalObjects": total})
        writer.close()
    target = EmulatorServer().start()
    try:
        with api_client(target.kubeconfig_text()) as api:
            result = restore.run_restore(api, path, wait_seconds=0.1, progress=True)
        assert result.counts == {"configmaps": {"restored": 1, "skipped": 0, "failed": 0}}
    finally:
        target.stop()


@pytest.mark.parametrize("meta, message", [
    ({"annotations": "x"}, "metadata.annotations is not an object"),
    ({"ownerReferences": [{"apiVersion": "v1", "kind": "ConfigMap", "name": "o", "uid": ["a"]}]},
     "an ownerReference's uid is not a string"),
])
def test_fields_the_writers_read_as_dicts_are_refused_before_the_first_tier_is_written(tmp_path, meta, message):
    """The writers read annotations as a dict (ValueError) and owner uids as keys (TypeError): in the
    middle of a restore, after the tiers before were written. The single pass refuses them first."""
    from bench.common import api_client
    from ctpbackup.engines import restore
    from kubeemu import EmulatorServer

    path = tmp_path / "a.tar.gz"
    bad = archive.object_path("configmaps", "default", "bad")
    with path.open("wb") as out:
        writer = ArchiveWriter(out)
        writer.add_json(archive.object_path("namespaces", None, "first"), {
            "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "first"}})
        writer.add_json(bad, {"apiVersion": "v1", "kind": "ConfigMap",
                              "metadata": {"name": "bad", "namespace": "default", **meta}})
        writer.add_json(archive.METADATA, {"formatVersion": 1})
        writer.close()
    target = EmulatorServer().start()
    try:
        rv = target.store.rv
        with (api_client(target.kubeconfig_text()) as api,
              pytest.raises(RestoreFailed, match=f"^{re.escape(f'{bad}: {message}')}$") as caught):
            restore.run_restore(api, path, wait_seconds=0.1)
        assert caught.value.reason is FailureReason.ARCHIVE_REJECTED
        assert target.store.rv == rv, "nothing may be written to the target"
    finally:
        target.stop()
