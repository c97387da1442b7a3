"""`metadata` checks every object gets, as kube-apiserver makes them.

Source: k8s.io/apimachinery `pkg/api/validation/objectmeta.go` (`ValidateObjectMetaAccessor`,
`ValidateObjectMetaAccessorUpdate`, annotations ≤ 256 KiB in total, owner references, finalizers) and
`pkg/apis/meta/v1/validation/validation.go` (`ValidateLabels`).
"""

from __future__ import annotations

from kubevalidation import names
from kubevalidation.errors import FieldError, forbidden, invalid, required, too_long

TOTAL_ANNOTATION_SIZE_LIMIT = 256 * 1024  #: bytes of keys plus values


def validate_labels(labels: object, path: str = "metadata.labels") -> list[FieldError]:
    errs: list[FieldError] = []
    if labels is None:
        return errs
    if not isinstance(labels, dict):
        return [invalid(path, labels, "must be a map of strings")]
    for key, value in labels.items():
        errs.extend(invalid(path, key, m) for m in names.is_qualified_name(key))
        if not isinstance(value, str):
            errs.append(invalid(path, value, "must be a string"))
            continue
        errs.extend(invalid(path, value, m) for m in names.is_label_value(value))
    return errs


def validate_annotations(annotations: object, path: str = "metadata.annotations") -> list[FieldError]:
    errs: list[FieldError] = []
    if annotations is None:
        return errs
    if not isinstance(annotations, dict):
        return [invalid(path, annotations, "must be a map of strings")]
    total = 0
    for key, value in annotations.items():
        errs.extend(invalid(path, key, m) for m in names.is_qualified_name(key.lower()))
        if not isinstance(value, str):
            errs.append(invalid(path, value, "must be a string"))
            continue
        total += len(key.encode()) + len(value.encode())
    if total > TOTAL_ANNOTATION_SIZE_LIMIT:
        errs.append(too_long(path, TOTAL_ANNOTATION_SIZE_LIMIT))
    return errs


def _valid_api_version(value: str) -> bool:
    # schema.ParseGroupVersion: "<version>" or "<group>/<version>", and the version may not be empty
    parts = value.split("/")
    return len(parts) == 1 or (len(parts) == 2 and bool(parts[1]))


def validate_owner_references(refs: object, path: str = "metadata.ownerReferences") -> list[FieldError]:
    errs: list[FieldError] = []
    if refs is None:
        return errs
    if not isinstance(refs, list):
        return [invalid(path, refs, "must be a list")]
    controller = ""
    for i, ref in enumerate(refs):
        at = f"{path}[{i}]"
        if not isinstance(ref, dict):
            errs.append(invalid(at, ref, "must be an object"))
            continue
        api_version = ref.get("apiVersion") or ""
        if not api_version:
            errs.append(required(f"{at}.apiVersion", "must not be empty"))
        elif not isinstance(api_version, str) or not _valid_api_version(api_version):
            errs.append(invalid(f"{at}.apiVersion", api_version, "must be <group>/<version> or <version>"))
        for child in ("kind", "name", "uid"):
            if not ref.get(child):
                errs.append(required(f"{at}.{child}", "must not be empty"))
        if api_version == "v1" and ref.get("kind") == "Event":
            errs.append(invalid(at, ref, "/v1, Kind=Event is disallowed from being an owner"))
        if ref.get("controller") is True:
            this = f"{ref.get('kind', '')}/{ref.get('name', '')}"
            if controller:
                errs.append(invalid(path, refs, 'Only one reference can have Controller set to true. Found "true" in '
                                                f"references for {controller} and {this}"))
            else:
                controller = this
    return errs


def validate_finalizers(finalizers: object, path: str = "metadata.finalizers") -> list[FieldError]:
    errs: list[FieldError] = []
    if finalizers is None:
        return errs
    if not isinstance(finalizers, list):
        return [invalid(path, finalizers, "must be a list of strings")]
    for name in finalizers:
        if not isinstance(name, str):
            errs.append(invalid(path, name, "must be a string"))
            continue
        errs.extend(invalid(path, name, m) for m in names.is_qualified_name(name))
    if "orphan" in finalizers and "foregroundDeletion" in finalizers:
        errs.append(invalid(path, finalizers, "finalizer orphan and foregroundDeletion cannot be both set"))
    return errs


def validate_object_meta(meta: dict, namespaced: bool, name_rule: names.NameRule, old: dict | None = None) -> list[FieldError]:
    """Errors in an object's `metadata` on create (`old` is None) or update (`old` is the stored metadata).

    On update, as in `ValidateObjectMetaAccessorUpdate`, the name is not re-checked and finalizers only
    when they changed (a stored object keeps validating even if the rules became stricter)."""
    errs: list[FieldError] = []
    if old is None:
        generate = meta.get("generateName")
        if generate:
            errs.extend(invalid("metadata.generateName", generate, m) for m in name_rule(str(generate), True))
        name = meta.get("name")
        if not name:
            errs.append(required("metadata.name", "name or generateName is required"))
        elif not isinstance(name, str):
            errs.append(invalid("metadata.name", name, "must be a string"))
        else:
            errs.extend(invalid("metadata.name", name, m) for m in name_rule(name, False))
    namespace = meta.get("namespace")
    if namespaced:
        if not namespace:
            errs.append(required("metadata.namespace"))
        elif old is None:
            errs.extend(invalid("metadata.namespace", namespace, m) for m in names.is_dns1123_label(str(namespace)))
    elif namespace:
        errs.append(forbidden("metadata.namespace", "not allowed on this type"))
    generation = meta.get("generation")
    if isinstance(generation, int) and generation < 0:
        errs.append(invalid("metadata.generation", generation, "must be greater than or equal to 0"))
    errs.extend(validate_labels(meta.get("labels")))
    errs.extend(validate_annotations(meta.get("annotations")))
    errs.extend(validate_owner_references(meta.get("ownerReferences")))
    if old is None or meta.get("finalizers") != old.get("finalizers"):
        errs.extend(validate_finalizers(meta.get("finalizers")))
    if old is not None and old.get("deletionTimestamp"):
        added = sorted(set(meta.get("finalizers") or ()) - set(old.get("finalizers") or ()))
        if added:
            shown = "[]string{" + ", ".join(f'"{f}"' for f in added) + "}"
            errs.append(forbidden("metadata.finalizers", "no new finalizers can be added if the object is being "
                                                         f"deleted, found new finalizers {shown}"))
    return errs
