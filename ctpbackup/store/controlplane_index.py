"""The index of one control plane, as stored in the bucket (`<prefix>/<ns>/<cp>/index.json`).

Version 3 is JSON lines, so that planning can read a control-plane index without decoding its backups:

    line 1   header: schemaVersion, namespace, controlPlane, the archive key pattern, the restore,
             the backups' names, and the summary of the backups (ctpbackup.store.summary)
    line 2+  one backup per line, in the order of the names: its record without what the header
             says (namespace, control plane, name, archive key) and without its defaults

A plan parses line 1 of every control-plane index, and a backup's own line only when it needs that backup's whole
record. Versions 1 and 2 (one JSON document) still read.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field

from ctpbackup.engines import jsoncodec
from ctpbackup.storage.base import StorageError
from ctpbackup.store.layout import BucketLayout
from ctpbackup.store.records import BackupRecord, RestoreRecord
from ctpbackup.store.summary import RecordedSummary

INDEX_SCHEMA_VERSION = 3
#: where the backup's name goes in a control-plane index's archive key pattern (no Kubernetes name has braces)
NAME_SLOT = "{name}"
#: what a backup's line leaves out because the header says it (the control plane, when it is the index's own)
_IN_HEADER = frozenset({"kind", "namespace", "name", "controlPlane"})
#: each field as a record read without it serialises it: a field equal to this can be left out and
#: reads back exactly (derived from from_dict itself, so the two cannot drift apart)
_DEFAULTS = BackupRecord.from_dict({"namespace": "-", "name": "-", "controlPlane": "-", "phase": "Pending"}).to_dict()


class IndexCorrupt(StorageError):
    """A control-plane index cannot be read (bad JSON, or written by a newer release): `index rebuild` repairs it."""


@contextlib.contextmanager
def unreadable_as_corrupt(key: str, what: str = "index shard") -> Iterator[None]:
    """Any decoding error inside becomes one IndexCorrupt naming the control-plane index and what was read."""
    try:
        yield
    except IndexCorrupt:
        raise
    except (ValueError, KeyError, TypeError, AttributeError, IndexError, RecursionError) as err:
        raise IndexCorrupt(f"{key}: unreadable {what} ({type(err).__name__}); run `reconcile.py index rebuild`") from None


@dataclass
class ControlPlaneIndex:
    """A control-plane index with every record decoded: what the writers change and write back whole."""

    backups: dict[str, BackupRecord] = field(default_factory=dict)
    restore: RestoreRecord | None = None

    def to_bytes(self, namespace: str, control_plane: str, layout: BucketLayout) -> bytes:
        pattern = layout.archive_key(namespace, control_plane, NAME_SLOT)
        records = [record for _, record in sorted(self.backups.items())]
        for record in records:
            if record.namespace != namespace:  # a bug: every writer passes the record's own namespace
                raise ValueError(f"backup {record.namespace}/{record.name} in the index shard of namespace {namespace}")
        names = [record.name for record in records]
        lines = [_slim(record.to_dict(), control_plane, pattern) for record in records]
        header = {"schemaVersion": INDEX_SCHEMA_VERSION, "namespace": namespace, "controlPlane": control_plane,
                  "archiveKey": pattern, "restore": self.restore.to_dict() if self.restore else None, "names": names,
                  "digest": RecordedSummary.of(records).to_header({name: i for i, name in enumerate(names)})}
        return b"".join(_line(doc) for doc in [header, *lines])

    @classmethod
    def from_bytes(cls, data: bytes, key: str) -> ControlPlaneIndex:
        with unreadable_as_corrupt(key):
            view = ControlPlaneIndexView.parse(data, key)
            return cls({name: view.record(i) for i, name in enumerate(view.names)}, view.restore)


@dataclass(eq=False)
class ControlPlaneIndexView:
    """A control-plane index as planning reads it: the header parsed, each backup's line decoded on first need. A
    damaged line is found then, as an IndexCorrupt (and the plan that needed it fails closed)."""

    key: str
    namespace: str
    control_plane: str
    archive_key: str  # the pattern, NAME_SLOT standing for the backup's name
    names: list[str]
    summary: RecordedSummary
    restore: RestoreRecord | None
    data: bytes = field(default=b"", repr=False)  # the whole control-plane index, split into lines on first need
    records: list[BackupRecord] | None = field(default=None, repr=False)  # versions 1 and 2: decoded already
    _lines: list[int] | None = field(default=None, init=False, repr=False)  # where each backup's line starts

    @classmethod
    def parse(cls, data: bytes, key: str) -> ControlPlaneIndexView:
        """The header only (ValueError, KeyError... when it is not one; IndexCorrupt when newer)."""
        end = data.find(b"\n")
        try:
            header = jsoncodec.loads(data[:end] if end >= 0 else data)
        except ValueError:
            header = None
        if not isinstance(header, dict) or header.get("schemaVersion", 0) in (1, 2):
            return cls._single_document(data, key)
        _check_version(header.get("schemaVersion"), key)
        names = header["names"]
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names) or len(set(names)) != len(names):
            raise ValueError("names are not a list of distinct names")
        if end < 0 or data.count(b"\n", end) != len(names) + 1 or not data.endswith(b"\n"):
            raise ValueError("not one line for each backup of the header")
        namespace = header["namespace"]
        return cls(key, namespace, header["controlPlane"], header["archiveKey"], names,
                   RecordedSummary.from_header(header["digest"], namespace, names),
                   RestoreRecord.from_dict(header["restore"]) if header["restore"] else None, data)

    @classmethod
    def _single_document(cls, data: bytes, key: str) -> ControlPlaneIndexView:
        """Versions 1 and 2: every field of every record in one document (version 2 writes what the
        backups share once, and leaves defaults out)."""
        doc = jsoncodec.loads(data)
        _check_version(doc.get("schemaVersion"), key)
        shared = doc.get("shared") or {}
        common = {k: shared[k] for k in ("namespace", "controlPlane") if k in shared}
        pattern = shared.get("archiveKey")
        records = []
        for name, slim in (doc.get("backups") or {}).items():
            full = {**common, "name": name, **slim}
            if pattern and "archiveKey" not in slim:
                full["archiveKey"] = pattern.replace(NAME_SLOT, name)
            records.append(BackupRecord.from_dict(full))
        restore = RestoreRecord.from_dict(doc["restore"]) if doc.get("restore") else None
        namespace = records[0].namespace if records else shared.get("namespace", "")
        return cls(key, namespace, shared.get("controlPlane", ""), pattern or "", [r.name for r in records],
                   RecordedSummary.of(records), restore, records=records)

    def backup_keys(self) -> list[tuple[str, str]]:
        """(namespace, name) of each backup, in order."""
        if self.records is not None:
            return [record.key for record in self.records]
        return [(self.namespace, name) for name in self.names]

    def _line(self, i: int) -> bytes:
        """The i-th backup's line. Only the line starts up to i are found (a plan reads about one
        record per shard, the oldest, expired one): splitting every shard into all its lines made
        millions of objects at 10,000 shards, and the cycle collector's passes over them grew the
        plan step faster than the index."""
        starts = self._lines
        if starts is None:
            starts = self._lines = [self.data.index(b"\n") + 1]  # after the header
        while len(starts) <= i + 1:
            starts.append(self.data.index(b"\n", starts[-1]) + 1)
        return self.data[starts[i]:starts[i + 1] - 1]

    def record(self, i: int) -> BackupRecord:
        """The whole record of the i-th backup (of `names`)."""
        if self.records is not None:
            return self.records[i]
        name = self.names[i]
        values = {"namespace": self.namespace, "name": name, "controlPlane": self.control_plane,
                  "archiveKey": self.archive_key.replace(NAME_SLOT, name)}
        values.update(jsoncodec.loads(self._line(i)))
        return BackupRecord.from_dict(values)


def _check_version(version: object, key: str) -> None:
    if not isinstance(version, int) or version > INDEX_SCHEMA_VERSION:
        raise IndexCorrupt(f"{key}: written by a newer release (schemaVersion {version!r}); upgrade ctpbackup")


def _line(doc: dict) -> bytes:
    return json.dumps(doc, separators=(",", ":"), sort_keys=True).encode() + b"\n"


def _slim(record: dict, control_plane: str, pattern: str) -> dict:
    """A serialised record without what the header says and without every field equal to what
    reading it without that field gives. An empty archive key stays written, so it is not mistaken
    for the control-plane index's pattern; phase always stays (it has no default)."""
    out = {}
    for k, v in record.items():
        if k in _IN_HEADER and not (k == "controlPlane" and v != control_plane):
            continue
        if k == "archiveKey":
            if v != pattern.replace(NAME_SLOT, record["name"]):
                out[k] = v
        elif k == "phase" or k not in _DEFAULTS or _DEFAULTS[k] != v:
            out[k] = v
    return out
