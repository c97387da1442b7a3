"""The bucket index: what backups and restores exist and in which condition. The job's only state.

One control-plane index per control plane (`<prefix>/<ns>/<cp>/index.json`), so writers of different control
planes never contend and a plan reads one small object per control plane. Every update is a
compare-and-swap on the control-plane index (conditional put); a lost race re-reads and re-applies the change, so
no update is ever lost. Each backup's record is also written next to its archive *before* the control-plane index,
and the restore record next to the control-plane index, so `rebuild` can recreate every control-plane index from them.
"""

from __future__ import annotations

import io
import json
import logging
import random
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Set
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import BinaryIO

from ctpbackup.engines import jsoncodec
from ctpbackup.rules.reasons import FailureReason
from ctpbackup.storage.base import Bucket, ObjectNotFound, PreconditionFailed, StorageError
from ctpbackup.store.controlplane_index import (
    ControlPlaneIndex,
    ControlPlaneIndexView,
    IndexCorrupt,
    route,
    unreadable_as_corrupt,
)
from ctpbackup.store.layout import ARCHIVE_FILE, INDEX_FILE, RECORD_FILE, BucketLayout
from ctpbackup.store.records import (
    RECORD_SCHEMA_VERSION,
    BackupRecord,
    Condition,
    Phase,
    RestoreRecord,
)
from ctpbackup.store.summary import Owner, RecordedSummary

log = logging.getLogger(__name__)

CAS_ATTEMPTS = 50
#: how often a per-backup record the index does not list is looked at again before RecordExists
#: (a writer racing us lists it within its own compare-and-swap; a crashed run's record stays unlisted)
RECORD_EXISTS_LOOKS = 6


class IndexConflict(StorageError):
    """Too many concurrent writers on one control-plane index: retry the run."""


class RecordExists(StorageError):
    """A backup record exists next to its archive that the control-plane index does not list: adopt or report it."""


class RecordedBackups(Mapping[tuple[str, str], BackupRecord]):
    """Every recorded backup by (namespace, name), over the control-plane indexes read, without a
    map of every backup: a name is looked up through its route (`controlplane_index.route`, a few
    per owner and control plane) in the control-plane indexes that list that route, and its record
    decoded on first access (a damaged one is an IndexCorrupt then, and the plan fails closed).
    Loading and planning thus cost per control-plane index and per backup acted on, not per backup.

    A backup read twice is counted once: the same control-plane index read again (one bucket
    through two configs) replaces its first copy; a name in two control-plane indexes (found when
    two indexes share a route) makes the summary the exact, slower one of the records held here,
    where the later control-plane index wins."""

    def __init__(self) -> None:
        self._views: list[ControlPlaneIndexView] = []
        #: (namespace, route) -> the control-plane indexes that list it, in the order read
        self._routes: dict[tuple[str, str], list[ControlPlaneIndexView]] = {}
        #: (namespace, index key) -> the control-plane index read from there
        self._by_key: dict[tuple[str, str], ControlPlaneIndexView] = {}
        self._decoded: dict[tuple[str, str], BackupRecord] = {}
        self._absent: set[tuple[str, str]] = set()  # looked up and not found (a plan asks twice per request)
        self._summary: RecordedSummary | None = RecordedSummary()
        self._duplicates = False
        self._every: dict[tuple[str, str], tuple[ControlPlaneIndexView, int]] | None = None

    def add(self, view: ControlPlaneIndexView) -> None:
        """Add one control-plane index: per route it lists, not per backup."""
        same = self._by_key.get((view.namespace, view.key))
        if same is not None and same.data == view.data and (view.data or same.records == view.records):
            return  # the very same control-plane index, read again: counted once
        self._by_key[(view.namespace, view.key)] = view
        self._decoded.clear()
        self._absent.clear()
        self._every = None
        names: set[str] | None = None
        for name_route in view.routes:
            others = self._routes.setdefault((view.namespace, name_route), [])
            for other in others:
                if not self._duplicates:
                    names = set(view.names) if names is None else names
                    if not names.isdisjoint(other.names):
                        self._duplicates, self._summary = True, None  # merged summaries would count them twice
            others.append(view)
        self._views.append(view)
        if self._summary is not None:
            self._summary.merge(view.summary)

    @classmethod
    def union(cls, groups: Iterable[RecordedBackups]) -> RecordedBackups:
        """Every group's control-plane indexes, in order (a later one wins a key read twice), each added once."""
        out = cls()
        for group in groups:
            for view in group._views:
                out.add(view)
        return out

    def summary(self) -> RecordedSummary:
        """The control-plane indexes' summaries merged; when a backup was read twice (one name in two
        control-plane indexes), the summary of the records this Mapping holds (slower, exact)."""
        if self._summary is None:
            self._summary = RecordedSummary.of(self.values())
        return self._summary

    def index_views(self) -> list[ControlPlaneIndexView]:
        """The control-plane indexes read, in order: headers parsed, records decoded only on demand (metrics)."""
        return list(self._views)

    def kept_by(self, owners: Set[Owner]) -> Iterator[BackupRecord]:
        """Live backups kept by reference (useOwnerReferencesInBackup) by one of `owners`: decodes
        the control-plane indexes whose summary says they hold some, and only those."""
        for view in self._views:
            if not view.summary.referenced_owners & owners:
                continue
            for name in view.names:
                record = self[(view.namespace, name)]
                if record.use_owner_references and record.phase is not Phase.DELETED and \
                        (record.owner_kind, record.namespace, record.owner_name) in owners:
                    yield record

    def control_planes(self) -> set[tuple[str, str]]:
        """(namespace, control plane) of every control-plane index read that holds a backup: the control planes
        the index knows (a restore cannot be asked for one of them after the fact)."""
        out: set[tuple[str, str]] = set()
        for view in self._views:
            if view.records is not None:  # versions 1 to 3: the control plane is in each record
                out.update((record.namespace, record.control_plane) for record in view.records)
            elif view.count:
                out.add((view.namespace, view.control_plane))
        return out

    def _find(self, key: tuple[str, str]) -> tuple[ControlPlaneIndexView, int] | None:
        """The control-plane index holding `key` (the last read that does) and its position there."""
        namespace, name = key
        for view in reversed(self._routes.get((namespace, route(name)), ())):
            i = view.position(name)
            if i is not None:
                return view, i
        return None

    def get(self, key: tuple[str, str], default: BackupRecord | None = None) -> BackupRecord | None:  # type: ignore[override]
        record = self._decoded.get(key)
        if record is None:
            found = None if key in self._absent else self._find(key)
            if found is None:
                self._absent.add(key)
                return default
            view, i = found
            record = self._decoded[key] = view.record(i, key[1])
        return record

    def __getitem__(self, key: tuple[str, str]) -> BackupRecord:
        record = self.get(key)
        if record is None:
            for view in self._views:  # only when a header said otherwise (planning asks for what summaries name)
                if view.namespace == key[0] and (key in view.summary.standalone or
                                                 (view.records is None and view.position(key[1]) is not None)):
                    raise IndexCorrupt(f"{view.key}: unreadable index shard (its header names backup {key[1]}, "
                                       "which it does not hold or route to); run `reconcile.py index rebuild`")
            raise KeyError(key)
        return record

    def __contains__(self, key: object) -> bool:
        if not (isinstance(key, tuple) and len(key) == 2 and all(isinstance(part, str) for part in key)):
            return False
        return key in self._decoded or self._find(key) is not None  # type: ignore[arg-type]

    def _all(self) -> dict[tuple[str, str], tuple[ControlPlaneIndexView, int]]:
        """Every key and where it is (later control-plane indexes win): per backup, for listings only."""
        if self._every is None:
            self._every = {}
            for view in self._views:
                self._every.update(((view.namespace, name), (view, i)) for i, name in enumerate(view.names))
        return self._every

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self._all())

    def __len__(self) -> int:
        if not self._duplicates:
            return sum(view.count for view in self._views)
        return len(self._all())


#: what is read of a control-plane index at first from a local file, in blocks of HEAD_BYTES: its
#: first four lines (header, names, offsets, expiry) and at least LINES_BYTES after them, the lines
#: of the backups that expire first
HEAD_BYTES = 16 * 1024
LINES_BYTES = 4 * 1024


def read_head(stream: BinaryIO) -> tuple[bytes, bool]:
    """A control-plane index from `stream`: (its bytes, whether that is all of them). From a local
    file only the head is read (HEAD_BYTES, or up to its fourth line): the rest is read again when a
    plan needs a line there, since copying lines no plan reads was most of the cost of reading an
    index of many backups. From any other stream (a bucket's response body), all of it: a
    connection dropped mid-object costs more than its bytes."""
    if not isinstance(stream, io.BufferedReader):
        return stream.read(), True
    head, lines, end = b"", 0, -1
    while True:
        more = stream.read(HEAD_BYTES)
        if not more:
            return head, True
        start, head = len(head), head + more
        while lines < 4 and (end := head.find(b"\n", start)) >= 0:
            lines, start = lines + 1, end + 1
        if lines == 4 and len(head) >= end + LINES_BYTES:
            more = stream.read(1)
            return (head + more, False) if more else (head, True)


@dataclass(frozen=True)
class RecordedState:
    """What the index records: backups by (namespace, name), restores by (namespace, control plane)."""

    backups: RecordedBackups = field(default_factory=RecordedBackups)
    restores: Mapping[tuple[str, str], RestoreRecord] = field(default_factory=dict)

    def summary(self) -> RecordedSummary:
        return self.backups.summary()

    def kept_by(self, owners: Set[Owner]) -> Iterable[BackupRecord]:
        return self.backups.kept_by(owners)

    def control_planes(self) -> set[tuple[str, str]]:
        return self.backups.control_planes()

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
    indexes: int
    backups: int
    restores: int
    skipped: tuple[str, ...] = ()
    #: records of backups whose archive exists, unreadable: kept as Failed, reason RecordUnreadable
    unreadable: tuple[str, ...] = ()

    def __str__(self) -> str:
        text = f"rebuilt {self.indexes} index shard(s): {self.backups} backup(s), {self.restores} restore(s)"
        if self.unreadable:
            text += (f"; {len(self.unreadable)} backup(s) kept from their archive, record unreadable "
                     f"(RecordUnreadable): " + ", ".join(self.unreadable[:10]))
        if self.skipped:
            text += f"; {len(self.skipped)} unreadable record(s) skipped: " + ", ".join(self.skipped[:10])
        return text


class BucketIndex:
    def __init__(self, bucket: Bucket, layout: BucketLayout, *, config_name: str = "", workers: int = 16):
        self.bucket = bucket
        self.layout = layout
        self.config_name = config_name
        self.workers = workers
        #: called before every write (the lease's `check`): raises LeaseLost when this run no longer
        #: holds the lease, so a stale holder's writes are refused. None: no lease (tests, tools)
        self.fence: Callable[[], None] | None = None

    def _fenced(self) -> None:
        if self.fence is not None:
            self.fence()

    # -- reading -------------------------------------------------------------------------------------

    def _read_index(self, key: str) -> tuple[ControlPlaneIndex, str | None]:
        try:
            data, version = self.bucket.read(key)
        except ObjectNotFound:
            return ControlPlaneIndex(), None
        return ControlPlaneIndex.from_bytes(data, key), version

    def index_keys(self, namespaces: Iterable[str] | None = None) -> list[str]:
        return self._index_keys_and_orphans(namespaces)[0]

    def _index_keys_and_orphans(self, namespaces: Iterable[str] | None) -> tuple[list[str], list[str]]:
        """The control-plane index keys, and the control-plane prefixes holding backups or a restore record but no control-plane index."""
        prefixes = [self.layout.namespace_prefix(ns) for ns in namespaces] if namespaces is not None else [self.layout.root]
        keys = set()
        with_backups: set[tuple[str, str]] = set()
        for prefix in prefixes:
            for item in self.bucket.list(prefix):
                parsed = self.layout.parse(item.key)
                if not parsed:
                    continue
                if parsed[2] == INDEX_FILE:
                    keys.add(item.key)
                elif parsed[2].startswith("backups/") or parsed[2] == f"restore/{RECORD_FILE}":
                    with_backups.add(parsed[:2])
        orphans = sorted(self.layout.control_plane_prefix(ns, cp) for ns, cp in with_backups
                         if self.layout.index_key(ns, cp) not in keys)
        return sorted(keys), orphans

    def load(self, namespaces: Iterable[str] | None = None, *,
             control_planes: Callable[[str, str], bool] | None = None) -> RecordedState:
        """Every shard under the prefix (or the given namespaces), read concurrently. A control plane
        with backups but no shard (the shard was deleted, or a run died before writing its first
        one) is read from its per-backup records instead: planning without them would take those
        backups again. The next write to that control plane writes the shard from them too.
        `control_planes(namespace, control_plane)`: read only the shards of the control planes it
        keeps (a run's `--shard I/N`: its own control planes' shards, so its load falls with N)."""
        keys, orphans = self._index_keys_and_orphans(namespaces)
        if control_planes is not None:
            keys = [k for k in keys if control_planes(*self.layout.parse(k)[:2])]
            orphans = [p for p in orphans if control_planes(*self.layout.parse(p + INDEX_FILE)[:2])]

        def fetch(key: str) -> tuple[bytes, bool] | None:  # no version needed to plan: a plain read, no hashing
            try:
                with self.bucket.open_read(key) as stream:
                    return read_head(stream)
            except ObjectNotFound:
                return None

        def reread(key: str) -> bytes:
            with self.bucket.open_read(key) as stream:
                return stream.read()

        backups = RecordedBackups()
        restores: dict[tuple[str, str], RestoreRecord] = {}
        with ThreadPoolExecutor(max_workers=max(1, min(self.workers, len(keys)))) as pool:
            # threads wait on the bucket; decoding stays on this thread, where it does not fight
            # the readers for the GIL. A window of reads in flight bounds the memory.
            window = 4 * self.workers
            for start in range(0, len(keys), window):
                batch = keys[start:start + window]
                for key, read in zip(batch, pool.map(fetch, batch), strict=True):
                    if read is None:
                        continue
                    data, whole = read
                    with unreadable_as_corrupt(key):
                        if whole:
                            view = ControlPlaneIndexView.parse(data, key)
                        else:
                            view = ControlPlaneIndexView.parse(data, key, rest=lambda key=key: reread(key))
                        where = self.layout.parse(key)[:2]
                        if view.version >= 3 and (view.namespace, view.control_plane) != where:
                            raise ValueError("the header names another control plane")
                        if view.records is not None and any(r.namespace != where[0] for r in view.records):
                            raise ValueError("a record of another namespace")
                    backups.add(view)
                    if view.restore is not None:
                        restores[view.restore.key] = view.restore
            for prefix in orphans:
                namespace, control_plane, _ = self.layout.parse(prefix + INDEX_FILE)
                cp_index, unreadable = self._from_records(namespace, control_plane)
                log.warning("%s: no index shard; read %d backup record(s) instead%s", prefix, len(cp_index.backups),
                            f" ({len(unreadable)} unreadable: run `reconcile.py index rebuild`)" if unreadable else "")
                key = self.layout.index_key(namespace, control_plane)
                view = ControlPlaneIndexView.parse(cp_index.to_bytes(namespace, control_plane, self.layout), key)
                backups.add(view)
                if view.restore is not None:
                    restores[view.restore.key] = view.restore
        return RecordedState(backups, restores)

    def _from_records(self, namespace: str, control_plane: str) -> tuple[ControlPlaneIndex, list[str]]:
        """The control-plane index of one control plane as its per-backup and restore records say (for a control-plane index
        that is missing), and the keys of the records that could not be read."""
        cp_index = ControlPlaneIndex()
        unreadable = []
        for item in self.bucket.list(self.layout.control_plane_prefix(namespace, control_plane)):
            parsed = self.layout.parse(item.key)
            if not parsed or not item.key.endswith("/" + RECORD_FILE):
                continue
            parts = parsed[2].split("/")
            try:
                doc = jsoncodec.loads(self.bucket.read(item.key)[0])
                if not isinstance(doc, dict) or int(doc.get("schemaVersion", 1)) > RECORD_SCHEMA_VERSION:
                    raise ValueError("not a record this release reads")
                if len(parts) == 3 and parts[0] == "backups":
                    record = BackupRecord.from_dict(doc)
                    if (record.namespace, record.control_plane, record.name) != (namespace, control_plane, parts[1]):
                        raise ValueError("a record of another backup")
                    cp_index.backups[record.name] = record
                elif parts == ["restore", RECORD_FILE]:
                    restore = RestoreRecord.from_dict(doc)
                    if restore.key == (namespace, control_plane):
                        cp_index.restore = restore
            except (ValueError, KeyError, TypeError, AttributeError, IndexError, RecursionError, ObjectNotFound):
                unreadable.append(item.key)
        return cp_index, unreadable

    # -- writing -------------------------------------------------------------------------------------

    def _update(self, namespace: str, control_plane: str, apply: Callable[[ControlPlaneIndex], Callable[[], None] | None]) -> None:
        """Read the control-plane index, let `apply` change it (returning the side write to do first), and
        compare-and-swap it back (create-if-absent when there was none, else replace-if-unchanged
        against the version read: S3 If-None-Match/If-Match, GCS generation, Azure ETag).

        Retried: a lost race (PreconditionFailed) re-reads and re-applies, up to CAS_ATTEMPTS (50)
        times with full-jitter backoff (0 to min(0.5 s, 10 ms x 2^attempt)); `apply` must therefore be
        a pure change of the index it is given. Raised: IndexConflict when every attempt lost;
        LeaseLost (from the fence) before any write once the lease was taken over; IndexCorrupt for an
        index that cannot be decoded; RecordExists when the side write finds a record the index still
        does not list after RECORD_EXISTS_LOOKS (6) looks, under a second (a concurrent writer's
        record is listed by then); any other StorageError from the bucket, not retried here."""
        key = self.layout.index_key(namespace, control_plane)
        looks = 0
        for attempt in range(CAS_ATTEMPTS):
            cp_index, version = self._read_index(key)
            if version is None:  # no control-plane index (yet, or any more): start from the records, never from nothing
                cp_index = self._from_records(namespace, control_plane)[0]
            before = apply(cp_index)
            try:
                if before is not None:
                    before()
            except RecordExists:
                # Another writer may have put this record after we read the index and before its own
                # index write (a lost race: the next read lists it). A record no index write follows
                # (left by a crashed run) is still unlisted after RECORD_EXISTS_LOOKS looks: raised.
                looks += 1
                if looks >= RECORD_EXISTS_LOOKS:
                    raise
                time.sleep(random.uniform(0, min(0.5, 0.01 * 2 ** looks)))
                continue
            try:
                data = cp_index.to_bytes(namespace, control_plane, self.layout)
                self._fenced()
                if version is None:
                    self.bucket.put_if_absent(key, data)
                else:
                    self.bucket.put_if_match(key, data, version)
                return
            except PreconditionFailed:
                time.sleep(random.uniform(0, min(0.5, 0.01 * 2 ** min(attempt, 6))))
        raise IndexConflict(f"{self.bucket.description}: {key}: {CAS_ATTEMPTS} concurrent updates in a row; try again")

    def update_backup(self, namespace: str, control_plane: str, name: str,
                      change: Callable[[BackupRecord | None], BackupRecord], *,
                      replace_unindexed: bool = False) -> BackupRecord:
        """Change one backup's record and return the new one: `change(old)` gets the recorded record
        (None when there is none) and returns the new value; it may run more than once (once per
        compare-and-swap attempt) and must not have side effects. Writes the per-backup record next to
        the archive first, then the control-plane index, both compare-and-swap and fenced by the lease.

        Retried and raised as `_update` says (IndexConflict after 50 lost races, LeaseLost,
        IndexCorrupt, StorageError). A per-backup record the control-plane index does not list is
        replaced only with `replace_unindexed` (the caller looked at it first); else RecordExists."""
        result: list[BackupRecord] = []

        def apply(cp_index: ControlPlaneIndex) -> Callable[[], None]:
            old = cp_index.backups.get(name)
            record = change(old)
            cp_index.backups[name] = record
            result[:] = [record]
            data = json.dumps(record.to_dict(), separators=(",", ":"), sort_keys=True).encode()
            key = self.layout.backup_record_key(namespace, control_plane, name)
            return lambda: self._write_record(key, data, replace=old is not None or replace_unindexed)

        self._update(namespace, control_plane, apply)
        return result[0]

    def update_restore(self, namespace: str, control_plane: str,
                       change: Callable[[RestoreRecord | None], RestoreRecord]) -> RestoreRecord:
        """Change the restore record of one control plane and return the new one: `change(old)` gets
        the recorded restore (None when there is none) and may run more than once. The restore record
        next to the control-plane index is written first (replaced whatever it was), then the index;
        retried and raised as `_update` says."""
        result: list[RestoreRecord] = []

        def apply(cp_index: ControlPlaneIndex) -> Callable[[], None]:
            record = change(cp_index.restore)
            cp_index.restore = record
            result[:] = [record]
            data = json.dumps(record.to_dict(), separators=(",", ":"), sort_keys=True).encode()
            return lambda: self._write_record(self.layout.restore_record_key(namespace, control_plane), data,
                                              replace=True)

        self._update(namespace, control_plane, apply)
        return result[0]

    def _write_record(self, key: str, data: bytes, *, replace: bool) -> None:
        """Write a per-backup (or restore) record next to its archive, fenced and compare-and-swap:
        created only if absent, replaced only if unchanged since read. A backup record the control-plane index
        does not know (`replace` False) is never replaced: that backup is adopted or reported
        (RecordExists), not silently taken again."""
        for _ in range(CAS_ATTEMPTS):
            try:
                _, version = self.bucket.read(key)
            except ObjectNotFound:
                version = None
            self._fenced()
            try:
                if version is None:
                    self.bucket.put_if_absent(key, data)
                elif not replace:
                    raise RecordExists(f"{self.bucket.description}: {key} exists but the index shard does not "
                                       "list it; it is never overwritten (run `reconcile.py index rebuild`)")
                else:
                    self.bucket.put_if_match(key, data, version)
                return
            except PreconditionFailed:
                continue
        raise IndexConflict(f"{self.bucket.description}: {key}: {CAS_ATTEMPTS} concurrent updates in a row; try again")

    # -- repair --------------------------------------------------------------------------------------

    def rebuild(self) -> RebuildReport:
        """Recreate every control-plane index from the per-backup and restore records found by listing the bucket.
        Every backup whose archive exists is kept: one whose record is unreadable (not JSON, `[]`, a
        field of the wrong type, or naming another backup) is kept as Failed with reason
        RecordUnreadable, which no plan retakes or deletes by itself. Unreadable records without an
        archive are reported, never silently dropped."""
        groups: dict[tuple[str, str], ControlPlaneIndex] = defaultdict(ControlPlaneIndex)
        skipped: list[str] = []
        unreadable: list[str] = []
        archives: set[tuple[str, str, str]] = set()
        records: list[tuple[str, str, str, str]] = []  # (namespace, control plane, rest, key)
        for item in self.bucket.list(self.layout.root):
            parsed = self.layout.parse(item.key)
            if not parsed:
                continue
            namespace, control_plane, rest = parsed
            parts = rest.split("/")
            if len(parts) == 3 and parts[0] == "backups" and parts[2] == ARCHIVE_FILE:
                archives.add((namespace, control_plane, parts[1]))
            elif item.key.endswith("/" + RECORD_FILE):
                records.append((namespace, control_plane, rest, item.key))
        for namespace, control_plane, rest, key in records:
            parts = rest.split("/")
            try:
                data, _ = self.bucket.read(key)
                doc = jsoncodec.loads(data)
                if not isinstance(doc, dict):
                    raise ValueError("not a JSON object")
                if int(doc.get("schemaVersion", 1)) > RECORD_SCHEMA_VERSION:
                    raise ValueError("newer schemaVersion")
                if len(parts) == 3 and parts[0] == "backups":
                    record = BackupRecord.from_dict(doc)
                    if (record.namespace, record.control_plane, record.name) != (namespace, control_plane, parts[1]):
                        raise ValueError("a record of another backup")
                    groups[(namespace, control_plane)].backups[record.name] = record
                elif rest == f"restore/{RECORD_FILE}":
                    groups[(namespace, control_plane)].restore = RestoreRecord.from_dict(doc)
            except (ValueError, KeyError, TypeError, AttributeError, IndexError, RecursionError, ObjectNotFound):
                if len(parts) == 3 and parts[0] == "backups" and (namespace, control_plane, parts[1]) in archives:
                    continue  # kept below, from its archive
                skipped.append(key)
        for namespace, control_plane, name in sorted(archives):
            cp_index = groups[(namespace, control_plane)]
            if name in cp_index.backups:
                continue
            unreadable.append(self.layout.backup_record_key(namespace, control_plane, name))
            cp_index.backups[name] = BackupRecord(
                namespace=namespace, name=name, control_plane=control_plane, config=self.config_name,
                phase=Phase.FAILED, archive_key=self.layout.archive_key(namespace, control_plane, name),
                conditions=(Condition("Completed", "False", FailureReason.RECORD_UNREADABLE,
                                      "the archive exists but its record is missing or unreadable; kept as it is "
                                      "(restore the record, or delete the Backup to remove the archive)"),))
        for (namespace, control_plane), cp_index in sorted(groups.items()):
            key = self.layout.index_key(namespace, control_plane)
            self._fenced()
            self.bucket.put(key, cp_index.to_bytes(namespace, control_plane, self.layout), content_type="application/json")
        return RebuildReport(len(groups), sum(len(s.backups) for s in groups.values()),
                             sum(1 for s in groups.values() if s.restore), tuple(skipped), tuple(unreadable))
