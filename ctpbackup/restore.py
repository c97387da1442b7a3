"""The restore engine: re-create a backup's objects in a control plane, in dependency order.

Integrity first: the archive is downloaded, its size and sha256 checked against the index, and every
member checked (paths, links, sizes, format version) before a single object is written. Then tier by
tier (see restore_order): objects of a tier are created concurrently, owners before dependents,
ownerReferences remapped to the new uids, status written through /status, Crossplane resources
created paused and unpaused at the end unless they were paused in the source.
"""

from __future__ import annotations

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

from ctpbackup import jsoncodec
from ctpbackup.archive import ArchiveError, ArchiveReader
from ctpbackup.encryption import EncryptionError, backup_context, decrypt_stream
from ctpbackup.kubeapi import KubeAPI, KubeError, ResourceType
from ctpbackup.progress import Progress
from ctpbackup.records import BackupRecord
from ctpbackup.restore_order import PAUSED, TIERS, is_pausable, tier_of
from ctpbackup.storage.base import Bucket, ObjectNotFound, StorageError

CRD_KEY = "customresourcedefinitions.apiextensions.k8s.io"

log = logging.getLogger(__name__)

MAX_ARCHIVE_BYTES = 50 * 1024 * 1024 * 1024
MAX_WARNINGS = 200
WORKERS = 16
CHUNK = 1000


class RestoreFailed(Exception):
    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass
class RestoreResult:
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()

    def total(self, what: str) -> int:
        return sum(c.get(what, 0) for c in self.counts.values())

    def summary(self) -> str:
        text = f"{self.total('restored')} restored, {self.total('skipped')} skipped (already there), {self.total('failed')} failed"
        return text + (f", {len(self.warnings)} warning(s)" if self.warnings else "")


def answers(api_client: ApiClient) -> bool:
    """Whether the control plane's API answers at all (a restore waits until it does)."""
    try:
        KubeAPI(api_client, attempts=2, timeout=10).server_version()
        return True
    except KubeError:
        return False


def fetch_verified(bucket: Bucket, record: BackupRecord, dest: Path, encryption_key: bytes | None = None) -> Path:
    """Download the archive of `record` into `dest` and prove it is the one the index recorded
    (then decrypt it, when it was encrypted on the client)."""
    if not record.archive_key or not record.sha256:
        raise RestoreFailed("ArchiveMissing", f"Backup {record.name} has no recorded archive")
    if record.size <= 0 or record.size > MAX_ARCHIVE_BYTES:
        raise RestoreFailed("ArchiveRejected", f"recorded archive size {record.size} is not plausible")
    try:
        attrs = bucket.attributes(record.archive_key)
        if attrs is None:
            raise RestoreFailed("ArchiveMissing", f"archive of Backup {record.name} is not in the bucket")
        if attrs.size != record.size:
            raise RestoreFailed("IntegrityCheckFailed", f"archive of Backup {record.name} is {attrs.size} bytes; "
                                                        f"the index recorded {record.size}")
        path = dest / "archive.tar.gz"
        digest = hashlib.sha256()
        size = 0
        with bucket.open_read(record.archive_key) as stream, path.open("wb") as out:
            while chunk := stream.read(1024 * 1024):
                size += len(chunk)
                if size > record.size:
                    raise RestoreFailed("IntegrityCheckFailed", f"archive of Backup {record.name} is longer than recorded")
                digest.update(chunk)
                out.write(chunk)
    except RestoreFailed:
        raise
    except (StorageError, ObjectNotFound) as err:
        raise RestoreFailed("ArchiveUnreadable", f"cannot read the archive of Backup {record.name}: {err}") from None
    except Exception as err:  # noqa: BLE001 - a body cut off mid-download surfaces from the HTTP layer
        raise RestoreFailed("ArchiveUnreadable", f"the download of Backup {record.name}'s archive broke off "
                                                 f"({type(err).__name__})") from None
    if size != record.size or digest.hexdigest() != record.sha256:
        raise RestoreFailed("IntegrityCheckFailed",
                            f"archive of Backup {record.name} does not match the sha256 recorded in the index")
    if record.encrypted:
        if encryption_key is None:
            raise RestoreFailed("EncryptionKeyMissing", f"Backup {record.name} is encrypted and its config names no key")
        plain = dest / "archive.plain.tar.gz"
        try:
            with path.open("rb") as source, plain.open("wb") as out:
                context = backup_context(record.namespace, record.control_plane, record.name)
                for chunk in decrypt_stream(source, encryption_key, context):
                    out.write(chunk)
        except EncryptionError as err:
            raise RestoreFailed("DecryptionFailed", f"archive of Backup {record.name}: {err}") from None
        path.unlink()
        path = plain
    try:
        ArchiveReader(path).validate()
    except ArchiveError as err:
        raise RestoreFailed("ArchiveRejected", f"archive of Backup {record.name} refused: {err}") from None
    return path


@dataclass
class _Entry:
    """One object of a tier, without its body (bodies are re-read from the tier's spool file)."""

    offset: int
    resource: str
    old_uid: str
    owners: tuple[str, ...]  # old uids of its owners


class _Restore:
    def __init__(self, kube: KubeAPI, reader: ArchiveReader, existing: str, workers: int, meter: Progress,
                 wait_seconds: float):
        self.kube = kube
        self.reader = reader
        self.existing = existing
        self.workers = workers
        self.meter = meter
        self.wait_seconds = wait_seconds
        self.types: dict[str, ResourceType] = {}
        self.new_uid: dict[str, str] = {}
        self.counts: dict[str, dict[str, int]] = defaultdict(lambda: {"restored": 0, "skipped": 0, "failed": 0})
        self.warnings: list[str] = []
        self.to_unpause: list[tuple[ResourceType, str, str, bool]] = []
        self.lock = Lock()

    def warn(self, text: str) -> None:
        with self.lock:
            self.warnings.append(text)

    def refresh_types(self) -> None:
        self.types = {t.key: t for t in self.kube.discover()}

    # -- one object ------------------------------------------------------------------------------

    def restore_object(self, resource: str, obj: dict[str, Any], old_uid: str, pause: bool) -> None:
        rtype = self.types.get(resource)
        meta = obj.setdefault("metadata", {})
        name, namespace = meta.get("name", "?"), meta.get("namespace")
        ident = f"{resource} {namespace + '/' if namespace else ''}{name}"
        if rtype is None:
            self._count(resource, "failed")
            self.warn(f"{ident}: the control plane does not serve {resource}")
            return
        status = obj.pop("status", None)
        refs = []
        for ref in meta.get("ownerReferences") or ():
            new = self.new_uid.get(ref.get("uid", ""))
            if new:
                refs.append({**ref, "uid": new})
            else:  # a dangling owner would make the garbage collector delete this object
                self.warn(f"{ident}: owner {ref.get('kind')} {ref.get('name')} not restored; ownerReference dropped")
        if refs:
            meta["ownerReferences"] = refs
        else:
            meta.pop("ownerReferences", None)
        was_paused = (meta.get("annotations") or {}).get(PAUSED) == "true"
        had_annotations = bool(meta.get("annotations"))
        if pause and not was_paused:
            meta["annotations"] = {**(meta.get("annotations") or {}), PAUSED: "true"}
        try:
            created = self.kube.request("POST", rtype.path(namespace), body=obj)
            outcome = "restored"
        except KubeError as err:
            if err.status != 409:
                self._count(resource, "failed")
                self.warn(f"{ident}: {err.message}")
                return
            current = self.kube.get(rtype, namespace, name) or {}
            if self.existing == "update" and current:
                obj["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
                try:
                    created = self.kube.request("PUT", rtype.path(namespace, name), body=obj)
                    outcome = "restored"
                except KubeError as update_err:
                    self._count(resource, "failed")
                    self.warn(f"{ident}: exists and could not be updated: {update_err.message}")
                    return
            else:
                self._remember(old_uid, current)
                self._count(resource, "skipped")
                return
        self._remember(old_uid, created)
        if status is not None and rtype.has_status and resource != CRD_KEY:  # a CRD's status is the server's
            try:
                self.kube.request("PATCH", rtype.path(namespace, name, "status"), body={"status": status},
                                  content_type="application/merge-patch+json")
            except KubeError as err:
                self.warn(f"{ident}: status not restored: {err.message}")
        if pause and not was_paused:
            with self.lock:
                self.to_unpause.append((rtype, namespace or "", name, had_annotations))
        self._count(resource, outcome)

    def _remember(self, old_uid: str, current: dict) -> None:
        uid = (current.get("metadata") or {}).get("uid")
        if old_uid and uid:
            with self.lock:
                self.new_uid[old_uid] = uid

    def _count(self, resource: str, what: str) -> None:
        with self.lock:
            self.counts[resource][what] += 1
        self.meter.update(objects=1)

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
    `label` names it in the progress display."""
    kube = KubeAPI(api_client)
    reader = ArchiveReader(archive_path)
    try:
        metadata = reader.validate()
        uids = reader.uids()
    except ArchiveError as err:
        raise RestoreFailed("ArchiveRejected", str(err)) from None
    meter = Progress(label, enabled=progress, total=int(metadata.get("totalObjects", 0)) or None)
    job = _Restore(kube, reader, existing, workers, meter, wait_seconds)
    try:
        job.refresh_types()
    except KubeError as err:
        raise RestoreFailed("ControlPlaneUnreachable", err.message) from None
    workdir = Path(tempfile.mkdtemp(prefix="ctpbackup-tiers-", dir=archive_path.parent))
    try:
        spools = _split_by_tier(reader, uids, workdir)
        for index, tier in enumerate(TIERS):
            entries, spool = spools.get(index, ([], None))
            if not entries:
                continue
            meter.step(f"restoring {tier.name}")
            created = _restore_tier(job, entries, spool, tier.pause)
            wanted = dict(tier.wait_for)
            waiting = sum(1 for c in created if c[0] in wanted)
            if waiting:
                meter.step(f"waiting for {waiting:,} {tier.name} to be {'/'.join(sorted({w for ws in wanted.values() for w in ws}))}")
            late = job.wait_for(created, wanted) if wanted else []
            if late and index == 0:
                raise RestoreFailed("CRDsNotEstablished",
                                    f"{len(late)} CRD(s) not Established within {wait_seconds:.0f}s: {', '.join(late[:5])}")
            for name in late:
                job.warn(f"{name}: not {'/'.join(wanted[name.split()[0]])} within {wait_seconds:.0f}s")
            if index == 0:
                needed = {e.resource for i, (es, _) in spools.items() if i > 0 for e in es}
                for key in sorted(job.wait_served(needed)):
                    job.warn(f"{key}: not served by the control plane after its CRD was restored")
            failed = sum(job.counts[r]["failed"] for r in {e.resource for e in entries})
            if failed and failed == len(entries):
                raise RestoreFailed("TierFailed", f"no object of tier '{tier.name}' could be restored: "
                                                  f"{job.warnings[-1] if job.warnings else 'see warnings'}")
        def unpause(item: tuple[ResourceType, str, str, bool]) -> None:
            rtype, namespace, name, had_annotations = item
            # back to exactly the source's annotations: none at all if it had none
            annotations = {PAUSED: None} if had_annotations else None
            try:
                kube.request("PATCH", rtype.path(namespace or None, name), body={"metadata": {"annotations": annotations}},
                             content_type="application/merge-patch+json")
            except KubeError as err:
                job.warn(f"{rtype.key} {name}: could not be unpaused: {err.message}")

        if job.to_unpause:
            meter.step(f"unpausing {len(job.to_unpause):,} resources")
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="unpause") as pool:
            list(pool.map(unpause, job.to_unpause))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
        meter.close()
    warnings = job.warnings
    if len(warnings) > MAX_WARNINGS:
        warnings = warnings[:MAX_WARNINGS] + [f"... and {len(warnings) - MAX_WARNINGS} more"]
    return RestoreResult({k: dict(v) for k, v in sorted(job.counts.items())}, tuple(warnings))


def _split_by_tier(reader: ArchiveReader, uids: dict[str, str], workdir: Path) -> dict[int, tuple[list[_Entry], Path]]:
    """One pass over the archive: each object's JSON goes to its tier's spool file; only a small
    entry (offset, owners) stays in memory. An object waits for the tier of its latest owner."""
    files: dict[int, Any] = {}
    entries: dict[int, list[_Entry]] = defaultdict(list)
    resource_of_uid = {uid: path.split("/")[1] for path, uid in uids.items()}
    try:
        for member, obj in reader.objects():
            owners_tiers = [tier_of(resource_of_uid[r.get("uid", "")])
                            for r in (obj.get("metadata") or {}).get("ownerReferences") or ()
                            if r.get("uid", "") in resource_of_uid]
            index = max([tier_of(member.resource), *owners_tiers])
            if index not in files:
                files[index] = (workdir / f"tier-{index}.jsonl").open("w+b")
            spool = files[index]
            owners = tuple(r.get("uid", "") for r in (obj.get("metadata") or {}).get("ownerReferences") or ())
            entries[index].append(_Entry(spool.tell(), member.resource, uids.get(member.path, ""), owners))
            spool.write(jsoncodec.dumps(obj) + b"\n")
    except ArchiveError as err:
        raise RestoreFailed("ArchiveRejected", str(err)) from None
    finally:
        for spool in files.values():
            spool.close()
    return {i: (entries[i], workdir / f"tier-{i}.jsonl") for i in entries}


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
