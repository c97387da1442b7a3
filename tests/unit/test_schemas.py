"""Every field of every schema has a valid and an invalid case; a meta-test keeps the table complete."""

from __future__ import annotations

import copy
import json

import pytest

from ctpbackup.desired.schemas import SCHEMA_DIR, SCHEMA_FILES, field_name, validate

REF = {"kind": "SharedBackupConfig", "name": "default"}
SELECTOR = {"labelSelectors": [{"matchLabels": {"backup": "enabled"}}]}
BASE = {
    "SharedBackupConfig": {"apiVersion": "spaces.upbound.io/v1alpha1", "kind": "SharedBackupConfig", "metadata": {"name": "c"},
                           "spec": {"objectStorage": {"provider": "AWS", "bucket": "b",
                                                      "credentials": {"source": "Secret", "secretRef": {"name": "creds"}}}}},
    "ControlPlane": {"apiVersion": "spaces.upbound.io/v1beta1", "kind": "ControlPlane", "metadata": {"name": "ctp"}, "spec": {}},
    "Backup": {"apiVersion": "spaces.upbound.io/v1alpha1", "kind": "Backup", "metadata": {"name": "b"},
               "spec": {"configRef": REF, "controlPlane": "ctp"}},
    "BackupSchedule": {"apiVersion": "spaces.upbound.io/v1alpha1", "kind": "BackupSchedule", "metadata": {"name": "s"},
                       "spec": {"configRef": REF, "controlPlane": "ctp", "schedule": "@daily"}},
    "SharedBackup": {"apiVersion": "spaces.upbound.io/v1alpha1", "kind": "SharedBackup", "metadata": {"name": "sb"},
                     "spec": {"configRef": REF, "controlPlaneSelector": SELECTOR}},
    "SharedBackupSchedule": {"apiVersion": "spaces.upbound.io/v1alpha1", "kind": "SharedBackupSchedule", "metadata": {"name": "ss"},
                             "spec": {"configRef": REF, "controlPlaneSelector": SELECTOR, "schedule": "@every 1h"}},
}
BACKUPISH = ("Backup", "BackupSchedule", "SharedBackup", "SharedBackupSchedule")
SCHEDULED = ("BackupSchedule", "SharedBackupSchedule")
SHARED = ("SharedBackup", "SharedBackupSchedule")
ALL = tuple(SCHEMA_FILES)

# (kinds, field path, valid value, invalid value, part of the expected message)
FIELDS = [
    (ALL, "apiVersion", None, "spaces.upbound.io/v2", "'spaces.upbound.io/v2'"),
    (ALL, "kind", None, "Backups", "must be"),
    (ALL, "metadata", None, "just-a-string", "is not of type 'object'"),
    (ALL, "metadata.name", None, "Not_A_Name", "is not a"),
    (ALL, "metadata.namespace", "team-a", "Team A", "is not a Kubernetes DNS-1123 label"),
    (ALL, "metadata.labels", {"backup": "enabled", "example.org/tier": "gold"}, {"bad key!": "x"}, "is not a label key"),
    (ALL, "metadata.annotations", {"note": "anything goes"}, {"note": 3}, "is not of type 'string'"),
    (ALL, "status", {"phase": "Completed"}, "done", "is not of type 'object'"),
    (("SharedBackupConfig",), "spec", None, [], "is not of type 'object'"),
    (("SharedBackupConfig",), "spec.objectStorage", None, "s3", "is not of type 'object'"),
    (("SharedBackupConfig",), "spec.objectStorage.provider", "Filesystem", "S3", "is not one of"),
    (("SharedBackupConfig",), "spec.objectStorage.bucket", "my-bucket", "", "minimum is 1"),
    (("SharedBackupConfig",), "spec.objectStorage.prefix", "prod/cluster1", "prod cluster", "is not a key prefix"),
    (("SharedBackupConfig",), "spec.objectStorage.config", {"endpoint": "s3.amazonaws.com"}, "endpoint", "is not of type 'object'"),
    (("SharedBackupConfig",), "spec.objectStorage.credentials", None, "secret", "is not of type 'object'"),
    (("SharedBackupConfig",), "spec.objectStorage.credentials.source", "InjectedIdentity", "Vault", "is not one of"),
    (("SharedBackupConfig",), "spec.objectStorage.credentials.secretRef", None, "creds", "is not of type 'object'"),
    (("SharedBackupConfig",), "spec.objectStorage.credentials.secretRef.name", "bucket-creds", "Bucket Creds", "is not a"),
    (("SharedBackupConfig",), "spec.objectStorage.credentials.secretRef.key", "creds", "no/slash", "is not a Secret data key"),
    (("SharedBackupConfig",), "spec.objectStorage.encryption", {"secretRef": {"name": "archive-key"}}, {},
     "give exactly one of secretRef or secretRefs"),
    (("SharedBackupConfig",), "spec.objectStorage.encryption.secretRef", {"name": "k", "key": "aes"}, {"key": "aes"}, "required"),
    (("SharedBackupConfig",), "spec.objectStorage.encryption.secretRef.name", "archive-key", "Archive Key", "is not a"),
    (("SharedBackupConfig",), "spec.objectStorage.encryption.secretRef.key", "key", "a/b", "is not a Secret data key"),
    (("SharedBackupConfig",), "spec.objectStorage.encryption.secretRefs", [{"name": "new-key"}, {"name": "old", "key": "k"}],
     [], "should be non-empty"),
    (("SharedBackupConfig",), "spec.objectStorage.encryption.secretRefs[0]", {"name": "k"}, {"key": "k"}, "required"),
    (("SharedBackupConfig",), "spec.objectStorage.encryption.secretRefs[0].name", "archive-key", "Archive Key", "is not a"),
    (("SharedBackupConfig",), "spec.objectStorage.encryption.secretRefs[0].key", "key", "a/b", "is not a Secret data key"),
    (("SharedBackupConfig",), "spec.objectStorage.encryption.allowUnauthenticatedBackups", ["b1", "nightly-ctp1"],
     ["b1", "b1"], "non-unique elements"),
    (("SharedBackupConfig",), "spec.objectStorage.encryption.allowUnauthenticatedBackups[0]", "b1", "B_1", "is not a"),
    (("ControlPlane",), "metadata.name", None, "a.dotted.name", "is not a Kubernetes DNS-1123 label"),
    (("ControlPlane",), "spec", None, "x", "is not of type 'object'"),
    (("ControlPlane",), "spec.class", "default", 3, "is not of type 'string'"),
    (("ControlPlane",), "spec.crossplane", {}, "x", "is not of type 'object'"),
    (("ControlPlane",), "spec.crossplane.autoUpgrade", {}, "x", "is not of type 'object'"),
    (("ControlPlane",), "spec.crossplane.autoUpgrade.channel", "Rapid", "Nightly", "is not one of"),
    (("ControlPlane",), "spec.crossplane.state", "Paused", "Stopped", "is not one of"),
    (("ControlPlane",), "spec.allowInsecureKubeconfig", True, "yes", "is not of type 'boolean'"),
    (("ControlPlane",), "spec.crossplane.version", "1.20.0", "v1.20.0", "is not a Crossplane version"),
    (("ControlPlane",), "spec.hostNamespace", {"name": "host-ns"}, {}, "required field is missing"),
    (("ControlPlane",), "spec.hostNamespace.name", "host-ns", "Host", "is not a"),
    (("ControlPlane",), "spec.hostNamespace.deletionPolicy", "Orphan", "Keep", "is not one of"),
    (("ControlPlane",), "spec.restore", {"source": {"kind": "Backup", "name": "b"}}, {}, "required field is missing"),
    (("ControlPlane",), "spec.restore.source", {"kind": "BackupSchedule", "name": "s"}, {"name": "b"}, "required field is missing"),
    (("ControlPlane",), "spec.restore.source.apiGroup", "spaces.upbound.io", "other.io", "must be"),
    (("ControlPlane",), "spec.restore.source.kind", "Backup", "SharedBackup", "is not one of"),
    (("ControlPlane",), "spec.restore.source.name", "restore-me", "Restore_Me", "is not a"),
    (("ControlPlane",), "spec.restore.finishedAt", "2026-11-25T10:00:00Z", "yesterday", "RFC 3339"),
    (("ControlPlane",), "spec.writeConnectionSecretToRef", {"name": "kc"}, {"namespace": "default"}, "required field is missing"),
    (("ControlPlane",), "spec.writeConnectionSecretToRef.name", "kubeconfig-ctp", "KC", "is not a"),
    (("ControlPlane",), "spec.writeConnectionSecretToRef.namespace", "default", "Default", "is not a"),
    (BACKUPISH, "spec", None, "x", "is not of type 'object'"),
    (BACKUPISH, "spec.configRef", None, {"name": "c"}, "required field is missing"),
    (BACKUPISH, "spec.configRef.apiGroup", "spaces.upbound.io", "x.io", "must be"),
    (BACKUPISH, "spec.configRef.kind", "SharedBackupConfig", "Config", "must be"),
    (BACKUPISH, "spec.configRef.name", "default", "", "is not a"),
    (("Backup", "BackupSchedule"), "spec.controlPlane", "my-awesome-ctp", "My CTP", "is not a"),
    (BACKUPISH, "spec.deletionPolicy", "Delete", "Destroy", "'Destroy' is not one of ['Orphan', 'Delete']"),
    (BACKUPISH, "spec.excludedResources", ["xclusters.aws.platformref.upbound.io", "configmaps"], ["XCluster"],
     "is not a lowercase 'resource.group' name"),
    (BACKUPISH, "spec.ttl", "720h", "1d", "is not a Go duration"),
    (SCHEDULED, "spec.schedule", "0 */6 * * *", "@every 10s", "at least 1m"),
    (SCHEDULED, "spec.suspend", True, "yes", "is not of type 'boolean'"),
    (("BackupSchedule",) + SHARED, "spec.useOwnerReferencesInBackup", True, "true", "is not of type 'boolean'"),
    (SHARED, "spec.controlPlaneSelector", {"names": ["ctp1"]}, "ctp1", "is not of type 'object'"),
    (SHARED, "spec.controlPlaneSelector.labelSelectors", [{"matchLabels": {"a": "b"}}], {"a": "b"}, "is not of type 'array'"),
    (SHARED, "spec.controlPlaneSelector.labelSelectors[0].matchLabels", {"env": "prod"}, {"env": ["prod"]}, "is not of type 'string'"),
    (SHARED, "spec.controlPlaneSelector.labelSelectors[0].matchExpressions", [{"key": "env", "operator": "Exists"}],
     {"key": "env"}, "is not of type 'array'"),
    (SHARED, "spec.controlPlaneSelector.labelSelectors[0].matchExpressions[0].key", "env", "bad key!", "is not a label key"),
    (SHARED, "spec.controlPlaneSelector.labelSelectors[0].matchExpressions[0].operator", "NotIn", "Contains", "is not one of"),
    (SHARED, "spec.controlPlaneSelector.labelSelectors[0].matchExpressions[0].values", ["a", "b"], "a", "is not of type 'array'"),
    (SHARED, "spec.controlPlaneSelector.names", ["ctp1", "ctp2"], ["CTP 1"], "is not a"),
    (("SharedBackup",), "spec.failures", {}, "50%", "is not of type 'object'"),
    (("SharedBackup",), "spec.failures.controlPlanes", "50%", "50", "must be integer or string"),
]


def _parse(path: str) -> list:
    parts: list = []
    for token in path.split("."):
        while "[" in token:
            name, _, rest = token.partition("[")
            if name:
                parts.append(name)
            index, _, token = rest.partition("]")
            parts.append(int(index))
        if token:
            parts.append(token)
    return parts


def _with(kind: str, path: str, value):
    doc = copy.deepcopy(BASE[kind])
    parts = _parse(path)
    target = doc
    for i, part in enumerate(parts[:-1]):
        nxt = parts[i + 1]
        if isinstance(part, int):
            while len(target) <= part:
                target.append({})
            target = target[part]
        else:
            if part not in target or not isinstance(target[part], dict | list):
                target[part] = [] if isinstance(nxt, int) else {}
            target = target[part]
    last = parts[-1]
    if isinstance(last, int):
        while len(target) <= last:
            target.append(None)
    if kind == "ControlPlane" and path.startswith("spec.restore.source.") and "restore" not in doc["spec"]:
        pass
    target[last] = value
    _complete(doc, parts)
    return doc


def _complete(doc: dict, parts: list) -> None:
    """Fill the required siblings a nested value needs, so only the field under test can fail."""
    spec = doc.get("spec") or {}
    if parts[:3] == ["spec", "restore", "source"] and len(parts) > 3:
        spec["restore"]["source"].setdefault("kind", "Backup")
        spec["restore"]["source"].setdefault("name", "b")
    if parts[:2] == ["spec", "restore"] and len(parts) > 2 and parts[2] != "source":
        spec["restore"].setdefault("source", {"kind": "Backup", "name": "b"})
    if parts[:3] == ["spec", "objectStorage", "encryption"] and len(parts) > 3:
        encryption = spec["objectStorage"]["encryption"]
        if parts[3] == "secretRef" and len(parts) > 4:
            encryption["secretRef"].setdefault("name", "k")
        elif parts[3] == "secretRefs" and len(parts) > 5:
            encryption["secretRefs"][0].setdefault("name", "k")
        elif parts[3] == "allowUnauthenticatedBackups":
            encryption.setdefault("secretRef", {"name": "k"})
    if parts[:2] == ["spec", "hostNamespace"] and len(parts) > 2:
        spec["hostNamespace"].setdefault("name", "host-ns")
    if parts[:2] == ["spec", "writeConnectionSecretToRef"] and len(parts) > 2:
        spec["writeConnectionSecretToRef"].setdefault("name", "kc")
    if "matchExpressions" in parts and len(parts) > parts.index("matchExpressions") + 2:
        expr = spec["controlPlaneSelector"]["labelSelectors"][0]["matchExpressions"][0]
        expr.setdefault("key", "env")
        expr.setdefault("operator", "In")


CASES = [(kind, path, valid, invalid, message) for kinds, path, valid, invalid, message in FIELDS for kind in kinds]


@pytest.mark.parametrize("kind, path, valid, invalid, message", CASES, ids=[f"{c[0]}:{c[1]}" for c in CASES])
def test_each_field_valid_and_invalid(kind, path, valid, invalid, message):
    assert validate(kind, BASE[kind]) == [], "the base object must be valid"
    if valid is not None:
        assert validate(kind, _with(kind, path, valid)) == []
    problems = validate(kind, _with(kind, path, invalid))
    assert problems, f"{kind} {path}={invalid!r} should be invalid"
    assert any(message in p.message for p in problems), [(field_name(p.path), p.message) for p in problems]


@pytest.mark.parametrize("kind", ALL)
def test_unknown_fields_are_errors_with_the_nearest_name(kind):
    doc = copy.deepcopy(BASE[kind])
    doc["spec"]["deletionPolicyy" if kind in BACKUPISH else "objectStorag" if kind == "SharedBackupConfig" else "restor"] = "x"
    (problem,) = [p for p in validate(kind, doc) if "unknown field" in p.message]
    assert "did you mean" in problem.message


@pytest.mark.parametrize("kind", ALL)
def test_required_fields_are_named(kind):
    doc = copy.deepcopy(BASE[kind])
    del doc["metadata"]["name"]
    assert any(field_name(p.path) == "metadata.name" and "required" in p.message for p in validate(kind, doc))


def _fields(schema: dict, defs: dict, prefix: str = "") -> set[str]:
    """Every property path a schema declares (through $refs), arrays written as [0]."""
    if "$ref" in schema:
        ref = schema["$ref"].split("#/$defs/")[-1]
        schema = {**defs[ref], **{k: v for k, v in schema.items() if k != "$ref"}}
    for key in ("allOf",):
        for sub in schema.get(key, []):
            return _fields({**sub, **{k: v for k, v in schema.items() if k != key}}, defs, prefix)
    out = set()
    for name, sub in (schema.get("properties") or {}).items():
        path = f"{prefix}.{name}" if prefix else name
        out.add(path)
        out |= _fields(sub, defs, path)
    items = schema.get("items")
    if isinstance(items, dict) and ("properties" in items or "$ref" in items):
        out |= _fields(items, defs, f"{prefix}[0]")
    return out


@pytest.mark.parametrize("kind", ALL)
def test_every_schema_field_has_a_case(kind):
    defs = json.loads((SCHEMA_DIR / "definitions.json").read_text())["$defs"]
    schema = json.loads((SCHEMA_DIR / SCHEMA_FILES[kind]).read_text())
    declared = {f for f in _fields(schema, defs) if not f.startswith("status.")}
    covered = {path for kinds, path, *_ in FIELDS if kind in kinds}
    assert declared - covered == set(), f"fields of {kind} without a valid/invalid case"


#: string fields whose schema ends a pattern with `$`, each with a valid value
ANCHORED = [(kind, path, valid) for kind, path, valid, _, _ in CASES
            if isinstance(valid, str) and path not in ("metadata.annotations",)]


@pytest.mark.parametrize("kind, path, valid", ANCHORED, ids=[f"{c[0]}:{c[1]}" for c in ANCHORED])
@pytest.mark.parametrize("tail", ["\n", "\r\n"], ids=["LF", "CRLF"])
def test_a_trailing_newline_is_not_the_end_of_a_value(kind, path, valid, tail):
    """JSON Schema's and Kubernetes' `$` is the end of the text (ECMA-262, Go's regexp); Python's also
    matched before a final newline, so 'ctp\\n' passed as a name. Both validators refuse it now."""
    from ctpbackup.desired.schemas import is_valid, validator_for

    doc = _with(kind, path, valid + tail)
    reference = list(validator_for(kind).iter_errors(doc))
    patterned = [e for e in reference if e.validator == "pattern" or "pattern" in str(e.schema)]
    if not patterned:  # a field without a pattern (an enum, a free string) keeps its own rule
        return
    assert not is_valid(kind, doc)
    assert validate(kind, doc), f"{kind} {path}={valid + tail!r} must be invalid"


@pytest.mark.parametrize("pattern, text, matches", [
    ("^[a-z]+$", "ctp", True), ("^[a-z]+$", "ctp\n", False), ("^a$|^b$", "b\n", False),
    ("^[$]+$", "$$", True), (r"^\$$", "$", True), (r"^\$$", "$\n", False), ("^x(y|$)", "x\n", False),
])
def test_end_anchored_ends_dollar_at_the_end_of_the_text(pattern, text, matches):
    from kubevalidation.regex import end_anchored

    assert (end_anchored(pattern).search(text) is not None) is matches


def test_a_name_with_a_newline_is_one_escaped_line_naming_the_object(tmp_path):
    from ctpbackup.desired.manifests import ManifestFile, load_desired_state

    text = b'apiVersion: spaces.upbound.io/v1beta1\nkind: ControlPlane\nmetadata:\n  name: "ctp\\n\\u001b[31m"\n'
    problems = [str(p) for p in load_desired_state([ManifestFile("cps.yaml", text)], "f" * 40).errors]
    assert problems and all("\n" not in p and "\x1b" not in p for p in problems)
    assert "cps.yaml:4: ControlPlane default/ctp\\n\\x1b[31m: metadata.name: 'ctp\\n\\x1b[31m' is not a Kubernetes DNS-1123 label" in problems
