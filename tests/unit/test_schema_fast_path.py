"""The compiled fast path (jsonschema_rs) and the reference validator (jsonschema) agree.

`validate` answers [] from the fast path alone, so the fast path must never accept what the
reference refuses; every field case of test_schemas is checked both ways, and so are the families
where the two libraries could differ: regex dialects, formats, numbers, values JSON has no type for.
"""

from __future__ import annotations

import copy
import json
import math
import random
import re
from datetime import date

import pytest

from ctpbackup.desired import schemas
from ctpbackup.desired.schemas import (
    SCHEMA_FILES,
    fast_validator_for,
    field_name,
    is_valid,
    validate,
    validator_for,
)
from tests.unit.test_schemas import BASE, CASES, _with


def reference(kind: str, data) -> list[tuple[str, str]]:
    """The reference validator's problems, not going through the fast path."""
    problems = {p for error in validator_for(kind).iter_errors(data) for p in schemas._explain(error)}
    return sorted((field_name(p.path), p.message) for p in problems)


def problems(kind: str, data) -> list[tuple[str, str]]:
    return [(field_name(p.path), p.message) for p in validate(kind, data)]


@pytest.mark.parametrize("kind", tuple(SCHEMA_FILES))
def test_every_schema_compiles_with_every_format_it_names(kind):
    # ignore_unknown_formats=False: a format without a check in FORMAT_CHECKS would raise here
    assert fast_validator_for(kind).is_valid(BASE[kind]) is True
    assert is_valid(kind, BASE[kind]) is True
    assert set(schemas.FORMAT_CHECKS) == {"schedule", "date-time", "duration"}


@pytest.mark.parametrize("kind, path, valid, invalid, message", CASES, ids=[f"{c[0]}:{c[1]}" for c in CASES])
def test_fast_path_agrees_with_the_reference_on_every_field_case(kind, path, valid, invalid, message):
    if valid is not None:
        doc = _with(kind, path, valid)
        assert (is_valid(kind, doc), reference(kind, doc)) == (True, [])
    doc = _with(kind, path, invalid)
    assert is_valid(kind, doc) is False
    assert problems(kind, doc) == reference(kind, doc)
    assert any(message in text for _, text in reference(kind, doc))


# (kind, field path, value, the reference's verdict[, the fast path's when it differs]) where Rust's
# regex, its formats or its number model could answer otherwise than Python's
DIALECT = [
    # \s: Python's matches U+001C..U+001F, Rust's does not
    ("SharedBackupConfig", "spec.objectStorage.prefix", "a\x1cb", False),
    ("SharedBackupConfig", "spec.objectStorage.prefix", "a\x1fb", False),
    ("SharedBackupConfig", "spec.objectStorage.prefix", "a\u3000b", False),
    ("SharedBackupConfig", "spec.objectStorage.prefix", "a\x85b", False),
    ("SharedBackupConfig", "spec.objectStorage.prefix", "a\u200bb", True),  # zero-width space: not \s in either
    # $ is the end of the text in both (ECMA-262 and Go's regexp; Python's `re` matched before a final
    # newline, and kubevalidation.regex.end_anchored makes it end there)
    ("ControlPlane", "metadata.name", "ctp\n", False),
    ("Backup", "spec.controlPlane", "ctp\n", False),
    ("Backup", "spec.controlPlane", "ctp\n\n", False),
    ("ControlPlane", "spec.crossplane.version", "1.20.0\n", False),
    ("ControlPlane", "spec.crossplane.version", "\n1.20.0", True),  # [^v] matches a newline
    ("ControlPlane", "spec.crossplane.version", "v1.20.0\n", False),
    ("BackupSchedule", "spec.ttl", "1h\n", False),
    ("SharedBackup", "metadata.labels", {"tier": "gold\n"}, False),
    ("SharedBackup", "metadata.labels", {"tier\n": "gold"}, False),
    # maxLength counts code points in both
    ("Backup", "spec.controlPlane", "a" * 63, True),
    ("Backup", "spec.controlPlane", "a" * 64, False),
    ("ControlPlane", "metadata.annotations", {"é" * 317: "x"}, True),
    ("ControlPlane", "metadata.annotations", {"é" * 318: "x"}, False),
    ("ControlPlane", "metadata.annotations", {"\U0001f600" * 317: "x"}, True),
    # the Go duration pattern has a non-ASCII unit
    ("Backup", "spec.ttl", "90µs", True),
    ("Backup", "spec.ttl", "90μs", False),  # Greek mu, not the micro sign
    # formats: our checks, not the library's own date-time or (ISO 8601) duration
    ("Backup", "spec.ttl", "720h", True),
    ("Backup", "spec.ttl", "P1D", False),
    ("Backup", "spec.ttl", "2562048h", False),  # beyond Go's int64 nanoseconds
    ("BackupSchedule", "spec.schedule", "0 0 31 2 *", False),  # never fires
    ("BackupSchedule", "spec.schedule", "@every 10s", False),
    ("BackupSchedule", "spec.schedule", "@weekly", True),
    ("ControlPlane", "spec.restore.finishedAt", "2026-02-30T00:00:00Z", False),
    ("ControlPlane", "spec.restore.finishedAt", "2026-02-28T23:59:60Z", False),
    ("ControlPlane", "spec.restore.finishedAt", "2026-02-28t10:00:00.5+01:00", True),
    ("ControlPlane", "spec.restore.finishedAt", "2026-02-28 10:00:00Z", False),
    # numbers: integer means a whole number, never a boolean
    ("SharedBackup", "spec.failures.controlPlanes", 3, True),
    ("SharedBackup", "spec.failures.controlPlanes", 3.0, True),
    ("SharedBackup", "spec.failures.controlPlanes", 3.5, False),
    ("SharedBackup", "spec.failures.controlPlanes", True, False),
    ("SharedBackup", "spec.failures.controlPlanes", 10**30, True),
    ("SharedBackup", "spec.failures.controlPlanes", math.inf, False),
    ("SharedBackup", "spec.failures.controlPlanes", math.nan, False),
    ("ControlPlane", "status", {"conditions": [{"type": "Ready", "status": "True", "observedGeneration": 10**25}]}, True),
    # uniqueItems
    ("SharedBackup", "spec.controlPlaneSelector.names", ["a", "b"], True),
    ("SharedBackup", "spec.controlPlaneSelector.names", ["a", "a"], False),
    # values JSON has no type for (the YAML reader never makes them, a caller might)
    ("ControlPlane", "spec.class", b"bytes", False),
    ("ControlPlane", "spec.class", {"a", "b"}, False),
    ("ControlPlane", "spec.class", date(2026, 1, 1), False),
    ("ControlPlane", "metadata.annotations", {1: "x"}, False),
]


@pytest.mark.parametrize("kind, path, value, valid, fast", [(*c, c[3])[:5] for c in DIALECT],
                         # a set's repr follows the hash seed, which differs between xdist workers
                         ids=[f"{c[0]}:{c[1]}={sorted(c[2]) if isinstance(c[2], set) else c[2]!r}"[:80] for c in DIALECT])
def test_fast_path_agrees_where_the_libraries_could_differ(kind, path, value, valid, fast):
    doc = _with(kind, path, value)
    assert (reference(kind, doc) == []) is valid
    assert is_valid(kind, doc) is fast
    assert problems(kind, doc) == reference(kind, doc)


def test_only_patterns_rust_could_read_otherwise_are_left_to_python():
    python = {kind: sorted(set(re.findall(r'"pythonPattern": ("[^"]*")', json.dumps(schemas._python_patterns(schemas._schema(kind))))))
              for kind in SCHEMA_FILES}
    assert python == {kind: ['"^[^\\\\s]*$"'] if kind == "SharedBackupConfig" else [] for kind in SCHEMA_FILES}


@pytest.mark.parametrize("pattern, rust", [
    ("^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", True),
    ("^([0-9]+(\\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$", True),
    ("^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$", True),
    ("^(100|[1-9]?[0-9])%$", True),
    ("^[^v].*$", True),
    ("^[^\\s]*$", False),
    ("^\\d+$", False),
    ("^\\w+$", False),
    ("\\bword\\b", False),
    ("(?i)^abc$", False),
    ("^(?:ab)+$", False),
    ("^[[:alpha:]]+$", False),
    ("^[a-z&&[^x]]+$", False),
    ("^a{,3}$", False),
])
def test_which_patterns_stay_rusts(pattern, rust):
    assert schemas._python_patterns({"pattern": pattern}) == ({"pattern": pattern} if rust else {"pythonPattern": pattern})


def test_an_invalid_document_gets_every_message_of_the_reference():
    doc = copy.deepcopy(BASE["Backup"])
    doc["spec"].update(deletionPolicy="Destroy", ttl="1d", excludedResources=["XCluster", "XCluster"], colour="red")
    assert is_valid("Backup", doc) is False
    assert problems("Backup", doc) == [
        ("spec.colour", "unknown field 'colour'; valid fields: configRef, controlPlane, deletionPolicy, excludedResources, ttl"),
        ("spec.deletionPolicy", "'Destroy' is not one of ['Orphan', 'Delete']"),
        ("spec.excludedResources", "['XCluster', 'XCluster'] has non-unique elements"),
        ("spec.excludedResources[0]", "'XCluster' is not a lowercase 'resource.group' name such as "
                                      "'xclusters.aws.platformref.upbound.io' (not a Kind like 'XCluster')"),
        ("spec.excludedResources[1]", "'XCluster' is not a lowercase 'resource.group' name such as "
                                      "'xclusters.aws.platformref.upbound.io' (not a Kind like 'XCluster')"),
        ("spec.ttl", "'1d' is not a Go duration such as '720h', '1h30m' or '90s' (units ns, us, ms, s, m, h)"),
    ]


# Generated from a fixed seed with `random` rather than Hypothesis: Hypothesis installs a gc callback
# that reads perf_counter, which tests/planner/test_plan.py's purity check then sees in the same process.
_ALPHABET = "ab-z09.µ/_ \t\n\x1c\x1f\x85\u3000Aé:@*"
_FIELD_CASES = sorted({(kind, path) for kind, path, *_ in CASES})
_STRING_CASES = sorted({(kind, path, valid) for kind, path, valid, *_ in CASES if isinstance(valid, str)})


def _text(rng: random.Random) -> str:
    return "".join(rng.choice(_ALPHABET) for _ in range(rng.randint(0, 12)))


def _value(rng: random.Random, depth: int = 0):
    """None, a bool, an int up to 2**70, a float, a string of the tricky alphabet, or a list or mapping of them."""
    makers = [lambda: None, lambda: rng.random() < 0.5, lambda: rng.randint(-(2**70), 2**70),
              lambda: rng.uniform(-1e6, 1e6), lambda: _text(rng),
              lambda: [_value(rng, depth + 1) for _ in range(rng.randint(0, 3))],
              lambda: {_text(rng): _value(rng, depth + 1) for _ in range(rng.randint(0, 3))}]
    return makers[rng.randint(0, 6 if depth < 2 else 4)]()


def _near_valid(rng: random.Random) -> tuple[str, str, str]:
    """A field's valid string with one character of the tricky alphabet put in, or its end cut off."""
    kind, path, valid = rng.choice(_STRING_CASES)
    at = rng.randint(0, len(valid))
    return kind, path, valid[:at] if rng.random() < 0.5 else valid[:at] + rng.choice(_ALPHABET) + valid[at:]


_GENERATED = random.Random(20261130)
GENERATED = [(*_GENERATED.choice(_FIELD_CASES), _value(_GENERATED)) for _ in range(400)]
NEAR_VALID = [_near_valid(_GENERATED) for _ in range(400)]


@pytest.mark.parametrize("cases, valid, fast", [(GENERATED, 11, 11), (NEAR_VALID, 135, 135)],
                         ids=["generated values", "strings near valid ones"])
def test_fast_path_agrees_on_generated_values(cases, valid, fast):
    counts = [0, 0]
    for kind, path, value in cases:
        doc = _with(kind, path, value)
        assert problems(kind, doc) == reference(kind, doc), (kind, path, value)
        assert not is_valid(kind, doc) or reference(kind, doc) == [], (kind, path, value)
        counts[0] += reference(kind, doc) == []
        counts[1] += is_valid(kind, doc)
    # both agree on every case (the reference's `$` ends at the end of the text, as the fast path's)
    assert counts == [valid, fast]
