"""Validate manifests against the JSON Schemas in `schemas/` and say what is wrong in the user's words.

The schemas are the reference (editors and other tools can use them too); this module only turns
jsonschema's errors into one clear message per problem, with the field path and a suggestion for a
misspelt field.

Two validators read the same schema. `jsonschema_rs` (compiled, Rust) only answers "valid?" and is
the fast path: measured on 10,000 ControlPlanes, 0.05 CPU s against 1.1 s for `jsonschema`, which
was half of loading the manifests. `jsonschema` is the reference: every document the fast path does
not call valid is validated again by it, and every message comes from it, so messages are exactly
those of the reference. The fast path must therefore never accept what the reference refuses: it
uses the reference's own format checks and Python's `re` for a `pattern` that Rust's regex could read
otherwise (see `_SAME_IN_RUST`).
"""

from __future__ import annotations

import difflib
import functools
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import jsonschema
import jsonschema_rs

from ctpbackup.rules.durations import parse_duration
from ctpbackup.rules.schedules import parse_schedule
from kubevalidation.regex import end_anchored

# `schemas/` at the repository root, where users and editors point; the package carries the same files
# (a link to them in a checkout, their copies in a wheel), so an installed package finds them too.
SCHEMA_DIR = Path(__file__).resolve().parent / "schemas"

#: kind -> schema file; the kinds this job reads
SCHEMA_FILES = {
    "SharedBackupConfig": "sharedbackupconfig.json",
    "ControlPlane": "controlplane.json",
    "Backup": "backup.json",
    "BackupSchedule": "backupschedule.json",
    "SharedBackup": "sharedbackup.json",
    "SharedBackupSchedule": "sharedbackupschedule.json",
}
KINDS = tuple(SCHEMA_FILES)


@dataclass(frozen=True)
class SchemaProblem:
    path: tuple[str | int, ...]
    message: str


def field_name(path: tuple[str | int, ...]) -> str:
    """`("spec", "selectors", 0, "key")` -> `spec.selectors[0].key`."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _load(file: str) -> dict[str, Any]:
    return json.loads((SCHEMA_DIR / file).read_text())


def _inlined(node: Any, file: str, depth: int = 0) -> Any:
    """The schema with every `$ref` replaced by what it points to (a `$ref` beside other keywords
    becomes an `allOf` of one). Validating then follows no references: half the time of reading
    1,000 ControlPlanes. Only what the schema files use is supported: references relative to a
    file in `schemas/` with a plain JSON pointer, none recursive, none inside const/enum values."""
    if depth > 32:
        raise ValueError(f"{file}: $ref nested too deep (recursive?)")
    if isinstance(node, list):
        return [_inlined(item, file, depth) for item in node]
    if not isinstance(node, dict):
        return node
    if "$ref" not in node:
        return {key: _inlined(value, file, depth) for key, value in node.items()}
    target_file, _, pointer = node["$ref"].partition("#")
    target_file = target_file or file
    target: Any = _load(target_file)
    for part in filter(None, pointer.split("/")):
        target = target[part.replace("~1", "/").replace("~0", "~")]
    resolved = _inlined(target, target_file, depth + 1)
    rest = {key: _inlined(value, file, depth) for key, value in node.items() if key != "$ref"}
    return {"allOf": [resolved], **rest} if rest else resolved


def _check_schedule(value: object) -> bool:
    if not isinstance(value, str):
        return True  # the type keyword reports it
    parse_schedule(value)  # raises ValueError with the reason
    return True


def _check_duration(value: object) -> bool:
    if isinstance(value, str) and _GO_DURATION.match(value):
        parse_duration(value)  # raises ValueError when longer than Go's int64 nanoseconds
    return True  # the type and pattern keywords report the rest


_GO_DURATION = re.compile(r"^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$")
_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")


def _check_date_time(value: object) -> bool:
    """RFC 3339, checked here so no optional jsonschema extra is needed at run time."""
    if not isinstance(value, str):
        return True
    if not _RFC3339.match(value):
        return False
    try:
        datetime.fromisoformat(value.upper().replace("Z", "+00:00"))
    except ValueError:
        return False
    return True


#: format name -> (check, the exception that means "invalid" besides a False answer); both validators use these
FORMAT_CHECKS: dict[str, tuple[Callable[[object], bool], type[Exception] | tuple[type[Exception], ...]]] = {
    "schedule": (_check_schedule, ValueError),
    "date-time": (_check_date_time, ()),
    "duration": (_check_duration, ValueError),
}
_FORMATS = jsonschema.FormatChecker(formats=())
for _name, (_check, _raises) in FORMAT_CHECKS.items():
    _FORMATS.checks(_name, raises=_raises)(_check)


@functools.cache
def _schema(kind: str) -> dict[str, Any]:
    return _inlined(_load(SCHEMA_FILES[kind]), SCHEMA_FILES[kind])


def _pattern(validator: Any, pattern: str, instance: Any, schema: dict) -> Iterator[jsonschema.ValidationError]:
    """jsonschema's `pattern` keyword with `$` the end of the text, as in JSON Schema (ECMA-262) and
    kube-apiserver (Go's regexp); Python's `re` also matched before a final newline, so "ctp\\n" was
    a valid name. The same message as the library's."""
    if validator.is_type(instance, "string") and not end_anchored(pattern).search(instance):
        yield jsonschema.ValidationError(f"{instance!r} does not match {pattern!r}")


@functools.cache
def validator_for(kind: str) -> jsonschema.protocols.Validator:
    """The reference validator of `kind` (built once per process): every message comes from it.
    Its `pattern` keyword ends `$` at the end of the text, as JSON Schema and Kubernetes do."""
    schema = _schema(kind)
    cls = jsonschema.validators.extend(jsonschema.validators.validator_for(schema), {"pattern": _pattern})
    return cls(schema, format_checker=_FORMATS)


class _PythonPattern:
    """A `pattern` for the fast path, with Python's `re.search` as the reference applies it. Rust's
    regex differs from `re` on inputs that matter here: its `\\s` does not match U+001C..U+001F (so
    `prefix: "a\\x1cb"` would pass `^[^\\s]*$`); `\\d`, `\\w`, `\\b`, flags and nested classes differ too."""

    def __init__(self, parent_schema: dict, value: str, schema_path: list) -> None:
        self._search = end_anchored(value).search

    def validate(self, instance: Any) -> None:
        if isinstance(instance, str) and self._search(instance) is None:
            raise ValueError("does not match the pattern")


def _predicate(check: Callable[[object], bool]) -> Callable[[str], bool]:
    """A format check as jsonschema_rs calls it: an exception from it would escape `is_valid`, so any
    exception means "not valid here" and the reference validator decides (and explains)."""

    def predicate(value: str) -> bool:
        try:
            return bool(check(value))
        except Exception:
            return False

    return predicate


#: patterns made only of literals, `\\.`, classes of literals and ranges, groups, alternation, counted
#: repetition and anchors mean the same to Rust's regex as to Python's `re` with `kubevalidation.regex.end_anchored`'s `$`
#: (the end of the text in both). Such patterns stay Rust's (Python's for 10,000 ControlPlanes was 0.03
#: CPU s, a tenth of what was left of validating, measured); any other goes to `_PythonPattern`.
_SAME_IN_RUST = re.compile(r"(?:[-\w/%µ^$.*+?()|]|\\\.|\{\d+(?:,\d+)?\}|\[\^?(?:[-\w.]|\\\.)+\])*", re.ASCII)


def _python_patterns(node: Any) -> Any:
    """The schema with each `pattern` that Rust's regex could read otherwise renamed `pythonPattern`."""
    if isinstance(node, list):
        return [_python_patterns(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {}
    for key, value in node.items():
        if key == "pattern" and isinstance(value, str) and not (_SAME_IN_RUST.fullmatch(value) and "(?" not in value):
            out["pythonPattern"] = value
        else:
            out[key] = value if key in ("const", "enum", "default", "examples") else _python_patterns(value)
    return out


@functools.cache
def fast_validator_for(kind: str) -> jsonschema_rs.Validator:
    """The compiled validator of `kind` (built once per process). A schema naming a format that
    FORMAT_CHECKS does not have fails here, not silently."""
    return jsonschema_rs.validator_for(
        _python_patterns(_schema(kind)),
        formats={name: _predicate(check) for name, (check, _) in FORMAT_CHECKS.items()},
        validate_formats=True,
        ignore_unknown_formats=False,
        keywords={"pythonPattern": _PythonPattern},
    )


def is_valid(kind: str, data: Any) -> bool:
    """True when `data` is a valid `kind` by the fast path. False means "ask the reference": a
    value that has no JSON type (bytes, a set) or anything the fast path cannot take is not valid here."""
    try:
        return fast_validator_for(kind).is_valid(data)
    except Exception:
        return False


def validate(kind: str, data: Any) -> list[SchemaProblem]:
    """Every schema problem of one object (not just the first), sorted by field; [] when valid."""
    if is_valid(kind, data):
        return []
    problems = [p for error in validator_for(kind).iter_errors(data) for p in _explain(error)]
    return sorted(set(problems), key=lambda p: (field_name(p.path), p.message))


def _explain(error: jsonschema.ValidationError) -> Iterator[SchemaProblem]:
    path = tuple(error.absolute_path)
    keyword = error.validator
    value = error.instance
    schema = error.schema if isinstance(error.schema, dict) else {}
    if keyword == "additionalProperties" and isinstance(value, dict):
        known = sorted(schema.get("properties", {}))
        for extra in sorted(set(value) - set(known)):
            close = difflib.get_close_matches(str(extra), known, n=1, cutoff=0.6)
            hint = f" (did you mean {close[0]!r}?)" if close else f"; valid fields: {', '.join(known)}"
            yield SchemaProblem(path + (extra,), f"unknown field {extra!r}{hint}")
        return
    if keyword == "required":
        missing = error.message.split("'")[1] if "'" in error.message else str(error.validator_value)
        if missing == "secretRef":
            yield SchemaProblem(path + (missing,), "required when credentials.source is 'Secret'")
        else:
            yield SchemaProblem(path + (missing,), "required field is missing")
        return
    if keyword == "if":
        return  # reported by the 'then' branch's own error
    if keyword == "const":
        yield SchemaProblem(path, f"must be {error.validator_value!r}, not {_short(value)}")
        return
    if keyword == "pattern":
        what = schema.get("description", "").split(":")[0].rstrip(".")
        what = what[0].lower() + what[1:] if what else f"matching {error.validator_value}"
        yield SchemaProblem(path, f"{_short(value)} is not {what}")
        return
    if keyword == "format":
        cause = str(error.cause) if error.cause else f"is not a valid {error.validator_value}"
        if error.validator_value == "date-time":
            cause = f"{_short(value)} is not an RFC 3339 date-time like '2026-01-31T12:00:00Z'"
        yield SchemaProblem(path, cause)
        return
    if keyword == "anyOf":
        options = " or ".join(
            s.get("type", "value") + (f" matching {s['pattern']}" if "pattern" in s else "") for s in error.validator_value
        )
        yield SchemaProblem(path, f"{_short(value)} must be {options} (e.g. 2 or \"50%\")")
        return
    if keyword == "oneOf" and all(isinstance(s, dict) and set(s) == {"required"} for s in error.validator_value):
        yield SchemaProblem(path, "give exactly one of " + " or ".join(s["required"][0] for s in error.validator_value))
        return
    if keyword == "propertyNames":
        yield SchemaProblem(path, f"invalid key: {error.message}")
        return
    message = error.message
    if keyword in ("maxLength", "minLength") and isinstance(value, str):
        message = f"{_short(value)} is {len(value)} characters; {keyword[:3]}imum is {error.validator_value}"
    yield SchemaProblem(path, message)


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
