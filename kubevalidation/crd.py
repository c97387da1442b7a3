"""CustomResourceDefinition rules: names, versions (exactly one storage), structural schemas, storedVersions.

Source: k8s.io/apiextensions-apiserver `pkg/apis/apiextensions/validation/validation.go`
(`ValidateCustomResourceDefinition`, `...Spec`, `...StoredVersions`: "must be spec.names.plural+"."+spec.group",
"must have exactly one version marked as storage version", "must appear in spec.versions") and
`pkg/apiserver/schema/validation.go` (`ValidateStructural`: every specified field has a type, the root is an
object, `metadata` may only restrict name and generateName, x-kubernetes-int-or-string has no type,
x-kubernetes-embedded-resource is an object, value validations in allOf/anyOf/oneOf/not have no types).
"""

from __future__ import annotations

from kubevalidation import names
from kubevalidation.errors import FieldError, forbidden, invalid, not_supported, required

_TYPES = ("object", "array", "string", "integer", "number", "boolean")
_NOT_IN_JUNCTORS = ("type", "default", "nullable", "additionalProperties", "x-kubernetes-preserve-unknown-fields",
                    "x-kubernetes-embedded-resource", "x-kubernetes-int-or-string", "description")


def validate_structural(schema: dict, path: str) -> list[FieldError]:
    """Errors making a version's `openAPIV3Schema` non-structural (`path` names the schema itself)."""
    errs: list[FieldError] = []
    if not isinstance(schema, dict):
        return [required(path, "schemas are required")]
    if not schema.get("type"):
        errs.append(required(f"{path}.type", "must not be empty at the root"))
    elif schema.get("type") != "object":
        errs.append(invalid(f"{path}.type", schema.get("type"), "must be object at the root"))
    meta = (schema.get("properties") or {}).get("metadata")
    if isinstance(meta, dict):
        extra = sorted(set(meta) - {"type", "properties", "description"}) + \
            sorted(set(meta.get("properties") or {}) - {"name", "generateName"})
        if extra:
            errs.append(forbidden(f"{path}.properties[metadata]", "must not specify anything other than name and "
                                                                  "generateName, but metadata is implicitly specified"))
        if meta.get("type") not in (None, "object"):
            errs.append(invalid(f"{path}.properties[metadata].type", meta.get("type"), "must be object"))
    _structural(schema, path, errs, root=True)
    return errs


def _structural(s: dict, path: str, errs: list[FieldError], root: bool = False, field_kind: str = "") -> None:
    t = s.get("type")
    if t is not None and t not in _TYPES:
        errs.append(not_supported(f"{path}.type", t, list(_TYPES)))
    if s.get("x-kubernetes-int-or-string"):
        if t:
            errs.append(invalid(f"{path}.type", t, "must be empty if x-kubernetes-int-or-string is true"))
    elif not t and not root and field_kind and not s.get("x-kubernetes-preserve-unknown-fields"):
        errs.append(required(f"{path}.type", f"must not be empty for specified {field_kind}"))
    if s.get("x-kubernetes-preserve-unknown-fields") is False:
        errs.append(invalid(f"{path}.x-kubernetes-preserve-unknown-fields", False, "must be true or undefined"))
    if s.get("x-kubernetes-embedded-resource") and t != "object":
        errs.append(invalid(f"{path}.type", t or "", "must be object if x-kubernetes-embedded-resource is true"))
    if s.get("properties") and isinstance(s.get("additionalProperties"), dict | bool) \
            and s.get("additionalProperties") is not False:
        errs.append(forbidden(f"{path}.additionalProperties", "additionalProperties and properties are mutual exclusive"))
    if t == "array" and not isinstance(s.get("items"), dict):
        errs.append(required(f"{path}.items", "must be specified"))
    for key, child in (s.get("properties") or {}).items():
        if isinstance(child, dict):
            _structural(child, f"{path}.properties[{key}]", errs, field_kind="object fields")
    if isinstance(s.get("items"), dict):
        _structural(s["items"], f"{path}.items", errs, field_kind="array items")
    if isinstance(s.get("additionalProperties"), dict):
        _structural(s["additionalProperties"], f"{path}.additionalProperties", errs, field_kind="object fields")
    int_or_string = bool(s.get("x-kubernetes-int-or-string"))
    for junctor in ("allOf", "anyOf", "oneOf"):
        for i, sub in enumerate(s.get(junctor) or ()):
            _junctor(sub, f"{path}.{junctor}[{i}]", errs, int_or_string)
    if isinstance(s.get("not"), dict):
        _junctor(s["not"], f"{path}.not", errs, int_or_string)


def _junctor(s: object, path: str, errs: list[FieldError], int_or_string: bool) -> None:
    """Inside allOf/anyOf/oneOf/not only value validations are allowed (no types, defaults, ...), except
    the `anyOf: [{type: integer}, {type: string}]` that may accompany x-kubernetes-int-or-string."""
    if not isinstance(s, dict):
        return
    for key in _NOT_IN_JUNCTORS:
        if key not in s or key == "description" or (key == "type" and int_or_string and s[key] in ("integer", "string")):
            continue
        errs.append(forbidden(f"{path}.{key}", "must be empty to be structural" if key == "type"
                              else "must be undefined to be structural"))
    for key, child in (s.get("properties") or {}).items():
        _junctor(child, f"{path}.properties[{key}]", errs, False)
    if isinstance(s.get("items"), dict):
        _junctor(s["items"], f"{path}.items", errs, False)


def storage_version(crd: dict) -> str:
    for version in (crd.get("spec") or {}).get("versions") or ():
        if isinstance(version, dict) and version.get("storage"):
            return str(version.get("name", ""))
    return ""


def validate_crd(crd: dict, old: dict | None = None) -> list[FieldError]:
    """Errors of a CRD on create (`old` None) or update. `status.storedVersions` is checked when set."""
    errs: list[FieldError] = []
    name = (crd.get("metadata") or {}).get("name", "")
    spec = crd.get("spec")
    if not isinstance(spec, dict):
        return [required("spec")]
    group = spec.get("group") or ""
    cr_names = spec.get("names") if isinstance(spec.get("names"), dict) else {}
    plural = cr_names.get("plural") or ""
    if name != f"{plural}.{group}":
        errs.append(invalid("metadata.name", name, 'must be spec.names.plural+"."+spec.group'))
    if not group:
        errs.append(required("spec.group"))
    else:
        errs.extend(invalid("spec.group", group, m) for m in names.is_dns1123_subdomain(group))
        if "." not in group:
            errs.append(invalid("spec.group", group, "should be a domain with at least one dot"))
    if not plural:
        errs.append(required("spec.names.plural"))
    else:
        errs.extend(invalid("spec.names.plural", plural, m) for m in names.is_dns1123_label(plural))
    if cr_names.get("singular"):
        errs.extend(invalid("spec.names.singular", cr_names["singular"], m)
                    for m in names.is_dns1123_label(cr_names["singular"]))
    if not cr_names.get("kind"):
        errs.append(required("spec.names.kind"))
    if spec.get("scope") not in ("Cluster", "Namespaced"):
        errs.append(not_supported("spec.scope", spec.get("scope") or "", ["Cluster", "Namespaced"]))
    versions = spec.get("versions") if isinstance(spec.get("versions"), list) else []
    if not versions:
        errs.append(required("spec.versions", "must have exactly one version marked as storage version"))
    elif sum(1 for v in versions if isinstance(v, dict) and v.get("storage")) != 1:
        errs.append(invalid("spec.versions", versions, "must have exactly one version marked as storage version"))
    seen: set[str] = set()
    for i, version in enumerate(versions):
        at = f"spec.versions[{i}]"
        if not isinstance(version, dict):
            errs.append(invalid(at, version, "must be an object"))
            continue
        vname = version.get("name") or ""
        if not vname:
            errs.append(required(f"{at}.name"))
        else:
            errs.extend(invalid(f"{at}.name", vname, m) for m in names.is_dns1035_label(vname))
            if vname in seen:
                errs.append(FieldError("FieldValueDuplicate", f"{at}.name", vname))
            seen.add(vname)
        schema = (version.get("schema") or {}).get("openAPIV3Schema") if isinstance(version.get("schema"), dict) else None
        if schema is None:
            errs.append(required(f"{at}.schema.openAPIV3Schema", "schemas are required"))
        else:
            errs.extend(validate_structural(schema, f"{at}.schema.openAPIV3Schema"))
    errs.extend(validate_stored_versions(crd))
    return errs


def validate_stored_versions(crd: dict) -> list[FieldError]:
    """`status.storedVersions`, when set, must name spec.versions and include the storage version."""
    stored = (crd.get("status") or {}).get("storedVersions") or []
    if not stored:
        return []
    errs: list[FieldError] = []
    declared = {v.get("name") for v in (crd.get("spec") or {}).get("versions") or () if isinstance(v, dict)}
    for i, version in enumerate(stored):
        if version not in declared:
            errs.append(invalid(f"status.storedVersions[{i}]", version, "must appear in spec.versions"))
    storage = storage_version(crd)
    if storage and storage not in stored:
        errs.append(invalid("status.storedVersions", stored, f"must have the storage version {storage}"))
    return errs


def with_stored_versions(crd: dict, old: dict | None) -> dict:
    """The server keeps `status.storedVersions`: every version objects may be stored at, the current
    storage version last added. Returns a copy with it filled in."""
    out = dict(crd)
    status = dict((old or {}).get("status") or crd.get("status") or {})
    stored = list(status.get("storedVersions") or [])
    storage = storage_version(crd)
    if storage and storage not in stored:
        stored.append(storage)
    status["storedVersions"] = stored
    out["status"] = status
    return out

