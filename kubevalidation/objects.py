"""One entry point for an object about to be stored: `admit(target, obj, old, schema, field_validation)`.

It does, in the real server's order: the body's `apiVersion`/`kind` against the URL (400 / 422), decoding
rules (Secret `data` base64 → 400; `stringData` merged), pruning of unknown fields of a custom resource
(`fieldValidation=Strict` → 400 "strict decoding error"; `Warn` → a warning per field), defaults, then
validation of `metadata`, the type's own rules, the CRD rules or the custom resource's schema and CEL
rules, all reported at once as 422 `Invalid`.

Sources: k8s.io/apiserver `pkg/endpoints/handlers/create.go` ("the API version in the data (%s) does not
match the expected API version (%s)"), apiextensions-apiserver's integration test `TestForProperValidationErrors`
(a custom resource's wrong kind: `kind: Invalid value: "X": must be <Kind>`), and `pkg/endpoints/handlers/
fieldmanager` / `runtime/serializer` strict decoding ("strict decoding error: unknown field \"spec.foo\"").
"""

from __future__ import annotations

from dataclasses import dataclass, field

from kubevalidation import builtins, crd, names, objectmeta
from kubevalidation.errors import BadRequest, FieldError, Invalid, invalid
from kubevalidation.schema import CompiledSchema

FIELD_VALIDATION = ("Ignore", "Warn", "Strict")


@dataclass(frozen=True)
class Target:
    """What the request's URL names: the resource's group/version/kind/plural and its scope."""

    group: str
    version: str
    kind: str
    plural: str
    namespaced: bool
    custom: bool = False  #: served by a CRD (then `admit` needs its schema)

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version


@dataclass
class Admitted:
    """The object as it will be stored, and the warnings for the response's `Warning` headers."""

    obj: dict
    warnings: list[str] = field(default_factory=list)


def check_type_meta(target: Target, body: object) -> None:
    """The body's apiVersion/kind, when given, must be the URL's (a missing one is taken from the URL)."""
    if not isinstance(body, dict):
        return
    api_version, kind = body.get("apiVersion"), body.get("kind")
    if api_version and api_version != target.api_version:
        raise BadRequest(f"the API version in the data ({api_version}) does not match the expected API version "
                         f"({target.api_version})")
    if kind and kind != target.kind:
        name = str((body.get("metadata") or {}).get("name") or "")
        raise Invalid(str(kind), target.group, name, [invalid("kind", kind, f"must be {target.kind}")])


def admit(target: Target, obj: dict, old: dict | None = None, schema: CompiledSchema | None = None,
          field_validation: str = "Warn", subresource: str = "") -> Admitted:
    """Check `obj` (create when `old` is None, else update of `old`) and return what is stored.

    Raises BadRequest (400: wrong apiVersion, undecodable Secret data, unknown fields under Strict) or
    Invalid (422, every field error at once). `schema` is the compiled schema of `target.version` for a
    custom resource (None: no schema checks). `field_validation` is the request's `fieldValidation`."""
    if field_validation not in FIELD_VALIDATION:
        raise BadRequest(f'fieldValidation must be one of "Ignore", "Warn" or "Strict", got "{field_validation}"')
    check_type_meta(target, obj)
    warnings: list[str] = []
    key = (target.group, target.plural)
    if key == ("", "secrets"):
        obj = builtins.decode_secret(obj)
    errors: list[FieldError] = []
    if schema is not None:
        obj, unknown, schema_errors = schema.admit(obj, old)
        if unknown and field_validation == "Strict":
            raise BadRequest("strict decoding error: " + ", ".join(f'unknown field "{p}"' for p in unknown))
        if field_validation == "Warn":
            warnings.extend(f'unknown field "{p}"' for p in unknown)
        errors.extend(schema_errors)
    meta = obj.get("metadata") if isinstance(obj.get("metadata"), dict) else {}
    old_meta = old.get("metadata") if old is not None else None
    errors[:0] = objectmeta.validate_object_meta(meta, target.namespaced, names.rule_for(*key), old_meta)
    type_rule = builtins.TYPE_RULES.get(key)
    if type_rule is not None and subresource == "":
        errors.extend(type_rule(obj, old))
    if key == ("apiextensions.k8s.io", "customresourcedefinitions"):
        obj = crd.with_stored_versions(obj, old) if subresource == "" else obj
        errors.extend(crd.validate_crd(obj, old))
    if errors:
        raise Invalid(target.kind, target.group, str(meta.get("name") or ""), _unique(errors))
    return Admitted(obj, warnings)


def _unique(errors: list[FieldError]) -> list[FieldError]:
    seen, out = set(), []
    for err in errors:
        if (err.type, err.field, err.body()) not in seen:
            seen.add((err.type, err.field, err.body()))
            out.append(err)
    return out
