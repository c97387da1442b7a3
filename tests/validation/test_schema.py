"""Custom resources against their OpenAPI v3 schema: pruning, defaults, validation, ratcheting (tables)."""

from __future__ import annotations

import re

import pytest

from kubevalidation import BadRequest, CompiledSchema, Invalid, Target, admit

SCHEMA = {
    "type": "object",
    "properties": {
        "spec": {
            "type": "object",
            "required": ["size"],
            "properties": {
                "size": {"type": "integer", "minimum": 1, "maximum": 10},
                "ratio": {"type": "number", "exclusiveMaximum": True, "maximum": 1},
                "mode": {"type": "string", "enum": ["Fast", "Safe"], "default": "Safe"},
                "name": {"type": "string", "pattern": "^[a-z]+$", "minLength": 2, "maxLength": 5},
                "email": {"type": "string", "format": "email"},
                "ip": {"type": "string", "format": "ipv4"},
                "when": {"type": "string", "format": "date-time"},
                "custom": {"type": "string", "format": "not-a-kubernetes-format"},
                "port": {"x-kubernetes-int-or-string": True},
                "tags": {"type": "array", "maxItems": 2, "items": {"type": "string"}},
                "set": {"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "string"}},
                "ports": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"],
                          "items": {"type": "object", "properties": {"name": {"type": "string"},
                                                                     "port": {"type": "integer", "default": 80}}}},
                "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                "note": {"type": "string", "nullable": True},
                "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                "template": {"type": "object", "x-kubernetes-embedded-resource": True,
                             "properties": {"spec": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}}},
            },
        },
        "status": {"type": "object", "properties": {"ready": {"type": "boolean"}}},
    },
}
WIDGET = Target("example.org", "v1", "Widget", "widgets", namespaced=True, custom=True)


def obj(**spec):
    return {"apiVersion": "example.org/v1", "kind": "Widget", "metadata": {"name": "w", "namespace": "n"},
            "spec": {"size": 3, **spec}}


@pytest.fixture(scope="module")
def schema():
    return CompiledSchema(SCHEMA)


@pytest.mark.parametrize(("spec", "field", "reason", "message"), [
    ({"size": "3"}, "spec.size", "FieldValueTypeInvalid",
     'spec.size: Invalid value: "string": spec.size in body must be of type integer: "string"'),
    ({"size": 3.5}, "spec.size", "FieldValueTypeInvalid",
     'spec.size: Invalid value: "number": spec.size in body must be of type integer: "number"'),
    ({"size": True}, "spec.size", "FieldValueTypeInvalid",
     'spec.size: Invalid value: "boolean": spec.size in body must be of type integer: "boolean"'),
    ({"size": 0}, "spec.size", "FieldValueInvalid", "spec.size: Invalid value: 0: spec.size in body should be greater than or equal to 1"),
    ({"size": 11}, "spec.size", "FieldValueInvalid", "spec.size: Invalid value: 11: spec.size in body should be less than or equal to 10"),
    ({"ratio": 1}, "spec.ratio", "FieldValueInvalid", "spec.ratio: Invalid value: 1: spec.ratio in body should be less than 1"),
    ({"mode": "Slow"}, "spec.mode", "FieldValueNotSupported",
     'spec.mode: Unsupported value: "Slow": supported values: "Fast", "Safe"'),
    ({"name": "ab1"}, "spec.name", "FieldValueInvalid", "spec.name: Invalid value: \"ab1\": spec.name in body should match '^[a-z]+$'"),
    # Go's regexp ends `$` at the end of the text (Python's `re` also before a final newline)
    ({"name": "abc\n"}, "spec.name", "FieldValueInvalid",
     "spec.name: Invalid value: \"abc\\n\": spec.name in body should match '^[a-z]+$'"),
    ({"name": "abcdef"}, "spec.name", "FieldValueTooLong", "spec.name: Too long: may not be more than 5 bytes"),
    ({"name": "a"}, "spec.name", "FieldValueInvalid", 'spec.name: Invalid value: "a": spec.name in body should be at least 2 chars long'),
    ({"email": "nobody"}, "spec.email", "FieldValueInvalid",
     'spec.email: Invalid value: "nobody": spec.email in body must be of type email: "nobody"'),
    ({"ip": "10.0.0.256"}, "spec.ip", "FieldValueInvalid",
     'spec.ip: Invalid value: "10.0.0.256": spec.ip in body must be of type ipv4: "10.0.0.256"'),
    ({"when": "yesterday"}, "spec.when", "FieldValueInvalid",
     'spec.when: Invalid value: "yesterday": spec.when in body must be of type date-time: "yesterday"'),
    ({"port": 1.5}, "spec.port", "FieldValueTypeInvalid",
     'spec.port: Invalid value: "number": spec.port in body must be of type integer,string: "number"'),
    ({"tags": ["a", "b", "c"]}, "spec.tags", "FieldValueTooMany", "spec.tags: Too many: 3: must have at most 2 items"),
    ({"tags": [1]}, "spec.tags[0]", "FieldValueTypeInvalid",
     'spec.tags[0]: Invalid value: "integer": spec.tags[0] in body must be of type string: "integer"'),
    ({"set": ["a", "a"]}, "spec.set[1]", "FieldValueDuplicate", 'spec.set[1]: Duplicate value: "a"'),
    ({"ports": [{"name": "a"}, {"name": "a", "port": 81}]}, "spec.ports[1]", "FieldValueDuplicate",
     'spec.ports[1]: Duplicate value: {"name":"a"}'),
    ({"labels": {"k": 1}}, "spec.labels.k", "FieldValueTypeInvalid",
     'spec.labels.k: Invalid value: "integer": spec.labels.k in body must be of type string: "integer"'),
    ({"template": {"spec": {}}}, "spec.template.apiVersion", "FieldValueRequired",
     "spec.template.apiVersion: Required value: must not be empty"),
])
def test_schema_refusals(schema, spec, field, reason, message):
    with pytest.raises(Invalid, match=f'^Widget.example.org "w" is invalid: \\[?{re.escape(message)}') as err:
        admit(WIDGET, obj(**spec), schema=schema)
    causes = err.value.status()["details"]["causes"]
    assert [(c["field"], c["reason"]) for c in causes][:1] == [(field, reason)]
    assert str(err.value.errors[0]) == message
    assert err.value.message.startswith(f'Widget.example.org "w" is invalid: {message}'
                                        if len(causes) == 1 else f'Widget.example.org "w" is invalid: [{message}, ')


def test_required_field(schema):
    body = obj()
    del body["spec"]["size"]
    with pytest.raises(Invalid, match=r'^Widget.example.org "w" is invalid: spec.size: Required value$'):
        admit(WIDGET, body, schema=schema)


@pytest.mark.parametrize("spec", [
    {"port": 8080}, {"port": "http"}, {"note": None}, {"custom": "anything at all"}, {"ratio": 0.5},
    {"when": "2026-11-30T09:00:00Z"}, {"ip": "10.0.0.1"}, {"free": {"any": {"thing": [1]}}},
    {"template": {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}, "spec": {"a": 1}}},
])
def test_schema_accepts(schema, spec):
    stored = admit(WIDGET, obj(**spec), schema=schema).obj
    assert stored["spec"] == {"size": 3, "mode": "Safe", **spec}


@pytest.mark.parametrize(("spec", "unknown"), [
    ({"foo": 1}, ["spec.foo"]),
    ({"foo": 1, "bar": {"x": 1}}, ["spec.foo", "spec.bar"]),
    ({"ports": [{"name": "a", "extra": True}]}, ["spec.ports[0].extra"]),
    ({"template": {"apiVersion": "v1", "kind": "K", "metadata": {}, "other": 1}}, ["spec.template.other"]),
])
def test_unknown_fields_pruned_warned_or_refused(schema, spec, unknown):
    body = obj(**spec)
    admitted = admit(WIDGET, body, schema=schema, field_validation="Warn")
    assert admitted.warnings == [f'unknown field "{p}"' for p in unknown]
    assert all(k not in admitted.obj["spec"] for k in ("foo", "bar"))
    assert admit(WIDGET, body, schema=schema, field_validation="Ignore").warnings == []
    expected = ", ".join(f'unknown field "{p}"' for p in unknown)
    with pytest.raises(BadRequest, match=f"^strict decoding error: {re.escape(expected)}$"):
        admit(WIDGET, body, schema=schema, field_validation="Strict")


def test_unknown_top_level_fields_and_nulls(schema):
    body = obj(note=None)
    body["extra"] = 1
    body["spec"]["mode"] = None  # a null in a non-nullable field is dropped, then defaulted
    stored = admit(WIDGET, body, schema=schema).obj
    assert "extra" not in stored and stored["spec"]["mode"] == "Safe" and stored["spec"]["note"] is None


def test_defaults_apply_in_lists(schema):
    stored = admit(WIDGET, obj(ports=[{"name": "a"}, {"name": "b", "port": 1}]), schema=schema).obj
    assert stored["spec"]["ports"] == [{"name": "a", "port": 80}, {"name": "b", "port": 1}]


def test_updates_ratchet_unchanged_fields(schema):
    """A value stored before the schema got stricter is not re-validated while unchanged."""
    old = obj(name="TOOLONGANDUPPER")
    new = obj(name="TOOLONGANDUPPER", size=4)
    assert admit(WIDGET, new, old, schema=schema).obj["spec"]["size"] == 4
    with pytest.raises(Invalid, match=r"spec.name: Invalid value: \"STILLBAD\""):
        admit(WIDGET, obj(name="STILLBAD"), old, schema=schema)
