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
import itertools
import json
import logging
import random
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Set
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from ctpbackup import jsoncodec
from ctpbackup.digest import Owner, RecordedDigest
from ctpbackup.layout import INDEX_FILE, RECORD_FILE, BucketLayout
from ctpbackup.records import RECORD_SCHEMA_VERSION, BackupRecord, Phase, RestoreRecord
from ctpbackup.shard import Shard, ShardView, unreadable_as_corrupt
from ctpbackup.storage.base import Bucket, ObjectNotFound, PreconditionFailed, StorageError

log = logging.getLogger(__name__)

CAS_ATTEMPTS = 50


class IndexConflict(StorageError):
    """Too many concurrent writers on one shard: retry the run."""


class RecordedBackups(Mapping[tuple[str, str], BackupRecord]):
    """Every recorded backup by (namespace, name), over the shards read. Planning needs the digest
    of them all, but the whole record of only the few it acts on: a record is decoded on first
    access (a damaged one is an IndexCorrupt then, and the plan fails closed)."""

    def __init__(self) -> None:
        self._where: dict[tuple[str, str], tuple[ShardView, int]] = {}
        self._decoded: dict[tuple[str, str], BackupRecord] = {}
        self._views: list[ShardView] = []
        self._digest: RecordedDigest | None = RecordedDigest()

    def add(self, view: ShardView) -> None:
        keys = view.backup_keys()
        if self._digest is not None and (not self._where.keys().isdisjoint(keys) or
                                         (view.records is not None and len(set(keys)) != len(keys))):
            self._digest = None  # a backup read twice: the merged digests would count it twice
        for key in keys if self._decoded else ():
            self._decoded.pop(key, None)
        self._where.update(zip(keys, zip(itertools.repeat(view), range(len(keys))), strict=True))
        self._views.append(view)
        if self._digest is not None:
            self._digest.merge(view.digest)

    @classmethod
    def union(cls, groups: Iterable[RecordedBackups]) -> RecordedBackups:
        """Every group's shards, in order (a later one wins a key read twice), each added once."""
        out = cls()
        for group in groups:
            for view in group._views:
                out.add(view)
        return out

    def digest(self) -> RecordedDigest:
        """The shards' digests merged; when a backup was read twice (one bucket through two configs,
        or one name in two shards), the digest of the records this Mapping holds (slower, exact)."""
        if self._digest is None:
            self._digest = RecordedDigest.of(self.values())
        return self._digest

    def shard_views(self) -> list[ShardView]:
        """The shards read, in order: headers parsed, records decoded only on demand (metrics)."""
        return list(self._views)

    def kept_by(self, owners: Set[Owner]) -> Iterator[BackupRecord]:
        """Live backups kept by reference (useOwnerReferencesInBackup) by one of `owners`: decodes
        the shards whose digest says they hold some, and only those."""
        for view in self._views:
            if not view.digest.referenced_owners & owners:
                continue
            for key in view.backup_keys():
                record = self[key]
                if record.use_owner_references and record.phase is not Phase.DELETED and \
                        (record.owner_kind, record.namespace, record.owner_name) in owners:
                    yield record

    def __getitem__(self, key: tuple[str, str]) -> BackupRecord:
        record = self._decoded.get(key)
        if record is None:
            view, i = self._where[key]
            with unreadable_as_corrupt(view.key, f"record of backup {key[1]}"):
                record = view.record(i)
            self._decoded[key] = record
        return record

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self._where)

    def __len__(self) -> int:
        return len(self._where)

    def __contains__(self, key: object) -> bool:
        return key in self._where


@contextlib.contextmanager
def _without_cycle_collection() -> Iterator[None]:
    """Loading builds hundreds of thousands of small objects (names, keys, digest entries) and no
    reference cycles; left on, the cycle collector walks them again and again while they are built.
    Afterwards they are frozen out of its sight too: they live for the run, and reference counting
    still frees them. The next load thaws what the previous one froze, so nothing stays frozen for
    good."""
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
class RecordedState:
    """What the index records: backups by (namespace, name), restores by (namespace, control plane)."""

    backups: RecordedBackups = field(default_factory=RecordedBackups)
    restores: Mapping[tuple[str, str], RestoreRecord] = field(default_factory=dict)

    def digest(self) -> RecordedDigest:
        return self.backups.digest()

    def kept_by(self, owners: Set[Owner]) -> Iterable[BackupRecord]:
        return self.backups.kept_by(owners)

    @classmethod
    def union(cls, states: Iterable[RecordedState]) -> RecordedState:
        """What several buckets record, as one state (a later one wins a key recorded twice)."""
        states = list(states)
        if len(states) == 1:  # one bucket: nothing to combine
            return states[0]
        return cls(RecordedBackups.union(s.backups for s in states),
                   {key: r for s in states for key, r in s.restores.items()})


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

    def _read_shard(self, key: str) -> tuple[Shard, str | None]:
        try:
            data, version = self.bucket.read(key)
        except ObjectNotFound:
            return Shard(), None
        return Shard.from_bytes(data, key), version

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

        backups = RecordedBackups()
        restores: dict[tuple[str, str], RestoreRecord] = {}
        with _without_cycle_collection(), ThreadPoolExecutor(max_workers=max(1, min(self.workers, len(keys)))) as pool:
            # threads wait on the bucket; decoding stays on this thread, where it does not fight
            # the readers for the GIL. A window of reads in flight bounds the memory.
            window = 4 * self.workers
            for start in range(0, len(keys), window):
                batch = keys[start:start + window]
                for key, data in zip(batch, pool.map(fetch, batch), strict=True):
                    if data is None:
                        continue
                    with unreadable_as_corrupt(key):
                        view = ShardView.parse(data, key)
                        if view.records is None and (view.namespace, view.control_plane) != self.layout.parse(key)[:2]:
                            raise ValueError("the header names another control plane")
                    backups.add(view)
                    if view.restore is not None:
                        restores[view.restore.key] = view.restore
        return RecordedState(backups, restores)

    # -- writing -------------------------------------------------------------------------------------

    def _update(self, namespace: str, control_plane: str, apply: Callable[[Shard], Callable[[], None] | None]) -> None:
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

        def apply(shard: Shard) -> Callable[[], None]:
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

        def apply(shard: Shard) -> Callable[[], None]:
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
        groups: dict[tuple[str, str], Shard] = defaultdict(Shard)
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
                    if record.namespace != namespace:
                        raise ValueError("a record of another namespace")
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
