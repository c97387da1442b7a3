"""Offline verification of a backup: read its archive back once and tell whether a restore would
succeed, without any control plane.

One pass over the stored bytes (as they come from the bucket): size and sha256 against the index
record, decryption (the same AEAD stream a restore opens), the archive format (the same member rules
as `ArchiveReader`), then every object:

- custom resources against their CRD *in the archive*, at the version they were archived at
  (served? the kind and scope the CRD names?), through `kubevalidation` (the checks the emulator
  makes: pruning, defaults, the OpenAPI v3 schema and its CEL rules);
- built-in objects through `kubevalidation` too (metadata, name rules per type, Secret and ConfigMap
  rules, CRD rules), after the same clean-ups a restore makes (`restore_order.clean`);
- ownerReferences resolve to an archived object (by its old uid, same kind and name, not in another
  namespace) or to an object every control plane makes itself (`restore_order.MADE_BY_CONTROL_PLANE`);
- namespaced objects' namespaces are archived or made by every control plane (default, kube-system,
  kube-public, kube-node-lease);
- member names are ones the archive format holds (`archive.encode_name`); a name written raw by an
  older release makes a restore refuse the whole archive;
- counts per resource match `metadata.json` and the index record.

Memory stays bounded: only the CRDs' schemas, the archived paths and kinds, the uids, and the
ownerReferences to resolve at the end are kept; custom resources met before their CRD (archives list
types concurrently) wait in a spool file on disk.
"""

from __future__ import annotations

import hashlib
import io
import re
import tarfile
import tempfile
import zlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from ctpbackup.engines import jsoncodec
from ctpbackup.engines.archive import (
    MAX_MEMBERS,
    MAX_RATIO,
    MAX_TOTAL_BYTES,
    METADATA,
    SUPPORTED_VERSIONS,
    UIDS,
    ArchiveError,
    Member,
    _BoundedTarInfo,
    _read,
    _shown,
    check_member,
)
from ctpbackup.engines.encryption import EncryptionError, Keyring, backup_context, decrypt_stream
from ctpbackup.engines.restore import BUILTIN_GROUPS
from ctpbackup.engines.restore_order import CRD_KEY, clean, made_by_control_plane
from ctpbackup.rules.reasons import FailureReason
from kubevalidation import BadRequest, CompiledSchema, Invalid, Target, admit

#: failure reasons, most severe first: the condition's reason is the first one found in this order
INTEGRITY = FailureReason.INTEGRITY_CHECK_FAILED  #: size or sha256 differ from the index record
DECRYPTION = FailureReason.DECRYPTION_FAILED  #: wrong key, another backup's archive, or tampered ciphertext
KEY_MISSING = FailureReason.ENCRYPTION_KEY_MISSING  #: encrypted, and the config names no key (or not its key)
REJECTED = FailureReason.ARCHIVE_REJECTED  #: not the archive format: corrupt gzip/tar, links, unsafe paths, ...
MISMATCH = FailureReason.ARCHIVE_MISMATCH  #: metadata.json names another backup or control plane
COUNTS = FailureReason.COUNTS_MISMATCH
UNSTORABLE_NAME = FailureReason.UNSTORABLE_NAME
CRD_MISSING = FailureReason.CRD_MISSING
VERSION_NOT_SERVED = FailureReason.VERSION_NOT_SERVED
INVALID = FailureReason.OBJECT_INVALID
OWNER_MISSING = FailureReason.OWNER_MISSING
NAMESPACE_MISSING = FailureReason.NAMESPACE_MISSING
REASONS = (INTEGRITY, DECRYPTION, KEY_MISSING, REJECTED, MISMATCH, COUNTS, UNSTORABLE_NAME, CRD_MISSING,
           VERSION_NOT_SERVED, INVALID, OWNER_MISSING, NAMESPACE_MISSING)
VERIFIED = "BackupVerified"

MAX_EXAMPLES = 20  #: problems kept word for word; the rest are only counted
READ_CHUNK = 1024 * 1024
_RELAXED_OBJECT = re.compile(r"^resources/(?P<resource>[^/]+)/(?:cluster|namespaces/(?P<namespace>[^/]+))/(?P<name>.+)\.json$")


@dataclass(frozen=True)
class Expected:
    """What the index records about the backup: the archive must match it."""

    namespace: str
    control_plane: str
    backup: str
    size: int
    sha256: str
    counts: dict[str, int]
    encrypted: bool = False


@dataclass
class Verification:
    """The outcome. `created`/`skipped`/`merged`/`failed`: objects a restore into a fresh control
    plane would create, skip by policy (made by every control plane, the target's copy kept), merge
    into the object the control plane makes, or fail on. `failures`: reason -> objects (or 1 for an
    archive-wide failure); `examples`: the first problems word for word. `complete`: the whole
    archive was read (False after an integrity or format failure: the counts are partial)."""

    objects: int = 0
    created: int = 0
    skipped: int = 0
    merged: int = 0
    failed: int = 0
    failures: dict[str, int] = field(default_factory=dict)
    examples: list[str] = field(default_factory=list)
    complete: bool = False
    leniencies: list[str] = field(default_factory=list)
    #: ownerReferences to objects of a type the backup left out (excludedResources, or by rule): a
    #: restore drops them with a warning, as the user asked, so they fail nothing
    owners_excluded: int = 0

    @property
    def verified(self) -> bool:
        return self.complete and not self.failures

    @property
    def reason(self) -> str:
        """BackupVerified, or the most severe failure reason found."""
        if self.verified:
            return VERIFIED
        return min(self.failures, key=_severity) if self.failures else REJECTED

    def problem(self, reason: str, text: str, objects: int = 1) -> None:
        self.failures[reason] = self.failures.get(reason, 0) + objects
        if len(self.examples) < MAX_EXAMPLES:
            self.examples.append(f"{reason}: {text}")

    def summary(self) -> str:
        """`1234 objects: 1200 would be created, 4 skipped by policy, 30 merged, 0 would fail`."""
        text = (f"{self.objects} objects: {self.created} would be created, {self.skipped} skipped by policy, "
                f"{self.merged} merged, {self.failed} would fail")
        if not self.complete:
            text += " (archive not read to the end)"
        return text

    def message(self) -> str:
        """The summary, then each failure reason with its count, then the first problems."""
        if self.verified:
            return self.summary()
        reasons = ", ".join(f"{r} ({n})" for r, n in sorted(self.failures.items(), key=lambda i: _severity(i[0])))
        return f"{self.summary()}; {reasons}; first: {'; '.join(self.examples[:3])}"

    def to_dict(self) -> dict[str, Any]:
        """What the record keeps (`BackupRecord.verification`)."""
        return {"objects": self.objects, "created": self.created, "skipped": self.skipped, "merged": self.merged,
                "failed": self.failed, "failures": dict(sorted(self.failures.items())),
                "examples": list(self.examples), "complete": self.complete,
                "ownerReferencesToExcludedTypes": self.owners_excluded}


def _severity(reason: str) -> int:
    """Order of REASONS; a reason from elsewhere (a refused record) before them all."""
    return REASONS.index(reason) if reason in REASONS else -1


class _Fatal(Exception):
    """Reading cannot go on (integrity, decryption or format): the reason and the one line."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason
        self.message = message


class _HashingReader:
    """Reads the stored bytes, counting and hashing them; refuses more than the recorded size."""

    def __init__(self, source: BinaryIO, limit: int):
        self.source = source
        self.limit = limit
        self.sha256 = hashlib.sha256()
        self.size = 0

    def read(self, n: int = READ_CHUNK) -> bytes:
        data = self.source.read(n if n and n > 0 else READ_CHUNK)
        self.size += len(data)
        if self.size > self.limit:
            raise _Fatal(INTEGRITY, f"the archive is longer than the {self.limit} bytes the index recorded")
        self.sha256.update(data)
        return data


class _ChunkReader(io.RawIOBase):
    """A file object over an iterator of byte chunks (the decrypted segments)."""

    def __init__(self, chunks: Iterator[bytes]):
        self.chunks = chunks
        self.pending = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # type: ignore[override]
        while not self.pending:
            try:
                self.pending = next(self.chunks)
            except StopIteration:
                return 0
        n = min(len(buffer), len(self.pending))
        buffer[:n] = self.pending[:n]
        self.pending = self.pending[n:]
        return n


@dataclass
class _CRD:
    """What verification keeps of an archived CRD."""

    group: str
    kind: str
    plural: str
    namespaced: bool
    versions: dict[str, tuple[bool, dict | None]]  # name -> (served, openAPIV3Schema)


class _Run:
    def __init__(self, expected: Expected, spool: BinaryIO):
        self.expected = expected
        self.result = Verification()
        self.spool = spool
        self.spooled = 0
        self.crds: dict[str, _CRD] = {}  # "plural.group" -> CRD
        self.schemas: dict[tuple[str, str], CompiledSchema | None] = {}
        self.kinds: dict[str, str] = {}  # resource key -> kind
        self.counts: Counter[str] = Counter()
        self.paths: set[str] = set()
        self.namespaces: set[str] = set()
        self.wanted_namespaces: dict[str, str] = {}  # namespace -> first object in it
        #: (dependent path, owner uid, apiVersion, kind, name) to resolve once uids.jsonl is read
        self.owner_refs: list[tuple[str, str, str, str, str]] = []
        self.uid_paths: dict[str, str] = {}
        self.metadata: dict[str, Any] | None = None
        self.failed_paths: set[str] = set()

    # -- members -------------------------------------------------------------------------------------

    def member(self, tar: tarfile.TarFile, info: tarfile.TarInfo) -> None:
        try:
            member = check_member(info)
        except ArchiveError as err:
            relaxed = _RELAXED_OBJECT.match(info.name) if info.isreg() else None
            if relaxed is None:
                raise _Fatal(REJECTED, str(err)) from None
            self.counts[relaxed.group("resource")] += 1
            self.result.objects += 1
            self._fail(info.name, UNSTORABLE_NAME,
                       f"{_shown(info.name)}: a member name the archive format cannot hold (written raw by an older "
                       f"release?); a restore refuses the whole archive")
            return
        data = _read(tar, info)
        if member.path == METADATA:
            self.metadata = _json(member.path, data)
        elif member.path == UIDS:
            for line in data.splitlines():
                entry = _json(member.path, line)
                if isinstance(entry, dict) and isinstance(entry.get("uid"), str):
                    self.uid_paths[entry["uid"]] = str(entry.get("path", ""))
        else:
            obj = _json(member.path, data)
            if not isinstance(obj, dict):
                raise _Fatal(REJECTED, f"{member.path}: not a Kubernetes object")
            self.obj(member, obj)

    def obj(self, member: Member, obj: dict[str, Any]) -> None:
        self.result.objects += 1
        self.counts[member.resource] += 1
        self.paths.add(member.path)
        self.kinds.setdefault(member.resource, str(obj.get("kind") or ""))
        meta = obj.get("metadata") if isinstance(obj.get("metadata"), dict) else {}
        ident = _ident(member)
        if meta.get("name") != member.name or (meta.get("namespace") or "") != member.namespace:
            self._fail(member.path, INVALID, f"{ident}: metadata names {meta.get('namespace') or ''}/"
                                             f"{meta.get('name')!r}, not what its archive path says")
            return
        if member.namespace:
            self.wanted_namespaces.setdefault(member.namespace, ident)
        if member.resource == "namespaces":
            self.namespaces.add(member.name)
        for ref in meta.get("ownerReferences") or ():
            if isinstance(ref, dict):
                self.owner_refs.append((member.path, str(ref.get("uid") or ""), str(ref.get("apiVersion") or ""),
                                        str(ref.get("kind") or ""), str(ref.get("name") or "")))
        if member.resource == CRD_KEY:
            self._remember_crd(obj)
        elif _is_custom(member.resource) and member.resource not in self.crds:
            self.spool.write(jsoncodec.dumps({"path": member.path, "object": obj}) + b"\n")
            self.spooled += 1
            return
        self.check(member, obj)

    def _remember_crd(self, crd: dict[str, Any]) -> None:
        spec = crd.get("spec") if isinstance(crd.get("spec"), dict) else {}
        names = spec.get("names") if isinstance(spec.get("names"), dict) else {}
        versions = {}
        for version in spec.get("versions") or ():
            if isinstance(version, dict) and isinstance(version.get("name"), str):
                schema = (version.get("schema") or {}).get("openAPIV3Schema")
                versions[version["name"]] = (bool(version.get("served")), schema if isinstance(schema, dict) else None)
        plural, group = str(names.get("plural") or ""), str(spec.get("group") or "")
        self.crds[f"{plural}.{group}"] = _CRD(group, str(names.get("kind") or ""), plural,
                                              spec.get("scope") == "Namespaced", versions)

    # -- one object ----------------------------------------------------------------------------------

    def check(self, member: Member, obj: dict[str, Any]) -> None:
        """Would a restore into a fresh control plane create it? Counted as created, skipped, merged
        or failed (with the reason)."""
        ident = _ident(member)
        group, _, version = str(obj.get("apiVersion") or "").rpartition("/")
        plural = member.resource.split(".", 1)[0]
        resource_group = member.resource.split(".", 1)[1] if "." in member.resource else ""
        schema = None
        custom = _is_custom(member.resource)
        if custom:
            crd = self.crds.get(member.resource)
            if crd is None:
                self._fail(member.path, CRD_MISSING, f"{ident}: its CustomResourceDefinition {member.resource} is not "
                                                     "in the archive")
                return
            served, _ = crd.versions.get(version, (False, None))
            why = ""
            if group != crd.group or not served:
                why = (f"archived at {obj.get('apiVersion')!r}, which its CRD does not serve (it serves "
                       f"{', '.join(f'{crd.group}/{v}' for v, (s, _) in crd.versions.items() if s) or 'nothing'})")
            elif obj.get("kind") != crd.kind:
                why = f"kind {obj.get('kind')!r} is not its CRD's ({crd.kind!r})"
            elif crd.namespaced != bool(member.namespace):
                why = f"its CRD is {'Namespaced' if crd.namespaced else 'Cluster'}-scoped"
            if why:
                self._fail(member.path, VERSION_NOT_SERVED, f"{ident}: {why}")
                return
            schema = self._schema(member.resource, version, crd)
            target = Target(crd.group, version, crd.kind, crd.plural, crd.namespaced, custom=True)
        else:
            target = Target(resource_group, version, str(obj.get("kind") or ""), plural, bool(member.namespace))
        clean(member.resource, obj, custom)  # what a restore sends (the object is not used afterwards)
        try:
            admit(target, obj, schema=schema, field_validation="Ignore")
        except Invalid as err:
            if member.resource == "secrets":  # a Secret's values are never shown: the fields and why only
                text = "; ".join(f"{e.field}: {e.type}" for e in err.errors)
                self._fail(member.path, INVALID, f"{ident}: refused ({text})")
            else:
                self._fail(member.path, INVALID, f"{ident}: {err.message}")
            return
        except BadRequest as err:
            self._fail(member.path, INVALID, f"{ident}: {err.message}")
            return
        self._count(member, +1)

    def _count(self, member: Member, step: int) -> None:
        """Count an object that passed its own checks as created, merged or skipped (step +1), or take
        it back (-1) when a check of the whole archive (owners, namespaces) fails it later."""
        made = made_by_control_plane(member.resource, member.namespace, member.name)
        if made is None:
            self.result.created += step
        elif made.fields:
            self.result.merged += step
        else:
            self.result.skipped += step

    def _schema(self, resource: str, version: str, crd: _CRD) -> CompiledSchema | None:
        key = (resource, version)
        if key not in self.schemas:
            found = crd.versions[version][1]
            compiled = CompiledSchema(found) if found is not None else None
            if compiled is not None:
                self.result.leniencies.extend(f"{resource} {version}: {text}" for text in compiled.leniencies)
            self.schemas[key] = compiled
        return self.schemas[key]

    def _fail(self, path: str, reason: str, text: str, *, counted: bool = False, objects: int = 1) -> None:
        """`counted`: the object passed its own checks and was counted (by `_count`) already."""
        self._failed(path, counted)
        self.result.problem(reason, text, objects)

    def _failed(self, path: str, counted: bool) -> None:
        if path not in self.failed_paths:
            self.failed_paths.add(path)
            self.result.failed += 1
            if counted:
                self._count(check_member_path(path), -1)

    # -- after the last member -------------------------------------------------------------------------

    def finish(self) -> None:
        self.spool.flush()
        self.spool.seek(0)
        for line in self.spool:
            entry = jsoncodec.loads(line)
            member = check_member_path(entry["path"])
            self.check(member, entry["object"])
        self._owners()
        self._namespaces()
        self._counts()

    def _owners(self) -> None:
        for path, uid, api_version, kind, name in self.owner_refs:
            dependent = check_member_path(path)
            owner_path = self.uid_paths.get(uid)
            if owner_path is not None and owner_path in self.paths:
                owner = check_member_path(owner_path)
                if self.kinds.get(owner.resource) == kind and owner.name == name and \
                        (not owner.namespace or owner.namespace == dependent.namespace):
                    continue
                self._fail(path, OWNER_MISSING, f"{_ident(dependent)}: ownerReference {kind} {name!r} (uid {uid}) "
                                                f"names archived object {_ident(owner)}, which is not that owner",
                           counted=path not in self.failed_paths)
                continue
            if _made_owner(api_version, kind, dependent.namespace, name):
                continue
            if self._excluded_type(api_version, kind):
                self.result.owners_excluded += 1
                continue
            self._fail(path, OWNER_MISSING, f"{_ident(dependent)}: owner {kind} {name!r} (uid {uid}) is not in the "
                                            "archive and no control plane makes it", counted=path not in self.failed_paths)

    def _excluded_type(self, api_version: str, kind: str) -> bool:
        """Whether the owner's type is one metadata.json says the backup left out (excludedResources,
        or a type skipped by rule). Its resource key comes from its CRD in the archive (CRDs of excluded
        types are kept), else from the kind's lower-case plural forms in that group."""
        metadata = self.metadata if isinstance(self.metadata, dict) else {}
        excluded = set(metadata.get("excludedResources") or ()) | {
            str(k).split(" ", 1)[0] for k in (metadata.get("excluded") or {})}
        group = api_version.rpartition("/")[0]
        keys = {key for key, crd in self.crds.items() if crd.group == group and crd.kind == kind}
        if not keys:
            plural = kind.lower()
            keys = {f"{p}.{group}" if group else p for p in (plural + "s", plural + "es", plural)}
        return not keys.isdisjoint(excluded)

    def _namespaces(self) -> None:
        for namespace, ident in sorted(self.wanted_namespaces.items()):
            if namespace in self.namespaces or made_by_control_plane("namespaces", "", namespace) is not None:
                continue
            objects = [p for p in self.paths if f"/namespaces/{namespace}/" in p]
            for path in objects:
                self._failed(path, counted=path not in self.failed_paths)
            self.result.problem(NAMESPACE_MISSING, f"namespace {namespace!r} of {ident} (and {len(objects) - 1} more "
                                                   "object(s)) is not in the archive", objects=len(objects))

    def _counts(self) -> None:
        metadata = self.metadata if isinstance(self.metadata, dict) else {}
        counted = dict(self.counts)
        archived = metadata.get("counts") if isinstance(metadata.get("counts"), dict) else {}
        if archived != counted:
            self.result.problem(COUNTS, f"metadata.json counts {_difference(archived, counted)}")
        if metadata.get("totalObjects") != self.result.objects:
            self.result.problem(COUNTS, f"metadata.json says {metadata.get('totalObjects')} objects; the archive "
                                        f"holds {self.result.objects}")
        if self.expected.counts and dict(self.expected.counts) != counted:
            self.result.problem(COUNTS, f"the index record counts {_difference(self.expected.counts, counted)}")


def check_member_path(path: str) -> Member:
    """The Member of a path `check_member` accepted earlier (kept as a string to save memory)."""
    info = tarfile.TarInfo(path)
    return check_member(info)


#: owner kinds of the objects every control plane makes itself, by kind (an ownerReference names a kind)
_MADE_KINDS = {"ConfigMap": "configmaps", "ServiceAccount": "serviceaccounts", "Namespace": "namespaces",
               "Service": "services", "ClusterRole": "clusterroles.rbac.authorization.k8s.io",
               "ClusterRoleBinding": "clusterrolebindings.rbac.authorization.k8s.io",
               "Role": "roles.rbac.authorization.k8s.io", "RoleBinding": "rolebindings.rbac.authorization.k8s.io",
               "PriorityClass": "priorityclasses.scheduling.k8s.io",
               "FlowSchema": "flowschemas.flowcontrol.apiserver.k8s.io",
               "PriorityLevelConfiguration": "prioritylevelconfigurations.flowcontrol.apiserver.k8s.io"}


#: kinds of the types a backup never exports (ctpbackup.engines.backup.SKIPPED_TYPES) by resource key:
#: their objects are recreated by the control plane's own controllers (Pods, ReplicaSets, ...) or belong
#: to the running cluster (Nodes, Leases), so an ownerReference to one is not a dangling one
RECREATED_KINDS = {"events": ("", "Event"), "events.events.k8s.io": ("events.k8s.io", "Event"),
                   "leases.coordination.k8s.io": ("coordination.k8s.io", "Lease"), "nodes": ("", "Node"),
                   "componentstatuses": ("", "ComponentStatus"), "endpoints": ("", "Endpoints"),
                   "endpointslices.discovery.k8s.io": ("discovery.k8s.io", "EndpointSlice"), "pods": ("", "Pod"),
                   "replicasets.apps": ("apps", "ReplicaSet"), "controllerrevisions.apps": ("apps", "ControllerRevision")}
_RECREATED = frozenset(RECREATED_KINDS.values())


def _made_owner(api_version: str, kind: str, namespace: str, name: str) -> bool:
    """Whether an owner outside the archive is one the control plane makes or recreates itself."""
    if (api_version.rpartition("/")[0], kind) in _RECREATED:
        return True
    resource = _MADE_KINDS.get(kind)
    return resource is not None and made_by_control_plane(resource, namespace, name) is not None


def _is_custom(resource_key: str) -> bool:
    """A type served by a CRD: any group but Kubernetes' own (the restore engine's rule)."""
    group = resource_key.split(".", 1)[1] if "." in resource_key else ""
    return not (group in BUILTIN_GROUPS or group.endswith(".k8s.io"))


def _ident(member: Member) -> str:
    return f"{member.resource} {member.namespace + '/' if member.namespace else ''}{member.name}"


def _json(path: str, data: bytes) -> Any:
    try:
        return jsoncodec.loads(data)
    except ValueError:
        raise _Fatal(REJECTED, f"{path}: not JSON") from None


def _difference(expected: dict, counted: dict[str, int]) -> str:
    keys = sorted(set(expected) | set(counted))
    diffs = [f"{k}: {expected.get(k, 0)} recorded, {counted.get(k, 0)} archived" for k in keys
             if expected.get(k, 0) != counted.get(k, 0)]
    return "; ".join(diffs[:5]) + (f"; and {len(diffs) - 5} more" if len(diffs) > 5 else "")


def _check_metadata(metadata: Any, expected: Expected) -> None:
    if not isinstance(metadata, dict):
        raise _Fatal(REJECTED, f"{METADATA} missing")
    if metadata.get("formatVersion") not in SUPPORTED_VERSIONS:
        raise _Fatal(REJECTED, f"archive format version {metadata.get('formatVersion')!r} is not supported (this "
                               f"release reads {sorted(SUPPORTED_VERSIONS)})")
    control_plane = metadata.get("controlPlane") if isinstance(metadata.get("controlPlane"), dict) else {}
    backup = metadata.get("backup") if isinstance(metadata.get("backup"), dict) else {}
    said = (control_plane.get("namespace"), control_plane.get("name"), backup.get("namespace"), backup.get("name"))
    wanted = (expected.namespace, expected.control_plane, expected.namespace, expected.backup)
    if said != wanted:
        raise _Fatal(MISMATCH, f"the archive says it is Backup {str(said[3])[:80]} of control plane "
                               f"{str(said[0])[:80]}/{str(said[1])[:80]}, not {expected.backup} of "
                               f"{expected.namespace}/{expected.control_plane}")


def verify_archive(stored: BinaryIO, expected: Expected, keys: Keyring | bytes | None = None, *,
                   workdir: Path | None = None) -> Verification:
    """Verify one archive, read once from `stored` (the bytes as the bucket holds them: encrypted or
    not, as `expected.encrypted` says). Never raises for anything the archive holds: every problem
    is in the returned Verification (a read error of `stored` itself propagates). `keys`: the
    config's keyring (needed when encrypted). `workdir`: where custom resources met before their
    CRD are spooled (default: the system's temporary folder)."""
    raw = _HashingReader(stored, expected.size)
    with tempfile.TemporaryFile(dir=workdir) as spool:
        run = _Run(expected, spool)
        result = run.result
        try:
            if expected.encrypted:
                if keys is None:
                    raise _Fatal(KEY_MISSING, "the archive is encrypted and the config names no key")
                context = backup_context(expected.namespace, expected.control_plane, expected.backup)
                plain: BinaryIO = io.BufferedReader(_ChunkReader(decrypt_stream(raw, keys, context)), READ_CHUNK)  # type: ignore[arg-type]
            else:
                plain = raw  # type: ignore[assignment]
            _read_members(run, plain, expected.size)
            while plain.read(READ_CHUNK):  # the rest (padding, the last segment's tag): hashed and authenticated
                pass
            if raw.size != expected.size or raw.sha256.hexdigest() != expected.sha256:
                raise _Fatal(INTEGRITY, f"the archive ({raw.size} bytes) does not match the size ({expected.size}) "
                                        "and sha256 recorded in the index")
            _check_metadata(run.metadata, expected)
            run.finish()
            result.complete = True
        except _Fatal as err:
            _integrity_first(raw, expected, result)
            result.problem(err.reason, err.message)
        except EncryptionError as err:
            _integrity_first(raw, expected, result)
            result.problem(KEY_MISSING if err.reason == KEY_MISSING else DECRYPTION, str(err))
    return result


def _integrity_first(raw: _HashingReader, expected: Expected, result: Verification) -> None:
    """After a failure mid-read: read the rest of the stored bytes, so that an archive changed or
    cut in the bucket is reported as what it is (IntegrityCheckFailed), not only as what broke."""
    try:
        while raw.read(READ_CHUNK):
            pass
    except _Fatal as err:
        result.problem(err.reason, err.message)
        return
    if raw.size != expected.size or raw.sha256.hexdigest() != expected.sha256:
        result.problem(INTEGRITY, f"the archive ({raw.size} bytes) does not match the size ({expected.size}) and "
                                  "sha256 recorded in the index")


def _read_members(run: _Run, plain: BinaryIO, compressed_size: int) -> None:
    total = count = 0
    try:
        with tarfile.open(fileobj=plain, mode="r|gz", tarinfo=_BoundedTarInfo) as tar:  # type: ignore[call-overload]
            for info in tar:
                count += 1
                total += info.size
                if count > MAX_MEMBERS:
                    raise _Fatal(REJECTED, f"more than {MAX_MEMBERS} members")
                if total > MAX_TOTAL_BYTES or total > MAX_RATIO * max(compressed_size, 1024 * 1024):
                    raise _Fatal(REJECTED, "archive expands far beyond its compressed size (decompression bomb?)")
                run.member(tar, info)
    except ArchiveError as err:
        raise _Fatal(REJECTED, str(err)) from None
    except (tarfile.TarError, EOFError, OSError, zlib.error) as err:
        raise _Fatal(REJECTED, f"corrupt archive: {err}") from None
