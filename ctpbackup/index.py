"""The bucket index: what backups and restores exist and in which condition. The job's only state.

One shard per control plane (`<prefix>/<ns>/<cp>/index.json`), so writers of different control
planes never contend and a plan reads one small object per control plane. Every update is a
compare-and-swap on the shard (conditional put); a lost race re-reads and re-applies the change, so
no update is ever lost. Each backup's record is also written next to its archive *before* the shard,
and the restore record next to the shard, so `rebuild` can recreate every shard from them.
"""

from __future__ import annotations

import contextlib
import gc
import json
import logging
import random
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from ctpbackup import jsoncodec
from ctpbackup.layout import INDEX_FILE, RECORD_FILE, BucketLayout
from ctpbackup.records import RECORD_SCHEMA_VERSION, BackupRecord, RestoreRecord
from ctpbackup.storage.base import Bucket, ObjectNotFound, PreconditionFailed, StorageError

log = logging.getLogger(__name__)

SHARD_SCHEMA_VERSION = 2
CAS_ATTEMPTS = 50


class IndexConflict(StorageError):
    """Too many concurrent writers on one shard: retry the run."""


class IndexCorrupt(StorageError):
    """A shard cannot be read (bad JSON, or written by a newer release): `index rebuild` repairs it."""


@dataclass(frozen=True)
class RecordedState:
    """What the index records: backups by (namespace, name), restores by (namespace, control plane)."""

    backups: Mapping[tuple[str, str], BackupRecord] = field(default_factory=dict)
    restores: Mapping[tuple[str, str], RestoreRecord] = field(default_factory=dict)

    def merged(self, other: RecordedState) -> RecordedState:
        return RecordedState({**self.backups, **other.backups}, {**self.restores, **other.restores})


@dataclass
class _Shard:
    """The index of one control plane. Version 2 writes what every backup of the shard shares (its
    namespace, control plane and archive key pattern) once, and leaves each record's defaults out:
    a shard of 200 backups is about half the size, and planning reads every shard. Version 1
    shards (every field in every record) still read."""

    backups: dict[str, BackupRecord] = field(default_factory=dict)
    restore: RestoreRecord | None = None

    def to_bytes(self, namespace: str, control_plane: str, layout: BucketLayout) -> bytes:
        shared = {"namespace": namespace, "controlPlane": control_plane,
                  "archiveKey": layout.archive_key(namespace, control_plane, NAME_SLOT)}
        return json.dumps({
            "schemaVersion": SHARD_SCHEMA_VERSION,
            "shared": shared,
            "backups": {name: _slim(r.to_dict(), shared) for name, r in sorted(self.backups.items())},
            "restore": self.restore.to_dict() if self.restore else None,
        }, separators=(",", ":"), sort_keys=True).encode()

    @classmethod
    def from_bytes(cls, data: bytes, key: str) -> _Shard:
        try:
            doc = jsoncodec.loads(data)
            version = doc.get("schemaVersion")
            if not isinstance(version, int) or version > SHARD_SCHEMA_VERSION:
                raise IndexCorrupt(f"{key}: written by a newer release (schemaVersion {version!r}); upgrade ctpbackup")
            shared = doc.get("shared") or {}
            common = {k: shared[k] for k in ("namespace", "controlPlane") if k in shared}
            pattern = shared.get("archiveKey")
            backups = {}
            for name, slim in (doc.get("backups") or {}).items():
                full = {**common, "name": name, **slim}
                if pattern and "archiveKey" not in slim:
                    full["archiveKey"] = pattern.replace(NAME_SLOT, name)
                backups[name] = BackupRecord.from_dict(full)
            return cls(backups, RestoreRecord.from_dict(doc["restore"]) if doc.get("restore") else None)
        except IndexCorrupt:
            raise
        except (ValueError, KeyError, TypeError, AttributeError) as err:
            raise IndexCorrupt(f"{key}: unreadable index shard ({type(err).__name__}); run `reconcile.py index rebuild`") from None


#: where the backup's name goes in a shard's archive key pattern (no Kubernetes name has braces)
NAME_SLOT = "{name}"
#: each field as a record read without it serialises it: a field equal to this can be left out and
#: reads back exactly (derived from from_dict itself, so the two cannot drift apart)
_DEFAULTS = BackupRecord.from_dict({"namespace": "-", "name": "-", "controlPlane": "-", "phase": "Pending"}).to_dict()


def _slim(record: dict, shared: dict) -> dict:
    """A record without what the shard already says: the fields it shares with the shard, its name
    (the key), its kind, and every field equal to what reading it without that field gives. An
    empty archive key stays written, so it is not mistaken for the shard's pattern."""
    name = record["name"]
    out = {}
    for k, v in record.items():
        if k in ("kind", "name") or (k in ("namespace", "controlPlane") and shared[k] == v):
            continue
        if k == "archiveKey":
            if v != shared["archiveKey"].replace(NAME_SLOT, name):
                out[k] = v
        elif k in ("phase", "namespace", "controlPlane") or k not in _DEFAULTS or _DEFAULTS[k] != v:
            out[k] = v
    return out


@contextlib.contextmanager
def _without_cycle_collection() -> Iterator[None]:
    """Records hold no reference cycles, so the cycle collector finds nothing while hundreds of
    thousands of them are built; left on, it walks them again and again (a quarter of the load).
    Afterwards they are frozen out of its sight too: they live for the run, and reference counting
    still frees them. The next load thaws what the previous one froze, so nothing stays frozen for good."""
    enabled = gc.isenabled()
    gc.disable()
    gc.unfreeze()
    try:
        yield
    finally:
        gc.freeze()
        if enabled:
            gc.enable()


@dataclass(frozen=True)
class RebuildReport:
    shards: int
    backups: int
    restores: int
    skipped: tuple[str, ...] = ()

    def __str__(self) -> str:
        text = f"rebuilt {self.shards} index shard(s): {self.backups} backup(s), {self.restores} restore(s)"
        if self.skipped:
            text += f"; {len(self.skipped)} unreadable record(s) skipped: " + ", ".join(self.skipped[:10])
        return text


class BucketIndex:
    def __init__(self, bucket: Bucket, layout: BucketLayout, *, config_name: str = "", workers: int = 16):
        self.bucket = bucket
        self.layout = layout
        self.config_name = config_name
        self.workers = workers

    # -- reading -------------------------------------------------------------------------------------

    def _read_shard(self, key: str) -> tuple[_Shard, str | None]:
        try:
            data, version = self.bucket.read(key)
        except ObjectNotFound:
            return _Shard(), None
        return _Shard.from_bytes(data, key), version

    def shard_keys(self, namespaces: Iterable[str] | None = None) -> list[str]:
        prefixes = [self.layout.namespace_prefix(ns) for ns in namespaces] if namespaces is not None else [self.layout.root]
        keys = []
        for prefix in prefixes:
            for item in self.bucket.list(prefix):
                parsed = self.layout.parse(item.key)
                if parsed and parsed[2] == INDEX_FILE:
                    keys.append(item.key)
        return sorted(set(keys))

    def load(self, namespaces: Iterable[str] | None = None) -> RecordedState:
        """Every shard under the prefix (or the given namespaces), read concurrently."""
        keys = self.shard_keys(namespaces)

        def fetch(key: str) -> bytes | None:  # no version needed to plan: a plain read, no hashing
            try:
                with self.bucket.open_read(key) as stream:
                    return stream.read()
            except ObjectNotFound:
                return None

        backups: dict[tuple[str, str], BackupRecord] = {}
        restores: dict[tuple[str, str], RestoreRecord] = {}
        with _without_cycle_collection(), ThreadPoolExecutor(max_workers=max(1, min(self.workers, len(keys)))) as pool:
            # threads wait on the bucket; decoding stays on this thread, where it does not fight
            # the readers for the GIL. A window of reads in flight bounds the memory.
            window = 4 * self.workers
            for start in range(0, len(keys), window):
                batch = keys[start:start + window]
                for key, data in zip(batch, pool.map(fetch, batch), strict=True):
                    shard = _Shard() if data is None else _Shard.from_bytes(data, key)
                    for record in shard.backups.values():
                        backups[record.key] = record
                    if shard.restore is not None:
                        restores[shard.restore.key] = shard.restore
        return RecordedState(backups, restores)

    # -- writing -------------------------------------------------------------------------------------

    def _update(self, namespace: str, control_plane: str, apply: Callable[[_Shard], Callable[[], None] | None]) -> None:
        """Read the shard, let `apply` change it (returning the side write to do first), and
        compare-and-swap it back; on a lost race, start again from a fresh read."""
        key = self.layout.index_key(namespace, control_plane)
        for attempt in range(CAS_ATTEMPTS):
            shard, version = self._read_shard(key)
            before = apply(shard)
            if before is not None:
                before()
            try:
                data = shard.to_bytes(namespace, control_plane, self.layout)
                if version is None:
                    self.bucket.put_if_absent(key, data)
                else:
                    self.bucket.put_if_match(key, data, version)
                return
            except PreconditionFailed:
                time.sleep(random.uniform(0, min(0.5, 0.01 * 2 ** min(attempt, 6))))
        raise IndexConflict(f"{self.bucket.description}: {key}: {CAS_ATTEMPTS} concurrent updates in a row; try again")

    def update_backup(self, namespace: str, control_plane: str, name: str,
                      change: Callable[[BackupRecord | None], BackupRecord]) -> BackupRecord:
        result: list[BackupRecord] = []

        def apply(shard: _Shard) -> Callable[[], None]:
            record = change(shard.backups.get(name))
            shard.backups[name] = record
            result[:] = [record]
            data = json.dumps(record.to_dict(), separators=(",", ":"), sort_keys=True).encode()
            return lambda: self.bucket.put(self.layout.backup_record_key(namespace, control_plane, name), data,
                                           content_type="application/json")

        self._update(namespace, control_plane, apply)
        return result[0]

    def update_restore(self, namespace: str, control_plane: str,
                       change: Callable[[RestoreRecord | None], RestoreRecord]) -> RestoreRecord:
        result: list[RestoreRecord] = []

        def apply(shard: _Shard) -> Callable[[], None]:
            record = change(shard.restore)
            shard.restore = record
            result[:] = [record]
            data = json.dumps(record.to_dict(), separators=(",", ":"), sort_keys=True).encode()
            return lambda: self.bucket.put(self.layout.restore_record_key(namespace, control_plane), data,
                                           content_type="application/json")

        self._update(namespace, control_plane, apply)
        return result[0]

    # -- repair --------------------------------------------------------------------------------------

    def rebuild(self) -> RebuildReport:
        """Recreate every shard from the per-backup and restore records found by listing the bucket.
        Unreadable records are reported, never silently dropped."""
        groups: dict[tuple[str, str], _Shard] = defaultdict(_Shard)
        skipped = []
        for item in self.bucket.list(self.layout.root):
            parsed = self.layout.parse(item.key)
            if not parsed or not item.key.endswith("/" + RECORD_FILE):
                continue
            namespace, control_plane, rest = parsed
            try:
                data, _ = self.bucket.read(item.key)
                doc = jsoncodec.loads(data)
                if int(doc.get("schemaVersion", 1)) > RECORD_SCHEMA_VERSION:
                    raise ValueError("newer schemaVersion")
                if rest.startswith("backups/"):
                    record = BackupRecord.from_dict(doc)
                    groups[(namespace, control_plane)].backups[record.name] = record
                elif rest == f"restore/{RECORD_FILE}":
                    groups[(namespace, control_plane)].restore = RestoreRecord.from_dict(doc)
            except (ValueError, KeyError, TypeError, ObjectNotFound):
                skipped.append(item.key)
        for (namespace, control_plane), shard in sorted(groups.items()):
            key = self.layout.index_key(namespace, control_plane)
            self.bucket.put(key, shard.to_bytes(namespace, control_plane, self.layout), content_type="application/json")
        return RebuildReport(len(groups), sum(len(s.backups) for s in groups.values()),
                             sum(1 for s in groups.values() if s.restore), tuple(skipped))
