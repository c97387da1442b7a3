"""The backup engine: export every API object of a control plane into an archive in the bucket.

Resource types are listed concurrently (bounded), pages flow through a bounded queue into one archive
writer, and the archive's bytes flow into a multipart upload: memory stays flat however large the
control plane. The upload is committed only when the archive is whole; any failure aborts it.
"""

from __future__ import annotations

import dataclasses
import difflib
import logging
import queue
import tempfile
import threading
from collections import Counter
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ctpbackup.apply.progress import Progress
from ctpbackup.engines import archive, jsoncodec
from ctpbackup.engines.encryption import backup_context
from ctpbackup.engines.restore_order import MADE_BY_CONTROL_PLANE, made_by_control_plane
from ctpbackup.kube.api import CRD_KEY, KubeAPI, KubeError, ResourceType
from ctpbackup.rules.reasons import FailureReason, ReasonedError
from ctpbackup.rules.times import format_time, utcnow
from ctpbackup.storage.base import PreconditionFailed, StorageError
from ctpbackup.store.backup_store import BackupStore

if TYPE_CHECKING:  # the kubernetes package takes seconds to import: only commands that connect load it
    from kubernetes.client import ApiClient

log = logging.getLogger(__name__)

PAGE_SIZE = 500
LIST_WORKERS = 4

#: resource types never exported, and why (Upbound's exporter and Velero agree on these)
SKIPPED_TYPES = {
    "events": "events are transient",
    "events.events.k8s.io": "events are transient",
    "leases.coordination.k8s.io": "leases belong to the running controllers",
    "nodes": "nodes belong to the running cluster",
    "componentstatuses": "computed by the API server",
    "endpoints": "derived from Services",
    "endpointslices.discovery.k8s.io": "derived from Services",
    "pods": "run by controllers, recreated from their owners",
    "replicasets.apps": "run by Deployments, recreated from them",
    "controllerrevisions.apps": "managed by controllers",
}
PACKAGE_GROUP = "pkg.crossplane.io"
MAX_LISTED = 100  # names of objects left out one by one, per resource, in metadata.json
_MADE_KEYS = frozenset(entry.resource for entry in MADE_BY_CONTROL_PLANE)  # checked first: one set lookup an object
_NAMESPACES = ResourceType("", "v1", "namespaces", "Namespace", False, ("list",))


class BackupFailed(ReasonedError):
    """A backup that could not be taken; nothing was recorded Completed and its upload was aborted."""


@dataclass(frozen=True)
class ArchiveInfo:
    namespace: str
    control_plane: str
    backup: str
    git_commit: str = ""
    excluded_resources: tuple[str, ...] = ()


@dataclass(frozen=True)
class BackupResult:
    archive_key: str
    size: int
    sha256: str
    counts: dict[str, int]
    format_version: int
    server_version: str
    excluded: dict[str, dict[str, object]] = field(default_factory=dict)
    encrypted: bool = False
    #: what the backup found questionable but did anyway (an excludedResources entry matching nothing)
    warnings: tuple[str, ...] = ()


def select_types(types: Iterable[ResourceType], excluded_resources: Iterable[str]) -> tuple[list[ResourceType], dict[str, str]]:
    """The listable types to export, and every type left out with the reason."""
    user_excluded = set(excluded_resources)
    chosen, left_out = [], {}
    for rtype in types:
        if "list" not in rtype.verbs or "create" not in rtype.verbs:
            continue  # not something a restore could re-create (reviews, bindings, …)
        if rtype.key in SKIPPED_TYPES:
            left_out[rtype.key] = SKIPPED_TYPES[rtype.key]
        elif rtype.key in user_excluded and rtype.key != CRD_KEY:
            left_out[rtype.key] = "excludedResources"
        else:
            chosen.append(rtype)
    if CRD_KEY in user_excluded:
        left_out[CRD_KEY] = "excludedResources (CRDs of exported custom resources are still included)"
    return chosen, left_out


def exclusion_warnings(types: Iterable[ResourceType], excluded_resources: Iterable[str]) -> list[str]:
    """One warning per excludedResources entry that matches no served resource (an entry is a
    `resource.group` key, as `kubectl api-resources` names them: `secrets`, `buckets.s3.aws.upbound.io`),
    naming the nearest served one."""
    served = sorted({t.key for t in types})
    warnings = []
    for entry in excluded_resources:
        if entry in served:
            continue
        near = difflib.get_close_matches(entry, served, n=1, cutoff=0.5)
        plural = [k for k in served if k.split(".", 1)[0] in (entry + "s", entry + "es", entry.split(".", 1)[0] + "s")]
        nearest = (plural or near or [""])[0]
        warnings.append(f"excludedResources entry {entry!r} matches no resource the control plane serves"
                        + (f"; did you mean {nearest!r}?" if nearest else ".") + " Nothing was excluded for it.")
    return warnings


def storage_versions(kube: KubeAPI, types: list[ResourceType], chosen: list[ResourceType],
                     page_size: int = PAGE_SIZE) -> tuple[list[ResourceType], dict[str, dict[str, str]]]:
    """Custom resources are read at their CRD's storage version when it is served (what new writes
    are stored as: objects still at an older `status.storedVersions` entry are converted by the
    server on read), else at the preferred version discovery found; built-ins at the preferred
    version. Returns the types to list and, per resource key, {"apiVersion", "chosen": "storage" |
    "preferred"} for metadata.json (a restore writes each object back through that version)."""
    crd_type = next((t for t in types if t.key == CRD_KEY), None)
    storage: dict[str, str] = {}
    if crd_type is not None:
        for page in kube.list_pages(crd_type, page_size):
            for obj in page:
                spec = obj.get("spec") or {}
                key = f"{(spec.get('names') or {}).get('plural', '')}.{spec.get('group', '')}"
                stored = [v.get("name") for v in spec.get("versions") or () if v.get("storage") and v.get("served")]
                if stored:
                    storage[key] = stored[0]
    out, versions = [], {}
    for rtype in chosen:
        if rtype.key in storage and storage[rtype.key] != rtype.version:
            rtype = dataclasses.replace(rtype, version=storage[rtype.key])
        out.append(rtype)
        versions[rtype.key] = {"apiVersion": rtype.api_version, "chosen": "storage" if rtype.key in storage else "preferred"}
    return out, dict(sorted(versions.items()))


def skip_reason(rtype: ResourceType, obj: dict, crd_wanted: set[str], crd_all: bool,
                terminating: frozenset[str] = frozenset()) -> str:
    """Why one object is not exported, or ''."""
    meta = obj.get("metadata") or {}
    if meta.get("deletionTimestamp"):
        return "being deleted"
    if rtype.namespaced and meta.get("namespace") in terminating:
        return "being deleted (its namespace is terminating)"
    key = rtype.key
    made = made_by_control_plane(key, meta.get("namespace") or "", meta.get("name") or "") if key in _MADE_KEYS else None
    if made is not None and not made.fields:
        return f"made by every control plane itself ({made.objects})"
    if key == CRD_KEY:
        spec = obj.get("spec") or {}
        served = f"{(spec.get('names') or {}).get('plural', '')}.{spec.get('group', '')}"
        if served in crd_wanted:
            return ""  # always kept: its custom resources are in the backup
        return "" if crd_all else "excludedResources"
    for owner in meta.get("ownerReferences") or ():
        if str(owner.get("apiVersion", "")).startswith(PACKAGE_GROUP + "/") and str(owner.get("kind", "")).endswith("Revision"):
            return "owned by a Crossplane package revision, which recreates it"
    return ""


def take_backup(api_client: ApiClient, store: BackupStore, info: ArchiveInfo, *, progress: bool = False,
                workers: int = LIST_WORKERS, page_size: int = PAGE_SIZE, encryption_key: bytes | None = None) -> BackupResult:
    """Export the control plane behind `api_client` into the archive of backup `info.backup` in
    `store` (put create-if-absent: an archive already there is never replaced). Raises BackupFailed
    with the reason (ControlPlaneUnreachable, DiscoveryFailed, ListFailed, ArchiveExists,
    BucketWriteFailed, UnstorableObject); the upload is aborted on any failure."""
    key = store.archive_key(info.namespace, info.control_plane, info.backup)
    kube = KubeAPI(api_client)
    started = utcnow()
    try:
        server_version = kube.server_version()
        types = kube.discover()
    except KubeError as err:
        reason = (FailureReason.CONTROL_PLANE_UNREACHABLE if err.status in (0, 502, 503, 504)
                  else FailureReason.DISCOVERY_FAILED)
        raise BackupFailed(reason, f"control plane {info.namespace}/{info.control_plane}: {err.message}") from None
    chosen, left_out = select_types(types, info.excluded_resources)
    warnings = exclusion_warnings(types, info.excluded_resources)
    try:
        chosen, versions = storage_versions(kube, types, chosen, page_size)
        terminating = frozenset(ns["metadata"]["name"] for page in kube.list_pages(_NAMESPACES, page_size)
                                for ns in page if (ns.get("metadata") or {}).get("deletionTimestamp"))
    except KubeError as err:
        reason = FailureReason.CONTROL_PLANE_UNREACHABLE if err.status in (0, 502, 503, 504) else FailureReason.LIST_FAILED
        raise BackupFailed(reason, err.message) from None
    export = _Export(crd_wanted={t.key for t in chosen if t.group and t.key != CRD_KEY},
                     crd_all=CRD_KEY not in set(info.excluded_resources), terminating=terminating)
    meter = Progress(f"backup {info.namespace}/{info.control_plane} → {info.backup}", enabled=progress)
    upload = None
    try:
        upload = store.put_archive(info.namespace, info.control_plane, info.backup)  # never replaces one
        writer = archive.ArchiveWriter(upload, encryption_key=encryption_key,
                                       encryption_context=backup_context(info.namespace, info.control_plane, info.backup))
        # a 1 MiB buffer: with 8 KiB, each flush gave up the GIL to the listing threads for a switch
        # interval (5 ms) and these small writes took a sixth of the writer thread's time
        with tempfile.TemporaryFile(buffering=1024 * 1024) as uid_spool:
            for rtype, page in _list_concurrently(kube, chosen, workers, page_size):
                export.write_page(writer, uid_spool, rtype, page)
                meter.update(objects=len(page), bytes_total=writer.bytes_written)
            size = uid_spool.tell()
            uid_spool.seek(0)
            writer.add_file(archive.UIDS, uid_spool, size)
        excluded = export.exclusions(left_out)
        writer.add_json(archive.METADATA, {
            "formatVersion": archive.FORMAT_VERSION,
            "controlPlane": {"namespace": info.namespace, "name": info.control_plane},
            "backup": {"namespace": info.namespace, "name": info.backup},
            "serverVersion": server_version,
            "startedAt": format_time(started),
            "completedAt": format_time(utcnow()),
            "gitCommit": info.git_commit,
            "counts": dict(sorted(export.counts.items())),
            "totalObjects": sum(export.counts.values()),
            "excluded": excluded,
            "excludedResources": list(info.excluded_resources),
            "versions": versions,
            "warnings": warnings,
        })
        written = writer.close()
        upload.commit()
        upload = None
    except KubeError as err:
        reason = FailureReason.CONTROL_PLANE_UNREACHABLE if err.status in (0, 502, 503, 504) else FailureReason.LIST_FAILED
        raise BackupFailed(reason, err.message) from None
    except PreconditionFailed:
        raise BackupFailed(FailureReason.ARCHIVE_EXISTS, f"an archive appeared at {key} while this backup was taken "
                                                         "(another run?); it was left as it is") from None
    except StorageError as err:
        raise BackupFailed(FailureReason.BUCKET_WRITE_FAILED, str(err)) from None
    except archive.ArchiveError as err:  # never a Completed backup that cannot be restored
        raise BackupFailed(FailureReason.UNSTORABLE_OBJECT, str(err)) from None
    finally:
        if upload is not None:
            try:
                upload.abort()
            except Exception:  # noqa: BLE001 - the original error matters more; leftovers are swept later
                log.warning("could not abort the upload of %s", key)
        meter.close()
    return BackupResult(key, written.size, written.sha256, dict(export.counts), archive.FORMAT_VERSION,
                        server_version, excluded, encrypted=encryption_key is not None, warnings=tuple(warnings))


@dataclass
class _Export:
    """What one backup keeps, skips and counts, object by object."""

    crd_wanted: set[str]
    crd_all: bool
    terminating: frozenset[str] = frozenset()  # namespaces being deleted
    counts: Counter = field(default_factory=Counter)
    skipped: dict[tuple[str, str], int] = field(default_factory=dict)  # (reason, resource) -> objects
    #: (reason, resource) -> the first names of objects left out one by one (being deleted)
    names: dict[tuple[str, str], list[str]] = field(default_factory=dict)

    def write_page(self, writer: archive.ArchiveWriter, uid_spool, rtype: ResourceType, page: list[dict]) -> None:
        key, namespaced, api_version, kind = rtype.key, rtype.namespaced, rtype.api_version, rtype.kind
        for obj in page:
            why = skip_reason(rtype, obj, self.crd_wanted, self.crd_all, self.terminating)
            if why:
                self.skipped[(why, key)] = self.skipped.get((why, key), 0) + 1
                if why.startswith("being deleted"):
                    listed = self.names.setdefault((why, key), [])
                    if len(listed) < MAX_LISTED:
                        meta = obj.get("metadata") or {}
                        listed.append(f"{meta['namespace']}/{meta.get('name')}" if meta.get("namespace") else str(meta.get("name")))
                continue
            cleaned, uid = archive.clean_object(obj)
            cleaned.setdefault("apiVersion", api_version)
            cleaned.setdefault("kind", kind)
            meta = cleaned["metadata"]
            try:
                path = archive.object_path(key, meta.get("namespace") if namespaced else None, meta.get("name"))
            except archive.ArchiveError as err:
                where = f"{meta.get('namespace')}/" if meta.get("namespace") else ""
                raise archive.ArchiveError(f"{key} {where}{meta.get('name')!r}: {err}") from None
            writer.add_json(path, cleaned)
            if uid:
                uid_spool.write(jsoncodec.dumps({"path": path, "uid": uid}) + b"\n")
            self.counts[key] += 1

    def exclusions(self, left_out: dict[str, str]) -> dict[str, dict[str, object]]:
        excluded: dict[str, dict[str, object]] = {k: {"reason": v} for k, v in sorted(left_out.items())}
        for (why, rkey), n in sorted(self.skipped.items()):
            key = f"{rkey} (some objects)" if not why.startswith("being deleted") else f"{rkey} (being deleted)"
            entry: dict[str, object] = {"reason": why, "objects": n}
            if (why, rkey) in self.names:
                entry["names"] = self.names[(why, rkey)]
            if key in excluded:  # an object being deleted and one in a terminating namespace
                excluded[key] = {"reason": "being deleted", "objects": int(excluded[key]["objects"]) + n,  # type: ignore[call-overload]
                                 "names": [*excluded[key].get("names", []), *entry.get("names", [])][:MAX_LISTED]}  # type: ignore[misc]
            else:
                excluded[key] = entry
        return excluded


def _list_concurrently(kube: KubeAPI, types: list[ResourceType], workers: int,
                       page_size: int) -> Iterator[tuple[ResourceType, list[dict]]]:
    """Yield (type, page) as a bounded pool of listers produces them; the first error stops them all."""
    pages: queue.Queue = queue.Queue(maxsize=workers)  # in-flight pages bound the memory
    stop = threading.Event()
    done = object()

    def put(item: tuple) -> bool:
        while not stop.is_set():
            try:
                pages.put(item, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    def lister(rtype: ResourceType) -> None:
        try:
            for page in kube.list_pages(rtype, page_size):
                if not put((rtype, page)):
                    return
            put((rtype, done))
        except BaseException as err:  # noqa: BLE001 - handed to the consuming thread, which raises it
            put((rtype, err))

    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="list") as pool:
        try:
            for rtype in types:
                pool.submit(lister, rtype)
            remaining = len(types)
            while remaining:
                rtype, page = pages.get()
                if page is done:
                    remaining -= 1
                elif isinstance(page, BaseException):
                    raise page
                else:
                    yield rtype, page
        finally:
            stop.set()  # listers blocked on a full queue give up instead of hanging the pool
