"""What the bucket index records about backups and restores: the job's only state.

Records are immutable values; a change is a new record (`dataclasses.replace`). They serialise to
plain JSON with a `schemaVersion`, so a later release can still read an older bucket.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from ctpbackup.rules.times import format_time

RECORD_SCHEMA_VERSION = 1


class Phase(StrEnum):
    PENDING = "Pending"
    IN_PROGRESS = "InProgress"
    COMPLETED = "Completed"
    #: a restore in which some objects failed (as Velero reports it): retried, existing objects skipped
    PARTIALLY_FAILED = "PartiallyFailed"
    FAILED = "Failed"
    DELETED = "Deleted"


class OwnerKind(StrEnum):
    NONE = ""
    SHARED_BACKUP = "SharedBackup"
    SHARED_BACKUP_SCHEDULE = "SharedBackupSchedule"
    BACKUP_SCHEDULE = "BackupSchedule"


_PHASES = {phase.value: phase for phase in Phase}
_OWNER_KINDS = {kind.value: kind for kind in OwnerKind}


def _restore_frozen(cls: type, values: dict[str, Any]) -> Any:
    """Build a frozen record from every one of its fields without the generated __init__, whose
    object.__setattr__ per field is most of the cost of reading 200,000 records at plan time.
    Only for from_dict, which passes every field (tests/storage/test_records.py checks it)."""
    record = object.__new__(cls)
    record.__dict__.update(values)
    return record


def parse_time(value: str | None) -> datetime | None:
    """An RFC 3339 time as the index writes it, or None. ValueError for anything else, also for a
    time without a zone (it could not be compared with any other time: Kubernetes' metav1.Time is
    always RFC 3339 with a zone)."""
    if not value:
        return None
    if not isinstance(value, str):
        raise ValueError(f"time {bounded(repr(value), 80)} is not a string")
    parsed = datetime.fromisoformat(value)  # C-fast, and reads the trailing Z since Python 3.11
    if parsed.tzinfo is None:
        raise ValueError(f"time {bounded(value, 80)!r} has no time zone")
    return parsed


#: the longest message stored in a record or printed from one (a condition's message, a warning)
MAX_MESSAGE = 500


def bounded(text: str, limit: int = MAX_MESSAGE) -> str:
    """`text` cut to at most `limit` characters, saying how much was left out: every message stored
    or printed stays small whatever input produced it."""
    if len(text) <= limit:
        return text
    tail = f"... ({len(text) - limit} more characters)"
    return text[: max(0, limit - len(tail))] + tail


@dataclass(frozen=True)
class Condition:
    """A Kubernetes-style condition (type, status, reason, message, lastTransitionTime)."""

    type: str
    status: str
    reason: str
    message: str = ""
    last_transition_time: datetime | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "status": self.status,
            "reason": self.reason,
            "message": self.message,
            "lastTransitionTime": format_time(self.last_transition_time),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Condition:
        return _restore_frozen(cls, {
            "type": data["type"],
            "status": data["status"],
            "reason": bounded(str(data.get("reason", "")), 128),
            "message": bounded(str(data.get("message", ""))),
            "last_transition_time": parse_time(data.get("lastTransitionTime")),
        })


def set_condition(conditions: tuple[Condition, ...], new: Condition) -> tuple[Condition, ...]:
    """Replace the condition of the same type, keeping lastTransitionTime when the status is unchanged.
    The message is bounded (MAX_MESSAGE characters): a record never stores an unbounded message."""
    if len(new.message) > MAX_MESSAGE or len(new.reason) > 128:
        new = dataclasses.replace(new, message=bounded(new.message), reason=bounded(new.reason, 128))
    out = []
    for existing in conditions:
        if existing.type == new.type:
            if existing.status == new.status and existing.last_transition_time is not None:
                new = dataclasses.replace(new, last_transition_time=existing.last_transition_time)
            continue
        out.append(existing)
    out.append(new)
    return tuple(out)


@dataclass(frozen=True)
class BackupRecord:
    """One backup of one control plane, as the index knows it."""

    namespace: str
    name: str
    control_plane: str
    config: str
    phase: Phase
    owner_kind: OwnerKind = OwnerKind.NONE
    owner_name: str = ""
    #: for schedule-owned backups: the slot this backup took (UTC)
    slot: datetime | None = None
    git_commit: str = ""
    conditions: tuple[Condition, ...] = ()
    retries: int = 0
    created_at: datetime | None = None
    started_at: datetime | None = None
    completed_at: datetime | None = None
    archive_key: str = ""
    size: int = 0
    sha256: str = ""
    counts: dict[str, int] = field(default_factory=dict)
    archive_format_version: int = 0
    deletion_policy: str = "Orphan"
    ttl: str = ""
    expires_at: datetime | None = None
    excluded_resources: tuple[str, ...] = ()
    #: the owner's useOwnerReferencesInBackup when this backup was created: removing the owner from
    #: Git then removes the backup
    use_owner_references: bool = False
    #: the owner's controlPlaneSelector when this backup was created (canonical JSON), to refuse a change
    selector: str = ""
    #: set when the record is Deleted: "Delete" (archive removed) or "Orphan" (archive kept)
    deleted_with: str = ""
    deleted_at: datetime | None = None
    encrypted: bool = False
    #: what the backup found questionable but did anyway (an excludedResources entry matching nothing)
    warnings: tuple[str, ...] = ()
    #: when the config has an encryption key: `v1:<key id>:<HMAC-SHA256>` over `authenticated_payload`
    #: (ctpbackup.store.record_mac), so an edited record is refused on restore
    mac: str = ""
    #: the retry annotation's value (model.RETRY_ANNOTATION) this backup's last attempt answered:
    #: a different value in Git asks for one more attempt after the retries ran out
    retry_request: str = ""
    #: the Kubernetes version the control plane's API reported when this backup was taken ("v1.31.2")
    server_version: str = ""
    #: the last offline verification of the archive (ctpbackup.engines.verify.Verification.to_dict:
    #: objects, created, skipped, merged, failed, failures by reason, examples); its outcome is the
    #: `Verified` condition. Empty until verified.
    verification: dict[str, Any] = field(default_factory=dict)
    schema_version: int = RECORD_SCHEMA_VERSION

    @property
    def key(self) -> tuple[str, str]:
        return (self.namespace, self.name)

    def authenticated_payload(self) -> bytes:
        """The fields a restore relies on (where the archive is, its size, sha256 and format, whether
        it is encrypted, whose backup it is, its phase and dates), as canonical JSON: what `mac` covers."""
        doc = self.to_dict()
        return json.dumps({k: doc[k] for k in _AUTHENTICATED}, sort_keys=True, separators=(",", ":")).encode()

    def condition(self, type_: str) -> Condition | None:
        return next((c for c in self.conditions if c.type == type_), None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "schemaVersion": self.schema_version,
            "kind": "BackupRecord",
            "namespace": self.namespace,
            "name": self.name,
            "controlPlane": self.control_plane,
            "config": self.config,
            "phase": self.phase.value,
            "owner": {"kind": self.owner_kind.value, "name": self.owner_name} if self.owner_kind else None,
            "slot": format_time(self.slot),
            "gitCommit": self.git_commit,
            "conditions": [c.to_dict() for c in self.conditions],
            "retries": self.retries,
            "createdAt": format_time(self.created_at),
            "startedAt": format_time(self.started_at),
            "completedAt": format_time(self.completed_at),
            "archiveKey": self.archive_key,
            "size": self.size,
            "sha256": self.sha256,
            "counts": dict(sorted(self.counts.items())),
            "archiveFormatVersion": self.archive_format_version,
            "deletionPolicy": self.deletion_policy,
            "ttl": self.ttl,
            "expiresAt": format_time(self.expires_at),
            "excludedResources": list(self.excluded_resources),
            "useOwnerReferences": self.use_owner_references,
            "selector": self.selector,
            "deletedWith": self.deleted_with,
            "deletedAt": format_time(self.deleted_at),
            "encrypted": self.encrypted,
            "warnings": list(self.warnings),
            "mac": self.mac,
            "retryRequest": self.retry_request,
            "serverVersion": self.server_version,
            "verification": dict(self.verification),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BackupRecord:
        """Read a record: only the fields present are converted (a control-plane index leaves defaults out), the
        rest take the dataclass defaults. namespace, name, controlPlane and phase are required."""
        values = dict(_BACKUP_DEFAULTS)
        for key, value in data.items():
            reader = _BACKUP_READERS.get(key)
            if reader is not None:
                attribute, convert = reader
                values[attribute] = value if convert is None else convert(value)
        owner = data.get("owner")
        if owner:
            values["owner_kind"] = _OWNER_KINDS[owner.get("kind", "")]
            values["owner_name"] = owner.get("name", "")
        if "counts" not in data:
            values["counts"] = {}  # a fresh dict each, never one shared default
        if "verification" not in data:
            values["verification"] = {}
        for required in ("namespace", "name", "control_plane", "phase"):
            if required not in values:
                raise KeyError(required)
        return _restore_frozen(cls, values)


def _conditions(items: list[dict[str, Any]]) -> tuple[Condition, ...]:
    return tuple([Condition.from_dict(c) for c in items])


#: serialised name -> (attribute, conversion); "owner" is read apart (one object, two attributes)
_BACKUP_READERS: dict[str, tuple[str, Any]] = {
    "schemaVersion": ("schema_version", int), "namespace": ("namespace", None), "name": ("name", None),
    "controlPlane": ("control_plane", None), "config": ("config", None), "phase": ("phase", _PHASES.__getitem__),
    "slot": ("slot", parse_time), "gitCommit": ("git_commit", None), "conditions": ("conditions", _conditions),
    "retries": ("retries", int), "createdAt": ("created_at", parse_time), "startedAt": ("started_at", parse_time),
    "completedAt": ("completed_at", parse_time), "archiveKey": ("archive_key", None), "size": ("size", int),
    "sha256": ("sha256", None), "counts": ("counts", dict), "archiveFormatVersion": ("archive_format_version", int),
    "deletionPolicy": ("deletion_policy", None), "ttl": ("ttl", None), "expiresAt": ("expires_at", parse_time),
    "excludedResources": ("excluded_resources", tuple), "useOwnerReferences": ("use_owner_references", bool),
    "selector": ("selector", None), "deletedWith": ("deleted_with", None), "deletedAt": ("deleted_at", parse_time),
    "encrypted": ("encrypted", bool), "warnings": ("warnings", tuple), "mac": ("mac", str),
    "retryRequest": ("retry_request", None), "serverVersion": ("server_version", None),
    "verification": ("verification", dict),
}
#: the serialised fields a record's `mac` covers (not conditions, retries or deletion marks, which
#: later updates change without the key)
_AUTHENTICATED = ("namespace", "name", "controlPlane", "config", "phase", "owner", "slot", "gitCommit", "createdAt",
                  "startedAt", "completedAt", "archiveKey", "size", "sha256", "counts", "archiveFormatVersion",
                  "deletionPolicy", "ttl", "expiresAt", "excludedResources", "encrypted")
#: every attribute that has a default, at it ("config" is optional when read, though not when built)
_BACKUP_DEFAULTS: dict[str, Any] = {
    f.name: f.default for f in dataclasses.fields(BackupRecord) if f.default is not dataclasses.MISSING
} | {"config": "", "schema_version": 1}


@dataclass(frozen=True)
class RestoreRecord:
    """One restore into a target control plane. Once `finished_at` is set it never runs again."""

    namespace: str
    control_plane: str
    source_kind: str
    source_name: str
    phase: Phase
    #: the backup actually restored (for a BackupSchedule source: its newest Completed backup)
    backup_name: str = ""
    git_commit: str = ""
    conditions: tuple[Condition, ...] = ()
    attempts: int = 0
    started_at: datetime | None = None
    finished_at: datetime | None = None
    #: per resource ("secrets", "xclusters.aws.example.org"): {"restored": n, "skipped": n, "failed": n}
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()
    schema_version: int = RECORD_SCHEMA_VERSION

    @property
    def key(self) -> tuple[str, str]:
        return (self.namespace, self.control_plane)

    def condition(self, type_: str) -> Condition | None:
        return next((c for c in self.conditions if c.type == type_), None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "schemaVersion": self.schema_version,
            "kind": "RestoreRecord",
            "namespace": self.namespace,
            "controlPlane": self.control_plane,
            "source": {"kind": self.source_kind, "name": self.source_name},
            "phase": self.phase.value,
            "backupName": self.backup_name,
            "gitCommit": self.git_commit,
            "conditions": [c.to_dict() for c in self.conditions],
            "attempts": self.attempts,
            "startedAt": format_time(self.started_at),
            "finishedAt": format_time(self.finished_at),
            "counts": {k: dict(v) for k, v in sorted(self.counts.items())},
            "warnings": list(self.warnings),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RestoreRecord:
        source = data.get("source") or {}
        return cls(
            schema_version=int(data.get("schemaVersion", 1)),
            namespace=data["namespace"],
            control_plane=data["controlPlane"],
            source_kind=source.get("kind", "Backup"),
            source_name=source.get("name", ""),
            phase=Phase(data["phase"]),
            backup_name=data.get("backupName", ""),
            git_commit=data.get("gitCommit", ""),
            conditions=tuple(Condition.from_dict(c) for c in data.get("conditions", ())),
            attempts=int(data.get("attempts", 0)),
            started_at=parse_time(data.get("startedAt")),
            finished_at=parse_time(data.get("finishedAt")),
            counts={k: dict(v) for k, v in data.get("counts", {}).items()},
            warnings=tuple(data.get("warnings", ())),
        )
