"""What planning needs to know of the recorded backups, in a few entries per control plane.

A plan over 10,000 control planes with 200 backups each must not look at 2,000,000 backups: it needs
the newest slot each schedule took, how many backups each config holds, which backups expire by now,
which have no owner, and which owners keep theirs by reference. Each control-plane index carries this summary
of its own backups, written with them; planning merges the control-plane indexes' summaries and reads whole records
only for the backups it acts on. The summary of plain records (`RecordedSummary.of`) is the same one,
so the planner's table tests and a real index give it the same input.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from ctpbackup.rules.times import format_time
from ctpbackup.store.records import BackupRecord, OwnerKind, Phase

#: (owner kind, namespace, owner name)
Owner = tuple[OwnerKind, str, str]
#: (namespace, backup name)
Key = tuple[str, str]


class ExpiryGroup(Protocol):
    """The live backups with a TTL of one group (one control-plane index), by expiry time."""

    def expired(self, cutoff: str) -> list[Key]:
        """(namespace, name) of those whose expiry time, as format_time writes it, is <= `cutoff`."""
        ...

    def expiry_entries(self) -> list[tuple[str, Key]]:
        """Every (expiry time, key), in order (to compare summaries: per backup)."""
        ...


@dataclass(frozen=True)
class SortedExpiry:
    """An ExpiryGroup of records in memory: times as written, sorted, and the keys in the same order."""

    times: tuple[str, ...]
    keys: tuple[Key, ...]

    def expired(self, cutoff: str) -> list[Key]:
        return list(self.keys[:bisect.bisect_right(self.times, cutoff)])

    def expiry_entries(self) -> list[tuple[str, Key]]:
        return list(zip(self.times, self.keys, strict=True))


@dataclass(eq=False)
class RecordedSummary:
    """The summary of a group of recorded backups (one control-plane index, or all of them once
    merged): a few entries per owner and control plane, none per scheduled backup."""

    #: newest slot taken (in any phase), per (owner kind, namespace, owner, control plane)
    last_slots: dict[tuple[OwnerKind, str, str, str], datetime] = field(default_factory=dict)
    #: backups not Deleted, per SharedBackupConfig: (namespace, config name), configs being namespaced
    live: dict[tuple[str, str], int] = field(default_factory=lambda: defaultdict(int))
    #: newest Completed backup per owner, by (completed or slot time, name): a restore's choice
    newest_completed: dict[Owner, tuple[str, Key]] = field(default_factory=dict)
    #: owners with a live backup kept by reference (useOwnerReferencesInBackup)
    referenced_owners: set[Owner] = field(default_factory=set)
    #: live backups with no owner (Backup objects): they go when Git stops asking for them
    standalone: list[Key] = field(default_factory=list)
    #: live backups with a TTL, one group per control-plane index, each searched by expiry time
    expiring: list[ExpiryGroup] = field(default_factory=list)

    def expired(self, now: datetime) -> list[Key]:
        """Backups whose TTL has passed at `now`, to the second (so perhaps some that expire later in
        that second: the planner checks each one's exact time): a binary search per group."""
        cutoff = format_time(now)
        out: list[Key] = []
        for group in self.expiring:
            out.extend(group.expired(cutoff))
        return out

    def __eq__(self, other: object) -> bool:
        """Equal when they say the same of the same backups, however the expiry is grouped (per backup: tests)."""
        if not isinstance(other, RecordedSummary):
            return NotImplemented
        return (self.last_slots == other.last_slots and dict(self.live) == dict(other.live)
                and self.newest_completed == other.newest_completed
                and self.referenced_owners == other.referenced_owners
                and sorted(self.standalone) == sorted(other.standalone)
                and sorted(e for g in self.expiring for e in g.expiry_entries())
                == sorted(e for g in other.expiring for e in g.expiry_entries()))

    @classmethod
    def of(cls, backups: Iterable[BackupRecord]) -> RecordedSummary:
        digest = cls()
        expiring: list[tuple[str, Key]] = []
        for b in backups:
            key = (b.namespace, b.name)
            if b.owner_kind and b.slot is not None:
                _keep_newest(digest.last_slots, (b.owner_kind, b.namespace, b.owner_name, b.control_plane), b.slot)
            if b.phase is Phase.DELETED:
                continue
            digest.live[(b.namespace, b.config)] += 1
            owner = (b.owner_kind, b.namespace, b.owner_name)
            if b.phase is Phase.COMPLETED and b.owner_kind:
                _keep_newest(digest.newest_completed, owner, (_newness(b.completed_at or b.slot), key))
            if not b.owner_kind:
                digest.standalone.append(key)
            elif b.use_owner_references:
                digest.referenced_owners.add(owner)
            if b.expires_at is not None:
                expiring.append((format_time(b.expires_at) or "", key))
        expiring.sort()
        if expiring:
            digest.expiring.append(SortedExpiry(tuple(t for t, _ in expiring), tuple(k for _, k in expiring)))
        return digest

    def merge(self, other: RecordedSummary) -> None:
        """Add another group's summary (another control-plane index, another bucket) to this one:
        per owner and config, never per backup."""
        for slot_key, slot in other.last_slots.items():
            _keep_newest(self.last_slots, slot_key, slot)
        for config, count in other.live.items():
            self.live[config] += count
        for owner, candidate in other.newest_completed.items():
            _keep_newest(self.newest_completed, owner, candidate)
        self.referenced_owners |= other.referenced_owners
        self.standalone += other.standalone
        self.expiring += other.expiring

    # -- in a control-plane index: its namespace is implied; the expiry is a line of its own ---------

    def to_header(self) -> dict[str, Any]:
        """The summary of one control-plane index's backups (all of its namespace), without the
        expiry (line 4 of a control-plane index holds it, searched without decoding)."""
        return {
            "lastSlots": sorted([kind.value, owner, cp, format_time(slot)]
                                for (kind, _, owner, cp), slot in self.last_slots.items()),
            "live": {config: count for (_, config), count in sorted(self.live.items())},
            "newestCompleted": sorted([kind.value, owner, newness, key[1]]
                                      for (kind, _, owner), (newness, key) in self.newest_completed.items()),
            "referencedOwners": sorted([kind.value, owner] for kind, _, owner in self.referenced_owners),
            "standalone": sorted(name for _, name in self.standalone),
        }

    @classmethod
    def from_header(cls, doc: dict[str, Any], namespace: str, count: int, expiring: ExpiryGroup) -> RecordedSummary:
        """The summary a control-plane index's header holds (of `count` backups, the expiry in
        `expiring`), checked as far as planning could go wrong on it (what only makes a backup a
        candidate, the planner checks again on its record). KeyError, ValueError or TypeError when
        `doc` is not one."""
        kinds = {kind.value: kind for kind in OwnerKind if kind}

        def key(name: object) -> Key:
            if not isinstance(name, str):
                raise TypeError("backup name")
            return (namespace, name)

        def owner_of(kind: str, owner: object) -> Owner:
            if not isinstance(owner, str):
                raise TypeError("owner")
            return (kinds[kind], namespace, owner)

        digest = cls()
        for kind, owner, cp, slot in doc["lastSlots"]:
            digest.last_slots[(*owner_of(kind, owner), str(cp))] = _time(slot)
        for config, count_of_config in doc["live"].items():
            if type(count_of_config) is not int or count_of_config < 0:
                raise ValueError("live count")
            digest.live[(namespace, str(config))] += count_of_config
        if sum(digest.live.values()) > count:
            raise ValueError("more live backups than backups")
        for kind, owner, newness, name in doc["newestCompleted"]:
            digest.newest_completed[owner_of(kind, owner)] = (str(newness), key(name))
        digest.referenced_owners = {owner_of(kind, owner) for kind, owner in doc["referencedOwners"]}
        digest.standalone = [key(name) for name in doc["standalone"]]
        if len(digest.standalone) > count:
            raise ValueError("more standalone backups than backups")
        digest.expiring.append(expiring)
        return digest


def _time(text: object) -> datetime:
    """A time exactly as format_time writes it (UTC, to the second), or ValueError."""
    if not isinstance(text, str):
        raise TypeError("time")
    parsed = datetime.fromisoformat(text)
    if parsed.tzinfo is None or format_time(parsed) != text:
        raise ValueError(f"time {text!r}")
    return parsed


def _keep_newest(entries: dict[Any, Any], key: Any, value: Any) -> None:
    """Keep `value` at `key` unless a larger (newer) one is there already."""
    if key not in entries or value > entries[key]:
        entries[key] = value


def _newness(when: datetime | None) -> str:
    """A Completed backup with no time at all counts as the newest (as the planner always chose it)."""
    return format_time(when) or "~"
