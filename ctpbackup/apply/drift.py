"""`diff backup A B` and `diff backup A --live`: the objects of two recorded backups (of the same or of
different control planes), or of a backup and its control plane now, compared by `engines.diff`.

Archives are fetched and checked as a restore checks them (`archives.fetch_archive`), then streamed.
The live side is read as a backup would read it now (`engines.backup`: the same types, versions,
exclusions and per-object skips), so drift shows what the next backup would record differently.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ctpbackup.apply.archives import ArchiveRefused, fetch_archive
from ctpbackup.desired.problems import UserError
from ctpbackup.engines import archive
from ctpbackup.engines.archive import ArchiveError, ArchiveReader
from ctpbackup.engines.backup import select_types, skip_reason, storage_versions
from ctpbackup.engines.diff import DiffResult, compare
from ctpbackup.kube.api import CRD_KEY, KubeAPI, KubeError, ResourceType
from ctpbackup.kube.connect import ConnectionSecretUnusable, api_client_for
from ctpbackup.run import Prepared
from ctpbackup.store.records import BackupRecord, Phase

if TYPE_CHECKING:  # the kubernetes package takes seconds to import: only commands that connect load it
    from kubernetes.client import ApiClient


def archived_objects(reader: ArchiveReader) -> Iterator[tuple[str, dict[str, Any]]]:
    """(resource key, object) of every archived object, in archive order."""
    try:
        for member, obj in reader.objects():
            yield member.resource, obj
    except ArchiveError as err:
        raise UserError(f"archive refused: {err}") from None


def live_objects(api_client: ApiClient, excluded_resources: list[str]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(resource key, object) of what a backup would export from the control plane now, each cleaned
    as the backup cleans it (`archive.clean_object`)."""
    kube = KubeAPI(api_client)
    try:
        types = kube.discover()
        chosen, _ = select_types(types, excluded_resources)
        chosen, _ = storage_versions(kube, types, chosen)
        wanted = {t.key for t in chosen if t.group and t.key != CRD_KEY}
        namespaces = ResourceType("", "v1", "namespaces", "Namespace", False, ("list",))
        terminating = frozenset(ns["metadata"]["name"] for page in kube.list_pages(namespaces)
                                for ns in page if (ns.get("metadata") or {}).get("deletionTimestamp"))
        for rtype in chosen:
            for page in kube.list_pages(rtype):
                for obj in page:
                    if skip_reason(rtype, obj, wanted, CRD_KEY not in set(excluded_resources), terminating):
                        continue
                    cleaned, _ = archive.clean_object(obj)
                    cleaned.setdefault("apiVersion", rtype.api_version)
                    cleaned.setdefault("kind", rtype.kind)
                    yield rtype.key, cleaned
    except KubeError as err:
        raise UserError(f"reading the control plane: {err.message}") from None


def _record(prepared: Prepared, namespace: str, name: str) -> BackupRecord:
    record = prepared.recorded.backups.get((namespace, name))
    if record is None:
        raise UserError(f"Backup {namespace}/{name} is not recorded in the bucket index")
    if record.phase is not Phase.COMPLETED or not record.archive_key:
        raise UserError(f"Backup {namespace}/{name} is {record.phase.value}: it has no archive to compare")
    return record


def _open(prepared: Prepared, record: BackupRecord, folder: Path) -> ArchiveReader:
    try:
        return ArchiveReader(fetch_archive(prepared.locations, record, folder))
    except ArchiveRefused as err:
        raise UserError(f"Backup {record.namespace}/{record.name}: {err}") from None


def _label(record: BackupRecord) -> str:
    return f"Backup {record.namespace}/{record.name} (of {record.control_plane})"


def diff_backups(prepared: Prepared, namespace: str, left: str, right: str, *, show_values: bool = False,
                 workdir: Path | None = None) -> DiffResult:
    """Backup `left` (-) against backup `right` (+), both in `namespace`. Raises UserError."""
    first, second = _record(prepared, namespace, left), _record(prepared, namespace, right)
    with tempfile.TemporaryDirectory(prefix="ctpbackup-diff-", dir=workdir) as tmp:
        (Path(tmp) / "a").mkdir()
        (Path(tmp) / "b").mkdir()
        a, b = _open(prepared, first, Path(tmp) / "a"), _open(prepared, second, Path(tmp) / "b")
        return compare(archived_objects(a), archived_objects(b), left_name=_label(first), right_name=_label(second),
                       show_values=show_values)


def diff_live(prepared: Prepared, namespace: str, name: str, *, show_values: bool = False,
              workdir: Path | None = None) -> DiffResult:
    """Backup `name` (-) against its control plane now (+): drift since the backup. Raises UserError."""
    record = _record(prepared, namespace, name)
    control_plane = prepared.desired.control_planes.get((namespace, record.control_plane))
    if control_plane is None:
        raise UserError(f"ControlPlane {namespace}/{record.control_plane} (of Backup {name}) is not in Git: "
                        "no connection to compare with")
    with tempfile.TemporaryDirectory(prefix="ctpbackup-diff-", dir=workdir) as tmp:
        reader = _open(prepared, record, Path(tmp))
        excluded = (reader.validate() or {}).get("excludedResources") or []
        try:
            client = api_client_for(control_plane, prepared.secrets)
        except ConnectionSecretUnusable as err:
            raise UserError(f"ControlPlane {namespace}/{record.control_plane}: {err.message}") from None
        with client:
            return compare(archived_objects(reader), live_objects(client, list(excluded)), left_name=_label(record),
                           right_name=f"ControlPlane {namespace}/{record.control_plane} now", show_values=show_values)
