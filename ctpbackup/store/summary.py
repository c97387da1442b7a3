"""What planning needs to know of the recorded backups, in a few entries per control plane.

A plan over 1,000 control planes with 200 backups each must not look at 200,000 backups: it needs
the newest slot each schedule took, how many backups each config holds, which backups expire by now,
which have no owner, and which owners keep theirs by reference. Each control-plane index carries this summary
of its own backups, written with them; planning merges the control-plane indexes' summaries and reads whole records
only for the backups it acts on. The summary of plain records (`RecordedSummary.of`) is the same one,
so the planner's table tests and a real index give it the same input.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ctpbackup.rules.times import format_time
from ctpbackup.store.records import BackupRecord, OwnerKind, Phase

#: (owner kind, namespace, owner name)
Owner = tuple[OwnerKind, str, str]
#: (namespace, backup name)
Key = tuple[str, str]


@dataclass
class RecordedSummary:
    """The summary of a group of recorded backups (one control-plane index, or all of them once merged)."""

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
    #: live backups with a TTL: per group (one per control-plane index), expiry times sorted (as written, in UTC
    #: with seconds, so text order is time order) and the backups in the same order
    expiring: list[tuple[Sequence[str], Sequence[Key]]] = field(default_factory=list)

    def expired(self, now: datetime) -> list[Key]:
        """Backups whose TTL has passed at `now`, to the second (so perhaps some that expire later in
        that second: the planner checks each one's exact time): a binary search per group."""
        cutoff = format_time(now)
        out: list[Key] = []
        for times, keys in self.expiring:
            out.extend(keys[:bisect.bisect_right(times, cutoff)])
        return out

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
            digest.expiring.append((tuple(t for t, _ in expiring), tuple(k for _, k in expiring)))
        return digest

    def merge(self, other: RecordedSummary) -> None:
        """Add another group's summary (another control-plane index, another bucket) to this one."""
        for slot_key, slot in other.last_slots.items():
            _keep_newest(self.last_slots, slot_key, slot)
        for config, count in other.live.items():
            self.live[config] += count
        for owner, candidate in other.newest_completed.items():
            _keep_newest(self.newest_completed, owner, candidate)
        self.referenced_owners |= other.referenced_owners
        self.standalone += other.standalone
        self.expiring += other.expiring

    # -- in an control-plane index: the control-plane index's namespace is implied, backups are positions in its list --------

    def to_header(self, positions: dict[str, int]) -> dict[str, Any]:
        """The summary of one control-plane index's backups (all of the control-plane index's namespace)."""
        times, keys = self.expiring[0] if self.expiring else ((), ())
        return {
            "lastSlots": sorted([kind.value, owner, cp, format_time(slot)]
                                for (kind, _, owner, cp), slot in self.last_slots.items()),
            "live": {config: count for (_, config), count in sorted(self.live.items())},
            "newestCompleted": sorted([kind.value, owner, newness, positions[key[1]]]
                                      for (kind, _, owner), (newness, key) in self.newest_completed.items()),
            "referencedOwners": sorted([kind.value, owner] for kind, _, owner in self.referenced_owners),
            "standalone": [positions[name] for _, name in self.standalone],
            "expiresAt": list(times),
            "expiring": [positions[name] for _, name in keys],
        }

    @classmethod
    def from_header(cls, doc: dict[str, Any], namespace: str, names: Sequence[str]) -> RecordedSummary:
        """The summary a control-plane index's header holds, checked as far as planning could go wrong on it (what
        only makes a backup a candidate, the planner checks again on its record). KeyError,
        ValueError, TypeError or IndexError when `doc` is not one."""
        kinds = {kind.value: kind for kind in OwnerKind if kind}

        def key(position: object) -> Key:
            if type(position) is not int or not 0 <= position < len(names):
                raise IndexError(position)
            return (namespace, names[position])

        def owner_of(kind: str, owner: object) -> Owner:
            if not isinstance(owner, str):
                raise TypeError("owner")
            return (kinds[kind], namespace, owner)

        digest = cls()
        for kind, owner, cp, slot in doc["lastSlots"]:
            digest.last_slots[(*owner_of(kind, owner), str(cp))] = _time(slot)
        for config, count in doc["live"].items():
            if type(count) is not int or count < 0:
                raise ValueError("live count")
            digest.live[(namespace, str(config))] += count
        if sum(digest.live.values()) > len(names):
            raise ValueError("more live backups than backups")
        for kind, owner, newness, position in doc["newestCompleted"]:
            digest.newest_completed[owner_of(kind, owner)] = (str(newness), key(position))
        digest.referenced_owners = {owner_of(kind, owner) for kind, owner in doc["referencedOwners"]}
        digest.standalone = [key(position) for position in doc["standalone"]]
        times, positions = doc["expiresAt"], doc["expiring"]
        if len(times) != len(positions) or not all(isinstance(t, str) for t in times) or times != sorted(times):
            raise ValueError("expiry times out of order")
        if times:
            digest.expiring.append((tuple(times), tuple(key(position) for position in positions)))
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
