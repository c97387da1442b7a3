"""The restore engine: re-create a backup's objects in a control plane, in dependency order.

Integrity first: the archive is downloaded, its size and sha256 checked against the index, and every
member checked (paths, links, sizes, format version) before a single object is written. Then tier by
tier (see restore_order): objects of a tier are created concurrently, owners before dependents,
ownerReferences remapped to the new uids, status written through /status, Crossplane resources
created paused and unpaused at the end unless they were paused in the source.
"""

from __future__ import annotations

import copy
import hashlib
import logging
import shutil
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from threading import Lock
from typing import Any

from kubernetes.client import ApiClient

from ctpbackup.apply.progress import Progress
from ctpbackup.engines import jsoncodec
from ctpbackup.engines.archive import ArchiveError, ArchiveReader
from ctpbackup.engines.encryption import EncryptionError, Keyring, backup_context, decrypt_stream
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
from ctpbackup.storage.base import Bucket, ObjectNotFound, StorageError
from ctpbackup.store.records import BackupRecord

log = logging.getLogger(__name__)

MAX_ARCHIVE_BYTES = 50 * 1024 * 1024 * 1024
MAX_WARNINGS = 200
WORKERS = 16
CHUNK = 1000


class RestoreFailed(ReasonedError):
    """A restore attempt that stopped before its end; what it had written stays (a rerun skips it)."""


@dataclass
class RestoreResult:
    """What one attempt did. counts: resource key -> {"restored", "skipped", "merged", "failed"};
    failures: the reason of each failed object (first ones); still_paused: objects this restore paused
    and could not unpause. Completed only when nothing failed and nothing it paused is still paused."""

    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()
    failures: tuple[str, ...] = ()
    still_paused: int = 0

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


def fetch_verified(bucket: Bucket, record: BackupRecord, dest: Path, encryption_key: Keyring | bytes | None = None) -> Path:
    """Download the archive of `record` into `dest` and prove it is the one the index recorded
    (then decrypt it, when it was encrypted on the client)."""
    if not record.archive_key or not record.sha256:
        raise RestoreFailed(FailureReason.ARCHIVE_MISSING, f"Backup {record.name} has no recorded archive")
    if record.size <= 0 or record.size > MAX_ARCHIVE_BYTES:
        raise RestoreFailed(FailureReason.ARCHIVE_REJECTED, f"recorded archive size {record.size} is not plausible")
    try:
        attrs = bucket.attributes(record.archive_key)
        if attrs is None:
            raise RestoreFailed(FailureReason.ARCHIVE_MISSING, f"archive of Backup {record.name} is not in the bucket")
        if attrs.size != record.size:
            raise RestoreFailed(FailureReason.INTEGRITY_CHECK_FAILED, f"archive of Backup {record.name} is {attrs.size} bytes; "
                                                        f"the index recorded {record.size}")
        path = dest / "archive.tar.gz"
        digest = hashlib.sha256()
        size = 0
        with bucket.open_read(record.archive_key) as stream, path.open("wb") as out:
            while chunk := stream.read(1024 * 1024):
                size += len(chunk)
                if size > record.size:
                    raise RestoreFailed(FailureReason.INTEGRITY_CHECK_FAILED, f"archive of Backup {record.name} is longer than recorded")
                digest.update(chunk)
                out.write(chunk)
    except RestoreFailed:
        raise
    except (StorageError, ObjectNotFound) as err:
        raise RestoreFailed(FailureReason.ARCHIVE_UNREADABLE, f"cannot read the archive of Backup {record.name}: {err}") from None
    except Exception as err:  # noqa: BLE001 - a body cut off mid-download surfaces from the HTTP layer
        raise RestoreFailed(FailureReason.ARCHIVE_UNREADABLE, f"the download of Backup {record.name}'s archive broke off "
                                                 f"({type(err).__name__})") from None
    if size != record.size or digest.hexdigest() != record.sha256:
        raise RestoreFailed(FailureReason.INTEGRITY_CHECK_FAILED,
                            f"archive of Backup {record.name} does not match the sha256 recorded in the index")
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


@dataclass
class _Entry:
    """One object of a tier, without its body (bodies are re-read from the tier's spool file)."""

    offset: int
    resource: str
    old_uid: str
    owners: tuple[str, ...]  # old uids of its owners


@dataclass
class _Paused:
    """An object this restore paused, and the annotations to give back when unpausing it."""

    rtype: ResourceType
    namespace: str
    name: str
    archived: dict[str, str] | None  # the archived annotations (None: it had none)


class _Restore:
    def __init__(self, kube: KubeAPI, reader: ArchiveReader, existing: str, workers: int, meter: Progress,
                 wait_seconds: float, archived_uids: set[str], custom: set[str]):
        self.kube = kube
        self.reader = reader
        self.existing = existing
        self.workers = workers
        self.meter = meter
        self.wait_seconds = wait_seconds
        self.archived_uids = archived_uids  # old uids of every archived object
        self.custom = custom  # resource keys defined by a CRD (archived or served)
        self.types: dict[str, ResourceType] = {}
        self.group_versions: dict[str, list[str]] = {}
        self.served_versions: dict[tuple[str, str], dict[str, ResourceType]] = {}
        self.new_uid: dict[str, str] = {}
        self.counts: dict[str, dict[str, int]] = defaultdict(lambda: {"restored": 0, "skipped": 0, "failed": 0})
        self.warnings: list[str] = []
        self.failures: list[str] = []
        self.to_unpause: list[_Paused] = []
        #: (type, namespace, name, ownerReferences as archived): owners restored after the object
        self.later_owners: list[tuple[ResourceType, str | None, str, list[dict]]] = []
        self.lock = Lock()

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
        if rtype is None:
            self.fail(resource, f"{ident}: {why_not}")
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
        updated = False
        try:
            created = self.kube.request("POST", rtype.path(namespace), body=obj)
            outcome = "restored"
        except KubeError as err:
            if err.status != 409:
                self.fail(resource, f"{ident}: {err.message}")
                return
            try:
                current = self.kube.get(rtype, namespace, name) or {}
            except KubeError as get_err:
                self.fail(resource, f"{ident}: exists and cannot be read: {get_err.message}")
                return
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
                    created = self.kube.request("PUT", rtype.path(namespace, name), body=obj)
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
        if (status is not None or replace_status) and not self._write_status(rtype, namespace, name, created, status, ident):
            self._count(resource, "failed")  # left paused with its marker: the next attempt writes it again
            return
        if pausing:
            with self.lock:
                self.to_unpause.append(_Paused(rtype, namespace or "", name, archived_annotations))
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
                self.kube.request("PATCH", rtype.path(namespace, name), body={"metadata": {"ownerReferences": refs or None}},
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
                self.kube.request("PUT", rtype.path(namespace, name, "status"), body=body)
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
            self.kube.request("PATCH", rtype.path(current["metadata"].get("namespace"), current["metadata"]["name"]),
                              body=patch, content_type="application/merge-patch+json")
        except KubeError as err:
            self.fail(rtype.key, f"{ident}: the backed-up fields could not be merged: {err.message}")
            return
        fields = sorted(f"{k}.{n}" if k == "metadata" else k for k, v in patch.items()
                        for n in (v if k == "metadata" else [None]))
        log.info("%s: merged %s into the object the control plane made", ident, ", ".join(fields))
        self._count(rtype.key, "merged")

    def _remember(self, old_uid: str, current: dict) -> None:
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
        archived = item.archived or {}
        patch = {PAUSED: archived.get(PAUSED), PAUSED_BY_RESTORE: None}
        try:
            done = self.kube.request("PATCH", rtype.path(namespace, name), body={"metadata": {"annotations": patch}},
                                     content_type="application/merge-patch+json")
            if item.archived is None and not (done.get("metadata") or {}).get("annotations"):
                self.kube.request("PATCH", rtype.path(namespace, name), body={"metadata": {"annotations": None}},
                                  content_type="application/merge-patch+json")
            return True
        except KubeError as err:
            self.warn(f"{rtype.key} {namespace + '/' if namespace else ''}{name}: could not be unpaused "
                      f"(left paused; the next attempt retries): {err.message}")
            return False

    # -- waits -----------------------------------------------------------------------------------

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


def run_restore(api_client: ApiClient, archive_path: Path, *, existing: str = "skip", progress: bool = False,
                workers: int = WORKERS, wait_seconds: float = 120.0, label: str = "restore") -> RestoreResult:
    """Re-create every object of a verified archive in the control plane behind `api_client`;
    `label` names it in the progress display.

    Raises RestoreFailed when the restore cannot go on (archive refused, control plane unreachable,
    CRDs not Established, a whole tier refused). Objects that fail one by one are counted and named
    in the result (the attempt is then PartiallyFailed, and a rerun retries them)."""
    kube = KubeAPI(api_client)
    reader = ArchiveReader(archive_path)
    try:
        metadata = reader.validate()
        uids = reader.uids()
    except ArchiveError as err:
        raise RestoreFailed(FailureReason.ARCHIVE_REJECTED, str(err)) from None
    meter = Progress(label, enabled=progress, total=int(metadata.get("totalObjects", 0)) or None)
    workdir = Path(tempfile.mkdtemp(prefix="ctpbackup-tiers-", dir=archive_path.parent))
    try:
        spools, crd_types = _split_by_tier(reader, uids, workdir)
        custom = {key for es, _ in spools.values() for key in {e.resource for e in es} if is_custom(key, crd_types)}
        job = _Restore(kube, reader, existing, workers, meter, wait_seconds, set(uids.values()), custom)
        try:
            job.refresh_types()
        except KubeError as err:
            raise RestoreFailed(FailureReason.CONTROL_PLANE_UNREACHABLE, err.message) from None
        for index, tier in enumerate(TIERS):
            entries, spool = spools.get(index, ([], None))
            if entries:
                meter.step(f"restoring {tier.name}")
                created = _restore_tier(job, entries, spool, tier.pause)
                wanted = dict(tier.wait_for)
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
                failed = sum(job.counts[r]["failed"] for r in {e.resource for e in entries})
                if failed and failed == len(entries):
                    raise RestoreFailed(FailureReason.TIER_FAILED, f"no object of tier '{tier.name}' could be restored: "
                                                      f"{job.failures[0] if job.failures else 'see warnings'}")
            later = {e.resource for i, (es, _) in spools.items() if i > index for e in es}
            if index == 0 and entries:  # the archived CRDs' resources: wait until served
                for key in sorted(job.wait_served(later & crd_types)):
                    job.warn(f"{key}: not served by the control plane after its CRD was restored")
            elif entries and later - set(job.types):  # a tier may bring new types (a provider, an XRD)
                job.refresh_types()
            job.add_later_owners(final=False)
        job.add_later_owners(final=True)
        if job.to_unpause:
            meter.step(f"unpausing {len(job.to_unpause):,} resources")
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="unpause") as pool:
            still_paused = sum(1 for ok in pool.map(job.unpause, job.to_unpause) if not ok)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
        meter.close()
    warnings = job.warnings
    if len(warnings) > MAX_WARNINGS:
        warnings = warnings[:MAX_WARNINGS] + [f"... and {len(warnings) - MAX_WARNINGS} more"]
    return RestoreResult({k: dict(v) for k, v in sorted(job.counts.items())}, tuple(warnings),
                         tuple(job.failures[:MAX_WARNINGS]), still_paused)


#: API groups of Kubernetes' built-in types (besides every group ending in .k8s.io)
BUILTIN_GROUPS = frozenset({"", "apps", "batch", "policy", "autoscaling", "extensions"})


def is_custom(resource_key: str, crd_types: set[str]) -> bool:
    """Whether a type is a custom resource (its status is then the user's data, restored), rather
    than a built-in (whose status is the server's and its controllers')."""
    if resource_key in crd_types:
        return True
    group = resource_key.split(".", 1)[1] if "." in resource_key else ""
    return not (group in BUILTIN_GROUPS or group.endswith(".k8s.io"))


def _split_by_tier(reader: ArchiveReader, uids: dict[str, str],
                   workdir: Path) -> tuple[dict[int, tuple[list[_Entry], Path]], set[str]]:
    """One pass over the archive: each object's JSON goes to its tier's spool file; only a small
    entry (offset, owners) stays in memory. An object waits for the tier of its latest owner, except
    CRDs, which always come first (the references to their owners are added once those exist).
    Also returns the resource keys the archived CRDs define."""
    files: dict[int, Any] = {}
    entries: dict[int, list[_Entry]] = defaultdict(list)
    tier_of_uid = {uid: tier_of(path.split("/")[1]) for path, uid in uids.items()}
    crd_types: set[str] = set()
    try:
        for member, obj in reader.objects():
            owners = tuple(r.get("uid", "") for r in (obj.get("metadata") or {}).get("ownerReferences") or ())
            index = tier_of(member.resource, obj)
            if member.resource == CRD_KEY:
                spec = obj.get("spec") or {}
                crd_types.add(f"{(spec.get('names') or {}).get('plural', '')}.{spec.get('group', '')}")
            else:
                index = max([index, *(tier_of_uid[o] for o in owners if o in tier_of_uid)])
            if index not in files:
                files[index] = (workdir / f"tier-{index}.jsonl").open("w+b")
            spool = files[index]
            entries[index].append(_Entry(spool.tell(), member.resource, uids.get(member.path, ""), owners))
            spool.write(jsoncodec.dumps(obj) + b"\n")
    except ArchiveError as err:
        raise RestoreFailed(FailureReason.ARCHIVE_REJECTED, str(err)) from None
    finally:
        for spool in files.values():
            spool.close()
    return {i: (entries[i], workdir / f"tier-{i}.jsonl") for i in entries}, crd_types


def _generations(entries: list[_Entry]) -> Iterator[list[_Entry]]:
    """Owners before dependents: generation 0 has no owner inside the tier, generation n is owned by
    generation n-1 (cycles, which a real cluster cannot hold, are broken by creating them last)."""
    in_tier = {e.old_uid: e for e in entries if e.old_uid}
    depth: dict[int, int] = {}

    def level(entry: _Entry, seen: frozenset[str]) -> int:
        key = id(entry)
        if key in depth:
            return depth[key]
        parents = [in_tier[o] for o in entry.owners if o in in_tier and o not in seen]
        value = 0 if not parents else 1 + max(level(p, seen | {entry.old_uid}) for p in parents)
        depth[key] = value
        return value

    groups: dict[int, list[_Entry]] = defaultdict(list)
    for entry in entries:
        groups[level(entry, frozenset({entry.old_uid}))].append(entry)
    for g in sorted(groups):
        yield groups[g]


def _restore_tier(job: _Restore, entries: list[_Entry], spool: Path, pause: bool) -> list[tuple[str, str | None, str]]:
    created: list[tuple[str, str | None, str]] = []
    with spool.open("rb") as file, ThreadPoolExecutor(max_workers=job.workers, thread_name_prefix="restore") as pool:
        for generation in _generations(entries):
            for start in range(0, len(generation), CHUNK):  # chunks keep memory flat on huge tiers
                batch = []
                for entry in generation[start:start + CHUNK]:
                    file.seek(entry.offset)
                    obj = jsoncodec.loads(file.readline())
                    meta = obj.get("metadata") or {}
                    created.append((entry.resource, meta.get("namespace"), meta.get("name", "")))
                    batch.append((entry, obj))
                list(pool.map(lambda item: job.restore_object(item[0].resource, item[1], item[0].old_uid,
                                                              pause and is_pausable(item[0].resource)), batch))
    return created
