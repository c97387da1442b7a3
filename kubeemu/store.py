"""The API server's state and semantics, without HTTP: what a backup or restore can observe.

Objects are JSON dicts, never mutated once stored (an update stores a new dict), so a list page or a
watch event can hand them out without copying. One lock orders every write; `resourceVersion` is a
single global counter, as etcd's revision is.
"""

from __future__ import annotations

import base64
import bisect
import contextlib
import copy
import json
import secrets
import threading
import time
import uuid
from collections import OrderedDict, deque
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

from kubeemu import admission, bootstrap, patches
from kubeemu.resources import (
    BUILTINS,
    INITIAL_NAMESPACES,
    Resource,
    by_priority,
    from_crd,
    storage_version_of,
)
from kubeemu.selectors import Predicate
from kubeemu.services import Refused, ServiceAllocator

CRD_KEY = ("apiextensions.k8s.io", "customresourcedefinitions")
NS_KEY = ("", "namespaces")
SVC_KEY = ("", "services")
#: pkg/controller/certificates/rootcacertpublisher/publisher.go
ROOT_CA_DESCRIPTION = ("Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints "
                       "such as the internal service IP or kubernetes.default.svc. No other usage is guaranteed across "
                       "distributions of Kubernetes clusters.")
SNAPSHOT_TTL = 300.0
MAX_SNAPSHOTS = 256
EVENT_HISTORY = 200_000


class ApiError(Exception):
    """An API error answered as a `Status` object."""

    def __init__(self, code: int, reason: str, message: str, details: dict | None = None):
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details or {}

    def status(self) -> dict:
        return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": self.message,
                "reason": self.reason, "details": self.details, "code": self.code}


def invalid(res: Resource, name: str, causes: list[tuple[str, str, str]]) -> ApiError:
    """422 Invalid as apimachinery's `errors.NewInvalid` answers it: causes are (field, value as Go
    prints it, detail); the message is `Kind "name" is invalid: field: Invalid value: v: detail`."""
    texts = [f"{field}: Invalid value: {value}: {detail}" for field, value, detail in causes]
    message = f'{res.kind}{"." + res.group if res.group else ""} "{name}" is invalid: '
    message += texts[0] if len(texts) == 1 else "[" + ", ".join(texts) + "]"
    details = {"name": name, "kind": res.kind,
               "causes": [{"reason": "FieldValueInvalid", "message": f"Invalid value: {value}: {detail}", "field": field}
                          for field, value, detail in causes]}
    if res.group:
        details["group"] = res.group
    return ApiError(422, "Invalid", message, details)


def not_found(res: Resource, name: str) -> ApiError:
    return ApiError(404, "NotFound", f'{res.qualified} "{name}" not found', {"name": name, "group": res.group, "kind": res.plural})


def now_text() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Event:
    rv: int
    type: str  # ADDED | MODIFIED | DELETED
    key: tuple[str, str]
    obj: dict


class _Table:
    """One resource's objects, by `namespace/name`, with keys kept sorted (the order etcd lists in)."""

    def __init__(self) -> None:
        self.objects: dict[str, dict] = {}
        self.keys: list[str] = []

    def put(self, key: str, obj: dict) -> None:
        if key not in self.objects:
            bisect.insort(self.keys, key)
        self.objects[key] = obj

    def remove(self, key: str) -> None:
        if self.objects.pop(key, None) is not None:
            self.keys.pop(bisect.bisect_left(self.keys, key))

    def ordered(self, prefix: str = "") -> Iterator[dict]:
        start = bisect.bisect_left(self.keys, prefix) if prefix else 0
        for key in self.keys[start:]:
            if prefix and not key.startswith(prefix):
                break
            yield self.objects[key]


def _key(namespace: str | None, name: str) -> str:
    return f"{namespace or ''}/{name}"


class Store:
    def __init__(self, establish_delay: float = 0.15, gc_delay: float = 0.05, root_ca: str = ""):
        #: the PEM bundle every namespace's `kube-root-ca.crt` ConfigMap carries (the server's CA)
        self.root_ca = root_ca or "-----BEGIN CERTIFICATE-----\nEMULATED\n-----END CERTIFICATE-----\n"
        self.lock = threading.RLock()
        self.changed = threading.Condition(self.lock)
        self.rv = 0
        self.establish_delay = establish_delay
        self.gc_delay = gc_delay
        self.served: dict[tuple[str, str, str], Resource] = {}  # (group, version, plural)
        self.tables: dict[tuple[str, str], _Table] = {}
        self.uids: dict[str, tuple[tuple[str, str], str]] = {}  # uid -> (resource key, object key)
        self.events: deque[Event] = deque(maxlen=EVENT_HISTORY)
        self.snapshots: OrderedDict[str, tuple[float, list[dict], int]] = OrderedDict()
        self.closed = False
        self.services = ServiceAllocator()
        self.admission = admission.Admission()
        for res in BUILTINS:
            self._serve(res)
        for name in INITIAL_NAMESPACES:
            self.create(self.resource("", "v1", "namespaces"), None, {"metadata": {"name": name}}, "kube-apiserver")
        self._bootstrap()

    def _bootstrap(self) -> None:
        """What kube-apiserver's bootstrap controllers create in a new control plane (see `bootstrap`)."""
        def put(group: str, plural: str, body: dict, namespace: str | None = None, status: dict | None = None) -> None:
            res = self.resource(group, "v1", plural)
            made = self.create(res, namespace, body, "kube-apiserver")
            if status is not None:
                self.update(res, namespace, made["metadata"]["name"], {"status": status}, "kube-apiserver",
                            subresource="status", require_rv=False)

        for body in bootstrap.cluster_roles():
            put(bootstrap.RBAC, "clusterroles", body)
        for body in bootstrap.cluster_role_bindings():
            put(bootstrap.RBAC, "clusterrolebindings", body)
        for namespace, body in bootstrap.roles():
            put(bootstrap.RBAC, "roles", body, namespace)
        for namespace, body in bootstrap.role_bindings():
            put(bootstrap.RBAC, "rolebindings", body, namespace)
        for body in bootstrap.priority_classes():
            put("scheduling.k8s.io", "priorityclasses", body)
        for body in bootstrap.priority_level_configurations():
            put("flowcontrol.apiserver.k8s.io", "prioritylevelconfigurations", body)
        for body in bootstrap.flow_schemas():
            put("flowcontrol.apiserver.k8s.io", "flowschemas", body)
        group_versions = sorted({(r.group, r.version) for r in BUILTINS}, key=lambda gv: (gv[0], gv[1]))
        for body in bootstrap.api_services(group_versions):
            put("apiregistration.k8s.io", "apiservices", body, status=body.pop("status"))
        put("", "services", bootstrap.kubernetes_service(self.services.first_ip()), "default")
        endpoints, endpoint_slice = bootstrap.kubernetes_endpoints()
        put("", "endpoints", endpoints, "default")
        put("discovery.k8s.io", "endpointslices", endpoint_slice, "default")
        put("coordination.k8s.io", "leases", bootstrap.apiserver_lease(uuid.uuid4().hex[:26]), "kube-system")

    # -- resources ---------------------------------------------------------------------------------

    def _serve(self, res: Resource) -> None:
        self.served[(res.group, res.version, res.plural)] = res
        self.tables.setdefault(res.key, _Table())

    def resource(self, group: str, version: str, plural: str) -> Resource | None:
        return self.served.get((group, version, plural))

    def discovery(self) -> dict[str, dict[str, list[Resource]]]:
        """group -> version -> resources (by plural); groups by name, versions highest priority first
        (`resources.version_priority`), as discovery lists them."""
        with self.lock:
            groups: dict[str, dict[str, list[Resource]]] = {}
            for (group, version, _), res in sorted(self.served.items()):
                groups.setdefault(group, {}).setdefault(version, []).append(res)
            return {g: {v: versions[v] for v in by_priority(versions)} for g, versions in groups.items()}

    def crd_of(self, group: str, plural: str) -> dict | None:
        """The stored CustomResourceDefinition serving `plural.group`, or None (a built-in)."""
        with self.lock:
            return self.tables[CRD_KEY].objects.get(_key(None, f"{plural}.{group}"))

    def crd_version_schema(self, group: str, plural: str, version: str) -> dict | None:
        """The `openAPIV3Schema` of one version of a CRD (the version a write came through, e.g.
        `res.version` of the Resource passed to create/update/patch), or None when the resource is
        not a custom resource or that version has no schema. Returned as stored: do not mutate."""
        crd = self.crd_of(group, plural)
        for entry in ((crd or {}).get("spec") or {}).get("versions") or ():
            if entry.get("name") == version:
                return (entry.get("schema") or {}).get("openAPIV3Schema")
        return None

    # -- the scale subresource (autoscaling/v1 Scale) ----------------------------------------------

    def _scale_paths(self, res: Resource) -> tuple[list[str], list[str], list[str] | None]:
        """(spec replicas, status replicas, label selector) paths: the CRD version's `subresources.scale`,
        or spec.replicas/status.replicas/spec.selector for the built-ins."""
        crd = self.crd_of(res.group, res.plural)
        if crd is None:
            return ["spec", "replicas"], ["status", "replicas"], ["spec", "selector"]
        scale = next((v.get("subresources") or {} for v in crd["spec"].get("versions") or ()
                      if v.get("name") == res.version), {}).get("scale") or {}
        split = lambda path: [p for p in (path or "").split(".") if p]  # noqa: E731
        return (split(scale.get("specReplicasPath")), split(scale.get("statusReplicasPath")),
                split(scale.get("labelSelectorPath")) or None)

    def get_scale(self, res: Resource, namespace: str | None, name: str) -> dict:
        """GET .../scale: the object's replicas as an autoscaling/v1 Scale."""
        with self.lock:
            obj = self.get(res, namespace, name)
            spec_path, status_path, selector_path = self._scale_paths(res)
            selector = _at(obj, selector_path) if selector_path else None
            if isinstance(selector, dict):  # a LabelSelector (apps) or a plain map (ReplicationController)
                labels = selector.get("matchLabels", selector if "matchExpressions" not in selector else {})
                selector = ",".join(f"{k}={v}" for k, v in sorted(labels.items()) if isinstance(v, str))
            meta = obj["metadata"]
            status = {"replicas": _at(obj, status_path) or 0}
            if selector:
                status["selector"] = selector
            return {"kind": "Scale", "apiVersion": "autoscaling/v1",
                    "metadata": {k: meta[k] for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
                                 if k in meta},
                    "spec": {"replicas": _at(obj, spec_path) if _at(obj, spec_path) is not None else 1},
                    "status": status}

    def update_scale(self, res: Resource, namespace: str | None, name: str, scale: dict, manager: str,
                     dry_run: bool = False) -> dict:
        """PUT .../scale: `spec.replicas` written into the object (a resourceVersion, when sent, must match)."""
        with self.lock:
            current = self.get(res, namespace, name)
            replicas = (scale.get("spec") or {}).get("replicas") if isinstance(scale, dict) else None
            if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 0:
                raise invalid(_SCALE, name, [("spec.replicas", json.dumps(replicas),
                                              "must be greater than or equal to 0")])
            body = copy.deepcopy(current)
            _set_at(body, self._scale_paths(res)[0], replicas)
            body["metadata"]["resourceVersion"] = (scale.get("metadata") or {}).get("resourceVersion") or \
                current["metadata"]["resourceVersion"]
            updated = self.update(res, namespace, name, body, manager, require_rv=False, dry_run=dry_run)
            if dry_run:
                spec_path, status_path, _ = self._scale_paths(res)
                return {**self.get_scale(res, namespace, name), "spec": {"replicas": _at(updated, spec_path)}}
            return self.get_scale(res, namespace, name)

    def _unique(self) -> list[Resource]:
        """One served Resource per resource key (its storage version's when served)."""
        chosen: dict[tuple[str, str], Resource] = {}
        for res in self.served.values():
            if res.key not in chosen or res.version == res.storage_version:
                chosen[res.key] = res
        return list(chosen.values())

    # -- reads -------------------------------------------------------------------------------------

    def get(self, res: Resource, namespace: str | None, name: str) -> dict:
        with self.lock:
            obj = self.tables[res.key].objects.get(_key(namespace if res.namespaced else None, name))
            if obj is None:
                raise not_found(res, name)
            return _as_version(obj, res)

    def list(self, res: Resource, namespace: str | None, labels: Predicate, fields: Predicate, limit: int = 0,
             token: str | None = None) -> tuple[list[dict], int, str, int]:
        """(items, resourceVersion, continue, remaining). Pages of one listing come from a snapshot
        taken at its first page, so they are consistent however objects change meanwhile."""
        with self.lock:
            if token:
                try:
                    state = json.loads(base64.urlsafe_b64decode(token.encode()))
                    created, items, rv = self.snapshots[state["id"]]
                    offset = int(state["offset"])
                except (ValueError, KeyError, TypeError):
                    raise ApiError(410, "Expired", "The provided continue parameter is too old to display a consistent "
                                                   "list result. You can start a new list without the continue parameter.") from None
                if time.monotonic() - created > SNAPSHOT_TTL:
                    self.snapshots.pop(state["id"], None)
                    raise ApiError(410, "Expired", "The provided continue parameter is too old to display a consistent list result.")
            else:
                prefix = f"{namespace}/" if res.namespaced and namespace else ""
                items = [o for o in self.tables[res.key].ordered(prefix) if labels(o) and fields(o)]
                rv, offset, state = self.rv, 0, {"id": secrets.token_hex(8)}
            end = offset + limit if limit else len(items)
            page = items[offset:end]
            cont, remaining = "", 0
            if end < len(items):
                if not token:
                    self.snapshots[state["id"]] = (time.monotonic(), items, rv)
                    while len(self.snapshots) > MAX_SNAPSHOTS:
                        self.snapshots.popitem(last=False)
                cont = base64.urlsafe_b64encode(json.dumps({"id": state["id"], "offset": end}).encode()).decode()
                remaining = len(items) - end
            elif token:
                self.snapshots.pop(state["id"], None)
            return [_as_version(o, res) for o in page], rv, cont, remaining

    # -- writes ------------------------------------------------------------------------------------

    def _next_rv(self) -> int:
        self.rv += 1
        return self.rv

    def _emit(self, type_: str, res: Resource, obj: dict) -> None:
        self.events.append(Event(int(obj["metadata"]["resourceVersion"]), type_, res.key, obj))
        self.changed.notify_all()

    def _check_namespace(self, res: Resource, namespace: str | None, body: dict) -> str | None:
        if not res.namespaced:
            return None
        meta_ns = (body.get("metadata") or {}).get("namespace")
        if namespace and meta_ns and meta_ns != namespace:
            raise ApiError(400, "BadRequest", "the namespace of the provided object does not match the namespace sent on the request")
        namespace = namespace or meta_ns
        if not namespace:
            raise ApiError(400, "BadRequest", "namespace is required")
        ns_obj = self.tables[NS_KEY].objects.get(_key(None, namespace))
        if ns_obj is None:
            raise ApiError(404, "NotFound", f'namespaces "{namespace}" not found', {"name": namespace, "kind": "namespaces"})
        if ns_obj["metadata"].get("deletionTimestamp"):
            raise ApiError(403, "Forbidden", f'unable to create new content in namespace {namespace} because it is being terminated')
        return namespace

    @contextlib.contextmanager
    def _allocations_kept(self, dry_run: bool) -> Iterator[None]:
        """A dry run's Service allocations are checked (taken IPs and ports refused) but given back:
        kube-apiserver's allocators run in dry-run mode (pkg/registry/core/service/storage/alloc.go)."""
        if not dry_run:
            yield
            return
        allocator = self.services
        saved = (set(allocator.ips), set(allocator.ports), allocator._next_ip, allocator._next_port)
        try:
            yield
        finally:
            allocator.ips, allocator.ports, allocator._next_ip, allocator._next_port = saved

    def create(self, res: Resource, namespace: str | None, body: dict, manager: str, operation: str = "Update",
               field_validation: str = "Warn", warnings: list[str] | None = None, dry_run: bool = False) -> dict:
        """Store a new object. `dry_run` (the request's `dryRun=All`): every check and admission runs and
        the answer is the object that would be stored (uid and creationTimestamp filled in, no
        resourceVersion), but nothing is stored, no resourceVersion is consumed and no controller runs
        (as `DryRunnableStorage.Create` in k8s.io/apiserver: a name already taken is still 409)."""
        with self.lock, self._allocations_kept(dry_run):
            if not isinstance(body, dict):
                raise ApiError(400, "BadRequest", "the body of the request was not a JSON object")
            obj = copy.deepcopy(body)
            meta = obj.setdefault("metadata", {})
            if not isinstance(meta, dict):
                raise ApiError(400, "BadRequest", "metadata must be an object")
            namespace = self._check_namespace(res, namespace, obj)
            if meta.get("resourceVersion"):
                # the real server refuses it from its storage layer, as an internal error
                raise ApiError(500, "InternalError", "resourceVersion should not be set on objects to be created")
            if not meta.get("name"):
                if meta.get("generateName"):
                    meta["name"] = meta["generateName"] + "".join(secrets.choice("bcdfghjklmnpqrstvwxz2456789") for _ in range(5))
                else:
                    raise ApiError(422, "Invalid", f"{res.kind} \"\" is invalid: metadata.name: Required value: name or generateName is required",
                                   {"kind": res.kind, "causes": [{"field": "metadata.name", "reason": "FieldValueRequired"}]})
            name = str(meta["name"])
            table = self.tables[res.key]
            key = _key(namespace, name)
            if key in table.objects:
                raise ApiError(409, "AlreadyExists", f'{res.qualified} "{name}" already exists',
                               {"name": name, "group": res.group, "kind": res.plural})
            if res.namespaced:
                meta["namespace"] = namespace
            else:
                meta.pop("namespace", None)
            obj["apiVersion"], obj["kind"] = res.storage_api_version, res.kind
            for owned in ("uid", "creationTimestamp", "deletionTimestamp", "generation", "selfLink", "managedFields"):
                meta.pop(owned, None)
            meta["uid"] = str(uuid.uuid4())
            meta["creationTimestamp"] = now_text()
            meta["generation"] = 1
            meta["managedFields"] = [_managed(manager, operation, res)]
            if res.has_status:
                obj.pop("status", None)
            obj = self.admission.admit(self, res, obj, None, "", field_validation, warnings)
            meta = obj["metadata"]
            if res.key == NS_KEY:
                obj["spec"] = {"finalizers": ["kubernetes"]}
                obj["status"] = {"phase": "Active"}
                # the NamespaceDefaultLabelName feature (GA since 1.22) labels every namespace with its name
                meta.setdefault("labels", {})["kubernetes.io/metadata.name"] = name
            if res.key == CRD_KEY:
                self._check_crd(obj)
                # as the CRD strategy's PrepareForCreate: the storage version is recorded at once
                stored = [storage_version_of(obj)] if storage_version_of(obj) else []
                obj["status"] = {"conditions": [], "acceptedNames": {"plural": "", "kind": ""}, "storedVersions": stored}
            if res.key == SVC_KEY:
                try:
                    self.services.allocate(obj)
                except Refused as err:
                    raise invalid(res, name, [(err.field, err.value, err.detail)]) from None
            if dry_run:
                meta.pop("resourceVersion", None)
                return _as_version(obj, res)
            meta["resourceVersion"] = str(self._next_rv())
            table.put(key, obj)
            self.uids[meta["uid"]] = (res.key, key)
            self._emit("ADDED", res, obj)
            if res.key == NS_KEY:
                self._populate_namespace(name)
            if res.key == CRD_KEY:
                self._establish_later(name)
            return _as_version(obj, res)

    def _populate_namespace(self, namespace: str) -> None:
        """What the real control plane's controllers add to every new namespace."""
        cm = self.resource("", "v1", "configmaps")
        sa = self.resource("", "v1", "serviceaccounts")
        self.create(cm, namespace, {"metadata": {"name": "kube-root-ca.crt", "annotations": {
            "kubernetes.io/description": ROOT_CA_DESCRIPTION}}, "data": {"ca.crt": self.root_ca}},
            "kube-controller-manager")
        self.create(sa, namespace, {"metadata": {"name": "default"}}, "kube-controller-manager")

    def update(self, res: Resource, namespace: str | None, name: str, body: dict, manager: str,
               subresource: str = "", require_rv: bool = True, operation: str = "Update",
               field_validation: str = "Warn", warnings: list[str] | None = None, dry_run: bool = False) -> dict:
        """Replace an object (or its subresource). `dry_run`: the answer is what would be stored, with
        the current resourceVersion and nothing stored (`DryRunnableStorage.GuaranteedUpdate`)."""
        with self.lock, self._allocations_kept(dry_run):
            table = self.tables[res.key]
            key = _key(namespace if res.namespaced else None, name)
            current = table.objects.get(key)
            if current is None:
                raise not_found(res, name)
            if not isinstance(body, dict):
                raise ApiError(400, "BadRequest", "the body of the request was not a JSON object")
            meta_in = body.get("metadata") or {}
            if meta_in.get("name") not in (None, name):
                raise ApiError(400, "BadRequest", "the name of the object does not match the name on the URL")
            rv = meta_in.get("resourceVersion")
            if not rv and require_rv and res.group not in ("",) and subresource == "":
                raise ApiError(422, "Invalid", f'{res.kind} "{name}" is invalid: metadata.resourceVersion: Invalid value: 0x0: '
                                               "must be specified for an update")
            if rv and rv != current["metadata"]["resourceVersion"]:
                raise ApiError(409, "Conflict", f'Operation cannot be fulfilled on {res.qualified} "{name}": the object has been '
                                                "modified; please apply your changes to the latest version and try again",
                               {"name": name, "group": res.group, "kind": res.plural})
            if subresource == "status":
                new = copy.deepcopy(current)
                new["status"] = copy.deepcopy(body.get("status"))
                if new["status"] is None:
                    new.pop("status")
            elif subresource == "finalize":  # namespaces/finalize: only spec.finalizers changes
                new = copy.deepcopy(current)
                new.setdefault("spec", {})["finalizers"] = copy.deepcopy((body.get("spec") or {}).get("finalizers") or [])
            elif subresource == "approval":  # certificatesigningrequests/approval: only status.conditions changes
                new = copy.deepcopy(current)
                conditions = copy.deepcopy((body.get("status") or {}).get("conditions") or [])
                new.setdefault("status", {})["conditions"] = conditions
            else:
                new = copy.deepcopy(body)
                if res.has_status:
                    if "status" in current:
                        new["status"] = copy.deepcopy(current["status"])
                    else:
                        new.pop("status", None)
                meta = new.setdefault("metadata", {})
                for owned in ("uid", "creationTimestamp", "namespace", "deletionTimestamp", "deletionGracePeriodSeconds"):
                    if owned in current["metadata"]:
                        meta[owned] = current["metadata"][owned]
                    else:
                        meta.pop(owned, None)
                meta["name"] = name
                meta["generation"] = current["metadata"].get("generation", 1)
                if _spec_of(new) != _spec_of(current):
                    meta["generation"] += 1
            new["apiVersion"], new["kind"] = res.storage_api_version, res.kind
            meta = new["metadata"]
            meta["managedFields"] = _record_manager(current["metadata"].get("managedFields") or [], manager, operation, res, subresource)
            new = self.admission.admit(self, res, new, current, subresource, field_validation, warnings)
            meta = new["metadata"]
            if res.key == CRD_KEY and subresource == "":
                self._check_crd(new)
                _record_storage_version(new)
            if res.key == NS_KEY and isinstance(meta.setdefault("labels", {}), dict):
                meta["labels"]["kubernetes.io/metadata.name"] = name
            if res.key == NS_KEY and subresource == "status":
                _check_namespace_phase(res, name, new)
            if res.key == SVC_KEY and subresource == "":
                try:
                    self.services.reallocate(current, new)
                except Refused as err:
                    raise invalid(res, name, [(err.field, err.value, err.detail)]) from None
            if dry_run:
                meta["resourceVersion"] = current["metadata"]["resourceVersion"]
                return _as_version(new, res)
            meta["resourceVersion"] = str(self._next_rv())
            if meta.get("deletionTimestamp") and not meta.get("finalizers"):
                self._remove(res, key, new)
                return _as_version(new, res)
            table.put(key, new)
            self._emit("MODIFIED", res, new)
            if res.key == CRD_KEY and subresource == "":
                self._register_crd(new)
            return _as_version(new, res)

    def patch(self, res: Resource, namespace: str | None, name: str, kind: str, patch: object, manager: str,
              subresource: str = "", field_validation: str = "Warn",
              warnings: list[str] | None = None, dry_run: bool = False) -> dict:
        if subresource == "scale":
            with self.lock:
                current = self.get_scale(res, namespace, name)
                try:
                    new = patches.json_patch(current, patch) if kind == "json" else patches.merge_patch(current, patch)
                except (patches.PatchError, ValueError, TypeError) as err:
                    raise ApiError(422, "Invalid", f"the patch could not be applied: {err}") from None
                new.setdefault("metadata", {})["resourceVersion"] = current["metadata"]["resourceVersion"]
                return self.update_scale(res, namespace, name, new, manager, dry_run=dry_run)
        with self.lock:
            key = _key(namespace if res.namespaced else None, name)
            current = self.tables[res.key].objects.get(key)
            if kind == "apply":
                if not manager:
                    raise ApiError(422, "Invalid", "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: "
                                                   "is required for apply patch")
                if current is None:
                    if subresource:
                        raise not_found(res, name)
                    body = copy.deepcopy(patch)
                    body.setdefault("metadata", {})["name"] = name
                    return self.create(res, namespace, body, manager, operation="Apply",
                                       field_validation=field_validation, warnings=warnings, dry_run=dry_run)
            if current is None:
                raise not_found(res, name)
            try:
                if kind == "json":
                    new = patches.json_patch(current, patch)  # type: ignore[arg-type]
                elif kind == "strategic":
                    new = patches.merge_patch(current, _strip_directives(patch))
                else:  # merge, apply
                    new = patches.merge_patch(current, patch)
            except (patches.PatchError, ValueError, TypeError) as err:
                raise ApiError(422, "Invalid", f"the patch could not be applied: {err}") from None
            if not isinstance(new, dict):
                raise ApiError(422, "Invalid", "the patch did not produce an object")
            sent_rv = isinstance(patch, dict) and (patch.get("metadata") or {}).get("resourceVersion")
            if not sent_rv:
                new.setdefault("metadata", {})["resourceVersion"] = current["metadata"]["resourceVersion"]
            return self.update(res, namespace, name, new, manager, subresource, require_rv=False,
                               operation="Apply" if kind == "apply" else "Update",
                               field_validation=field_validation, warnings=warnings, dry_run=dry_run)

    def delete(self, res: Resource, namespace: str | None, name: str, propagation: str = "Background",
               dry_run: bool = False) -> dict:
        """Delete an object (or mark it deleted while finalizers remain). `dry_run`: the answer is the
        object as the deletion would leave it; nothing changes (`DryRunnableStorage.Delete`)."""
        with self.lock:
            table = self.tables[res.key]
            key = _key(namespace if res.namespaced else None, name)
            current = table.objects.get(key)
            if current is None:
                raise not_found(res, name)
            if dry_run:
                would = copy.deepcopy(current)
                would["metadata"].setdefault("deletionTimestamp", now_text())
                if res.key == NS_KEY:
                    would["status"] = {**(would.get("status") or {}), "phase": "Terminating"}
                elif current["metadata"].get("finalizers"):
                    would["metadata"].setdefault("deletionGracePeriodSeconds", 0)
                return _as_version(would, res)
            if res.key == NS_KEY:
                return self._terminate_namespace(res, key, current)
            if current["metadata"].get("finalizers"):
                if current["metadata"].get("deletionTimestamp"):
                    return _as_version(current, res)
                new = copy.deepcopy(current)
                new["metadata"]["deletionTimestamp"] = now_text()
                new["metadata"]["deletionGracePeriodSeconds"] = 0
                new["metadata"]["resourceVersion"] = str(self._next_rv())
                table.put(key, new)
                self._emit("MODIFIED", res, new)
                return _as_version(new, res)
            gone = copy.deepcopy(current)
            gone["metadata"]["deletionTimestamp"] = now_text()
            self._remove(res, key, gone, orphan=propagation == "Orphan")
            return _as_version(gone, res)

    def _remove(self, res: Resource, key: str, last: dict, orphan: bool = False) -> None:
        table = self.tables[res.key]
        table.remove(key)
        if res.key == SVC_KEY:
            self.services.release(last)
        uid = last["metadata"].get("uid", "")
        self.uids.pop(uid, None)
        last["metadata"]["resourceVersion"] = str(self._next_rv())
        self._emit("DELETED", res, last)
        if res.key == CRD_KEY:
            self._unregister_crd(last)
        if uid:
            timer = threading.Timer(self.gc_delay, self._collect, args=(uid, orphan))
            timer.daemon = True
            timer.start()

    # -- namespaces, garbage collection ------------------------------------------------------------

    def _terminate_namespace(self, res: Resource, key: str, current: dict) -> dict:
        name = current["metadata"]["name"]
        new = copy.deepcopy(current)
        new["metadata"].setdefault("deletionTimestamp", now_text())
        new["status"] = {"phase": "Terminating"}
        new["metadata"]["resourceVersion"] = str(self._next_rv())
        self.tables[NS_KEY].put(key, new)
        self._emit("MODIFIED", res, new)
        timer = threading.Timer(self.gc_delay, self._empty_namespace, args=(name,))
        timer.daemon = True
        timer.start()
        return _as_version(new, res)

    def _empty_namespace(self, namespace: str) -> None:
        with self.lock:
            if self.closed:
                return
            remaining: dict[str, int] = {}
            finalizers: dict[str, int] = {}
            for res in self._unique():
                if not res.namespaced:
                    continue
                for obj in list(self.tables[res.key].ordered(f"{namespace}/")):
                    with contextlib.suppress(ApiError):
                        self.delete(res, namespace, obj["metadata"]["name"])
                for obj in self.tables[res.key].ordered(f"{namespace}/"):
                    remaining[res.qualified] = remaining.get(res.qualified, 0) + 1
                    for finalizer in obj["metadata"].get("finalizers") or ():
                        finalizers[finalizer] = finalizers.get(finalizer, 0) + 1
            if remaining:
                self._namespace_conditions(namespace, remaining, finalizers)
                timer = threading.Timer(self.gc_delay * 4, self._empty_namespace, args=(namespace,))
                timer.daemon = True
                timer.start()
                return
            ns_res = self.resource("", "v1", "namespaces")
            current = self.tables[NS_KEY].objects.get(_key(None, namespace))
            if current is not None:
                gone = copy.deepcopy(current)
                self._remove(ns_res, _key(None, namespace), gone)

    def _namespace_conditions(self, namespace: str, remaining: dict[str, int], finalizers: dict[str, int]) -> None:
        """The namespace controller's deletion conditions (pkg/controller/namespace/deletion), written
        only when they change."""
        current = self.tables[NS_KEY].objects.get(_key(None, namespace))
        if current is None:
            return
        old = {c.get("type"): c for c in (current.get("status") or {}).get("conditions") or ()}
        stamp = now_text()
        wanted = [
            ("NamespaceDeletionDiscoveryFailure", "False", "ResourcesDiscovered", "All resources successfully discovered"),
            ("NamespaceDeletionGroupVersionParsingFailure", "False", "ParsedGroupVersions",
             "All legacy kube types successfully parsed"),
            ("NamespaceDeletionContentFailure", "False", "ContentDeleted",
             "All content successfully deleted, may be waiting on finalization"),
            ("NamespaceContentRemaining", "True", "SomeResourcesRemain", "Some resources are remaining: " + ", ".join(
                f"{resource} has {count} resource instances" for resource, count in sorted(remaining.items()))),
            ("NamespaceFinalizersRemaining", "True" if finalizers else "False",
             "SomeFinalizersRemain" if finalizers else "ContentHasNoFinalizers",
             "Some content in the namespace has finalizers remaining: " + ", ".join(
                 f"{name} in {count} resource instances" for name, count in sorted(finalizers.items()))
             if finalizers else "All content-preserving finalizers finished"),
        ]
        conditions = []
        for type_, status, reason, message in wanted:
            previous = old.get(type_) or {}
            same = (previous.get("status"), previous.get("reason"), previous.get("message")) == (status, reason, message)
            conditions.append({"type": type_, "status": status, "reason": reason, "message": message,
                               "lastTransitionTime": previous.get("lastTransitionTime", stamp) if same else stamp})
        if [{k: c[k] for k in ("type", "status", "reason", "message")} for c in conditions] == [
                {k: old.get(c["type"], {}).get(k) for k in ("type", "status", "reason", "message")} for c in conditions]:
            return
        new = copy.deepcopy(current)
        new["status"] = {"phase": "Terminating", "conditions": conditions}
        new["metadata"]["resourceVersion"] = str(self._next_rv())
        self.tables[NS_KEY].put(_key(None, namespace), new)
        self._emit("MODIFIED", self.resource("", "v1", "namespaces"), new)

    def _collect(self, owner_uid: str, orphan: bool) -> None:
        """Background garbage collection: dependents whose owners are all gone are deleted."""
        with self.lock:
            if self.closed:
                return
            for res in self._unique():
                table = self.tables[res.key]
                for obj in list(table.objects.values()):
                    refs = obj["metadata"].get("ownerReferences") or []
                    if not any(r.get("uid") == owner_uid for r in refs):
                        continue
                    meta = obj["metadata"]
                    if orphan:
                        patched = copy.deepcopy(obj)
                        patched["metadata"]["ownerReferences"] = [r for r in refs if r.get("uid") != owner_uid]
                        self.update(res, meta.get("namespace"), meta["name"], patched, "kube-controller-manager",
                                    require_rv=False)
                    elif all(r.get("uid") not in self.uids for r in refs):
                        with contextlib.suppress(ApiError):
                            self.delete(res, meta.get("namespace"), meta["name"])

    # -- CRDs ----------------------------------------------------------------------------------------

    def _check_crd(self, crd: dict) -> None:
        spec = crd.get("spec") or {}
        names = spec.get("names") or {}
        name = (crd.get("metadata") or {}).get("name", "")
        expected = f"{names.get('plural', '')}.{spec.get('group', '')}"
        if name != expected:
            raise ApiError(422, "Invalid", f'CustomResourceDefinition.apiextensions.k8s.io "{name}" is invalid: metadata.name: '
                                           f'Invalid value: "{name}": must be spec.names.plural+"."+spec.group')
        if not spec.get("versions") or not names.get("kind"):
            raise ApiError(422, "Invalid", f'CustomResourceDefinition.apiextensions.k8s.io "{name}" is invalid: spec: '
                                           "versions and names.kind are required")
        if spec.get("scope") not in ("Namespaced", "Cluster"):
            raise ApiError(422, "Invalid", f'CustomResourceDefinition.apiextensions.k8s.io "{name}" is invalid: spec.scope: '
                                           'Unsupported value: must be "Namespaced" or "Cluster"')

    def _establish_later(self, name: str) -> None:
        """As the apiextensions controller does: names accepted and Established shortly after create."""
        timer = threading.Timer(self.establish_delay, self._establish, args=(name,))
        timer.daemon = True
        timer.start()

    def _establish(self, name: str) -> None:
        with self.lock:
            if self.closed:
                return
            crd_res = self.resource(CRD_KEY[0], "v1", CRD_KEY[1])
            current = self.tables[CRD_KEY].objects.get(_key(None, name))
            if current is None:
                return
            spec = current["spec"]
            stamp = now_text()
            status = {
                "acceptedNames": {k: v for k, v in spec["names"].items()},
                "conditions": [
                    {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts",
                     "message": "no conflicts found", "lastTransitionTime": stamp},
                    {"type": "Established", "status": "True", "reason": "InitialNamesAccepted",
                     "message": "the initial names have been accepted", "lastTransitionTime": stamp},
                ],
                "storedVersions": _stored_versions(current),
            }
            body = copy.deepcopy(current)
            body["status"] = status
            established = self.update(crd_res, None, name, body, "kube-apiserver", subresource="status", require_rv=False)
            self._register_crd(established)

    def _register_crd(self, crd: dict) -> None:
        """Serve a CRD's resources, once it is Established (before that, they answer 404)."""
        conditions = {c.get("type"): c.get("status") for c in (crd.get("status") or {}).get("conditions") or ()}
        if conditions.get("Established") != "True":
            return
        spec = crd["spec"]
        for key in [k for k in self.served if k[0] == spec["group"] and k[2] == spec["names"]["plural"]]:
            del self.served[key]
        for res in from_crd(crd):
            self._serve(res)

    def _unregister_crd(self, crd: dict) -> None:
        spec = crd.get("spec") or {}
        group, plural = spec.get("group"), (spec.get("names") or {}).get("plural")
        for key in [k for k in self.served if k[0] == group and k[2] == plural]:
            del self.served[key]
        table = self.tables.pop((group, plural), None)
        if table is not None:
            for obj in table.objects.values():
                self.uids.pop(obj["metadata"].get("uid", ""), None)

    def close(self) -> None:
        with self.lock:
            self.closed = True
            self.changed.notify_all()


_SCALE = Resource("autoscaling", "v1", "scales", "scale", "Scale", True)


def _at(obj: dict, path: list[str]) -> object:
    for part in path:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(part)
    return obj


def _set_at(obj: dict, path: list[str], value: object) -> None:
    for part in path[:-1]:
        if not isinstance(obj.get(part), dict):
            obj[part] = {}
        obj = obj[part]
    obj[path[-1]] = value


def _stored_versions(crd: dict) -> list[str]:
    """`status.storedVersions` with the current storage version added (kept in order, no repeats)."""
    stored = list((crd.get("status") or {}).get("storedVersions") or [])
    storage = storage_version_of(crd)
    if storage and storage not in stored:
        stored.append(storage)
    return stored


def _record_storage_version(crd: dict) -> None:
    """As the CRD strategy's PrepareForUpdate: a new storage version joins `status.storedVersions`."""
    status = crd.setdefault("status", {})
    if isinstance(status, dict):
        status["storedVersions"] = _stored_versions(crd)


def _check_namespace_phase(res: Resource, name: str, ns: dict) -> None:
    """ValidateNamespaceStatusUpdate (pkg/apis/core/validation): `status.phase` follows
    `deletionTimestamp`; an empty phase defaults to Active."""
    status = ns.setdefault("status", {}) if isinstance(ns.get("status", {}), dict) else {}
    phase = status.get("phase") or "Active"
    status["phase"] = phase
    if not ns["metadata"].get("deletionTimestamp") and phase != "Active":
        raise invalid(res, name, [("status.Phase", json.dumps(phase), "may only be 'Active' if `deletionTimestamp` is empty")])
    if ns["metadata"].get("deletionTimestamp") and phase != "Terminating":
        raise invalid(res, name, [("status.Phase", json.dumps(phase),
                                   "may only be 'Terminating' if `deletionTimestamp` is not empty")])


def _as_version(obj: dict, res: Resource) -> dict:
    """The object as seen through a (possibly non-storage) served version: only apiVersion differs."""
    if obj.get("apiVersion") == res.api_version:
        return obj
    view = dict(obj)
    view["apiVersion"] = res.api_version
    return view


def _spec_of(obj: dict) -> dict:
    return {k: v for k, v in obj.items() if k not in ("metadata", "status", "apiVersion", "kind")}


def _managed(manager: str, operation: str, res: Resource, subresource: str = "") -> dict:
    entry = {"manager": manager or "unknown", "operation": operation, "apiVersion": res.api_version, "time": now_text(),
             "fieldsType": "FieldsV1", "fieldsV1": {}}
    if subresource:
        entry["subresource"] = subresource
    return entry


def _record_manager(entries: list[dict], manager: str, operation: str, res: Resource, subresource: str) -> list[dict]:
    kept = [e for e in entries if not (e.get("manager") == (manager or "unknown") and e.get("operation") == operation
                                       and e.get("subresource", "") == subresource)]
    return kept + [_managed(manager, operation, res, subresource)]


def _strip_directives(patch: object) -> object:
    """Strategic-merge directives (`$setElementOrder/...`, `$retainKeys`) have no meaning under merge semantics."""
    if isinstance(patch, dict):
        return {k: _strip_directives(v) for k, v in patch.items()
                if not (k.startswith("$") and k != "$patch")}
    if isinstance(patch, list):
        return [_strip_directives(v) for v in patch]
    return patch
