"""A custom resource checked against the OpenAPI v3 schema of one CRD version: pruning, defaulting,
validation (with ratcheting on update) and `x-kubernetes-validations`.

Compile a version's schema once (`CompiledSchema(crd_version["schema"]["openAPIV3Schema"])`) and reuse it.
Sources: k8s.io/apiextensions-apiserver `pkg/apiserver/schema/pruning/algorithm.go` (what is pruned; the
root and embedded resources keep `apiVersion`, `kind`, `metadata`), `.../schema/defaulting/algorithm.go`
(defaults after pruning; a null in a non-nullable field is dropped first), `pkg/apiserver/validation/
validation.go` (how kube-openapi results become field errors: `<path> in body must be of type integer:
"string"`, `should match '<pattern>'`, Required, Unsupported, Too long, Too many) and
`pkg/apiserver/validation/ratcheting.go` (on update, a value equal to the old one is not re-validated).
"""

from __future__ import annotations

import copy
import json
import logging
import math
import re
from dataclasses import dataclass, field

from kubevalidation import cel, formats
from kubevalidation.errors import (
    FieldError,
    invalid,
    not_supported,
    required,
    too_long,
    too_many,
    type_invalid,
)
from kubevalidation.regex import end_anchored

log = logging.getLogger(__name__)
_ROOT_KEPT = ("apiVersion", "kind", "metadata")


@dataclass
class Node:
    """One compiled schema node (only what validation, pruning and defaulting read)."""

    type: str | None = None
    nullable: bool = False
    properties: dict[str, Node] | None = None
    additional: Node | None = None
    additional_any: bool = False
    preserve_unknown: bool = False
    int_or_string: bool = False
    embedded: bool = False
    items: Node | None = None
    required: tuple[str, ...] = ()
    enum: list | None = None
    pattern: str | None = None
    regex: re.Pattern | None = None
    format_check: object = None
    format: str = ""
    minimum: float | None = None
    maximum: float | None = None
    exclusive_minimum: bool = False
    exclusive_maximum: bool = False
    multiple_of: float | None = None
    min_length: int | None = None
    max_length: int | None = None
    min_items: int | None = None
    max_items: int | None = None
    unique_items: bool = False
    min_properties: int | None = None
    max_properties: int | None = None
    list_type: str = ""
    list_map_keys: tuple[str, ...] = ()
    has_default: bool = False
    default: object = None
    rules: list[cel.Rule] = field(default_factory=list)
    all_of: list[Node] = field(default_factory=list)
    any_of: list[Node] = field(default_factory=list)
    one_of: list[Node] = field(default_factory=list)
    not_: Node | None = None


def compile_node(schema: dict, leniencies: list[str], path: str = "") -> Node:
    """Compile one schema (recursively). Patterns Python cannot compile are listed in `leniencies`."""
    if not isinstance(schema, dict):
        return Node(preserve_unknown=True)
    node = Node(type=schema.get("type"), nullable=bool(schema.get("nullable")),
                preserve_unknown=bool(schema.get("x-kubernetes-preserve-unknown-fields")),
                int_or_string=bool(schema.get("x-kubernetes-int-or-string")),
                embedded=bool(schema.get("x-kubernetes-embedded-resource")),
                required=tuple(schema.get("required") or ()), enum=schema.get("enum"),
                minimum=schema.get("minimum"), maximum=schema.get("maximum"),
                exclusive_minimum=bool(schema.get("exclusiveMinimum")), exclusive_maximum=bool(schema.get("exclusiveMaximum")),
                multiple_of=schema.get("multipleOf"), min_length=schema.get("minLength"), max_length=schema.get("maxLength"),
                min_items=schema.get("minItems"), max_items=schema.get("maxItems"), unique_items=bool(schema.get("uniqueItems")),
                min_properties=schema.get("minProperties"), max_properties=schema.get("maxProperties"),
                list_type=schema.get("x-kubernetes-list-type") or "",
                list_map_keys=tuple(schema.get("x-kubernetes-list-map-keys") or ()))
    if "default" in schema:
        node.has_default, node.default = True, schema["default"]
    if isinstance(schema.get("properties"), dict):
        node.properties = {k: compile_node(v, leniencies, f"{path}.{k}") for k, v in schema["properties"].items()}
    extra = schema.get("additionalProperties")
    if isinstance(extra, dict):
        node.additional = compile_node(extra, leniencies, f"{path}[*]")
    elif extra is True:
        node.additional_any = True
    if isinstance(schema.get("items"), dict):
        node.items = compile_node(schema["items"], leniencies, f"{path}[*]")
    if schema.get("pattern"):
        node.pattern = schema["pattern"]
        try:
            node.regex = end_anchored(node.pattern)  # `$` as Go's regexp reads it
        except re.error as err:
            leniencies.append(f"{path or '<root>'}: pattern {node.pattern!r} not checked ({err})")
    node.format = schema.get("format") or ""
    node.format_check = formats.check_for(node.format, node.type)
    node.rules = [cel.compile_rule(r) for r in schema.get("x-kubernetes-validations") or () if isinstance(r, dict)]
    node.all_of = [compile_node(s, leniencies, path) for s in schema.get("allOf") or ()]
    node.any_of = [compile_node(s, leniencies, path) for s in schema.get("anyOf") or ()]
    node.one_of = [compile_node(s, leniencies, path) for s in schema.get("oneOf") or ()]
    if isinstance(schema.get("not"), dict):
        node.not_ = compile_node(schema["not"], leniencies, path)
    return node


def _child(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "integer" if value.is_integer() else "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _has_type(value: object, wanted: str) -> bool:
    actual = _json_type(value)
    return actual == wanted or (wanted == "number" and actual == "integer")


def _number_text(value: float) -> str:
    return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)


class CompiledSchema:
    """The schema of one served version, compiled once. `admit` prunes, defaults and validates an object.

    `leniencies` lists what this schema asks for that is not checked (patterns Python's `re` cannot
    compile, CEL rules the library cannot compile); each unsupported rule is logged when first met."""

    def __init__(self, schema: dict):
        self.leniencies: list[str] = []
        self.root = compile_node(schema or {}, self.leniencies)
        for path, rule in self._rules(self.root, ""):
            if rule.unsupported:
                self.leniencies.append(f"{path or '<root>'}: CEL rule {rule.rule!r} not evaluated ({rule.unsupported})")

    def _rules(self, node: Node, path: str):
        for rule in node.rules:
            yield path, rule
        for key, child in (node.properties or {}).items():
            yield from self._rules(child, _child(path, key))
        for child, suffix in ((node.items, "[*]"), (node.additional, "[*]")):
            if child is not None:
                yield from self._rules(child, path + suffix)

    # -- pruning and defaulting ----------------------------------------------------------------------

    def prune(self, obj: dict) -> tuple[dict, list[str]]:
        """(pruned copy, paths of the unknown fields dropped, as `spec.foo` / `spec.list[0].bar`)."""
        unknown: list[str] = []
        out = self._prune(self.root, copy.deepcopy(obj), "", unknown, root=True)
        return out, unknown

    def _prune(self, node: Node, value: object, path: str, unknown: list[str], root: bool = False) -> object:
        if isinstance(value, dict) and (node.type == "object" or node.properties is not None or node.additional
                                        or root or node.embedded):
            keep_meta = root or node.embedded
            for key in list(value):
                child = value[key]
                if keep_meta and key in _ROOT_KEPT:
                    continue
                sub = (node.properties or {}).get(key) if node.properties is not None else None
                if sub is None and node.additional is not None:
                    sub = node.additional
                if sub is None:
                    if not (node.preserve_unknown or node.additional_any):
                        unknown.append(_child(path, key))
                        del value[key]
                    continue
                if child is None and not sub.nullable:
                    del value[key]  # a null in a non-nullable field is pruned (then defaulted)
                    continue
                value[key] = self._prune(sub, child, _child(path, key), unknown)
        elif isinstance(value, list) and node.items is not None:
            return [self._prune(node.items, item, f"{path}[{i}]", unknown) for i, item in enumerate(value)]
        return value

    def default(self, obj: dict) -> dict:
        """Defaults applied in place (to a pruned copy) and returned."""
        self._default(self.root, obj)
        return obj

    def _default(self, node: Node, value: object) -> None:
        if isinstance(value, dict):
            for key, sub in (node.properties or {}).items():
                if key not in value and sub.has_default:
                    value[key] = copy.deepcopy(sub.default)
            for key, child in value.items():
                sub = (node.properties or {}).get(key) if node.properties is not None else None
                sub = sub or node.additional
                if sub is not None:
                    self._default(sub, child)
        elif isinstance(value, list) and node.items is not None:
            for item in value:
                self._default(node.items, item)

    # -- validation ------------------------------------------------------------------------------------

    def validate(self, obj: dict, old: dict | None = None) -> list[FieldError]:
        """Errors of `obj` (already pruned and defaulted); with `old`, unchanged values are not re-validated."""
        errs: list[FieldError] = []
        self._validate(self.root, obj, "", old, old is not None, errs, root=True)
        return errs

    def _validate(self, node: Node, value: object, path: str, old: object, has_old: bool, errs: list[FieldError],
                  root: bool = False) -> None:
        if has_old and value == old and not root:
            return  # ratcheting: an unchanged value is not re-validated
        before = len(errs)
        if value is None:
            if not node.nullable and (node.type or node.int_or_string):
                errs.append(type_invalid(path, "null", f"{path or 'body'} in body must be of type "
                                                      f"{node.type or 'integer,string'}: \"null\""))
            return
        if node.int_or_string:
            if _json_type(value) not in ("integer", "string"):
                errs.append(type_invalid(path, _json_type(value), f"{path} in body must be of type integer,string: "
                                                                  f"\"{_json_type(value)}\""))
                return
        elif node.type and not _has_type(value, node.type):
            actual = _json_type(value)
            errs.append(type_invalid(path, actual, f"{path or 'body'} in body must be of type {node.type}: \"{actual}\""))
            return
        self._value_checks(node, value, path, errs)
        if isinstance(value, dict):
            self._validate_object(node, value, path, old if isinstance(old, dict) else None,
                                  has_old and isinstance(old, dict), errs, root)
        elif isinstance(value, list) and node.items is not None:
            olds = _correlate(node, old) if has_old else {}
            for i, item in enumerate(value):
                key = _map_key(node, item)
                self._validate(node.items, item, f"{path}[{i}]", olds.get(key), key in olds, errs)
        for sub in node.all_of:
            self._validate(sub, value, path, None, False, errs)
        if node.any_of:
            trials = [self._trial(sub, value, path) for sub in node.any_of]
            if all(trials):
                errs.append(invalid(path, _json_type(value), "must validate at least one schema (anyOf)"))
                errs.extend(trials[0])
        if node.one_of:
            passing = sum(1 for sub in node.one_of if not self._trial(sub, value, path))
            if passing != 1:
                errs.append(invalid(path, _json_type(value), "must validate one and only one schema (oneOf)"))
        if node.not_ is not None and not self._trial(node.not_, value, path):
            errs.append(invalid(path, _json_type(value), "must not validate the schema (not)"))
        if node.rules and len(errs) == before:
            self._rules_check(node, value, path, old, has_old, errs)

    def _trial(self, node: Node, value: object, path: str) -> list[FieldError]:
        errs: list[FieldError] = []
        self._validate(node, value, path, None, False, errs)
        return errs

    def _value_checks(self, node: Node, value: object, path: str, errs: list[FieldError]) -> None:
        name = path or "body"
        if node.enum is not None and value not in node.enum:
            errs.append(not_supported(path, value, [v if isinstance(v, str) else json.dumps(v) for v in node.enum]))
        if isinstance(value, str):
            length = len(value)
            if node.max_length is not None and length > node.max_length:
                errs.append(too_long(path, int(node.max_length)))
            if node.min_length is not None and length < node.min_length:
                errs.append(invalid(path, value, f"{name} in body should be at least {node.min_length} chars long"))
            if node.regex is not None and not node.regex.search(value):
                errs.append(invalid(path, value, f"{name} in body should match '{node.pattern}'"))
            if node.format_check is not None and not node.format_check(value):  # type: ignore[operator]
                errs.append(invalid(path, value, f"{name} in body must be of type {node.format}: {json.dumps(value)}"))
        elif isinstance(value, int | float) and not isinstance(value, bool):
            if node.maximum is not None:
                if node.exclusive_maximum and value >= node.maximum:
                    errs.append(invalid(path, value, f"{name} in body should be less than {_number_text(node.maximum)}"))
                elif value > node.maximum:
                    errs.append(invalid(path, value, f"{name} in body should be less than or equal to "
                                                     f"{_number_text(node.maximum)}"))
            if node.minimum is not None:
                if node.exclusive_minimum and value <= node.minimum:
                    errs.append(invalid(path, value, f"{name} in body should be greater than {_number_text(node.minimum)}"))
                elif value < node.minimum:
                    errs.append(invalid(path, value, f"{name} in body should be greater than or equal to "
                                                     f"{_number_text(node.minimum)}"))
            if node.multiple_of:
                quotient = value / node.multiple_of
                if not math.isclose(quotient, round(quotient), abs_tol=1e-9):
                    errs.append(invalid(path, value, f"{name} in body should be a multiple of "
                                                     f"{_number_text(node.multiple_of)}"))
        elif isinstance(value, list):
            if node.max_items is not None and len(value) > node.max_items:
                errs.append(too_many(path, len(value), int(node.max_items)))
            if node.min_items is not None and len(value) < node.min_items:
                errs.append(invalid(path, len(value), f"{name} in body should have at least {node.min_items} items"))
            if node.unique_items and len({json.dumps(v, sort_keys=True) for v in value}) != len(value):
                errs.append(invalid(path, value, f"{name} in body shouldn't contain duplicates"))
            self._list_type_checks(node, value, path, errs)
        elif isinstance(value, dict):
            if node.max_properties is not None and len(value) > node.max_properties:
                errs.append(too_many(path, len(value), int(node.max_properties)))
            if node.min_properties is not None and len(value) < node.min_properties:
                errs.append(invalid(path, len(value), f"{name} in body should have at least {node.min_properties} "
                                                      "properties"))

    def _list_type_checks(self, node: Node, value: list, path: str, errs: list[FieldError]) -> None:
        """`x-kubernetes-list-type: set|map` items must be unique (`listtype/validation.go`)."""
        if node.list_type not in ("set", "map"):
            return
        seen: set[str] = set()
        for i, item in enumerate(value):
            if node.list_type == "map" and isinstance(item, dict):
                key = json.dumps({k: item.get(k) for k in node.list_map_keys}, sort_keys=True)
                shown: object = {k: item[k] for k in node.list_map_keys if k in item}
            else:
                key, shown = json.dumps(item, sort_keys=True), item
            if key in seen:
                errs.append(FieldError("FieldValueDuplicate", f"{path}[{i}]", shown))
            seen.add(key)

    def _validate_object(self, node: Node, value: dict, path: str, old: dict | None, has_old: bool,
                         errs: list[FieldError], root: bool) -> None:
        if node.embedded:
            for key in ("apiVersion", "kind"):
                if not value.get(key):
                    errs.append(required(_child(path, key), "must not be empty"))
        for key in node.required:
            if key not in value and not (root and key in _ROOT_KEPT):
                errs.append(required(_child(path, key)))
        for key, child in value.items():
            if (root or node.embedded) and key in _ROOT_KEPT:
                continue
            sub = (node.properties or {}).get(key) if node.properties is not None else None
            if sub is None:
                sub = node.additional
            if sub is None:
                continue
            old_child = old.get(key) if old is not None else None
            self._validate(sub, child, _child(path, key), old_child, has_old and old is not None and key in old, errs)

    def _rules_check(self, node: Node, value: object, path: str, old: object, has_old: bool,
                     errs: list[FieldError]) -> None:
        self_value = _to_cel(node, value)
        old_value = _to_cel(node, old) if has_old else None
        for rule in node.rules:
            if rule.transition and not has_old:
                continue  # transition rules run on update, where an old value correlates
            if rule.program is None:
                rule.report_unsupported(path)
                continue
            at = path + (rule.field_path if rule.field_path.startswith(("[", ".")) or not rule.field_path
                         else "." + rule.field_path)
            at = at.lstrip(".")
            try:
                ok, message = cel.evaluate(rule, self_value, old_value, has_old)
            except cel.EvaluationError as err:
                errs.append(invalid(at, _json_type(value) if node.type is None else node.type,
                                    f"{err} evaluating rule: {rule.rule}"))
                continue
            if ok:
                continue
            if rule.reason in ("FieldValueForbidden", "FieldValueRequired"):
                errs.append(FieldError(rule.reason, at, detail=message))
            else:
                errs.append(FieldError(rule.reason, at, node.type or _json_type(value), message))

    # -- all of it --------------------------------------------------------------------------------------

    def admit(self, obj: dict, old: dict | None = None) -> tuple[dict, list[str], list[FieldError]]:
        """(the object as stored: pruned and defaulted, unknown field paths, errors)."""
        pruned, unknown = self.prune(obj)
        self.default(pruned)
        return pruned, unknown, self.validate(pruned, old)


def _map_key(node: Node, item: object) -> str | None:
    """The key that correlates an item of an `x-kubernetes-list-type: map` list with its old self."""
    if node.list_type != "map" or not node.list_map_keys or not isinstance(item, dict):
        return None
    return json.dumps([item.get(k) for k in node.list_map_keys])


def _correlate(node: Node, old: object) -> dict:
    """Old items of a map list by key (other lists' items are not correlated, as in the real server)."""
    if not isinstance(old, list):
        return {}
    found = {}
    for item in old:
        key = _map_key(node, item)
        if key is not None:
            found[key] = item
    return found


def _to_cel(node: Node, value: object) -> object:
    """A value as CEL sees it: declared property names escaped (`namespace` -> `__namespace__`)."""
    if isinstance(value, dict):
        if node.properties is not None:
            out = {}
            for key, child in value.items():
                sub = node.properties.get(key)
                out[cel.escape(key)] = _to_cel(sub, child) if sub is not None else child
            return out
        if node.additional is not None:
            return {k: _to_cel(node.additional, v) for k, v in value.items()}
        return value
    if isinstance(value, list) and node.items is not None:
        return [_to_cel(node.items, v) for v in value]
    return value
