"""The index of one control plane, as stored in the bucket (`<prefix>/<ns>/<cp>/index.json`).

Version 4 is lines, so that planning reads a control-plane index in a constant number of steps,
whatever number of backups it holds (nothing is decoded or looked at per backup):

    line 1   header (JSON): schemaVersion, namespace, controlPlane, the archive key pattern, the
             restore, the number of backups, their routes (`route`: one per schedule and control
             plane, one per other name), and the summary of the backups (ctpbackup.store.summary)
    line 2   names (JSON array), in the order of the backups' lines: a name is found by searching
             these bytes, its position is the number of separators before it
    line 3   offsets (JSON string): per backup, in the order of the names, where its line starts
             (OFFSET_DIGITS decimal digits each)
    line 4   expiry (JSON string): per live backup with a TTL, in the order of its expiry time:
             the time as written (20 characters, UTC to the second) and its position (POSITION_DIGITS)
    line 5+  one backup per line, its name first: its record without what the header says
             (namespace, control plane, archive key) and without its defaults

A plan parses line 1 of every control-plane index, searches line 2 for the names it asks about,
binary-searches line 4 for what expired, and decodes only the lines of the backups it acts on.
Versions 1 and 2 (one JSON document) and 3 (names and positions in the header) still read, with
every record decoded when read; every writer writes version 4.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from ctpbackup.engines import jsoncodec
from ctpbackup.rules.times import format_time
from ctpbackup.storage.base import StorageError
from ctpbackup.store.layout import BucketLayout
from ctpbackup.store.records import BackupRecord, Phase, RestoreRecord
from ctpbackup.store.summary import Key, RecordedSummary

INDEX_SCHEMA_VERSION = 4
#: where the backup's name goes in a control-plane index's archive key pattern (no Kubernetes name has braces)
NAME_SLOT = "{name}"
#: digits of a line's offset in the offsets line (up to 10 GB of index), and of a position in the expiry line
OFFSET_DIGITS = 10
POSITION_DIGITS = 6
#: an expiry time as format_time writes it: `2026-11-25T10:00:00Z`
TIME_CHARS = 20
_EXPIRY_ENTRY = TIME_CHARS + POSITION_DIGITS
#: a schedule's slot suffix at the end of a backup name (ctpbackup.rules.naming: `-yyyymmddhhmmss`)
_SLOT_SUFFIX = 15
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


def route(name: str) -> str:
    """Where a lookup of the backup `name` starts: the name without a schedule's slot suffix
    (`hourly-ctp1-20261125100000` -> `hourly-ctp1`), else the name itself. A control-plane index lists
    the routes of its backups, a few per owner instead of one per backup, so that any name's
    control-plane indexes are found from the name alone, in every control-plane index read."""
    if len(name) > _SLOT_SUFFIX and name[-_SLOT_SUFFIX] == "-" and name[-14:].isdigit() and name[-14:].isascii():
        return name[:-_SLOT_SUFFIX]
    return name


@dataclass
class ControlPlaneIndex:
    """A control-plane index with every record decoded: what the writers change and write back whole."""

    backups: dict[str, BackupRecord] = field(default_factory=dict)
    restore: RestoreRecord | None = None

    def to_bytes(self, namespace: str, control_plane: str, layout: BucketLayout) -> bytes:
        """Version 4 (see the module): ValueError for a record of another namespace (a bug) or a
        control-plane index too large for its fixed-width fields."""
        pattern = layout.archive_key(namespace, control_plane, NAME_SLOT)
        # the live backups with a TTL first, soonest expiry first: what plans read most sits in an index's head
        records = sorted(self.backups.values(), key=lambda r: (
            (0, format_time(r.expires_at), r.name) if r.expires_at is not None and r.phase is not Phase.DELETED
            else (1, "", r.name)))
        for record in records:
            if record.namespace != namespace:  # a bug: every writer passes the record's own namespace
                raise ValueError(f"backup {record.namespace}/{record.name} in the index shard of namespace {namespace}")
        if len(records) >= 10 ** POSITION_DIGITS:
            raise ValueError(f"{len(records)} backups in the index of {namespace}/{control_plane}")
        names = [record.name for record in records]
        lines = [_record_line(record, control_plane, pattern) for record in records]
        expiring = sorted((format_time(r.expires_at), i) for i, r in enumerate(records)
                          if r.expires_at is not None and r.phase is not Phase.DELETED)
        if any(len(when) != TIME_CHARS for when, _ in expiring):
            raise ValueError("an expiry time outside the years 1000-9999")
        header = {"schemaVersion": INDEX_SCHEMA_VERSION, "namespace": namespace, "controlPlane": control_plane,
                  "archiveKey": pattern, "restore": self.restore.to_dict() if self.restore else None,
                  "backups": len(records), "routes": sorted({route(name) for name in names}),
                  "digest": RecordedSummary.of(records).to_header()}
        head = _line(header) + jsoncodec.dumps(names) + b"\n"  # as `position` searches it
        expiry = _line("".join(f"{when}{i:0{POSITION_DIGITS}d}" for when, i in expiring))
        offset = len(head) + (OFFSET_DIGITS * len(records) + 3) + len(expiry)  # where the first line starts
        starts = []
        for line in lines:
            starts.append(f"{offset:0{OFFSET_DIGITS}d}")
            offset += len(line)
        if offset >= 10 ** OFFSET_DIGITS:
            raise ValueError(f"the index of {namespace}/{control_plane} is too large")
        return b"".join([head, _line("".join(starts)), expiry, *lines])

    @classmethod
    def from_bytes(cls, data: bytes, key: str) -> ControlPlaneIndex:
        with unreadable_as_corrupt(key):
            view = ControlPlaneIndexView.parse(data, key)
            return cls({record.name: record for record in view.all_records()}, view.restore)


@dataclass(eq=False)
class ControlPlaneIndexView:
    """A control-plane index as planning reads it: the header parsed, each backup's line decoded on
    first need (a damaged one is found then, as an IndexCorrupt, and the plan that needed it fails
    closed). Versions 1 to 3 are decoded whole when read (`records`)."""

    key: str
    namespace: str
    control_plane: str
    archive_key: str  # the pattern, NAME_SLOT standing for the backup's name
    #: how many backups the control-plane index holds
    count: int
    #: `route` of each backup's name, once each
    routes: tuple[str, ...]
    summary: RecordedSummary
    restore: RestoreRecord | None
    data: bytes = field(default=b"", repr=False)  # the whole control-plane index
    records: list[BackupRecord] | None = field(default=None, repr=False)  # versions 1 to 3: decoded already
    version: int = INDEX_SCHEMA_VERSION
    #: version 4: where the names (the whole line, brackets included), offsets and expiry (inside the quotes) are
    _names: tuple[int, int] = field(default=(0, 0), repr=False)
    _offsets: int = field(default=0, repr=False)
    _expiry: tuple[int, int] = field(default=(0, 0), repr=False)
    #: reads the whole control-plane index when `data` is its head only
    _rest: Callable[[], bytes] | None = field(default=None, repr=False)
    _decoded: dict[int, BackupRecord] = field(default_factory=dict, init=False, repr=False)
    _name_list: list[str] | None = field(default=None, init=False, repr=False)
    _positions: dict[str, int] | None = field(default=None, init=False, repr=False)

    @classmethod
    def parse(cls, data: bytes, key: str, rest: Callable[[], bytes] | None = None) -> ControlPlaneIndexView:
        """The header and where lines 2 to 4 are: a constant number of steps for any number of
        backups (ValueError, KeyError... when it is not a control-plane index; IndexCorrupt when newer).
        With `rest`, `data` is only the head of a version 4 index (its first four lines at least) and
        `rest()` reads all of it again, when a line past the head is needed."""
        end = data.find(b"\n")
        try:
            header = jsoncodec.loads(data[:end] if end >= 0 else data)
        except ValueError:
            header = None
        if rest is not None and (not isinstance(header, dict) or header.get("schemaVersion") != INDEX_SCHEMA_VERSION):
            return cls.parse(rest(), key)  # only version 4 reads from its head
        if not isinstance(header, dict) or header.get("schemaVersion", 0) in (1, 2):
            return cls._single_document(data, key)
        version = header.get("schemaVersion")
        _check_version(version, key)
        if version == 3:
            return cls._version_3(header, data, end, key)
        if version != INDEX_SCHEMA_VERSION:
            raise ValueError(f"schemaVersion {version!r}")
        count, routes = header["backups"], header["routes"]
        if type(count) is not int or count < 0 or not isinstance(routes, list) or \
                not all(isinstance(r, str) for r in routes) or (count > 0) != bool(routes):
            raise ValueError("backups or routes")
        names_end = data.index(b"\n", end + 1)
        offsets_end = data.index(b"\n", names_end + 1)
        expiry_end = data.index(b"\n", offsets_end + 1)
        if data[end + 1] != 0x5B or data[names_end - 1] != 0x5D:  # [ ... ]
            raise ValueError("names are not a list")
        if offsets_end - names_end - 3 != OFFSET_DIGITS * count or data[names_end + 1] != 0x22 or \
                data[offsets_end - 1] != 0x22:
            raise ValueError("not one offset for each backup of the header")
        expiry = (offsets_end + 2, expiry_end - 1)
        if (expiry[1] - expiry[0]) % _EXPIRY_ENTRY or (expiry[1] - expiry[0]) // _EXPIRY_ENTRY > count or \
                data[offsets_end + 1] != 0x22 or data[expiry_end - 1] != 0x22:
            raise ValueError("expiry entries")
        if count > 0 and int(data[names_end + 2:names_end + 2 + OFFSET_DIGITS]) != expiry_end + 1:
            raise ValueError("the first line is not where its offset says")
        if rest is None:
            _check_end(data, count, offsets_end, expiry_end)
        namespace, control_plane, pattern = header["namespace"], header["controlPlane"], header["archiveKey"]
        if not (isinstance(namespace, str) and isinstance(control_plane, str) and isinstance(pattern, str)):
            raise TypeError("namespace, controlPlane or archiveKey")
        view = cls(key, namespace, control_plane, pattern, count, tuple(routes), RecordedSummary(),
                   RestoreRecord.from_dict(header["restore"]) if header["restore"] else None, data,
                   _names=(end + 1, names_end), _offsets=names_end + 2, _expiry=expiry, _rest=rest)
        view.summary = RecordedSummary.from_header(header["digest"], namespace, count, view)
        return view

    @classmethod
    def _version_3(cls, header: dict, data: bytes, end: int, key: str) -> ControlPlaneIndexView:
        """Version 3: the names in the header, one line per backup without its name; decoded whole."""
        names = header["names"]
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names) or len(set(names)) != len(names):
            raise ValueError("names are not a list of distinct names")
        lines = data[end + 1:].split(b"\n")
        if end < 0 or len(lines) != len(names) + 1 or lines[-1]:
            raise ValueError("not one line for each backup of the header")
        namespace, control_plane, pattern = header["namespace"], header["controlPlane"], header["archiveKey"]
        records = []
        for name, line in zip(names, lines, strict=False):
            values = {"namespace": namespace, "name": name, "controlPlane": control_plane,
                      "archiveKey": pattern.replace(NAME_SLOT, name)}
            values.update(jsoncodec.loads(line))
            records.append(BackupRecord.from_dict(values))
        restore = RestoreRecord.from_dict(header["restore"]) if header["restore"] else None
        return cls(key, namespace, control_plane, pattern, len(records), tuple({route(n) for n in names}),
                   RecordedSummary.of(records), restore, data, records, 3)

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
        return cls(key, namespace, shared.get("controlPlane", ""), pattern or "", len(records),
                   tuple({route(r.name) for r in records}), RecordedSummary.of(records), restore, data, records,
                   doc.get("schemaVersion", 1))

    # -- by name -------------------------------------------------------------------------------------

    @property
    def names(self) -> list[str]:
        """Every backup's name, in order (decodes line 2: for writers, metrics and listings, not planning)."""
        if self._name_list is None:
            if self.records is not None:
                self._name_list = [record.name for record in self.records]
            else:
                with unreadable_as_corrupt(self.key, "list of names"):
                    names = jsoncodec.loads(self.data[self._names[0]:self._names[1]])
                    if not isinstance(names, list) or len(names) != self.count or \
                            not all(isinstance(n, str) for n in names) or len(set(names)) != len(names):
                        raise ValueError("not one distinct name for each backup of the header")
                self._name_list = names
        return self._name_list

    def position(self, name: str) -> int | None:
        """Where the backup `name` is in this control-plane index, or None: a search of line 2's bytes
        (the position is the number of `","` separators before it, which no JSON string holds)."""
        if self.records is not None:
            if self._positions is None:
                self._positions = {record.name: i for i, record in enumerate(self.records)}
            return self._positions.get(name)
        start, end = self._names
        needle = jsoncodec.dumps(name)
        data = self.data
        at = data.find(needle, start, end)
        while at >= 0:
            after = at + len(needle)
            if data[at - 1] in b"[," and data[after] in b",]":
                return data.count(b'","', start, at + 1)  # the separator ends with the name's own quote
            at = data.find(needle, at + 1, end)
        return None

    def record(self, i: int, name: str = "") -> BackupRecord:
        """The whole record of the i-th backup (of `names`); with `name`, the record must be that
        backup's (else IndexCorrupt: the names and the lines disagree)."""
        record = self._decoded.get(i) if self.records is None else self.records[i]
        if record is None:
            try:
                with unreadable_as_corrupt(self.key):
                    record = self._decode(i)
                    if name and record.name != name:
                        raise ValueError("the line of another backup")
            except IndexCorrupt:  # not cached at i: its offset leads elsewhere
                return self._by_name(i, name)
            self._decoded[i] = record
        if name and record.name != name:
            raise IndexCorrupt(f"{self.key}: the list of names and the lines disagree on backup {name}; "
                               "run `reconcile.py index rebuild`")
        return record

    def _by_name(self, i: int, name: str) -> BackupRecord:
        """The i-th backup's line found by its name, when its offset does not lead to it (a line of
        another length was written over an earlier one: only that line is lost, as when lines were
        counted). IndexCorrupt naming the backup when no line of that name reads."""
        label = name or self._name_at(i)
        try:
            with unreadable_as_corrupt(self.key):
                name = name or self.names[i]
                data = self._whole()
                quoted = jsoncodec.dumps(name)
                at = data.find(b'\n{"name":' + quoted + b",", self._expiry[1])
                if at < 0:  # as json.dumps writes it by default
                    at = data.find(b'\n{"name": ' + quoted + b", ", self._expiry[1])
                if at < 0:
                    raise KeyError(name)
                record = self._from_line(data[at + 1:data.index(b"\n", at + 1)])
                if record.name != name:
                    raise ValueError("the line of another backup")
                return record
        except IndexCorrupt as err:  # named only now: finding the name decodes line 2
            raise IndexCorrupt(str(err).replace(" index shard ", f" record of backup {label} ", 1)) from None

    def _whole(self) -> bytes:
        """All of the control-plane index: read again when only its head was (IndexCorrupt when that
        is not the same index any more: it changed while this plan read it)."""
        if self._rest is not None:
            data = self._rest()
            if not data.startswith(self.data):
                raise IndexCorrupt(f"{self.key}: changed while it was read; plan again")
            offsets_end = self._names[1] + 3 + OFFSET_DIGITS * self.count
            with unreadable_as_corrupt(self.key):
                _check_end(data, self.count, offsets_end, self._expiry[1] + 1)
            self.data, self._rest = data, None
        return self.data

    def _decode(self, i: int) -> BackupRecord:
        if not 0 <= i < self.count:
            raise IndexError(i)
        data = self.data
        at = self._offsets + OFFSET_DIGITS * i
        start = int(data[at:at + OFFSET_DIGITS])
        end = int(data[at + OFFSET_DIGITS:at + 2 * OFFSET_DIGITS]) if i + 1 < self.count else -1
        if self._rest is not None and (end < 0 or end > len(data)):
            data = self._whole()
        if end < 0:
            end = len(data)
        if not 0 < start < end <= len(data) or data[start - 1] != 0x0A or data[end - 1] != 0x0A:
            raise ValueError("a line offset")
        return self._from_line(data[start:end - 1])

    def _from_line(self, line: bytes) -> BackupRecord:
        values = jsoncodec.loads(line)
        name = values["name"]
        if not isinstance(name, str):
            raise TypeError("name")
        full = {"namespace": self.namespace, "controlPlane": self.control_plane,
                "archiveKey": self.archive_key.replace(NAME_SLOT, name)}
        full.update(values)
        record = BackupRecord.from_dict(full)
        if record.namespace != self.namespace:  # as versions 1 to 3 are refused (BucketIndex.load)
            raise ValueError("a record of another namespace")
        return record

    def _name_at(self, i: int) -> str:
        """For a message only: the i-th name if line 2 reads, else its position."""
        try:
            return self.names[i]
        except (IndexCorrupt, IndexError):
            return f"at position {i}"

    def all_records(self) -> list[BackupRecord]:
        """Every record, decoded (writers, status, rebuild checks): per backup, never on a plan's path."""
        if self.records is not None:
            return list(self.records)
        names = self.names
        if self.count:  # a line no name counts would be dropped by the writer that decoded these
            data = self._whole()
            if data.count(b"\n", int(data[self._offsets:self._offsets + OFFSET_DIGITS])) != self.count:
                raise IndexCorrupt(f"{self.key}: not one line for each backup; run `reconcile.py index rebuild`")
        return [self.record(i, name) for i, name in enumerate(names)]

    def record_lines(self) -> list[bytes]:
        """Each backup's line as stored (compact JSON, sorted keys after the name, `phase` always
        written), in the order of `names`: what metrics count phases from without decoding."""
        if self.records is not None:
            return [json.dumps(r.to_dict(), separators=(",", ":"), sort_keys=True).encode() for r in self.records]
        if not self.count:
            return []
        data = self._whole()
        first = int(data[self._offsets:self._offsets + OFFSET_DIGITS])
        lines = data[first:].split(b"\n")
        if len(lines) != self.count + 1:
            raise IndexCorrupt(f"{self.key}: not one line for each backup; run `reconcile.py index rebuild`")
        return lines[:-1]

    # -- by expiry -----------------------------------------------------------------------------------

    def expired(self, cutoff: str) -> list[Key]:
        """(namespace, name) of the live backups whose expiry time (as written, to the second) is at
        or before `cutoff`: a binary search of line 4, then the lines of those found."""
        if self.records is not None:
            raise TypeError("versions 1 to 3 summarise from their records")
        start, end = self._expiry
        data, target = self.data, cutoff.encode()
        low, high = 0, (end - start) // _EXPIRY_ENTRY
        while low < high:
            middle = (low + high) // 2
            at = start + middle * _EXPIRY_ENTRY
            if data[at:at + TIME_CHARS] <= target:
                low = middle + 1
            else:
                high = middle
        out = []
        for k in range(low):
            at = start + k * _EXPIRY_ENTRY + TIME_CHARS
            with unreadable_as_corrupt(self.key, "expiry line"):
                i = int(data[at:at + POSITION_DIGITS])
            record = self.record(i)
            if self.position(record.name) != i:  # the line at its offset is another's: found by its name instead
                record = self._by_name(i, "")
                if format_time(record.expires_at) != data[at - TIME_CHARS:at].decode():
                    raise IndexCorrupt(f"{self.key}: the list of names and the lines disagree on backup "
                                       f"{record.name}; run `reconcile.py index rebuild`")
            out.append((self.namespace, record.name))  # a candidate: the planner reads its record's own time
        return out

    def expiry_entries(self) -> list[tuple[str, Key]]:
        """Every (expiry time, (namespace, name)) of line 4, in order (to compare summaries; per backup)."""
        start, end = self._expiry
        names = self.names
        entries = []
        with unreadable_as_corrupt(self.key, "expiry line"):
            for at in range(start, end, _EXPIRY_ENTRY):
                i = int(self.data[at + TIME_CHARS:at + _EXPIRY_ENTRY])
                entries.append((self.data[at:at + TIME_CHARS].decode(), (self.namespace, names[i])))
        return entries


def _check_end(data: bytes, count: int, offsets_end: int, expiry_end: int) -> None:
    """A whole version 4 index ends with a whole line, and its last offset is inside it (ValueError
    if not). A line edited to another length moves the offsets after it: those lines are then
    found by their names, when needed, instead of refusing every line of the index."""
    last = int(data[offsets_end - 1 - OFFSET_DIGITS:offsets_end - 1]) if count else 0
    if not data.endswith(b"\n") or (count == 0 and len(data) != expiry_end + 1) or \
            (count > 0 and not expiry_end < last < len(data)):
        raise ValueError("not one line for each backup of the header")


def _check_version(version: object, key: str) -> None:
    if not isinstance(version, int) or version > INDEX_SCHEMA_VERSION:
        raise IndexCorrupt(f"{key}: written by a newer release (schemaVersion {version!r}); upgrade ctpbackup")


def _line(doc: object) -> bytes:
    return json.dumps(doc, separators=(",", ":"), sort_keys=True).encode() + b"\n"


def _record_line(record: BackupRecord, control_plane: str, pattern: str) -> bytes:
    """A backup's line: its name first (so that a line read by its offset is checked to be the one
    asked for), then the rest of its slim record with sorted keys."""
    rest = json.dumps(_slim(record.to_dict(), control_plane, pattern), separators=(",", ":"), sort_keys=True)
    return b'{"name":' + jsoncodec.dumps(record.name) + b"," + rest[1:].encode() + b"\n"


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
