"""Offline verification of archives (issue 21): each known-bad shape is found with its own reason, in
several members of its family; a good archive verifies. Archives are written with the product's own
writer (or, for what an older release wrote, member by member) into a real filesystem bucket and
read back from it."""

from __future__ import annotations

import hashlib
import io
import json

import pytest

from ctpbackup.engines.archive import METADATA, UIDS, ArchiveWriter, object_path
from ctpbackup.engines.encryption import Keyring
from ctpbackup.engines.verify import (
    COUNTS,
    CRD_MISSING,
    DECRYPTION,
    INTEGRITY,
    INVALID,
    KEY_MISSING,
    MISMATCH,
    NAMESPACE_MISSING,
    OWNER_MISSING,
    REJECTED,
    UNSTORABLE_NAME,
    VERIFIED,
    VERSION_NOT_SERVED,
    Expected,
    verify_archive,
)
from ctpbackup.storage.filesystem import FilesystemBucket
from kubeemu import crossplane

CRD = "customresourcedefinitions.apiextensions.k8s.io"
XRD = "compositeresourcedefinitions.apiextensions.crossplane.io"
WIDGETS = "widgets.example.org"
KEY = b"k" * 32


def widget_crd() -> dict:
    """A namespaced CRD served at v1 (with a CEL rule) and v2 (not served)."""
    schema = {"type": "object", "properties": {"spec": {
        "type": "object", "required": ["replicas"],
        "properties": {"replicas": {"type": "integer", "minimum": 0}, "maxReplicas": {"type": "integer"}},
        "x-kubernetes-validations": [{"rule": "self.replicas <= self.maxReplicas",
                                      "message": "replicas must not exceed maxReplicas"}]}}}
    return {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": WIDGETS},
            "spec": {"group": "example.org", "scope": "Namespaced",
                     "names": {"kind": "Widget", "plural": "widgets", "singular": "widget", "listKind": "WidgetList"},
                     "versions": [{"name": "v1", "served": True, "storage": True, "schema": {"openAPIV3Schema": schema}},
                                  {"name": "v2", "served": False, "storage": False,
                                   "schema": {"openAPIV3Schema": schema}}]}}


def xrd_crd() -> dict:
    crd = crossplane.xrd_crd()
    crd["metadata"] = {"name": XRD}
    return crd


def widget(name: str, replicas: int = 1, maximum: int = 3, namespace: str = "team-a", version: str = "v1",
           owners: list | None = None) -> dict:
    meta: dict = {"name": name, "namespace": namespace}
    if owners:
        meta["ownerReferences"] = owners
    return {"apiVersion": f"example.org/{version}", "kind": "Widget", "metadata": meta,
            "spec": {"replicas": replicas, "maxReplicas": maximum}}


def xrd(name: str, version: str = "v2", **spec) -> dict:
    return {"apiVersion": f"apiextensions.crossplane.io/{version}", "kind": "CompositeResourceDefinition",
            "metadata": {"name": name},
            "spec": {"group": name.split(".", 1)[1], "names": {"kind": "XNet", "plural": name.split(".")[0]},
                     "versions": [{"name": "v1", "served": True, "referenceable": True}], **spec}}


def namespace(name: str) -> dict:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}


def config_map(name: str, ns: str = "team-a", owners: list | None = None) -> dict:
    meta: dict = {"name": name, "namespace": ns}
    if owners:
        meta["ownerReferences"] = owners
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": {"a": "b"}}


def owner(kind: str, name: str, uid: str, api_version: str = "example.org/v1") -> dict:
    return {"apiVersion": api_version, "kind": kind, "name": name, "uid": uid, "controller": True}


def resource_of(obj: dict) -> str:
    group = obj["apiVersion"].rpartition("/")[0]
    plural = {"Widget": "widgets", "CustomResourceDefinition": "customresourcedefinitions",
              "CompositeResourceDefinition": "compositeresourcedefinitions", "Namespace": "namespaces",
              "ConfigMap": "configmaps", "Secret": "secrets"}[obj["kind"]]
    return f"{plural}.{group}" if group else plural


GOOD = [xrd_crd(), widget_crd(), namespace("team-a"), xrd("xnets.example.org"),
        widget("w1", owners=None), config_map("settings", owners=[owner("Widget", "w1", "uid-w1")]),
        config_map("kube-root-ca.crt", "default"),  # made by every control plane: skipped by policy
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "default", "labels": {"team": "a"}}}]


def build(objects: list[dict], *, raw: list[tuple[str, str, dict]] = (), uids: dict[str, str] | None = None,
          counts: dict[str, int] | None = None, key: bytes | None = None, backup: str = "b1",
          excluded: tuple[str, ...] = ()) -> bytes:
    """An archive as the backup engine writes it; `raw`: (resource, member path, object) written as
    an older release did, path as given."""
    out = io.BytesIO()
    writer = ArchiveWriter(out, encryption_key=key,
                           encryption_context=f"ctpbackup/v1 default/ctp1/{backup}".encode())
    counted: dict[str, int] = {}
    uid_lines = []
    for obj in objects:
        resource = resource_of(obj)
        path = object_path(resource, obj["metadata"].get("namespace"), obj["metadata"]["name"])
        writer.add_json(path, obj)
        counted[resource] = counted.get(resource, 0) + 1
        uid = (uids or {}).get(obj["metadata"]["name"], f"uid-{obj['metadata']['name']}")
        uid_lines.append(json.dumps({"path": path, "uid": uid}))
    for resource, path, obj in raw:
        writer.add_bytes(path, json.dumps(obj).encode())
        counted[resource] = counted.get(resource, 0) + 1
    writer.add_bytes(UIDS, ("\n".join(uid_lines) + "\n").encode())
    counted = counts if counts is not None else counted
    writer.add_json(METADATA, {"formatVersion": 1, "controlPlane": {"namespace": "default", "name": "ctp1"},
                               "backup": {"namespace": "default", "name": backup}, "counts": counted,
                               "totalObjects": sum(counted.values()), "excludedResources": list(excluded),
                               "excluded": {k: {"reason": "excludedResources"} for k in excluded}})
    writer.close()
    return out.getvalue()


@pytest.fixture
def bucket(tmp_path):
    return FilesystemBucket(tmp_path / "bucket")


def verify(bucket, data: bytes, *, keys=None, encrypted: bool = False, counts: dict | None = None, size=None,
           sha256=None):
    bucket.put("a/archive.tar.gz", data)
    expected = Expected("default", "ctp1", "b1", len(data) if size is None else size,
                        sha256 or hashlib.sha256(data).hexdigest(), counts or {}, encrypted)
    with bucket.open_read("a/archive.tar.gz") as stream:
        return verify_archive(stream, expected, keys)


def test_a_good_archive_is_verified_with_its_summary(bucket):
    result = verify(bucket, build(GOOD))
    assert (result.verified, result.reason, result.failures) == (True, VERIFIED, {})
    assert (result.objects, result.created, result.skipped, result.merged, result.failed) == (8, 6, 1, 1, 0)
    assert result.message() == "8 objects: 6 would be created, 1 skipped by policy, 1 merged, 0 would fail"


def test_a_good_encrypted_archive_is_verified_with_its_key_only(bucket):
    data = build(GOOD, key=KEY)
    assert verify(bucket, data, keys=Keyring.of([KEY]), encrypted=True).verified
    wrong = verify(bucket, data, keys=Keyring.of([b"w" * 32]), encrypted=True)
    assert (wrong.verified, wrong.reason) == (False, KEY_MISSING)
    none = verify(bucket, data, encrypted=True)
    assert (none.reason, none.examples) == (KEY_MISSING, [
        "EncryptionKeyMissing: the archive is encrypted and the config names no key"])
    # another backup's archive does not decrypt in this one's place
    other = verify(bucket, build(GOOD, key=KEY, backup="b2"), keys=Keyring.of([KEY]), encrypted=True)
    assert (other.reason, other.failed) == (DECRYPTION, 0)


CLAIMS = "Claims aren't supported in apiextensions.crossplane.io/v2"


@pytest.mark.parametrize(("bad", "reason", "words"), [
    # a v2 XRD with claimNames / connectionSecretKeys: refused by the v2 CEL rules of the archived XRD CRD
    (xrd("xdbs.example.org", claimNames={"kind": "DB", "plural": "dbs"}), INVALID, CLAIMS),
    (xrd("xqs.example.org", connectionSecretKeys=["url"]), INVALID,
     "XR connection secrets aren't supported in apiextensions.crossplane.io/v2"),
    (xrd("xvs.example.org", "v1", scope="Namespaced", claimNames={"kind": "V", "plural": "vs"}), INVALID,
     "Only LegacyCluster composite resources can offer claims"),
    # a custom resource violating its CRD's CEL rule, or its schema, at the version it was archived at
    (widget("w9", replicas=5, maximum=2), INVALID, "replicas must not exceed maxReplicas"),
    (widget("w8", replicas=-1), INVALID, "spec.replicas: Invalid value: -1: spec.replicas in body should be "
                                         "greater than or equal to 0"),
    (widget("w7", version="v2"), VERSION_NOT_SERVED, "archived at 'example.org/v2', which its CRD does not serve "
                                                      "(it serves example.org/v1)"),
    # built-ins by their own rules
    (config_map("Bad_Name"), INVALID, "metadata.name: Invalid value: \"Bad_Name\""),
    # ownerReferences to nothing, to an archived object of another name, across namespaces
    (config_map("orphan", owners=[owner("Widget", "gone", "uid-gone")]), OWNER_MISSING,
     "owner Widget 'gone' (uid uid-gone) is not in the archive and no control plane makes it"),
    (config_map("liar", owners=[owner("Widget", "w2", "uid-w1")]), OWNER_MISSING,
     "names archived object widgets.example.org team-a/w1, which is not that owner"),
    (config_map("far", ns="default", owners=[owner("Widget", "w1", "uid-w1")]), OWNER_MISSING,
     "names archived object widgets.example.org team-a/w1, which is not that owner"),
    # a namespaced object whose namespace is not archived (nor made by every control plane)
    (config_map("lost", ns="team-z"), NAMESPACE_MISSING, "namespace 'team-z' of configmaps team-z/lost"),
])
def test_each_bad_shape_fails_with_its_reason(bucket, bad, reason, words):
    result = verify(bucket, build([*GOOD, bad]))
    assert (result.verified, result.reason, result.failures, result.failed) == (False, reason, {reason: 1}, 1)
    assert result.objects == len(GOOD) + 1 and result.complete
    assert len(result.examples) == 1 and words in result.examples[0], result.examples
    assert result.created + result.skipped + result.merged == len(GOOD)


@pytest.mark.parametrize("crd_left_out", [WIDGETS, XRD])
def test_a_custom_resource_without_its_crd_in_the_archive(bucket, crd_left_out):
    objects = [o for o in GOOD if o["metadata"]["name"] != crd_left_out]
    result = verify(bucket, build(objects))
    missing = [o for o in objects if resource_of(o) == crd_left_out]
    assert (result.reason, result.failures) == (CRD_MISSING, {CRD_MISSING: len(missing)})
    assert result.examples[0].endswith(f"its CustomResourceDefinition {crd_left_out} is not in the archive")


@pytest.mark.parametrize("path", [
    "resources/clusterroles.rbac.authorization.k8s.io/cluster/platform team.json",  # a space, raw
    "resources/configmaps/namespaces/team-a/caf\u00e9.json",  # unicode, raw
    "resources/configmaps/namespaces/team-a/%41pp.json",  # a '%' spelling the format does not write
    "resources/configmaps/namespaces/team-a/a/b.json",  # a '/' in the name
])
def test_a_name_an_older_release_wrote_raw(bucket, path):
    resource = path.split("/")[1]
    obj = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": path.rsplit("/", 1)[1][:-5]}}
    result = verify(bucket, build(GOOD, raw=[(resource, path, obj)]))
    assert (result.reason, result.failures, result.failed) == (UNSTORABLE_NAME, {UNSTORABLE_NAME: 1}, 1)
    assert result.examples[0].startswith(f"UnstorableName: {path!r}: a member name the archive format cannot hold")
    assert result.examples[0].endswith("a restore refuses the whole archive")


def test_every_reason_of_one_archive_is_counted(bucket):
    objects = [o for o in GOOD if o["metadata"]["name"] != WIDGETS] + [
        xrd("xdbs.example.org", claimNames={"kind": "DB", "plural": "dbs"}),
        config_map("orphan", owners=[owner("Widget", "gone", "uid-gone")])]
    result = verify(bucket, build(objects, raw=[("configmaps", "resources/configmaps/namespaces/team-a/x y.json",
                                                 config_map("x y"))]))
    assert result.failures == {CRD_MISSING: 1, INVALID: 1, OWNER_MISSING: 1, UNSTORABLE_NAME: 1}
    assert result.reason == UNSTORABLE_NAME  # the most severe: a restore refuses the whole archive
    assert result.failed == 4
    assert result.message().startswith(
        f"{len(objects) + 1} objects: {len(objects) - 5} would be created, 1 skipped by policy, 1 merged, 4 would fail; "
        "UnstorableName (1), CRDMissing (1), ObjectInvalid (1), OwnerMissing (1); first: ")


def test_counts_must_match_metadata_and_the_index_record(bucket):
    data = build(GOOD, counts={"configmaps": 9})
    result = verify(bucket, data)
    assert result.reason == COUNTS and result.failures == {COUNTS: 2}
    assert result.examples[0].startswith("CountsMismatch: metadata.json counts compositeresourcedefinitions")
    good = build(GOOD)
    recorded = verify(bucket, good, counts={"configmaps": 2, "namespaces": 1})
    assert recorded.failures == {COUNTS: 1}
    assert "the index record counts" in recorded.examples[0] and "namespaces: 1 recorded, 2 archived" in recorded.examples[0]


def test_integrity_failures_are_named_as_such(bucket):
    data = build(GOOD)
    flipped = bytearray(data)
    flipped[len(data) // 2] ^= 1
    result = verify(bucket, bytes(flipped), sha256=hashlib.sha256(data).hexdigest())
    assert result.reason == INTEGRITY and not result.verified
    cut = verify(bucket, data[: len(data) // 2], size=len(data), sha256=hashlib.sha256(data).hexdigest())
    assert cut.reason == INTEGRITY and not cut.complete
    longer = verify(bucket, data + b"x", size=len(data), sha256=hashlib.sha256(data).hexdigest())
    assert longer.reason == INTEGRITY
    assert f"the archive is longer than the {len(data)} bytes the index recorded" in " ".join(longer.examples)


def test_not_an_archive_and_another_backups_archive(bucket):
    result = verify(bucket, b"not gzip at all")
    assert (result.reason, result.complete) == (REJECTED, False)
    # metadata.json naming another backup
    out = io.BytesIO()
    writer = ArchiveWriter(out)
    writer.add_json(METADATA, {"formatVersion": 1, "controlPlane": {"namespace": "default", "name": "ctp9"},
                               "backup": {"namespace": "default", "name": "b1"}, "counts": {}, "totalObjects": 0})
    writer.close()
    mismatch = verify(bucket, out.getvalue())
    assert (mismatch.reason, mismatch.examples) == (MISMATCH, [
        "ArchiveMismatch: the archive says it is Backup b1 of control plane default/ctp9, not b1 of default/ctp1"])


def test_owners_the_control_plane_makes_or_recreates_are_not_dangling(bucket):
    from ctpbackup.engines.backup import SKIPPED_TYPES
    from ctpbackup.engines.verify import RECREATED_KINDS

    assert set(RECREATED_KINDS) == set(SKIPPED_TYPES)
    owned = [config_map("by-pod", owners=[owner("Pod", "p-1", "uid-p", "v1")]),
             config_map("by-rs", owners=[owner("ReplicaSet", "rs-1", "uid-rs", "apps/v1")]),
             config_map("by-root", "default", owners=[owner("ServiceAccount", "default", "uid-sa", "v1")]),
             config_map("by-role", owners=[owner("ClusterRole", "system:aggregate-to-edit", "uid-cr",
                                                 "rbac.authorization.k8s.io/v1")])]
    result = verify(bucket, build([*GOOD, *owned]))
    assert (result.verified, result.created) == (True, 6 + len(owned))
    # ... but a ServiceAccount the control plane does not make is not
    lone = verify(bucket, build([*GOOD, config_map("x", owners=[owner("ServiceAccount", "robot", "uid-r", "v1")])]))
    assert lone.failures == {OWNER_MISSING: 1}


def test_a_refused_secret_never_shows_its_values(bucket):
    secret = {"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
              "metadata": {"name": "tls", "namespace": "team-a", "labels": {"x": "NOLEAK-label-value-!"}},
              "data": {"tls.crt": "Tk9MRUFLLWNlcnQ="}}
    result = verify(bucket, build([*GOOD, secret]))
    assert result.failures == {INVALID: 1}
    assert result.examples == ["ObjectInvalid: secrets team-a/tls: refused (metadata.labels: FieldValueInvalid; "
                               "data[tls.key]: FieldValueRequired)"]
    assert "NOLEAK" not in json.dumps(result.to_dict())
    bad64 = verify(bucket, build([*GOOD, {**secret, "metadata": {"name": "b64", "namespace": "team-a"},
                                          "data": {"tls.crt": "NOLEAK!!", "tls.key": "eA=="}}]))
    assert bad64.examples == ['ObjectInvalid: secrets team-a/b64: Secret in version "v1" cannot be handled as a '
                              'Secret: illegal base64 data at input byte 6']


@pytest.mark.parametrize("archived_crds", [True, False])
def test_owners_of_excluded_types_fail_nothing(bucket, archived_crds):
    """A SharedBackup excluding XRs (the demo's): their managed resources' ownerReferences are dropped
    by a restore, as asked; counted apart, not failures. Found by the archived CRD, else by the kind."""
    objects = [o for o in GOOD if archived_crds or o["metadata"]["name"] != XRD]
    objects = [o for o in objects if archived_crds or resource_of(o) != XRD]
    owned = [config_map("by-xr", owners=[owner("CompositeResourceDefinition", "gone", "uid-gone",
                                                "apiextensions.crossplane.io/v2")])]
    result = verify(bucket, build([*objects, *owned], excluded=(XRD,)))
    assert (result.verified, result.owners_excluded) == (True, 1)
    assert result.to_dict()["ownerReferencesToExcludedTypes"] == 1
    kept = verify(bucket, build([*objects, *owned]))
    assert kept.failures == {OWNER_MISSING: 1}
