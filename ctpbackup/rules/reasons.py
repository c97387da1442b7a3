"""Failure reasons: the one list of the `reason` strings this job records in a condition.

They are the values stored in the bucket's records and shown by `status`, `describe` and the README's
troubleshooting table (tests/unit/test_reasons.py checks that the table lists each one), so a value
never changes once released. CamelCase, as Kubernetes condition reasons are (metav1.Condition: "a
programmatic identifier ... in CamelCase").
"""

from __future__ import annotations

from enum import StrEnum


class FailureReason(StrEnum):
    """Why a backup, a restore or a control plane's connection failed (a condition's `reason`)."""

    # connecting to a control plane (kube/connect.py, engines/backup.py, engines/restore.py)
    CONNECTION_SECRET_MISSING = "ConnectionSecretMissing"
    INVALID_KUBECONFIG = "InvalidKubeconfig"
    INSECURE_KUBECONFIG = "InsecureKubeconfig"
    CONTROL_PLANE_UNREACHABLE = "ControlPlaneUnreachable"
    # taking a backup (engines/backup.py)
    DISCOVERY_FAILED = "DiscoveryFailed"
    LIST_FAILED = "ListFailed"
    BUCKET_WRITE_FAILED = "BucketWriteFailed"
    UNSTORABLE_OBJECT = "UnstorableObject"
    ARCHIVE_EXISTS = "ArchiveExists"
    # reading an archive back (engines/restore.py, engines/encryption.py, store/record_mac.py)
    ARCHIVE_MISSING = "ArchiveMissing"
    ARCHIVE_UNREADABLE = "ArchiveUnreadable"
    ARCHIVE_REJECTED = "ArchiveRejected"
    ARCHIVE_MISMATCH = "ArchiveMismatch"
    ARCHIVE_NOT_ENCRYPTED = "ArchiveNotEncrypted"
    INTEGRITY_CHECK_FAILED = "IntegrityCheckFailed"
    ENCRYPTION_KEY_MISSING = "EncryptionKeyMissing"
    DECRYPTION_FAILED = "DecryptionFailed"
    RECORD_NOT_AUTHENTICATED = "RecordNotAuthenticated"
    # restoring (engines/restore.py, apply/executor.py)
    CRDS_NOT_ESTABLISHED = "CRDsNotEstablished"
    TIER_FAILED = "TierFailed"
    PARTIALLY_FAILED = "PartiallyFailed"
    # the index and the runs (store/index.py, apply/executor.py)
    #: a backup kept by `index rebuild` from its archive alone: never retaken automatically
    RECORD_UNREADABLE = "RecordUnreadable"
    #: a backup whose run was killed at every try, up to the retry limit
    INTERRUPTED = "Interrupted"
    INDEX_WRITE_FAILED = "IndexWriteFailed"
    #: a bug: an exception the engines did not expect (the message names its type)
    INTERNAL_ERROR = "InternalError"
    # verifying a Completed backup's archive offline (engines/verify.py): the `Verified` condition
    #: objects per resource differ from metadata.json or the index record
    COUNTS_MISMATCH = "CountsMismatch"
    #: a member name the archive format cannot hold (a restore refuses the archive)
    UNSTORABLE_NAME = "UnstorableName"
    #: a custom resource whose CRD is not in the archive
    CRD_MISSING = "CRDMissing"
    #: archived at a version its CRD does not serve, or of another kind or scope
    VERSION_NOT_SERVED = "VersionNotServed"
    #: refused by the schema, a CEL rule or a built-in type's rules (what a server answers 422/400)
    OBJECT_INVALID = "ObjectInvalid"
    #: an ownerReference to nothing in the archive and nothing the control plane makes
    OWNER_MISSING = "OwnerMissing"
    #: a namespaced object whose namespace is neither archived nor made by the control plane
    NAMESPACE_MISSING = "NamespaceMissing"
    # the `Completed` condition `status` computes for the kinds that make backups (apply/status.py)
    #: a SharedBackup with more failed control planes than `failures.controlPlanes` allows
    TOO_MANY_FAILURES = "TooManyFailures"
    #: a schedule whose latest slot has a backup that failed
    BACKUP_FAILED = "BackupFailed"


#: the reasons of a control plane that could not be reached (its `Ready` condition is then False)
UNREACHABLE = (FailureReason.CONTROL_PLANE_UNREACHABLE, FailureReason.CONNECTION_SECRET_MISSING,
               FailureReason.INVALID_KUBECONFIG)


class ReasonedError(Exception):
    """An error a run records as a condition: `reason` (a FailureReason) and a `message` that names
    the object and never a secret. `str(err)` is the message."""

    def __init__(self, reason: FailureReason, message: str):
        super().__init__(message)
        self.reason = reason
        self.message = message


class RefusedError(ReasonedError):
    """A ReasonedError a command prints whole, as one line: `str()` is "reason: message"."""

    def __str__(self) -> str:
        return f"{self.reason}: {self.message}"
