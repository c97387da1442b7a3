"""Typed, immutable desired state: what Git asks for, with defaults applied.

Everything past the manifest loader consumes these values; raw dicts stop at `ctpbackup.desired.manifests`.
Field names follow the Spaces API (`spaces.upbound.io`) in Python spelling.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from types import MappingProxyType
from typing import Any

from ctpbackup.storage.base import Provider

GROUP = "spaces.upbound.io"
DEFAULT_NAMESPACE = "default"
#: an annotation whose new value asks for a fresh attempt at a backup that failed for good (after
#: --max-retries), like Flux's `reconcile.fluxcd.io/requestedAt`: any value different from the one
#: last honoured (a timestamp, say) requests one more attempt. On a Backup, or on the SharedBackup /
#: BackupSchedule / SharedBackupSchedule that creates the backups.
RETRY_ANNOTATION = "backup.ctpbackup.io/retryRequestedAt"

EMPTY: Mapping[str, Any] = MappingProxyType({})


@dataclass(frozen=True)
class Origin:
    """Where an object was declared: the file (relative to the repository root), the line where its
    document starts, and the line of each field, so later checks can point at the exact field."""

    path: str
    line: int
    field_lines: Mapping[tuple[str | int, ...], int] = field(default_factory=lambda: EMPTY, compare=False, repr=False)

    def line_of(self, *field_path: str | int) -> int:
        while field_path:
            if field_path in self.field_lines:
                return self.field_lines[field_path]
            field_path = field_path[:-1]
        return self.line

    def __str__(self) -> str:
        return f"{self.path}:{self.line}"


@dataclass(frozen=True)
class SecretKeyRef:
    name: str
    key: str


class CredentialsSource(StrEnum):
    """Where a bucket's credentials come from (`spec.objectStorage.credentials.source`, Spaces' enum)."""

    #: a key of a Secret in the config's namespace
    SECRET = "Secret"
    #: the cloud SDK's default chain (IRSA, workload identity, managed identity)
    INJECTED_IDENTITY = "InjectedIdentity"


class DeletionPolicy(StrEnum):
    """What happens to a backup's archive when the backup goes away (`spec.deletionPolicy`, Spaces'
    enum; Velero and Crossplane use the same two words)."""

    ORPHAN = "Orphan"
    DELETE = "Delete"


@dataclass(frozen=True)
class Credentials:
    source: CredentialsSource
    secret_ref: SecretKeyRef | None = None


@dataclass(frozen=True)
class ObjectStorage:
    provider: Provider
    bucket: str
    credentials: Credentials
    prefix: str = ""
    #: Thanos objstore keys for the provider (free-form, read-only)
    config: Mapping[str, Any] = field(default_factory=lambda: EMPTY)
    #: extension: the Secret keys holding 32-byte keys to encrypt archives on the client and
    #: authenticate their records; the first encrypts, all decrypt (empty: no encryption)
    encryption_key_refs: tuple[SecretKeyRef, ...] = ()
    #: extension: backups whose unencrypted archive or unauthenticated record may still be restored
    allow_unauthenticated_backups: tuple[str, ...] = ()


@dataclass(frozen=True)
class SharedBackupConfig:
    namespace: str
    name: str
    object_storage: ObjectStorage
    origin: Origin | None = field(default=None, compare=False)


@dataclass(frozen=True)
class LabelSelectorRequirement:
    key: str
    operator: str  # In | NotIn | Exists | DoesNotExist
    values: tuple[str, ...] = ()


@dataclass(frozen=True)
class LabelSelector:
    match_labels: tuple[tuple[str, str], ...] = ()
    match_expressions: tuple[LabelSelectorRequirement, ...] = ()


@dataclass(frozen=True)
class ControlPlaneSelector:
    """A control plane is selected when it matches any label selector or is named in `names`."""

    label_selectors: tuple[LabelSelector, ...] = ()
    names: tuple[str, ...] = ()


@dataclass(frozen=True)
class ConnectionSecretRef:
    name: str
    namespace: str


@dataclass(frozen=True)
class RestoreSource:
    kind: str  # "Backup" | "BackupSchedule"
    name: str
    api_group: str = GROUP


@dataclass(frozen=True)
class ControlPlane:
    namespace: str
    name: str
    labels: Mapping[str, str] = field(default_factory=lambda: EMPTY)
    connection_secret: ConnectionSecretRef | None = None
    restore_source: RestoreSource | None = None
    restore_finished_at: datetime | None = None
    control_plane_class: str = ""
    crossplane_version: str = ""
    crossplane_channel: str = "Stable"
    crossplane_state: str = "Running"
    #: extension: let the connection kubeconfig run commands/plugins or read files (ctpbackup.kube.connect)
    allow_insecure_kubeconfig: bool = False
    origin: Origin | None = field(default=None, compare=False)


@dataclass(frozen=True)
class BackupOptions:
    """What every backup-producing kind shares and passes on to each backup it creates."""

    config: str
    deletion_policy: DeletionPolicy = DeletionPolicy.ORPHAN
    excluded_resources: tuple[str, ...] = ()
    ttl: timedelta | None = None
    #: the TTL as written in Git ("168h"), for records and output
    ttl_text: str = ""
    #: the value of the RETRY_ANNOTATION, "" when absent
    retry_request: str = field(default="", compare=False)


@dataclass(frozen=True)
class Backup:
    namespace: str
    name: str
    control_plane: str
    options: BackupOptions
    origin: Origin | None = field(default=None, compare=False)


@dataclass(frozen=True)
class BackupSchedule:
    namespace: str
    name: str
    control_plane: str
    schedule: str
    options: BackupOptions
    suspend: bool = False
    use_owner_references: bool = False
    origin: Origin | None = field(default=None, compare=False)


@dataclass(frozen=True)
class SharedBackup:
    namespace: str
    name: str
    selector: ControlPlaneSelector
    options: BackupOptions
    use_owner_references: bool = False
    #: failure budget: an int count, a "NN%" string, or None (no failures tolerated)
    failures_control_planes: int | str | None = None
    origin: Origin | None = field(default=None, compare=False)


@dataclass(frozen=True)
class SharedBackupSchedule:
    namespace: str
    name: str
    selector: ControlPlaneSelector
    schedule: str
    options: BackupOptions
    suspend: bool = False
    use_owner_references: bool = False
    origin: Origin | None = field(default=None, compare=False)


Key = tuple[str, str]  # (namespace, name)


@dataclass(frozen=True)
class DesiredState:
    """Everything one commit of the GitOps repository asks for."""

    commit: str
    configs: Mapping[Key, SharedBackupConfig] = field(default_factory=lambda: EMPTY)
    control_planes: Mapping[Key, ControlPlane] = field(default_factory=lambda: EMPTY)
    backups: Mapping[Key, Backup] = field(default_factory=lambda: EMPTY)
    backup_schedules: Mapping[Key, BackupSchedule] = field(default_factory=lambda: EMPTY)
    shared_backups: Mapping[Key, SharedBackup] = field(default_factory=lambda: EMPTY)
    shared_backup_schedules: Mapping[Key, SharedBackupSchedule] = field(default_factory=lambda: EMPTY)

    def counts(self) -> dict[str, int]:
        return {
            "SharedBackupConfig": len(self.configs),
            "ControlPlane": len(self.control_planes),
            "Backup": len(self.backups),
            "BackupSchedule": len(self.backup_schedules),
            "SharedBackup": len(self.shared_backups),
            "SharedBackupSchedule": len(self.shared_backup_schedules),
        }
