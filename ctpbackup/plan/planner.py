"""The plan: what Git asks for, minus what the bucket index records, at one instant.

`plan(desired, recorded, now)` is pure (no I/O, no clock): `plan`, `apply` and the GitHub Action all
share it, and it is tested with tables. Each action carries the reason it exists.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Set
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Protocol

from ctpbackup.desired.model import (
    RETRY_ANNOTATION,
    BackupOptions,
    ControlPlaneSelector,
    DeletionPolicy,
    DesiredState,
    SharedBackup,
)
from ctpbackup.rules.naming import scheduled_backup_name, shared_backup_name
from ctpbackup.rules.reasons import FailureReason
from ctpbackup.rules.schedules import parse_schedule
from ctpbackup.rules.selectors import selects
from ctpbackup.rules.times import readable
from ctpbackup.store.records import BackupRecord, OwnerKind, Phase, RestoreRecord
from ctpbackup.store.summary import Owner, RecordedSummary

DEFAULT_MAX_RETRIES = 3
DEFAULT_MAX_RESTORE_ATTEMPTS = 3
DEFAULT_MASS_DELETE_COUNT = 10
DEFAULT_MASS_DELETE_FRACTION = 0.5


class ActionType(StrEnum):
    BACKUP = "backup"
    RETRY = "retry"
    #: a backup interrupted at every try up to the retry limit: recorded Failed, reason Interrupted
    GIVE_UP = "give-up"
    RESTORE = "restore"
    WAIT = "wait"
    DELETE = "delete"
    ORPHAN = "orphan"
    ERROR = "error"
    #: not an action: a desired backup that failed for good (its retries used up), kept in view
    FAILED = "failed"


class DeletionCause(StrEnum):
    """Why a delete or orphan action removes a backup: the mass-delete guard counts only removals from
    Git (a TTL expiring is the retention working, not an accident)."""

    #: the backup's `ttl` has passed (Spaces: `spec.ttl`)
    TTL_EXPIRED = "ttl-expired"
    #: the Backup's manifest is no longer in Git
    REMOVED_FROM_GIT = "removed-from-git"
    #: its owner (SharedBackup, BackupSchedule, SharedBackupSchedule) left Git and the backup was
    #: created with `useOwnerReferencesInBackup`
    OWNER_REMOVED_FROM_GIT = "owner-removed-from-git"


#: the sign each action shows in text output, Terraform style
SIGNS = {
    ActionType.BACKUP: "+", ActionType.RETRY: "+", ActionType.GIVE_UP: "x", ActionType.RESTORE: "~", ActionType.WAIT: ".",
    ActionType.DELETE: "-", ActionType.ORPHAN: "-", ActionType.ERROR: "!", ActionType.FAILED: "!",
}
#: what a plan lists without doing anything
NOT_CHANGES = (ActionType.WAIT, ActionType.ERROR, ActionType.FAILED)
_ORDER = {t: i for i, t in enumerate(ActionType)}


class Recorded(Protocol):
    """What the planner reads from the bucket index (ctpbackup.store.index.RecordedState): the summary of
    every backup, and whole records for the few it acts on: by key, or the live ones an owner keeps
    by reference (`kept_by`, when owners have left Git)."""

    @property
    def backups(self) -> Mapping[tuple[str, str], BackupRecord]: ...

    def summary(self) -> RecordedSummary: ...

    def kept_by(self, owners: Set[Owner]) -> Iterable[BackupRecord]: ...

    @property
    def restores(self) -> Mapping[tuple[str, str], RestoreRecord]: ...

    def control_planes(self) -> Set[tuple[str, str]]:
        """(namespace, control plane) of every control plane the index holds backups of."""
        ...


@dataclass(frozen=True)
class BackupRequest:
    """Everything the backup engine needs to take (or retake) one backup."""

    namespace: str
    name: str
    control_plane: str
    options: BackupOptions
    owner_kind: OwnerKind = OwnerKind.NONE
    owner_name: str = ""
    slot: datetime | None = None
    use_owner_references: bool = False
    selector: str = ""

    @property
    def retry_request(self) -> str:
        """The retry annotation's value on the object in Git that asks for this backup ("" if none)."""
        return self.options.retry_request


@dataclass(frozen=True)
class Action:
    type: ActionType
    kind: str  # the kind acted on: "Backup" or "ControlPlane" (restores), or the kind in error
    namespace: str
    name: str
    control_plane: str
    reason: str
    config: str = ""
    request: BackupRequest | None = None  # backup / retry
    record: BackupRecord | None = None  # retry / delete / orphan: the record acted on
    restore_backup: str = ""  # restore: the backup restored from
    restore_source: tuple[str, str] = ("", "")  # restore / wait: (kind, name) as written in Git
    deletion_cause: DeletionCause | None = None  # delete / orphan: why the backup goes

    @property
    def sign(self) -> str:
        return SIGNS[self.type]


@dataclass(frozen=True)
class SharedBackupStatus:
    namespace: str
    name: str
    phase: str
    selected: tuple[str, ...]
    completed: tuple[str, ...]
    failed: tuple[str, ...]
    allowed_failures: int


@dataclass(frozen=True)
class PlanOptions:
    max_retries: int = DEFAULT_MAX_RETRIES
    max_restore_attempts: int = DEFAULT_MAX_RESTORE_ATTEMPTS
    allow_mass_delete: bool = False
    mass_delete_count: int = DEFAULT_MASS_DELETE_COUNT
    mass_delete_fraction: float = DEFAULT_MASS_DELETE_FRACTION
    shard: tuple[int, int] = (0, 1)  # (index, count): only control planes whose hash falls in this shard
    #: how far ahead of `now` a recorded slot may be before it is a clock error (the lease period)
    clock_tolerance: timedelta = timedelta(minutes=10)


@dataclass(frozen=True)
class Plan:
    commit: str
    now: datetime
    actions: tuple[Action, ...]
    shared_backups: tuple[SharedBackupStatus, ...] = ()
    #: why deletions were held back (the mass-delete guard); empty when none were
    refusals: tuple[str, ...] = ()
    shard: tuple[int, int] = (0, 1)
    #: what looked wrong but did not stop the plan (a clock error in a recorded slot)
    warnings: tuple[str, ...] = ()
    #: False when the Secret source holds no connection Secret at all (the pull-request action has
    #: only bucket credentials): backups and restores were planned without knowing whether they can run
    connection_secrets_checked: bool = True
    #: (namespace, backup name) of the backups Failed for good beyond what their owner allows
    #: (a SharedBackup's failures.controlPlanes; nothing for the other kinds): `apply` exits 1
    failed_beyond_allowance: tuple[tuple[str, str], ...] = ()

    def count(self, *types: ActionType) -> int:
        return sum(1 for a in self.actions if a.type in types)

    def summary(self) -> dict[str, int]:
        return {t.value: self.count(t) for t in ActionType}

    @property
    def has_changes(self) -> bool:
        return any(a.type not in NOT_CHANGES for a in self.actions)

    @property
    def has_errors(self) -> bool:
        return bool(self.refusals) or self.count(ActionType.ERROR) > 0


def shard_of(namespace: str, control_plane: str, count: int) -> int:
    """Stable shard of a control plane: the same on every pod and every run."""
    digest = hashlib.sha256(f"{namespace}/{control_plane}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % count


def shard_reads(desired: DesiredState, shard: tuple[int, int]) -> Callable[[str, str], bool] | None:
    """Which control planes' indexes the plan of `shard` (index, count) needs, for
    `BucketIndex.load(control_planes=...)`: its own control planes, and those its restores take
    their backup from (a restore's source may be a backup of another shard's control plane). None,
    meaning all of them, for an unsharded run, or when a restore of this shard names a source whose
    control plane Git does not say (a Backup no longer in Git, or one a SharedBackup made).

    What a shard then knows is its own: the mass-delete guard counts per shard (`_guard_mass_delete`),
    and a SharedBackup's status and its failures.controlPlanes allowance see only the shard's
    control planes' backups (each shard judges its own failures against the allowance of all it
    selects: more lenient than one unsharded run; `status`, unsharded, shows the whole)."""
    index, count = shard
    if count <= 1:
        return None
    sources: set[tuple[str, str]] = set()
    for (ns, name), control_plane in desired.control_planes.items():
        source = control_plane.restore_source
        if source is None or control_plane.restore_finished_at is not None or shard_of(ns, name, count) != index:
            continue
        owner = (desired.backups if source.kind == "Backup" else desired.backup_schedules).get((ns, source.name))
        if owner is None:
            return None
        sources.add((ns, owner.control_plane))
    return lambda ns, cp: shard_of(ns, cp, count) == index or (ns, cp) in sources


def selector_text(selector: ControlPlaneSelector) -> str:
    """Canonical JSON of a selector, recorded with each backup so a later change can be refused."""
    return json.dumps({
        "labelSelectors": [
            {"matchLabels": dict(s.match_labels),
             "matchExpressions": [[e.key, e.operator, sorted(e.values)] for e in s.match_expressions]}
            for s in selector.label_selectors
        ],
        "names": sorted(selector.names),
    }, sort_keys=True, separators=(",", ":"))


def plan(desired: DesiredState, recorded: Recorded, now: datetime, options: PlanOptions = PlanOptions(),
         missing_connection_secrets: Mapping[tuple[str, str], str] | None = None) -> Plan:
    """Compute every action needed to make the bucket match Git at `now`. `missing_connection_secrets`
    maps (namespace, control plane) to why its connection Secret cannot be read: its backups and a
    restore into it are `. wait` with that reason instead (nothing is recorded, no retry is used)."""
    planner = _Planner(desired, recorded, now, options, missing_connection_secrets or {})
    # in this order: deletions leave alone what the restores take their backups from
    actions = list(planner.backups()) + list(planner.restores()) + list(planner.deletions())
    actions, refusals = _guard_mass_delete(actions, desired, planner.summary.live, options)
    index, count = options.shard
    if count > 1:
        actions = [a for a in actions if shard_of(a.namespace, a.control_plane, count) == index]
    actions.sort(key=lambda a: (_ORDER[a.type], a.namespace, a.name))
    shared = tuple(planner.shared_backup_statuses())
    return Plan(
        commit=desired.commit,
        now=now,
        actions=tuple(actions),
        shared_backups=shared,
        refusals=tuple(refusals),
        shard=options.shard,
        warnings=tuple(planner.warnings),
        failed_beyond_allowance=_beyond_allowance(actions, shared),
    )


def _beyond_allowance(actions: Iterable[Action], shared: Iterable[SharedBackupStatus]) -> tuple[tuple[str, str], ...]:
    """The failed-for-good backups that make `apply` fail: all of them, except a SharedBackup's
    while its failed control planes stay within its failures.controlPlanes allowance."""
    within = {(s.namespace, s.name) for s in shared if len(s.failed) <= s.allowed_failures}
    return tuple(sorted(
        (a.namespace, a.name) for a in actions if a.type is ActionType.FAILED and not (
            a.request is not None and a.request.owner_kind is OwnerKind.SHARED_BACKUP
            and (a.namespace, a.request.owner_name) in within)))


def requested_backups(desired: DesiredState, recorded: Recorded, now: datetime) -> list[BackupRequest]:
    """Every backup Git asks for at `now`, by name: Backups, each SharedBackup's per control plane,
    each schedule's latest slot (what `wait backup NAME` may wait for before it is recorded)."""
    return list(_Planner(desired, recorded, now, PlanOptions()).requests())


class _Planner:
    def __init__(self, desired: DesiredState, recorded: Recorded, now: datetime, options: PlanOptions,
                 missing_secrets: Mapping[tuple[str, str], str] | None = None):
        self.missing_secrets = missing_secrets or {}
        self.desired = desired
        self.recorded = recorded
        self.now = now
        self.options = options
        self.errors_for: set[tuple[str, str, str]] = set()  # (kind, ns, name) with an immutability error
        self.warnings: list[str] = []
        #: (ns, backup name) of every backup Git asks for now (so a record not in it has left Git)
        self.wanted: set[tuple[str, str]] = set()
        #: (ns, backup name) of the backups this plan restores from: not deleted in the same run
        self.restoring: set[tuple[str, str]] = set()
        #: what planning needs of every recorded backup, a few entries per control plane
        self.summary = recorded.summary()
        self._known: frozenset[tuple[str, str]] | None = None
        self._slots: dict[str, datetime] = {}  # schedule text -> latest slot at now
        self._times: dict[datetime, str] = {}  # time -> as reasons show it
        #: the owners Git holds, per owner kind
        self.owners_in_git: dict[OwnerKind, Mapping[tuple[str, str], object]] = {
            OwnerKind.SHARED_BACKUP: desired.shared_backups,
            OwnerKind.SHARED_BACKUP_SCHEDULE: desired.shared_backup_schedules,
            OwnerKind.BACKUP_SCHEDULE: desired.backup_schedules,
        }

    # -- backups -----------------------------------------------------------------------------------

    def requests(self) -> Iterator[BackupRequest]:
        d = self.desired
        for (ns, name), b in d.backups.items():
            yield BackupRequest(ns, name, b.control_plane, b.options)
        for (ns, name), sb in d.shared_backups.items():
            text = selector_text(sb.selector)
            for cp in self._selected(ns, sb.selector):
                yield BackupRequest(ns, shared_backup_name(name, cp), cp, sb.options, OwnerKind.SHARED_BACKUP, name,
                                    use_owner_references=sb.use_owner_references, selector=text)
        for (ns, name), s in d.shared_backup_schedules.items():
            text = selector_text(s.selector)
            for cp in self._selected(ns, s.selector):
                yield from self._due(OwnerKind.SHARED_BACKUP_SCHEDULE, ns, name, cp, s.schedule, s.suspend, s.options,
                                     s.use_owner_references, text)
        for (ns, name), s in d.backup_schedules.items():
            yield from self._due(OwnerKind.BACKUP_SCHEDULE, ns, name, s.control_plane, s.schedule, s.suspend, s.options,
                                 s.use_owner_references, "")

    def _selected(self, ns: str, selector: ControlPlaneSelector) -> list[str]:
        return sorted(cp for (cns, cp), obj in self.desired.control_planes.items()
                      if cns == ns and selects(selector, cp, obj.labels))

    def _due(self, kind: OwnerKind, ns: str, name: str, cp: str, schedule: str, suspend: bool, options: BackupOptions,
             use_owner_references: bool, selector: str) -> Iterator[BackupRequest]:
        """At most one backup per schedule and control plane: the latest slot, if not taken yet.
        After downtime this is one catch-up backup, not one per missed slot."""
        slot = self._latest_slot(schedule)
        last = self.summary.last_slots.get((kind, ns, name, cp))
        if last is not None and last > self.now + self.options.clock_tolerance:
            # written by a run whose clock ran ahead: trusting it would plan nothing until then
            self.warnings.append(
                f"{kind.value} {ns}/{name} on {cp}: the recorded slot {readable(last)} is later "
                f"than now plus {_tolerance(self.options.clock_tolerance)} (a clock error); the next slot is computed from now")
            last = None
        if last is not None and last >= slot:
            # the latest slot was taken: ask for it again so a Failed or interrupted one is retried
            # (until a newer slot supersedes it)
            slot = last
        elif suspend:
            return
        yield BackupRequest(ns, scheduled_backup_name(name, cp, slot), cp, options, kind, name, slot,
                            use_owner_references, selector)

    def _latest_slot(self, schedule: str) -> datetime:
        """The schedule's latest slot at `now`, computed once per schedule text (a schedule selecting
        10,000 control planes asks 10,000 times)."""
        slot = self._slots.get(schedule)
        if slot is None:
            slot = self._slots[schedule] = parse_schedule(schedule).latest_slot(self.now)
        return slot

    def _utc(self, when: datetime) -> str:
        """`2026-11-25 10:00:00 UTC`; formatted once per distinct time (many backups share a slot)."""
        text = self._times.get(when)
        if text is None:
            text = self._times[when] = when.strftime("%Y-%m-%d %H:%M:%S UTC")
        return text

    def backups(self) -> Iterator[Action]:
        requests = list(self.requests())
        self.wanted.update((r.namespace, r.name) for r in requests)
        # an immutable field changed on any recorded backup of an owner: nothing is done for that owner
        for owner, control_plane, config, changed in itertools.chain(self._owner_changes(), (
                (_owner_of(r.owner_kind, r.namespace, r.owner_name or r.name), r.control_plane, r.options.config,
                 _immutable_change(record, r))
                for r in requests if (record := self.recorded.backups.get((r.namespace, r.name))) is not None)):
            if changed and owner not in self.errors_for:
                self.errors_for.add(owner)
                yield Action(ActionType.ERROR, owner[0], owner[1], owner[2], control_plane,
                             f"{changed} cannot change after the backup was recorded; nothing done for it "
                             "(restore the old value, or create a new object with a new name)", config=config)
        for request in requests:
            if _owner_of(request.owner_kind, request.namespace, request.owner_name or request.name) in self.errors_for:
                continue
            record = self.recorded.backups.get((request.namespace, request.name))
            if record is None:
                yield self._backup_action(ActionType.BACKUP, request, self._why_new(request))
            elif record.phase is Phase.COMPLETED and failed_verification(record):
                # shown like a Failed backup, never taken again: its archive is kept as it is
                yield self._backup_action(ActionType.FAILED, request, failed_verification(record), record)
            elif record.phase is Phase.FAILED and _reason(record) == FailureReason.RECORD_UNREADABLE:
                continue  # kept by `index rebuild` from its archive alone: never taken again over it
            elif record.phase is Phase.FAILED and record.retries < self.options.max_retries:
                reason = f"failed ({_last_message(record)}); retry {record.retries + 1} of {self.options.max_retries}"
                yield self._backup_action(ActionType.RETRY, request, reason, record)
            elif record.phase is Phase.FAILED and request.retry_request and request.retry_request != record.retry_request:
                reason = (f"failed for good ({_last_message(record)}); a fresh attempt asked for by "
                          f"{RETRY_ANNOTATION}={request.retry_request!r}")
                yield self._backup_action(ActionType.RETRY, request, reason, record)
            elif record.phase is Phase.FAILED:
                yield self._backup_action(ActionType.FAILED, request, failed_for_good(record), record)
            elif record.phase in (Phase.PENDING, Phase.IN_PROGRESS) and record.retries < self.options.max_retries:
                reason = f"left {record.phase.value} by an interrupted run; retry {record.retries + 1} of {self.options.max_retries}"
                yield self._backup_action(ActionType.RETRY, request, reason, record)
            elif record.phase in (Phase.PENDING, Phase.IN_PROGRESS):
                reason = (f"left {record.phase.value} by an interrupted run at each of {record.retries + 1} tries; "
                          f"the retry limit ({self.options.max_retries}) is reached: recorded Failed, reason {FailureReason.INTERRUPTED}")
                yield self._backup_action(ActionType.GIVE_UP, request, reason, record)

    def _owner_changes(self) -> Iterator[tuple[tuple[str, str, str], str, str, str]]:
        """Immutable fields of an owner that no backup name shows: a BackupSchedule's controlPlane
        (its new backups have new names) and a SharedBackup's controlPlaneSelector changed to select
        other control planes (their backups are new names too). Found from the summary: the control
        planes each schedule took slots for, and each SharedBackup's newest Completed backup.
        Rules: the Spaces CRDs' CEL rules `self == oldSelf` on BackupSchedule spec.controlPlane and
        `self.controlPlaneSelector == oldSelf.controlPlaneSelector` on SharedBackup."""
        scheduled: dict[tuple[str, str], set[str]] = defaultdict(set)
        for kind, ns, name, cp in self.summary.last_slots:
            if kind is OwnerKind.BACKUP_SCHEDULE:
                scheduled[(ns, name)].add(cp)
        for (ns, name), schedule in self.desired.backup_schedules.items():
            others = sorted(scheduled.get((ns, name), set()) - {schedule.control_plane})
            if others:
                yield (("BackupSchedule", ns, name), schedule.control_plane, schedule.options.config,
                       f"spec.controlPlane (target can not be changed after creation: recorded "
                       f"{', '.join(repr(c) for c in others)}, Git says {schedule.control_plane!r})")
        for (ns, name), shared in self.desired.shared_backups.items():
            newest = self.summary.newest_completed.get((OwnerKind.SHARED_BACKUP, ns, name))
            record = self.recorded.backups.get(newest[1]) if newest else None
            if record is not None and record.selector and record.selector != selector_text(shared.selector):
                yield (("SharedBackup", ns, name), record.control_plane, shared.options.config,
                       "spec.controlPlaneSelector (shared backup ControlPlane selectors can not be changed after "
                       f"creation: recorded {record.selector}, Git says {selector_text(shared.selector)})")

    def _why_new(self, request: BackupRequest) -> str:
        if request.owner_kind is OwnerKind.NONE:
            return "Backup in Git, not in the bucket index"
        if request.owner_kind is OwnerKind.SHARED_BACKUP:
            return f"selected by SharedBackup {request.owner_name}"
        last = self.summary.last_slots.get((request.owner_kind, request.namespace, request.owner_name,
                                           request.control_plane))
        slot = self._utc(request.slot) if request.slot else ""
        tail = f"; last backup {self._utc(last)}" if last else "; first backup of this schedule"
        return f"{request.owner_kind.value} {request.owner_name} slot {slot} is due{tail}"

    def _backup_action(self, type_: ActionType, request: BackupRequest, reason: str,
                       record: BackupRecord | None = None) -> Action:
        missing = self.missing_secrets.get((request.namespace, request.control_plane))
        if missing and type_ in (ActionType.BACKUP, ActionType.RETRY):
            type_, reason = ActionType.WAIT, f"{missing}: the backup waits for it ({reason})"
        return Action(type_, "Backup", request.namespace, request.name, request.control_plane, reason,
                      config=request.options.config, request=request, record=record)

    # -- deletions ---------------------------------------------------------------------------------

    def deletion_candidates(self) -> Iterator[BackupRecord]:
        """Live backups that may have to go: expired ones, standalone ones (gone once Git stops asking
        for them), and those kept by reference by an owner that has left Git. Found from the summary,
        so only these records are read. A backup this plan restores from waits for a later run: a
        failed restore must still find its source."""
        gone = {(kind, ns, name) for kind, ns, name in self.summary.referenced_owners
                if (ns, name) not in self.owners_in_git[kind]}
        seen: set[tuple[str, str]] = set()
        for record in itertools.chain((self.recorded.backups[key] for key in self.summary.expired(self.now)),
                                      (self.recorded.backups[key] for key in self.summary.standalone),
                                      self.recorded.kept_by(gone) if gone else ()):
            if record.key not in seen and record.phase is not Phase.DELETED and record.key not in self.restoring:
                seen.add(record.key)
                yield record

    def deletions(self) -> Iterator[Action]:
        found: list[Action] = []
        for record in self.deletion_candidates():
            if self.errors_for and \
                    _owner_of(record.owner_kind, record.namespace, record.owner_name or record.name) in self.errors_for:
                continue
            reason, cause = "", None
            if record.expires_at is not None and record.expires_at <= self.now:
                cause = DeletionCause.TTL_EXPIRED
                reason = f"TTL {record.ttl} expired at {self._utc(record.expires_at)}"
            elif record.owner_kind is OwnerKind.NONE and record.key not in self.wanted:
                cause, reason = DeletionCause.REMOVED_FROM_GIT, "Backup removed from Git"
            elif record.owner_kind is not OwnerKind.NONE and record.use_owner_references \
                    and (record.namespace, record.owner_name) not in self.owners_in_git[record.owner_kind]:
                cause = DeletionCause.OWNER_REMOVED_FROM_GIT
                reason = f"owner {record.owner_kind.value} {record.owner_name} removed from Git (useOwnerReferencesInBackup)"
            if not reason:
                continue
            policy = self._deletion_policy(record)
            type_ = ActionType.DELETE if policy == DeletionPolicy.DELETE else ActionType.ORPHAN
            tail = "archive removed" if type_ is ActionType.DELETE else "archive kept in the bucket"
            found.append(Action(type_, "Backup", record.namespace, record.name, record.control_plane,
                                f"{reason}; deletionPolicy {policy}: {tail}", config=record.config, record=record,
                                deletion_cause=cause))
        yield from sorted(found, key=lambda a: (a.namespace, a.name))  # sort the few found, not every record

    def _deletion_policy(self, record: BackupRecord) -> str:
        """The policy in Git when the backup's manifest is still there, else the one recorded."""
        if record.owner_kind is OwnerKind.NONE:
            backup = self.desired.backups.get(record.key)
            if backup is not None:
                return backup.options.deletion_policy
        return record.deletion_policy

    # -- restores ----------------------------------------------------------------------------------

    def restores(self) -> Iterator[Action]:
        for (ns, name), cp in sorted(self.desired.control_planes.items()):
            source = cp.restore_source
            if source is None or cp.restore_finished_at is not None:
                continue
            record = self.recorded.restores.get((ns, name))
            src = (source.kind, source.name)
            if record is None and (ns, name) in self._known_control_planes():
                yield Action(ActionType.ERROR, "ControlPlane", ns, name, name,
                             "spec.restore: restore source can not be set after creation (the bucket index already "
                             f"records backups of ControlPlane {ns}/{name}); nothing done: restore into a new "
                             "ControlPlane", restore_source=src)
                continue
            if record is not None and (record.source_kind, record.source_name) != src:
                yield Action(ActionType.ERROR, "ControlPlane", ns, name, name,
                             f"spec.restore.source is immutable: recorded {record.source_kind} {record.source_name}, "
                             f"Git now says {source.kind} {source.name}; nothing done", restore_source=src)
                continue
            if record is not None and record.finished_at is not None:
                continue
            if record is not None and record.phase is Phase.FAILED and record.attempts >= self.options.max_restore_attempts:
                continue  # gave up: shown by status, retried only if the record is reset
            backup, why_not = self._restorable(ns, source.kind, source.name)
            if backup is None and not self._will_exist(ns, source.kind, source.name):
                yield Action(ActionType.ERROR, "ControlPlane", ns, name, name,
                             f"spec.restore.source: {source.kind} {ns}/{source.name} is neither in Git nor recorded "
                             "in the bucket index; nothing done", restore_source=src)
                continue
            if backup is None:
                yield Action(ActionType.WAIT, "ControlPlane", ns, name, name, why_not, restore_source=src)
                continue
            missing = self.missing_secrets.get((ns, name))
            if missing:
                yield Action(ActionType.WAIT, "ControlPlane", ns, name, name, f"{missing}: the restore waits for it",
                             restore_source=src)
                continue
            self.restoring.add(backup.key)
            again = f" (attempt {record.attempts + 1} of {self.options.max_restore_attempts})" if record and record.attempts else ""
            yield Action(ActionType.RESTORE, "ControlPlane", ns, name, name,
                         f"restore from Backup {backup.name} of {backup.control_plane}{again}",
                         config=backup.config, record=backup, restore_backup=backup.name, restore_source=src)

    def _will_exist(self, ns: str, kind: str, name: str) -> bool:
        """Whether a restore source not restorable now can become so: Git asks for it, or the index
        records it (references never cross namespaces: the source is looked up in `ns` only)."""
        if kind == "Backup":
            return (ns, name) in self.wanted or (ns, name) in self.recorded.backups
        return (ns, name) in self.desired.backup_schedules or \
            (OwnerKind.BACKUP_SCHEDULE, ns, name) in self.summary.newest_completed

    def _known_control_planes(self) -> Set[tuple[str, str]]:
        """The control planes the index holds backups of, read once (only when a restore asks)."""
        if self._known is None:
            self._known = frozenset(self.recorded.control_planes())
        return self._known

    def _restorable(self, ns: str, kind: str, name: str) -> tuple[BackupRecord | None, str]:
        if kind == "Backup":
            record = self.recorded.backups.get((ns, name))
            if record is None:
                return None, f"source Backup {name} is not taken yet"
            if record.phase is Phase.DELETED and record.deleted_with == DeletionPolicy.DELETE:
                return None, f"source Backup {name} was deleted with its archive"
            if record.phase is Phase.COMPLETED or (record.phase is Phase.DELETED and record.sha256):
                return record, ""
            return None, f"source Backup {name} is {record.phase.value}" + (
                f" ({_last_message(record)})" if record.phase is Phase.FAILED else "")
        newest = self.summary.newest_completed.get((OwnerKind.BACKUP_SCHEDULE, ns, name))
        record = self.recorded.backups.get(newest[1]) if newest else None
        if record is None or record.phase is not Phase.COMPLETED or \
                (record.owner_kind, record.owner_name) != (OwnerKind.BACKUP_SCHEDULE, name):
            return None, f"source BackupSchedule {name} has no Completed backup yet"
        return record, ""

    # -- SharedBackup status -----------------------------------------------------------------------

    def shared_backup_statuses(self) -> Iterator[SharedBackupStatus]:
        for (ns, name), sb in sorted(self.desired.shared_backups.items()):
            selected = tuple(self._selected(ns, sb.selector))
            completed, failed = [], []
            for cp in selected:
                record = self.recorded.backups.get((ns, shared_backup_name(name, cp)))
                if record is None:
                    continue
                if record.phase is Phase.COMPLETED or (record.phase is Phase.DELETED and record.sha256):
                    completed.append(cp)
                elif record.phase is Phase.FAILED and record.retries >= self.options.max_retries:
                    failed.append(cp)
            allowed = allowed_failures(sb, len(selected))
            if len(failed) > allowed:
                phase = "Failed"
            elif len(completed) + len(failed) == len(selected) and selected:
                phase = "Completed"
            elif completed or failed:
                phase = "InProgress"
            else:
                phase = "Pending"
            yield SharedBackupStatus(ns, name, phase, selected, tuple(completed), tuple(failed), allowed)


def allowed_failures(sb: SharedBackup, selected: int) -> int:
    """The SharedBackup's failure budget as a count: an int, or a percentage of the selected
    control planes rounded down."""
    budget = sb.failures_control_planes
    if budget is None:
        return 0
    if isinstance(budget, int):
        return budget
    return math.floor(selected * int(budget.rstrip("%")) / 100)


def _owner_of(kind: OwnerKind, namespace: str, name: str) -> tuple[str, str, str]:
    """(kind, namespace, name) of the object in Git that asked for a backup."""
    return (kind.value or "Backup", namespace, name)


def _immutable_change(record: BackupRecord, request: BackupRequest) -> str:
    if record.control_plane != request.control_plane:
        return f"spec.controlPlane (recorded {record.control_plane!r}, Git says {request.control_plane!r})"
    if record.config and record.config != request.options.config:
        return f"spec.configRef (recorded {record.config!r}, Git says {request.options.config!r})"
    if tuple(sorted(record.excluded_resources)) != tuple(sorted(request.options.excluded_resources)):
        return "spec.excludedResources"
    if record.selector and request.selector and record.selector != request.selector:
        return "spec.controlPlaneSelector"
    return ""


def _reason(record: BackupRecord) -> str:
    condition = record.condition("Completed")
    return condition.reason if condition else ""


def _tolerance(value: timedelta) -> str:
    minutes = int(value.total_seconds() // 60)
    return f"{minutes}m" if minutes else f"{int(value.total_seconds())}s"


def failed_for_good(record: BackupRecord) -> str:
    """`ControlPlaneUnreachable after 4 attempts: <message>`: why a backup stays Failed (its first
    attempt and every retry), from its last condition that says why."""
    cause = next((c for c in reversed(record.conditions) if c.status == "False" and c.reason), None)
    attempts = record.retries + 1
    head = f"{cause.reason if cause else 'Failed'} after {attempts} attempt{'s' if attempts != 1 else ''}"
    return f"{head}: {cause.message}" if cause and cause.message else head


def failed_verification(record: BackupRecord) -> str:
    """`failed verification: <reason>: <message>` for a Completed backup recorded Verified=False
    (ctpbackup.apply.verification), else ''."""
    condition = record.condition("Verified")
    if condition is None or condition.status != "False":
        return ""
    return f"failed verification: {condition.reason}: {condition.message}"


def _last_message(record: BackupRecord) -> str:
    for condition in reversed(record.conditions):
        if condition.message:
            return condition.message
    return "no reason recorded"


def _guard_mass_delete(actions: list[Action], desired: DesiredState, live: Mapping[tuple[str, str], int],
                       options: PlanOptions) -> tuple[list[Action], list[str]]:
    """Hold back deletions that look like an accident: everything of a config while Git holds nothing
    for it, or more removals-from-Git than the threshold. Counted per config, that is per (namespace,
    config name): two teams' configs of the same name never share a count. New backups still go ahead.

    A sharded run (`--shard I/N`, which reads only the indexes `shard_reads` names) counts per shard:
    its removals against the live backups of the indexes it read, so each shard guards its own
    deletions against its own totals, as each pod of an Indexed Job stands alone (knowing the other
    shards' totals would mean reading their indexes, which sharding is there to avoid). A Git
    mistake that removes everything still trips every shard's guard; the count limit then holds per
    shard, so N shards may delete up to N times `mass_delete_count` in one round."""
    if options.allow_mass_delete:
        return actions, []
    in_git = {(ns, b.options.config) for group in (desired.backups, desired.backup_schedules, desired.shared_backups,
                                                    desired.shared_backup_schedules) for (ns, _), b in group.items()}
    removing: dict[tuple[str, str], list[Action]] = defaultdict(list)
    for action in actions:
        if action.type in (ActionType.DELETE, ActionType.ORPHAN) and action.deletion_cause is not DeletionCause.TTL_EXPIRED:
            removing[(action.namespace, action.config)].append(action)
    held: set[int] = set()
    refusals = []
    for (namespace, config), group in sorted(removing.items()):
        # a SharedBackupConfig is namespaced: team A's `default` and team B's `default` are two configs
        total = live.get((namespace, config), 0)
        count = len(group)
        if (namespace, config) not in in_git and count >= total:
            why = (f"every recorded backup of SharedBackupConfig {namespace}/{config} ({count}) while Git holds "
                   "nothing that uses it")
        elif count > options.mass_delete_count or (total and count / total > options.mass_delete_fraction):
            why = (f"{count} of {total} recorded backups of SharedBackupConfig {namespace}/{config}, more than the "
                   f"limit ({options.mass_delete_count} backups or {options.mass_delete_fraction:.0%})")
        else:
            continue
        held.update(id(a) for a in group)
        refusals.append(f"refusing to delete or orphan {why}; check the --repo/--ref/--path and the commit, "
                        "or pass --allow-mass-delete")
    return [a for a in actions if id(a) not in held], refusals
