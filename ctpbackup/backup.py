"""The backup engine: export every API object of a control plane into an archive in the bucket.

Resource types are listed concurrently (bounded), pages flow through a bounded queue into one archive
writer, and the archive's bytes flow into a multipart upload: memory stays flat however large the
control plane. The upload is committed only when the archive is whole; any failure aborts it.
"""

from __future__ import annotations

import logging
import queue
import tempfile
import threading
from collections import Counter
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime

from kubernetes.client import ApiClient

from ctpbackup import archive, jsoncodec
from ctpbackup.encryption import backup_context
from ctpbackup.kubeapi import KubeAPI, KubeError, ResourceType
from ctpbackup.progress import Progress
from ctpbackup.storage.base import Bucket, StorageError

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
CRD_KEY = "customresourcedefinitions.apiextensions.k8s.io"
PACKAGE_GROUP = "pkg.crossplane.io"


class BackupFailed(Exception):
    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason
        self.message = message


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


def skip_reason(rtype: ResourceType, obj: dict, crd_wanted: set[str], crd_all: bool) -> str:
    """Why one object is not exported, or ''."""
    meta = obj.get("metadata") or {}
    if rtype.key == "configmaps" and meta.get("name") == "kube-root-ca.crt":
        return "kube-root-ca.crt ConfigMaps are recreated in every namespace"
    if rtype.key == "secrets" and obj.get("type") == "kubernetes.io/service-account-token":
        return "service-account token Secrets are issued by the cluster"
    if rtype.key == CRD_KEY:
        spec = obj.get("spec") or {}
        served = f"{(spec.get('names') or {}).get('plural', '')}.{spec.get('group', '')}"
        if served in crd_wanted:
            return ""  # always kept: its custom resources are in the backup
        return "" if crd_all else "excludedResources"
    for owner in meta.get("ownerReferences") or ():
        if str(owner.get("apiVersion", "")).startswith(PACKAGE_GROUP + "/") and str(owner.get("kind", "")).endswith("Revision"):
            return "owned by a Crossplane package revision, which recreates it"
    return ""


def take_backup(api_client: ApiClient, bucket: Bucket, key: str, info: ArchiveInfo, *, progress: bool = False,
                workers: int = LIST_WORKERS, page_size: int = PAGE_SIZE, encryption_key: bytes | None = None) -> BackupResult:
    """Export the control plane behind `api_client` into `bucket` at `key`."""
    kube = KubeAPI(api_client)
    started = datetime.now(UTC)
    try:
        server_version = kube.server_version()
        types = kube.discover()
    except KubeError as err:
        reason = "ControlPlaneUnreachable" if err.status in (0, 502, 503, 504) else "DiscoveryFailed"
        raise BackupFailed(reason, f"control plane {info.namespace}/{info.control_plane}: {err.message}") from None
    chosen, left_out = select_types(types, info.excluded_resources)
    export = _Export(crd_wanted={t.key for t in chosen if t.group and t.key != CRD_KEY},
                     crd_all=CRD_KEY not in set(info.excluded_resources))
    meter = Progress(f"backup {info.namespace}/{info.control_plane} → {info.backup}", enabled=progress)
    upload = None
    try:
        upload = bucket.open_upload(key, content_type="application/gzip")
        writer = archive.ArchiveWriter(upload, encryption_key=encryption_key,
                                       encryption_context=backup_context(info.namespace, info.control_plane, info.backup))
        with tempfile.TemporaryFile() as uid_spool:
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
            "startedAt": started.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "completedAt": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "gitCommit": info.git_commit,
            "counts": dict(sorted(export.counts.items())),
            "totalObjects": sum(export.counts.values()),
            "excluded": excluded,
            "excludedResources": list(info.excluded_resources),
        })
        written = writer.close()
        upload.commit()
        upload = None
    except KubeError as err:
        reason = "ControlPlaneUnreachable" if err.status in (0, 502, 503, 504) else "ListFailed"
        raise BackupFailed(reason, err.message) from None
    except StorageError as err:
        raise BackupFailed("BucketWriteFailed", str(err)) from None
    finally:
        if upload is not None:
            try:
                upload.abort()
            except Exception:  # noqa: BLE001 - the original error matters more; leftovers are swept later
                log.warning("could not abort the upload of %s", key)
        meter.close()
    return BackupResult(key, written.size, written.sha256, dict(export.counts), archive.FORMAT_VERSION,
                        server_version, excluded, encrypted=encryption_key is not None)


@dataclass
class _Export:
    """What one backup keeps, skips and counts, object by object."""

    crd_wanted: set[str]
    crd_all: bool
    counts: Counter = field(default_factory=Counter)
    skipped: dict[tuple[str, str], int] = field(default_factory=dict)  # (reason, resource) -> objects

    def write_page(self, writer: archive.ArchiveWriter, uid_spool, rtype: ResourceType, page: list[dict]) -> None:
        for obj in page:
            why = skip_reason(rtype, obj, self.crd_wanted, self.crd_all)
            if why:
                self.skipped[(why, rtype.key)] = self.skipped.get((why, rtype.key), 0) + 1
                continue
            cleaned, uid = archive.clean_object(obj)
            cleaned.setdefault("apiVersion", rtype.api_version)
            cleaned.setdefault("kind", rtype.kind)
            meta = cleaned["metadata"]
            path = archive.object_path(rtype.key, meta.get("namespace") if rtype.namespaced else None, meta["name"])
            writer.add_json(path, cleaned)
            if uid:
                uid_spool.write(jsoncodec.dumps({"path": path, "uid": uid}) + b"\n")
            self.counts[rtype.key] += 1

    def exclusions(self, left_out: dict[str, str]) -> dict[str, dict[str, object]]:
        excluded: dict[str, dict[str, object]] = {k: {"reason": v} for k, v in sorted(left_out.items())}
        for (why, rkey), n in sorted(self.skipped.items()):
            excluded[f"{rkey} (some objects)"] = {"reason": why, "objects": n}
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
