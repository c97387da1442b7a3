"""From the files of a GitOps repository to a typed `DesiredState`, or every problem found.

All problems are collected in one pass (a user fixing a repo wants the whole list, not the first
error); any error means no desired state at all, so nothing downstream can act on half a repository.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import Any

from ctpbackup.desired import schemas
from ctpbackup.desired.gitsource import YAML_SUFFIXES, ManifestFile
from ctpbackup.desired.model import (
    DEFAULT_NAMESPACE,
    GROUP,
    RETRY_ANNOTATION,
    Backup,
    BackupOptions,
    BackupSchedule,
    ConnectionSecretRef,
    ControlPlane,
    ControlPlaneSelector,
    Credentials,
    CredentialsSource,
    DeletionPolicy,
    DesiredState,
    LabelSelector,
    LabelSelectorRequirement,
    ObjectStorage,
    Origin,
    RestoreSource,
    SecretKeyRef,
    SharedBackup,
    SharedBackupConfig,
    SharedBackupSchedule,
)
from ctpbackup.desired.problems import InvalidManifests, Problem, Severity
from ctpbackup.desired.references import check_references
from ctpbackup.desired.yamldocs import Document, YamlError, parse_documents
from ctpbackup.gcpause import cycle_collection_paused
from ctpbackup.rules.durations import parse_duration
from ctpbackup.storage.base import Provider
from ctpbackup.storage.keys import problems as config_key_problems

log = logging.getLogger(__name__)

@dataclass
class LoadResult:
    desired: DesiredState | None
    problems: list[Problem] = field(default_factory=list)
    #: the objects that did build, even when others have errors (to find the buckets to read)
    partial: DesiredState | None = None
    skipped: dict[str, int] = field(default_factory=dict)  # "apps/v1 Deployment" -> count

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity is Severity.ERROR]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.severity is Severity.WARNING]

    def require(self) -> DesiredState:
        """The desired state, or InvalidManifests carrying every problem."""
        if self.errors or self.desired is None:
            raise InvalidManifests(self.problems)
        return self.desired


def load_desired_state(files: Iterable[ManifestFile], commit: str) -> LoadResult:
    """Parse, validate and model every manifest of our kinds: once a run, from what Git alone shows.
    Each file's bytes are read once. Whether a restore's source exists needs the bucket index: the
    plan checks it, after the index is read (a restore may name a backup that left Git but that the
    index still records, and a finished restore's source need not resolve any more)."""
    with cycle_collection_paused():
        return _load(files, commit)


def _load(files: Iterable[ManifestFile], commit: str) -> LoadResult:
    result = LoadResult(desired=None)
    objects: dict[str, dict[tuple[str, str], Any]] = {kind: {} for kind in schemas.KINDS}
    first_seen: dict[tuple[str, str, str], Origin] = {}
    for file in sorted(files, key=lambda f: f.path):
        if not file.path.endswith(YAML_SUFFIXES):
            continue
        try:
            for doc in parse_documents(file.content):
                _load_document(file.path, doc, objects, first_seen, result)
        except YamlError as err:  # the documents before the broken one were still checked
            result.problems.append(Problem(file.path, err.line, err.message))
    desired = DesiredState(
        commit=commit,
        configs=MappingProxyType(objects["SharedBackupConfig"]),
        control_planes=MappingProxyType(objects["ControlPlane"]),
        backups=MappingProxyType(objects["Backup"]),
        backup_schedules=MappingProxyType(objects["BackupSchedule"]),
        shared_backups=MappingProxyType(objects["SharedBackup"]),
        shared_backup_schedules=MappingProxyType(objects["SharedBackupSchedule"]),
    )
    # objects that failed their own checks still exist as far as references to them go
    declared = frozenset(first_seen)
    result.partial = desired
    result.problems.extend(check_references(desired, declared=declared))
    if not result.errors:
        result.desired = desired
    return result


def _load_document(path: str, doc: Document, objects: dict, first_seen: dict, result: LoadResult) -> None:
    data = doc.data
    if not isinstance(data, dict):
        result.problems.append(Problem(path, doc.line, f"expected a Kubernetes object (a mapping), got {type(data).__name__}"))
        return
    api_version = data.get("apiVersion")
    kind = data.get("kind")
    group = api_version.split("/")[0] if isinstance(api_version, str) and "/" in api_version else ""
    if group != GROUP:
        if kind in schemas.KINDS and not api_version:
            result.problems.append(Problem(path, doc.line, f"{kind} needs apiVersion: {GROUP}/<version>", kind=kind, field="apiVersion"))
            return
        _note_foreign(path, doc, data, result)
        return
    if kind not in schemas.KINDS:
        import difflib

        close = difflib.get_close_matches(str(kind), schemas.KINDS, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else f"; known kinds: {', '.join(schemas.KINDS)}"
        result.problems.append(Problem(path, doc.line_of(("kind",)), f"unknown kind {kind!r} in {GROUP}{hint}", field="kind"))
        return
    metadata = data.get("metadata") if isinstance(data.get("metadata"), dict) else {}
    name = metadata.get("name") if isinstance(metadata.get("name"), str) else ""
    namespace = metadata.get("namespace") if isinstance(metadata.get("namespace"), str) else DEFAULT_NAMESPACE

    def problem(path_in_doc: tuple, message: str, severity: Severity = Severity.ERROR) -> Problem:
        return Problem(path, doc.line_of(path_in_doc), message, kind=kind, namespace=namespace, name=name,
                       field=schemas.field_name(path_in_doc), severity=severity)

    origin = Origin(path, doc.line, MappingProxyType(doc.lines))
    identity = (kind, namespace, name)
    if identity in first_seen:
        result.problems.append(problem(("metadata", "name"), f"duplicate {kind} {namespace}/{name}: first declared at {first_seen[identity]}"))
        return
    first_seen[identity] = origin
    found = [problem(p.path, p.message) for p in schemas.validate(kind, data)]
    found += [problem(path_in_doc, message) for path_in_doc, message in _object_rules(kind, data)] if not found else []
    if found:
        result.problems.extend(found)
        return
    try:
        objects[kind][(namespace, name)] = _BUILDERS[kind](namespace, name, data.get("spec") or {}, metadata, origin)
    except ValueError as err:  # a value the schema admits but the model cannot use
        result.problems.append(problem(("spec",), str(err)))
    if data.get("status"):
        result.problems.append(problem(("status",), "status in Git is ignored: the job keeps status in the bucket index", Severity.WARNING))


def _object_rules(kind: str, data: dict) -> list[tuple[tuple, str]]:
    """Thanos config keys this job does not honour (ctpbackup.storage.keys), and the CRDs' CEL rules
    on one object that JSON Schema does not express (the transition rules,
    `oldSelf`, need the index and are the plan's). From spaces.upbound.io_controlplanes.yaml:
    `!has(self.crossplane.autoUpgrade) || self.crossplane.autoUpgrade.channel != "None" ||
    self.crossplane.version != ""`."""
    found: list[tuple[tuple, str]] = []
    if kind == "SharedBackupConfig":
        storage = (data.get("spec") or {}).get("objectStorage") or {}
        for key, message in config_key_problems(str(storage.get("provider", "")), storage.get("config") or {}):
            found.append((("spec", "objectStorage", "config", key), message))
    if kind == "ControlPlane":
        crossplane = (data.get("spec") or {}).get("crossplane") or {}
        if (crossplane.get("autoUpgrade") or {}).get("channel") == "None" and not crossplane.get("version"):
            found.append((("spec", "crossplane", "version"), '"version" cannot be empty when upgrade channel is "None"'))
    return found


def _note_foreign(path: str, doc: Document, data: dict, result: LoadResult) -> None:
    api_version, kind = data.get("apiVersion"), data.get("kind")
    if not api_version or not kind:
        log.debug("%s:%d: not a Kubernetes object, skipped", path, doc.line)
        return
    label = f"{api_version} {kind}"
    result.skipped[label] = result.skipped.get(label, 0) + 1
    log.debug("%s:%d: %s is not a backup kind, skipped", path, doc.line, label)
    if api_version == "v1" and kind == "Secret" and (data.get("data") or data.get("stringData")):
        meta = data.get("metadata") or {}
        field_ = "data" if data.get("data") else "stringData"
        result.problems.append(Problem(
            path, doc.line_of((field_,)),
            "Secret carries data in Git: credentials committed to the repository (use a sealed or external secret)",
            kind="Secret", namespace=str(meta.get("namespace", DEFAULT_NAMESPACE)), name=str(meta.get("name", "")),
            field=field_, severity=Severity.WARNING))


# -- builders: validated dicts -> model values -----------------------------------------------------

def _options(spec: Mapping[str, Any], metadata: Mapping[str, Any]) -> BackupOptions:
    ttl_text = spec.get("ttl", "")
    annotations = metadata.get("annotations") or {}
    return BackupOptions(
        config=spec["configRef"]["name"],
        deletion_policy=DeletionPolicy(spec.get("deletionPolicy", DeletionPolicy.ORPHAN)),
        excluded_resources=tuple(spec.get("excludedResources", ())),
        ttl=parse_duration(ttl_text) if ttl_text else None,
        ttl_text=ttl_text,
        retry_request=str(annotations.get(RETRY_ANNOTATION, "")),
    )


def _selector(spec: Mapping[str, Any]) -> ControlPlaneSelector:
    raw = spec.get("controlPlaneSelector") or {}
    selectors = tuple(
        LabelSelector(
            match_labels=tuple(sorted((s.get("matchLabels") or {}).items())),
            match_expressions=tuple(
                LabelSelectorRequirement(e["key"], e["operator"], tuple(e.get("values") or ())) for e in s.get("matchExpressions") or ()
            ),
        )
        for s in raw.get("labelSelectors") or ()
    )
    return ControlPlaneSelector(label_selectors=selectors, names=tuple(raw.get("names") or ()))


def _config(namespace: str, name: str, spec: Mapping, metadata: Mapping, origin: Origin) -> SharedBackupConfig:
    storage = spec["objectStorage"]
    creds = storage["credentials"]
    ref = creds.get("secretRef")
    enc = storage.get("encryption")
    return SharedBackupConfig(
        namespace=namespace,
        name=name,
        object_storage=ObjectStorage(
            provider=Provider(storage["provider"]),
            bucket=storage["bucket"],
            prefix=storage.get("prefix", "").strip("/"),
            config=MappingProxyType(dict(storage.get("config") or {})),
            credentials=Credentials(
                source=CredentialsSource(creds["source"]),
                secret_ref=SecretKeyRef(ref["name"], ref.get("key", "credentials")) if ref else None,
            ),
            encryption_key_refs=tuple(SecretKeyRef(r["name"], r.get("key", "key"))
                                      for r in ([enc["secretRef"]] if "secretRef" in enc else enc["secretRefs"])) if enc else (),
            allow_unauthenticated_backups=tuple(enc.get("allowUnauthenticatedBackups") or ()) if enc else (),
        ),
        origin=origin,
    )


def _control_plane(namespace: str, name: str, spec: Mapping, metadata: Mapping, origin: Origin) -> ControlPlane:
    conn = spec.get("writeConnectionSecretToRef")
    restore = spec.get("restore") or {}
    source = restore.get("source")
    finished = restore.get("finishedAt")
    crossplane = spec.get("crossplane") or {}
    return ControlPlane(
        namespace=namespace,
        name=name,
        labels=MappingProxyType(dict(metadata.get("labels") or {})),
        # Spaces writes the connection Secret as kubeconfig-<name> in the control plane's namespace
        connection_secret=ConnectionSecretRef(conn["name"], conn.get("namespace", namespace)) if conn
        else ConnectionSecretRef(f"kubeconfig-{name}", namespace),
        restore_source=RestoreSource(source["kind"], source["name"], source.get("apiGroup", GROUP)) if source else None,
        restore_finished_at=datetime.fromisoformat(finished.replace("Z", "+00:00")) if finished else None,
        control_plane_class=spec.get("class", ""),
        crossplane_version=crossplane.get("version", ""),
        crossplane_channel=(crossplane.get("autoUpgrade") or {}).get("channel", "Stable"),
        crossplane_state=crossplane.get("state", "Running"),
        allow_insecure_kubeconfig=bool(spec.get("allowInsecureKubeconfig", False)),
        origin=origin,
    )


def _backup(namespace: str, name: str, spec: Mapping, metadata: Mapping, origin: Origin) -> Backup:
    return Backup(namespace, name, spec["controlPlane"], _options(spec, metadata), origin=origin)


def _backup_schedule(namespace: str, name: str, spec: Mapping, metadata: Mapping, origin: Origin) -> BackupSchedule:
    return BackupSchedule(
        namespace, name, spec["controlPlane"], spec["schedule"], _options(spec, metadata),
        suspend=bool(spec.get("suspend", False)),
        use_owner_references=bool(spec.get("useOwnerReferencesInBackup", False)),
        origin=origin,
    )


def _shared_backup(namespace: str, name: str, spec: Mapping, metadata: Mapping, origin: Origin) -> SharedBackup:
    return SharedBackup(
        namespace, name, _selector(spec), _options(spec, metadata),
        use_owner_references=bool(spec.get("useOwnerReferencesInBackup", False)),
        failures_control_planes=(spec.get("failures") or {}).get("controlPlanes"),
        origin=origin,
    )


def _shared_backup_schedule(namespace: str, name: str, spec: Mapping, metadata: Mapping, origin: Origin) -> SharedBackupSchedule:
    return SharedBackupSchedule(
        namespace, name, _selector(spec), spec["schedule"], _options(spec, metadata),
        suspend=bool(spec.get("suspend", False)),
        use_owner_references=bool(spec.get("useOwnerReferencesInBackup", False)),
        origin=origin,
    )


_BUILDERS = {
    "SharedBackupConfig": _config,
    "ControlPlane": _control_plane,
    "Backup": _backup,
    "BackupSchedule": _backup_schedule,
    "SharedBackup": _shared_backup,
    "SharedBackupSchedule": _shared_backup_schedule,
}
