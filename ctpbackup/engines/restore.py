"""The restore engine: re-create a backup's objects in a control plane, in dependency order.

Integrity first: the backup store downloads the archive and checks its size and sha256 against the
index, then every member is checked (paths, links, sizes, format version) before a single object is
written. Then tier by tier (see restore_order): objects of a tier are created concurrently, owners
before dependents, ownerReferences remapped to the new uids, status written through /status,
Crossplane resources created paused and unpaused at the end unless they were paused in the source.

One code path, two write modes (`WriteMode`): APPLY writes; DRY_RUN sends every write with the API
server's `dryRun=All` (validated and admitted, nothing persisted), skips the waits for what a dry run
cannot bring about (CRDs Established, providers Healthy), and checks offline (`offline_check`) the
objects whose namespace or CRD the target does not have yet, because this restore would create them.
"""

from __future__ import annotations

import copy
import enum
import io
import logging
import shutil
import tempfile
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from threading import Lock
from typing import TYPE_CHECKING, Any, BinaryIO

from ctpbackup.apply.progress import Progress
from ctpbackup.engines import jsoncodec
from ctpbackup.engines.archive import (
    METADATA,
    UIDS,
    ArchiveError,
    ArchiveReader,
    _shown,
    check_metadata,
    is_object_path,
    loads_object,
    uid_lines,
)
from ctpbackup.engines.conversion_webhooks import REVISION_KEY, ConversionWebhooks
from ctpbackup.engines.encryption import EncryptionError, Keyring, backup_context, decrypt_stream
from ctpbackup.engines.offline_check import OfflineAdmission
from ctpbackup.engines.restore_order import (
    PAUSED,
    PAUSED_BY_RESTORE,
    TIERS,
    clean,
    is_pausable,
    made_by_control_plane,
    merge_user_fields,
    tier_of,
)
from ctpbackup.kube.api import CRD_KEY, KubeAPI, KubeError, ResourceType
from ctpbackup.rules.reasons import FailureReason, ReasonedError
from ctpbackup.store.backup_store import ArchiveCheckFailed, BackupStore
from ctpbackup.store.records import BackupRecord
from kubevalidation import Target

if TYPE_CHECKING:  # the kubernetes package takes seconds to import: only commands that connect load it
    from kubernetes.client import ApiClient

log = logging.getLogger(__name__)

MAX_WARNINGS = 200
WORKERS = 16
READ_AHEAD = 4  # objects read from the spool per writer, ahead of the writers


class WriteMode(enum.Enum):
    """How a restore writes: APPLY for real, or DRY_RUN with `dryRun=All` on every write (the query
    parameter kube-apiserver accepts on create, update, patch and delete; only `All` is valid)."""

    APPLY = "apply"
    DRY_RUN = "dry-run"

    @property
    def query(self) -> dict[str, str] | None:
        return {"dryRun": "All"} if self is WriteMode.DRY_RUN else None


#: count key of objects checked offline (a subset of "restored" or "failed" in a dry run)
OFFLINE = "validatedOffline"


class RestoreFailed(ReasonedError):
    """A restore attempt that stopped before its end; what it had written stays (a rerun skips it)."""


@dataclass
class RestoreResult:
    """What one attempt did. counts: resource key -> {"restored", "skipped", "merged", "failed"} (a dry
    run: what it would do, plus OFFLINE: how many of those were checked offline, not by the target);
    failures: the reason of each failed object (first ones); still_paused: objects this restore paused
    and could not unpause. Completed only when nothing failed and nothing it paused is still paused."""

    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()
    failures: tuple[str, ...] = ()
    still_paused: int = 0
    mode: WriteMode = WriteMode.APPLY

    def total(self, what: str) -> int:
        return sum(c.get(what, 0) for c in self.counts.values())

    @property
    def completed(self) -> bool:
        return self.total("failed") == 0 and self.still_paused == 0

    def summary(self) -> str:
        text = f"{self.total('restored')} restored, {self.total('skipped')} skipped (already there)"
        if self.total("merged"):
            text += f", {self.total('merged')} merged into objects the control plane made"
        text += f", {self.total('failed')} failed"
        if self.still_paused:
            text += f", {self.still_paused} still paused"
        return text + (f", {len(self.warnings)} warning(s)" if self.warnings else "")

    def first_reasons(self, n: int = 3) -> str:
        reasons = list(self.failures[:n])
        if self.still_paused and len(reasons) < n:
            reasons += [w for w in self.warnings if "could not be unpaused" in w][:n - len(reasons)]
        return "; ".join(reasons)


def fetch_verified(store: BackupStore, record: BackupRecord, dest: Path,
                   encryption_key: Keyring | bytes | None = None, *, check_members: bool = True) -> Path:
    """Download the archive of `record` from `store` into `dest`, proven the one the index recorded
    (size and sha256, by the store), then decrypt it when it was encrypted on the client and check
    every member and that it names this backup of this control plane. Returns the path of the
    plain archive. Raises RestoreFailed with the reason (ArchiveMissing, ArchiveRejected,
    IntegrityCheckFailed, ArchiveUnreadable, EncryptionKeyMissing, DecryptionFailed,
    ArchiveMismatch).

    `check_members=False` leaves the members and names to a restore that reads the archive next:
    `run_restore(..., backup=record)` checks the same in its one pass, before its first write, so
    the archive is read once, not twice."""
    try:
        path = store.fetch_archive(record, dest)
    except ArchiveCheckFailed as err:
        raise RestoreFailed(err.reason, err.message) from None
    if record.encrypted:
        if encryption_key is None:
            raise RestoreFailed(FailureReason.ENCRYPTION_KEY_MISSING, f"Backup {record.name} is encrypted and its config names no key")
        plain = dest / "archive.plain.tar.gz"
        try:
            with path.open("rb") as source, plain.open("wb") as out:
                context = backup_context(record.namespace, record.control_plane, record.name)
                for chunk in decrypt_stream(source, encryption_key, context):
                    out.write(chunk)
        except EncryptionError as err:  # DecryptionFailed, or EncryptionKeyMissing for a key id the config lacks
            raise RestoreFailed(err.reason, f"archive of Backup {record.name}: {err}") from None
        path.unlink()
        path = plain
    if not check_members:
        return path
    try:
        metadata = ArchiveReader(path).validate()
    except ArchiveError as err:
        raise RestoreFailed(FailureReason.ARCHIVE_REJECTED, f"archive of Backup {record.name} refused: {err}") from None
    _check_names(metadata, record)
    return path


def _check_names(metadata: object, record: BackupRecord) -> None:
    """The archive must say it is this backup of this control plane (metadata.json's controlPlane and
    backup): an archive copied or planted under another backup's key is refused, not restored."""
    meta = metadata if isinstance(metadata, dict) else {}
    control_plane = meta.get("controlPlane") if isinstance(meta.get("controlPlane"), dict) else {}
    backup = meta.get("backup") if isinstance(meta.get("backup"), dict) else {}
    said = (control_plane.get("namespace"), control_plane.get("name"), backup.get("namespace"), backup.get("name"))
    wanted = (record.namespace, record.control_plane, record.namespace, record.name)
    if said != wanted:
        shown = "/".join(str(x)[:80] for x in said[:2]) + ", Backup " + str(said[3])[:80]
        raise RestoreFailed(FailureReason.ARCHIVE_MISMATCH, f"archive of Backup {record.name} is of control plane {shown}, not "
                                               f"{record.namespace}/{record.control_plane}, Backup {record.name}; "
                                               "refused")


@dataclass(slots=True)
class _Entry:
    """An archived object that names an owner, without its body (re-read from its tier's spool file
    by offset): kept in memory to order it after its owners, so small (slots). Objects that name no
    owner have no entry: they are read back from the spool in file order."""

    offset: int
    resource: str
    old_uid: str  # "" unless some archived object names it as an owner
    owners: tuple[str, ...]  # old uids of its owners
    path: str = ""  # a CRD's archive path, until its uid is known (uids.jsonl comes after the objects)
    tier: int = 0  # its own tier, until its owners' are known


@dataclass
class _Tier:
    """One tier's objects, spooled to a file of `<archive path>\t<JSON>` lines."""

    spool: Path
    count: int = 0
    resources: set[str] = field(default_factory=set)
    #: the objects that name an owner (the others need no ordering within the tier)
    linked: list[_Entry] = field(default_factory=list)
    #: old uids of the owners among the objects without an entry (read in file order, generation 0)
    roots: set[str] = field(default_factory=set)


@dataclass
class _Spooled:
    """What one pass over an archive leaves: its objects spooled by tier, and what must stay in memory."""

    tiers: dict[int, _Tier]
    #: archive path -> old uid, of the archived objects some archived object names as its owner
    owner_uid: dict[str, str]
    crd_types: set[str]  # resource keys the archived CRDs define
    metadata: dict[str, Any]


@dataclass(slots=True)
class _Paused:
    """An object this restore paused, and what to give back when unpausing it."""

    rtype: ResourceType
    namespace: str
    name: str
    paused: str | None  # the archived crossplane.io/paused value (None: it had none)
    had_annotations: bool  # whether the archived object had any annotation


class _PausedSpool:
    """The objects a restore paused, one line each in a file until the unpause at the end (a restore
    of 100,000 managed resources pauses them all: memory must not grow with them). Thread-safe."""

    def __init__(self, file: BinaryIO):
        self._file = file
        self._types: list[ResourceType] = []
        self._type_index: dict[ResourceType, int] = {}
        self._lock = Lock()
        self.count = 0

    def add(self, item: _Paused) -> None:
        with self._lock:
            index = self._type_index.get(item.rtype)
            if index is None:
                index = self._type_index[item.rtype] = len(self._types)
                self._types.append(item.rtype)
            self._file.write(jsoncodec.dumps([index, item.namespace, item.name, item.paused, item.had_annotations]) + b"\n")
            self.count += 1

    def __iter__(self) -> Iterator[_Paused]:
        """Every object added so far, in the order added (read back from the file, line by line)."""
        with self._lock:
            end = self._file.tell()
        self._file.seek(0)
        while self._file.tell() < end:
            index, namespace, name, paused, had_annotations = jsoncodec.loads(self._file.readline())
            yield _Paused(self._types[index], namespace, name, paused, had_annotations)
        self._file.seek(end)


class _Restore:
    def __init__(self, kube: KubeAPI, reader: ArchiveReader, existing: str, workers: int, meter: Progress,
                 wait_seconds: float, archived_uids: set[str], custom: set[str],
                 mode: WriteMode = WriteMode.APPLY, offline: OfflineAdmission | None = None,
                 paused_spool: BinaryIO | None = None):
        self.kube = kube
        self.mode = mode
        self.dry_run = mode is WriteMode.DRY_RUN
        self.offline = offline
        #: a dry run: namespaces and CRD types this restore would create (absent from the target)
        self.pending_namespaces: set[str] = set()
        self.pending_types: set[str] = set()
        self.reader = reader
        self.existing = existing
        self.workers = workers
        self.meter = meter
        self.wait_seconds = wait_seconds
        self.archived_uids = archived_uids  # old uids of the archived objects that own another
        self.custom = custom  # resource keys defined by a CRD (archived or served)
        self.types: dict[str, ResourceType] = {}
        self.group_versions: dict[str, list[str]] = {}
        self.served_versions: dict[tuple[str, str], dict[str, ResourceType]] = {}
        self.new_uid: dict[str, str] = {}
        self.counts: dict[str, dict[str, int]] = defaultdict(lambda: {"restored": 0, "skipped": 0, "failed": 0})
        self.warnings: list[str] = []
        self.failures: list[str] = []
        #: the objects this restore paused (on disk: see _PausedSpool)
        self.to_unpause = _PausedSpool(paused_spool if paused_spool is not None else io.BytesIO())
        #: (type, namespace, name, ownerReferences as archived): owners restored after the object
        self.later_owners: list[tuple[ResourceType, str | None, str, list[dict]]] = []
        self.webhooks = ConversionWebhooks()
        #: resource key -> why its objects are not written (their conversion webhook's provider is not Healthy)
        self.not_writable: dict[str, str] = {}
        self.lock = Lock()

    def write(self, method: str, path: str, body: Any, content_type: str = "application/json") -> Any:
        """Every write of a restore goes through here: with `dryRun=All` in a dry run."""
        return self.kube.request(method, path, self.mode.query, body=body, content_type=content_type)

    def warn(self, text: str) -> None:
        with self.lock:
            self.warnings.append(text)

    def fail(self, resource: str, text: str) -> None:
        with self.lock:
            self.failures.append(text)
            self.warnings.append(text)
        self._count(resource, "failed")

    def refresh_types(self) -> None:
        self.types = {t.key: t for t in self.kube.discover()}
        with self.lock:
            self.served_versions.clear()
            self.group_versions = {g["name"]: [v["version"] for v in g.get("versions", [])]
                                   for g in self.kube.request("GET", "/apis").get("groups", [])}
            self.group_versions[""] = ["v1"]

    def _served_at(self, group: str, version: str) -> dict[str, ResourceType]:
        """The resources a group version serves (cached until discovery is refreshed)."""
        with self.lock:
            known = self.served_versions.get((group, version))
        if known is not None:
            return known
        path = f"/apis/{group}/{version}" if group else f"/api/{version}"
        try:
            listed = self.kube.request("GET", path).get("resources", [])
        except KubeError as err:
            if err.status != 404:
                raise
            listed = []
        status_of = {r["name"].split("/")[0] for r in listed if r["name"].endswith("/status")}
        found = {r["name"]: ResourceType(group, version, r["name"], r["kind"], bool(r.get("namespaced")),
                                         tuple(r.get("verbs", ())), r["name"] in status_of)
                 for r in listed if "/" not in r["name"]}
        with self.lock:
            self.served_versions[(group, version)] = found
        return found

    def type_for(self, resource: str, obj: dict) -> tuple[ResourceType | None, str]:
        """The type to write `obj` through: the version it was archived at (its apiVersion). None and
        the reason when the control plane does not serve that version (or the resource at all)."""
        base = self.types.get(resource)
        if base is None:
            return None, f"the control plane does not serve {resource}"
        api_version = str(obj.get("apiVersion") or base.api_version)
        group, _, version = api_version.rpartition("/")
        if version == base.version and group == base.group:
            return base, ""
        found = self._served_at(base.group, version).get(base.resource) if group == base.group else None
        if found is not None:
            return found, ""
        served = [v for v in self.group_versions.get(base.group, [base.version])
                  if base.resource in self._served_at(base.group, v)]
        return None, (f"archived at {api_version}, which the control plane does not serve; it serves {resource} at "
                      f"{', '.join(f'{base.group}/{v}' if base.group else v for v in served) or base.api_version}")

    # -- one object ------------------------------------------------------------------------------

    def restore_object(self, resource: str, obj: dict[str, Any], old_uid: str, pause: bool) -> None:
        meta = obj.setdefault("metadata", {})
        name, namespace = meta.get("name", "?"), meta.get("namespace")
        ident = f"{resource} {namespace + '/' if namespace else ''}{name}"
        try:
            rtype, why_not = self.type_for(resource, obj)
        except KubeError as err:
            rtype, why_not = None, f"discovery failed: {err.message}"
        if self.dry_run and (resource in self.pending_types or (namespace and namespace in self.pending_namespaces)):
            self.check_offline(resource, obj, old_uid, ident, rtype)
            return
        if rtype is None or resource in self.not_writable:
            self.fail(resource, f"{ident}: {why_not or self.not_writable[resource]}")
            return
        archived_annotations = dict(meta["annotations"]) if meta.get("annotations") else None
        custom = resource in self.custom
        # status: custom resources with /status get it through /status after the create; those without
        # keep it in the body; built-ins' status is the server's (the clean-up table drops it)
        status = obj.pop("status", None) if custom and rtype.has_status else None
        made = made_by_control_plane(resource, namespace or "", name)
        archived = copy.deepcopy(obj) if made is not None else obj  # kept only where it may be merged
        clean(resource, obj, custom)
        self._owner_references(rtype, meta, ident)
        pausing = pause and (archived_annotations or {}).get(PAUSED) != "true"
        if pausing:
            meta["annotations"] = {**(meta.get("annotations") or {}), PAUSED: "true", PAUSED_BY_RESTORE: "true"}
        updated = existed = False
        if made is not None:  # the target made it too, almost always: read it rather than fail a create
            try:
                current = self.kube.get(rtype, namespace, name) or {}
            except KubeError as get_err:
                self.fail(resource, f"{ident}: cannot be read: {get_err.message}")
                return
            if current:
                self._merge(rtype, made, archived, current, ident, old_uid)
                return
        try:
            created = self.write("POST", rtype.path(namespace), body=obj)
            outcome = "restored"
            if self.dry_run and resource == "namespaces":
                with self.lock:
                    self.pending_namespaces.add(name)
            elif self.dry_run and resource == CRD_KEY:
                spec = obj.get("spec") or {}
                with self.lock:
                    self.pending_types.add(f"{(spec.get('names') or {}).get('plural', '')}.{spec.get('group', '')}")
        except KubeError as err:
            if err.status != 409:
                self.fail(resource, f"{ident}: {err.message}")
                return
            try:
                current = self.kube.get(rtype, namespace, name) or {}
            except KubeError as get_err:
                self.fail(resource, f"{ident}: exists and cannot be read: {get_err.message}")
                return
            existed = bool(current)
            if made is not None and current:
                self._merge(rtype, made, archived, current, ident, old_uid)
                return
            current_annotations = (current.get("metadata") or {}).get("annotations") or {}
            if current and current_annotations.get(PAUSED_BY_RESTORE):
                created, outcome = current, "restored"  # paused by an interrupted attempt: finish it
                pausing = True
            elif self.existing == "update" and current:
                obj["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
                try:
                    created = self.write("PUT", rtype.path(namespace, name), body=obj)
                    outcome, updated = "restored", True
                except KubeError as update_err:
                    self.fail(resource, f"{ident}: exists and could not be updated: {update_err.message}")
                    return
            else:
                self._remember(old_uid, current)
                self._count(resource, "skipped")
                return
        self._remember(old_uid, created)
        replace_status = updated and custom and rtype.has_status  # --existing update: status exactly as archived
        # a dry-run create stores nothing: there is no object yet whose /status could be dry-run
        status_written = (status is not None or replace_status) and (existed or not self.dry_run)
        if status_written and not self._write_status(rtype, namespace, name, created, status, ident):
            self._count(resource, "failed")  # left paused with its marker: the next attempt writes it again
            return
        if pausing and (existed or not self.dry_run):
            self.to_unpause.add(_Paused(rtype, namespace or "", name, (archived_annotations or {}).get(PAUSED),
                                        archived_annotations is not None))
        self._count(resource, outcome)

    def _owner_references(self, rtype: ResourceType, meta: dict, ident: str) -> None:
        """Remap each ownerReference to its owner's new uid; one whose owner is restored later is
        added once that owner exists; one whose owner is not in the archive is dropped (a dangling
        owner would make the garbage collector delete the object)."""
        refs, later = [], False
        for ref in meta.get("ownerReferences") or ():
            old = ref.get("uid", "")
            new = self.new_uid.get(old)
            if new:
                refs.append({**ref, "uid": new})
            elif old in self.archived_uids:
                later = True
            else:
                self.warn(f"{ident}: owner {ref.get('kind')} {ref.get('name')} not in the backup; ownerReference dropped")
        if later:
            with self.lock:
                self.later_owners.append((rtype, meta.get("namespace"), meta.get("name", ""),
                                          list(meta.get("ownerReferences") or ())))
        if refs:
            meta["ownerReferences"] = refs
        else:
            meta.pop("ownerReferences", None)

    def add_later_owners(self, final: bool) -> None:
        """Add the ownerReferences whose owners now exist (all of an object's at once); at the end,
        drop those whose owner could not be restored, with a warning."""
        waiting = []
        for rtype, namespace, name, archived in self.later_owners:
            if not final and not all(self.new_uid.get(r.get("uid", "")) for r in archived):
                waiting.append((rtype, namespace, name, archived))
                continue
            ident = f"{rtype.key} {namespace + '/' if namespace else ''}{name}"
            refs = []
            for ref in archived:
                new = self.new_uid.get(ref.get("uid", ""))
                if new:
                    refs.append({**ref, "uid": new})
                else:
                    self.warn(f"{ident}: owner {ref.get('kind')} {ref.get('name')} was not restored; ownerReference dropped")
            try:  # the target's other references (an object that was already there) are kept
                current = self.kube.get(rtype, namespace, name) or {}
                ours = {r["uid"] for r in refs}
                refs += [r for r in (current.get("metadata") or {}).get("ownerReferences") or () if r.get("uid") not in ours]
                if self.dry_run and not current:
                    continue  # a dry-run create made nothing to add them to: they are in its body already
                self.write("PATCH", rtype.path(namespace, name), body={"metadata": {"ownerReferences": refs or None}},
                           content_type="application/merge-patch+json")
            except KubeError as err:
                self.fail(rtype.key, f"{ident}: ownerReferences could not be added: {err.message}")
        self.later_owners = waiting

    def _write_status(self, rtype: ResourceType, namespace: str | None, name: str, current: dict,
                      status: Any, ident: str) -> bool:
        """Replace the status exactly (PUT /status, as a controller does), retried on a conflict."""
        for _ in range(5):
            body = {**current, "status": status}
            if status is None:
                body.pop("status")
            try:
                self.write("PUT", rtype.path(namespace, name, "status"), body=body)
                return True
            except KubeError as err:
                if err.status == 409:
                    current = self.kube.get(rtype, namespace, name) or current
                    continue
                self.warn(f"{ident}: status not restored: {err.message}")
                with self.lock:
                    self.failures.append(f"{ident}: status not restored: {err.message}")
                return False
        self.warn(f"{ident}: status not restored: the object kept changing")
        return False

    def _merge(self, rtype: ResourceType, made: Any, archived: dict, current: dict, ident: str, old_uid: str) -> None:
        """An object the control plane made itself: the archived user fields go into the target's."""
        self._remember(old_uid, current)
        patch = merge_user_fields(made, archived, current)
        if not patch:
            self._count(rtype.key, "skipped")
            return
        try:
            self.write("PATCH", rtype.path(current["metadata"].get("namespace"), current["metadata"]["name"]),
                       body=patch, content_type="application/merge-patch+json")
        except KubeError as err:
            self.fail(rtype.key, f"{ident}: the backed-up fields could not be merged: {err.message}")
            return
        fields = sorted(f"{k}.{n}" if k == "metadata" else k for k, v in patch.items()
                        for n in (v if k == "metadata" else [None]))
        log.info("%s: merged %s into the object the control plane made", ident, ", ".join(fields))
        self._count(rtype.key, "merged")

    # -- a dry run's objects the target cannot dry-run yet ----------------------------------------

    def check_offline(self, resource: str, obj: dict[str, Any], old_uid: str, ident: str,
                      rtype: ResourceType | None) -> None:
        """An object in a namespace, or of a CRD, that this dry run would create (a dry run persists
        nothing, so the target would answer 404): checked offline against the archived CRD (or the
        target's, when it serves the type) and counted as the real restore would count it."""
        meta = obj.get("metadata") or {}
        namespace, name = meta.get("namespace") or "", meta.get("name", "")
        made = made_by_control_plane(resource, namespace, name)
        why = f"namespace {namespace}" if namespace in self.pending_namespaces else f"CRD of {resource}"
        self._count_offline(resource)
        if made is not None:  # the new namespace's controllers make it: the real restore merges into theirs
            self._remember(old_uid, {"metadata": {"uid": _placeholder_uid(old_uid)}})
            self._count(resource, "merged" if merge_user_fields(made, obj, {"metadata": {}}) else "skipped")
            return
        custom = resource in self.custom
        clean(resource, obj, custom)
        builtin = None
        if not custom:
            if rtype is None:
                self.fail(resource, f"{ident}: the control plane does not serve {resource}")
                return
            builtin = Target(rtype.group, rtype.version, rtype.kind, rtype.resource, rtype.namespaced)
        assert self.offline is not None
        refused = self.offline.check(resource, obj, builtin)
        if refused:
            self.fail(resource, f"{ident}: refused offline ({why} is created by this restore; checked against "
                                f"{'its archived CRD' if custom else 'the Kubernetes rules'}): {refused}")
            return
        self._remember(old_uid, {"metadata": {"uid": _placeholder_uid(old_uid)}})
        self._count(resource, "restored")

    def crd_of(self, resource: str, archived: Callable[[str], dict | None]) -> dict | None:
        """The CRD an offline check uses: the target's when it serves the type (the real create is
        checked against that one), else the archived one."""
        if resource not in self.pending_types and resource in self.types:
            try:
                found = self.kube.get(self.types[CRD_KEY], None, resource) if CRD_KEY in self.types else None
            except KubeError:
                found = None
            if found:
                return found
        return archived(resource)

    def _count_offline(self, resource: str) -> None:
        with self.lock:
            counts = self.counts[resource]
            counts[OFFLINE] = counts.get(OFFLINE, 0) + 1

    def _remember(self, old_uid: str, current: dict) -> None:
        """The new uid of an archived owner ("" for objects that own nothing: not kept)."""
        uid = (current.get("metadata") or {}).get("uid")
        if old_uid and uid:
            with self.lock:
                self.new_uid[old_uid] = uid

    def _count(self, resource: str, what: str) -> None:
        with self.lock:
            counts = self.counts[resource]
            counts[what] = counts.get(what, 0) + 1
        self.meter.update(objects=1)

    # -- unpause ---------------------------------------------------------------------------------

    def unpause(self, item: _Paused) -> bool:
        """Give back exactly the archived annotations for crossplane.io/paused and drop the marker.
        False (with a warning) when it could not: the object stays paused with its marker, and the
        next attempt of this restore unpauses it."""
        rtype, namespace, name = item.rtype, item.namespace or None, item.name
        patch = {PAUSED: item.paused, PAUSED_BY_RESTORE: None}
        try:
            done = self.write("PATCH", rtype.path(namespace, name), body={"metadata": {"annotations": patch}},
                              content_type="application/merge-patch+json")
            left = (done.get("metadata") or {}).get("annotations", None)
            if not item.had_annotations and left is not None and not left:  # a server that keeps an empty map
                self.write("PATCH", rtype.path(namespace, name), body={"metadata": {"annotations": None}},
                           content_type="application/merge-patch+json")
            return True
        except KubeError as err:
            self.warn(f"{rtype.key} {namespace + '/' if namespace else ''}{name}: could not be unpaused "
                      f"(left paused; the next attempt retries): {err.message}")
            return False

    # -- waits -----------------------------------------------------------------------------------

    def wait_for_webhook_providers(self, resources: set[str]) -> None:
        """Before a tier's objects are written: for each resource whose CRD converts through a
        webhook, wait (bounded) until the Provider that owns the CRD is Healthy; the objects of one
        that is not are failed with the reason (see conversion_webhooks)."""
        needs: dict[str, str] = {}
        for resource in sorted(resources):
            provider, why = self.webhooks.provider_of(self.kube, resource)
            if why:
                self.not_writable[resource] = why
            elif provider:
                needs[resource] = provider
        if not needs or self.dry_run:  # a dry run cannot make a provider Healthy: nothing to wait for
            return
        self.meter.step(f"waiting for {len(set(needs.values())):,} provider(s) of conversion webhooks to be Healthy")
        late = self.webhooks.wait_healthy(self.kube, set(needs.values()), self.wait_seconds)
        for resource, provider in needs.items():
            if provider in late:
                crd_name = self.webhooks.crds[resource][0]
                self.not_writable[resource] = (
                    f"its CRD {crd_name} converts through a webhook of Provider {provider}, which was not Healthy "
                    f"within {self.wait_seconds:g}s ({late[provider]}); not written")

    def wait_for(self, created: list[tuple[str, str | None, str]], wanted: dict[str, tuple[str, ...]]) -> list[str]:
        """Names of objects whose conditions did not turn True within the bounded wait."""
        deadline = time.monotonic() + self.wait_seconds
        pending = [c for c in created if c[0] in wanted]
        delay = 0.05
        while pending and time.monotonic() < deadline:
            still = []
            for resource, namespace, name in pending:
                rtype = self.types.get(resource)
                current = self.kube.get(rtype, namespace, name) if rtype else None
                got = {c.get("type"): c.get("status") for c in ((current or {}).get("status") or {}).get("conditions") or ()}
                if not all(got.get(c) == "True" for c in wanted[resource]):
                    still.append((resource, namespace, name))
            pending = still
            if pending:
                time.sleep(delay)
                delay = min(delay * 2, 1.0)
        return [f"{r} {n}" for r, _, n in pending]

    def wait_served(self, keys: set[str]) -> set[str]:
        """Refresh discovery until every resource in `keys` is served (bounded); the missing ones."""
        deadline = time.monotonic() + self.wait_seconds
        delay = 0.05
        while True:
            self.refresh_types()
            missing = keys - set(self.types)
            if not missing or time.monotonic() >= deadline:
                return missing
            time.sleep(delay)
            delay = min(delay * 2, 1.0)


def _placeholder_uid(old_uid: str) -> str:
    """A dry run's stand-in for the uid an object checked offline would get (stable per old uid)."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"ctpbackup-dry-run:{old_uid}"))


def run_restore(api_client: ApiClient, archive_path: Path, *, existing: str = "skip", progress: bool = False,
                workers: int = WORKERS, wait_seconds: float = 120.0, label: str = "restore",
                mode: WriteMode = WriteMode.APPLY, backup: BackupRecord | None = None) -> RestoreResult:
    """Re-create every object of a verified archive in the control plane behind `api_client`;
    `label` names it in the progress display. `mode` DRY_RUN sends every write with `dryRun=All`
    and returns what the restore would do (the target keeps nothing; waits for conditions a dry run
    cannot bring about are skipped; objects in namespaces or of CRDs the restore would create are
    checked offline, counted under OFFLINE too). `backup`: the record the archive was fetched for
    (`fetch_verified(check_members=False)`); the archive must name that backup of that control plane
    (ArchiveMismatch), checked with the rest of the archive before any write.

    Raises RestoreFailed when the restore cannot go on (archive refused, control plane unreachable,
    CRDs not Established, a whole tier refused). Objects that fail one by one are counted and named
    in the result (the attempt is then PartiallyFailed, and a rerun retries them)."""
    kube = KubeAPI(api_client)
    reader = ArchiveReader(archive_path)
    meter = None
    workdir = Path(tempfile.mkdtemp(prefix="ctpbackup-tiers-", dir=archive_path.parent))
    stack = ExitStack()
    try:
        webhooks = ConversionWebhooks()
        spooled = _spool_archive(reader, workdir, webhooks)  # the whole archive is checked here, before any write
        if backup is not None:
            _check_names(spooled.metadata, backup)
        tiers = spooled.tiers
        total = spooled.metadata.get("totalObjects")  # a hint for the display: a value that is no count is none
        meter = Progress(label, enabled=progress,
                         total=total if isinstance(total, int) and not isinstance(total, bool) and total > 0 else None)
        custom = {key for t in tiers.values() for key in t.resources if is_custom(key, spooled.crd_types)}
        dry_run = mode is WriteMode.DRY_RUN
        offline = None
        if dry_run:
            archived = _ArchivedCRDs(tiers[0].spool if 0 in tiers else None)
            offline = OfflineAdmission(lambda key: job.crd_of(key, archived.get))
        paused_spool = stack.enter_context((workdir / "paused.jsonl").open("w+b"))
        job = _Restore(kube, reader, existing, workers, meter, wait_seconds, set(spooled.owner_uid.values()), custom,
                       mode, offline, paused_spool)
        job.webhooks = webhooks
        try:
            job.refresh_types()
        except KubeError as err:
            raise RestoreFailed(FailureReason.CONTROL_PLANE_UNREACHABLE, err.message) from None
        for index, tier in enumerate(TIERS):
            objects = tiers.get(index)
            if objects:
                job.wait_for_webhook_providers(set(objects.resources))
                meter.step(f"restoring {tier.name}")
                wanted = dict(tier.wait_for) if not dry_run else {}  # a dry run brings no condition about
                created = _restore_tier(job, objects, spooled.owner_uid, tier.pause, set(wanted))
                waiting = sum(1 for c in created if c[0] in wanted)
                if waiting:
                    meter.step(f"waiting for {waiting:,} {tier.name} to be "
                               f"{'/'.join(sorted({w for ws in wanted.values() for w in ws}))}")
                late = job.wait_for(created, wanted) if wanted else []
                if late and index == 0:
                    raise RestoreFailed(FailureReason.CRDS_NOT_ESTABLISHED,
                                        f"{len(late)} CRD(s) not Established within {wait_seconds:.0f}s: {', '.join(late[:5])}")
                for name in late:
                    job.warn(f"{name}: not {'/'.join(wanted[name.split()[0]])} within {wait_seconds:.0f}s")
                failed = sum(job.counts[r]["failed"] for r in objects.resources)
                if failed and failed == objects.count:
                    raise RestoreFailed(FailureReason.TIER_FAILED, f"no object of tier '{tier.name}' could be restored: "
                                                      f"{job.failures[0] if job.failures else 'see warnings'}")
            later = {key for i, t in tiers.items() if i > index for key in t.resources}
            if index == 0 and objects and dry_run:
                pass  # nothing was created: their objects are checked offline (pending_types)
            elif index == 0 and objects:  # the archived CRDs' resources: wait until served
                for key in sorted(job.wait_served(later & spooled.crd_types)):
                    job.warn(f"{key}: not served by the control plane after its CRD was restored")
            elif objects and later - set(job.types):  # a tier may bring new types (a provider, an XRD)
                job.refresh_types()
            job.add_later_owners(final=False)
        job.add_later_owners(final=True)
        if job.to_unpause.count:
            meter.step(f"unpausing {job.to_unpause.count:,} resources")
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="unpause") as pool:
            still_paused = sum(1 for ok in _bounded(pool, job.unpause, job.to_unpause, workers * READ_AHEAD) if not ok)
    finally:
        stack.close()
        shutil.rmtree(workdir, ignore_errors=True)
        if meter is not None:
            meter.close()
    warnings = job.warnings
    if len(warnings) > MAX_WARNINGS:
        warnings = warnings[:MAX_WARNINGS] + [f"... and {len(warnings) - MAX_WARNINGS} more"]
    return RestoreResult({k: dict(v) for k, v in sorted(job.counts.items())}, tuple(warnings),
                         tuple(job.failures[:MAX_WARNINGS]), still_paused, mode)


class _ArchivedCRDs:
    """The archived CRDs of a restore, read back from the tier-0 spool file by offset when an offline
    check needs one (bodies of 500 KB are not all kept in memory)."""

    def __init__(self, spool: Path | None):
        self.spool = spool
        self.offsets: dict[str, int] = {}
        self._cache: dict[str, dict | None] = {}
        self._lock = Lock()
        if spool is None:
            return
        offset = 0
        with spool.open("rb") as file:
            for line in file:
                path, _, body = line.partition(b"\t")
                if path.split(b"/")[1].decode() == CRD_KEY:
                    spec = (jsoncodec.loads(body).get("spec") or {})
                    self.offsets[f"{(spec.get('names') or {}).get('plural', '')}.{spec.get('group', '')}"] = offset
                offset += len(line)

    def get(self, resource_key: str) -> dict | None:
        offset = self.offsets.get(resource_key)
        if offset is None or self.spool is None:
            return None
        with self._lock:
            if resource_key not in self._cache:
                with self.spool.open("rb") as file:
                    file.seek(offset)
                    self._cache[resource_key] = jsoncodec.loads(file.readline().partition(b"\t")[2])
            return self._cache[resource_key]


#: API groups of Kubernetes' built-in types (besides every group ending in .k8s.io)
BUILTIN_GROUPS = frozenset({"", "apps", "batch", "policy", "autoscaling", "extensions"})


def is_custom(resource_key: str, crd_types: set[str]) -> bool:
    """Whether a type is a custom resource (its status is then the user's data, restored), rather
    than a built-in (whose status is the server's and its controllers')."""
    if resource_key in crd_types:
        return True
    group = resource_key.split(".", 1)[1] if "." in resource_key else ""
    return not (group in BUILTIN_GROUPS or group.endswith(".k8s.io"))


def _spool_archive(reader: ArchiveReader, workdir: Path, webhooks: ConversionWebhooks) -> _Spooled:
    """One pass over the archive that both checks it (every member's path, type, size and JSON,
    metadata.json's format version, uids.jsonl's lines: nothing is written before all of it passed)
    and spools each object to its tier's file as it comes: no second read of the archive.

    An object naming no owner goes to its tier's spool at once; CRDs always come first, whoever owns
    them (the references to their owners are added once those exist). Any other object naming an
    owner waits for the tier of its latest owner, which only uids.jsonl tells (the archive writer puts
    it after the objects): such objects go to a spool of undecided ones, and are appended to their
    tier's spool once uids.jsonl has been read. Memory follows owners, not objects: an entry per
    object that names an owner, the old uid of each object named as an owner, no map of every uid.
    Tells `webhooks` of every object. Raises RestoreFailed (ArchiveRejected)."""
    tiers: dict[int, _Tier] = {}
    files: dict[int, Any] = {}
    resources: dict[str, str] = {}  # one string per resource key, not one per object
    referenced: dict[str, str] = {}  # old uids named in some ownerReference (one string each, which its dependents share)
    moved: dict[str, int] = {}  # archive path -> tier, of objects not in their resource's tier (token Secrets)
    revisions: dict[str, str] = {}  # archive path -> name, of the archived ProviderRevisions
    undecided: list[_Entry] = []
    crd_types: set[str] = set()
    metadata = None

    def spool_of(index: int) -> tuple[Any, _Tier]:
        if index not in tiers:
            tiers[index] = _Tier(workdir / f"tier-{index}.jsonl")
            files[index] = tiers[index].spool.open("w+b")
        return files[index], tiers[index]

    def spooled(index: int, resource: str, line: bytes) -> int:
        file, tier = spool_of(index)
        offset = file.tell()
        file.write(line)
        tier.count += 1
        tier.resources.add(resource)
        return offset

    try:
        with (workdir / "uids.jsonl").open("w+b") as uids, (workdir / "undecided.jsonl").open("w+b") as waiting:
            for member, data in reader.scan(uids):
                if not member.resource:
                    if member.path == METADATA:
                        metadata = check_metadata(data)
                    continue
                obj = loads_object(member, data)
                resource = resources.setdefault(member.resource, member.resource)
                meta = obj.get("metadata") or {}
                owners = tuple(referenced.setdefault(uid, uid) for uid in (
                    str(r.get("uid", "")) for r in meta.get("ownerReferences") or () if isinstance(r, dict)))
                webhooks.see(resource, obj)
                index = tier_of(resource, obj)
                if index != tier_of(resource):
                    moved[member.path] = index
                if resource == REVISION_KEY:
                    revisions[member.path] = str(meta.get("name", ""))
                if resource == CRD_KEY:
                    spec = obj.get("spec") or {}
                    crd_types.add(f"{(spec.get('names') or {}).get('plural', '')}.{spec.get('group', '')}")
                # the archived bytes as they are (one line each), unless they span lines
                line = member.path.encode() + b"\t" + (data if b"\n" not in data else jsoncodec.dumps(obj)) + b"\n"
                if not owners:
                    spooled(index, resource, line)
                    continue
                if resource == CRD_KEY:
                    entry = _Entry(0, resource, "", owners, member.path, index)
                    entry.offset = spooled(index, resource, line)
                    tiers[index].linked.append(entry)
                else:
                    undecided.append(_Entry(waiting.tell(), resource, "", owners, "", index))  # its path is in its line
                    waiting.write(line)
            if metadata is None:
                raise ArchiveError(f"{METADATA} missing")
            uids.seek(0)
            owner_uid: dict[str, str] = {}
            for number, (path, uid) in enumerate(uid_lines(uids), 1):
                if uid in referenced:
                    if not is_object_path(path):  # its resource key names the owner's tier
                        raise ArchiveError(f"{UIDS} line {number}: {_shown(path)} is not an object path of the archive format")
                    owner_uid[path] = uid
                if path in revisions and webhooks.revision_owner.get(revisions[path]):
                    webhooks.revision_owner[uid] = webhooks.revision_owner[revisions[path]]
            linked_owners: set[str] = set()  # archive paths of the owners that have an entry
            for entry in tiers[0].linked if 0 in tiers else ():  # the CRDs
                entry.old_uid = owner_uid.get(entry.path, "")
                if entry.old_uid:
                    linked_owners.add(entry.path)
                entry.path = ""
            owner_tier = {uid: moved.get(path, tier_of(path.split("/")[1])) for path, uid in owner_uid.items()}
            for entry in undecided:  # in the tier of its latest owner
                entry.tier = max([entry.tier, *(owner_tier[o] for o in entry.owners if o in owner_tier)])
                waiting.seek(entry.offset)
                line = waiting.readline()
                path = line.partition(b"\t")[0].decode()
                entry.old_uid = owner_uid.get(path, "")
                if entry.old_uid:
                    linked_owners.add(path)
                entry.offset = spooled(entry.tier, entry.resource, line)
                tiers[entry.tier].linked.append(entry)
    except ArchiveError as err:
        raise RestoreFailed(FailureReason.ARCHIVE_REJECTED, str(err)) from None
    finally:
        for file in files.values():
            file.close()
    for path, uid in owner_uid.items():
        index = moved.get(path, tier_of(path.split("/")[1]))
        if path not in linked_owners and index in tiers:
            tiers[index].roots.add(uid)
    return _Spooled(tiers, owner_uid, crd_types, metadata)


def _levels(entries: list[_Entry], roots: set[str] | frozenset[str] = frozenset()) -> dict[int, list[_Entry]]:
    """Owners before dependents: level 0 has no owner inside the tier, level n is owned by level n-1;
    `roots` are old uids of owners in the tier that have no entry (level 0). Cycles, which a real
    cluster cannot hold, are broken by creating them last."""
    in_tier = {e.old_uid: e for e in entries if e.old_uid}
    depth: dict[int, int] = {}
    # depth-first without recursion (a chain of 500 owners listed dependents first passed Python's
    # recursion limit): a frame is [entry, index of its next owner, its owners' levels]; `on_path`
    # counts the uids of the entries on the path, which are not followed again (a cycle)
    on_path: dict[str, int] = defaultdict(int)
    for start in entries:
        if id(start) in depth:
            continue
        on_path[start.old_uid] += 1  # the first entry does not follow itself either
        frames: list[list[Any]] = [[start, 0, []]]
        while frames:
            frame = frames[-1]
            entry, index, parents = frame
            if index < len(entry.owners):
                frame[1] = index + 1
                owner = entry.owners[index]
                seen = on_path[owner] - (owner == entry.old_uid and len(frames) > 1)
                if owner in in_tier and not seen:
                    parent = in_tier[owner]
                    if id(parent) in depth:
                        parents.append(depth[id(parent)])
                    else:
                        on_path[parent.old_uid] += 1
                        frames.append([parent, 0, []])
                continue
            if any(o in roots for o in entry.owners):
                parents.append(0)
            value = depth[id(entry)] = 1 + max(parents) if parents else 0
            frames.pop()
            if frames:
                on_path[entry.old_uid] -= 1
                frames[-1][2].append(value)
        on_path[start.old_uid] -= 1

    groups: dict[int, list[_Entry]] = defaultdict(list)
    for entry in entries:
        groups[depth[id(entry)]].append(entry)
    return groups


def _generations(entries: list[_Entry], roots: set[str] | frozenset[str] = frozenset()) -> Iterator[list[_Entry]]:
    """The entries level by level (see _levels)."""
    groups = _levels(entries, roots)
    for g in sorted(groups):
        yield groups[g]


def _bounded(pool: ThreadPoolExecutor, fn: Callable[[Any], Any], items: Iterable[Any], window: int) -> Iterator[Any]:
    """fn(item) for each item on the pool, at most `window` submitted at a time (Executor.map submits
    every item at once: a future per object, megabytes per ten thousand); results in no set order."""
    pending: set[Future] = set()
    for item in items:
        if len(pending) >= window:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            yield from (future.result() for future in done)
        pending.add(pool.submit(fn, item))
    yield from (future.result() for future in wait(pending).done)


def _restore_tier(job: _Restore, tier: _Tier, owner_uid: dict[str, str], pause: bool,
                  waited_for: set[str]) -> list[tuple[str, str | None, str]]:
    """Restore one tier's objects generation by generation (owners first): generation 0 is the spool
    in file order but for the objects whose owner is in the tier, which follow by offset. Objects are
    read while the writers work, at most `READ_AHEAD` per writer ahead of them: memory stays flat on
    huge tiers, and no writer waits for a batch to be read (the writers are the bound, not the reader).
    Returns (resource, namespace, name) of the objects of the resources in `waited_for`."""
    created: list[tuple[str, str | None, str]] = []
    levels = _levels(tier.linked, tier.roots)
    deferred = {e.offset for level, es in levels.items() if level for e in es}
    resources: dict[bytes, str] = {}
    pending: set[Future] = set()

    def submit(line: bytes, old_uid: str | None) -> None:
        nonlocal pending
        path, _, body = line.partition(b"\t")
        key = path.split(b"/", 2)[1]  # resources/<resource key>/...
        resource = resources.get(key) or resources.setdefault(key, key.decode())
        if old_uid is None:
            old_uid = owner_uid.get(path.decode(), "") if owner_uid else ""
        obj = jsoncodec.loads(body)
        if resource in waited_for:
            meta = obj.get("metadata") or {}
            created.append((resource, meta.get("namespace"), meta.get("name", "")))
        if len(pending) >= job.workers * READ_AHEAD:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                future.result()  # a bug in restore_object surfaces here, as it did through map()
        pending.add(pool.submit(job.restore_object, resource, obj, old_uid, pause and is_pausable(resource)))

    def finish() -> None:  # the whole generation, before its dependents
        nonlocal pending
        for future in wait(pending).done:
            future.result()
        pending = set()

    with tier.spool.open("rb") as file, ThreadPoolExecutor(max_workers=job.workers, thread_name_prefix="restore") as pool:
        offset = 0
        for line in file:
            if offset not in deferred:
                submit(line, None)
            offset += len(line)
        finish()
        for level in sorted(levels):
            if not level:
                continue
            for entry in levels[level]:
                file.seek(entry.offset)
                submit(file.readline(), entry.old_uid)
            finish()
    return created
