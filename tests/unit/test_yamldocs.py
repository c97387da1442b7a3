"""What `parse_documents` makes of YAML: each scalar as PyYAML's safe loader types it (YAML 1.1: `yes`,
`012`, `!!binary`), timestamps and binary kept as text, the line of every field, merge keys, aliases,
and one located error for what it refuses. The table holds several members of each family, so a
faster reader (resolved tags cached, scalars built without the constructor's bookkeeping) must give
exactly these values."""

from __future__ import annotations

import math

import pytest
import yaml

from ctpbackup.desired.yamldocs import YamlError, parse_documents

PARSED = [
    # core scalars of YAML 1.1 as PyYAML's SafeLoader resolves them
    ("a: 1\nb: 0o17\nc: 0x1F\nd: 1_000\ne: 1.5\ng: yes\nh: No\ni: ~\nj: null\nk: 012\nl: +12\nm: -0\n",
     [({"a": 1, "b": "0o17", "c": 31, "d": 1000, "e": 1.5, "g": True, "h": False, "i": None, "j": None, "k": 10, "l": 12,
        "m": 0}, 1, {("a",): 1, ("b",): 2, ("c",): 3, ("d",): 4, ("e",): 5, ("g",): 6, ("h",): 7, ("i",): 8, ("j",): 9,
                     ("k",): 10, ("l",): 11, ("m",): 12})]),
    # quoted and explicitly tagged scalars; timestamps and !!binary stay the text the API server would see
    ("k: 2026-01-01\nl: 2026-01-01T10:00:00Z\nm: !!binary aGVsbG8=\nn: '1'\no: \"yes\"\np: !!str 12\nq: !!int '7'\n"
     "r: !!float '2'\ns: !!bool 'on'\nt: !!null ''\n",
     [({"k": "2026-01-01", "l": "2026-01-01T10:00:00Z", "m": "aGVsbG8=", "n": "1", "o": "yes", "p": "12", "q": 7,
        "r": 2.0, "s": True, "t": None},
       1, {("k",): 1, ("l",): 2, ("m",): 3, ("n",): 4, ("o",): 5, ("p",): 6, ("q",): 7, ("r",): 8, ("s",): 9, ("t",): 10})]),
    # keys that are not strings become their text
    ("1: a\ntrue: b\nnull: c\n1.5: d\n0x10: e\n",
     [({"1": "a", "True": "b", "None": "c", "1.5": "d", "16": "e"}, 1,
       {("1",): 1, ("True",): 2, ("None",): 3, ("1.5",): 4, ("16",): 5})]),
    # block and flow styles; the line of each item and field
    ("list:\n- a\n- b: 1\n  c: 2\n- [x, {y: z}]\n",
     [({"list": ["a", {"b": 1, "c": 2}, ["x", {"y": "z"}]]}, 1,
       {("list",): 1, ("list", 0): 2, ("list", 1): 3, ("list", 1, "b"): 3, ("list", 1, "c"): 4, ("list", 2): 5,
        ("list", 2, 0): 5, ("list", 2, 1): 5, ("list", 2, 1, "y"): 5})]),
    ("a: 'multi\n  line'\nb: |\n  block\n  text\nc: >-\n  folded\n  text\n",
     [({"a": "multi line", "b": "block\ntext\n", "c": "folded text"}, 1, {("a",): 1, ("b",): 3, ("c",): 6})]),
    ("- 1\n- -2\n", [([1, -2], 1, {(0,): 1, (1,): 2})]),
    ("plain\n", [("plain", 1, {})]),
    # empty and null documents are skipped; each document starts its own lines
    ("---\n---\na: 1\n--- ~\n---\nb: [1,\n  2]\n",
     [({"a": 1}, 3, {("a",): 3}), ({"b": [1, 2]}, 6, {("b",): 6, ("b", 0): 6, ("b", 1): 7})]),
    # aliases and merge keys: a merged field keeps the line where it was written
    ("a: &x hello\nb: *x\nc: [*x, *x]\n",
     [({"a": "hello", "b": "hello", "c": ["hello", "hello"]}, 1, {("a",): 1, ("b",): 2, ("c",): 3, ("c", 0): 1, ("c", 1): 1})]),
    ("base: &b {x: 1, y: 2}\nspec: {<<: [*b], y: 3}\n",
     [({"base": {"x": 1, "y": 2}, "spec": {"x": 1, "y": 3}}, 1,
       {("base",): 1, ("base", "x"): 1, ("base", "y"): 1, ("spec",): 2, ("spec", "x"): 1, ("spec", "y"): 2})]),
    ("one: &o {a: 1}\ntwo: &t {a: 2, b: 2}\nm:\n  <<: [*o, *t]\n  c: 3\n",
     [({"one": {"a": 1}, "two": {"a": 2, "b": 2}, "m": {"a": 1, "b": 2, "c": 3}}, 1,
       {("one",): 1, ("one", "a"): 1, ("two",): 2, ("two", "a"): 2, ("two", "b"): 2, ("m",): 3, ("m", "a"): 1,
        ("m", "b"): 2, ("m", "c"): 5})]),
    ("m: {<<: {=: 1}, k: v}\n", [({"m": {"=": 1, "k": "v"}}, 1, {("m",): 1, ("m", "="): 1, ("m", "k"): 1})]),
    ("=: v\n", [({"=": "v"}, 1, {("=",): 1})]),
    # other standard tags the safe loader knows
    ("a: !!set {x, y}\n", [({"a": {"x": None, "y": None}}, 1, {("a",): 1, ("a", "x"): 1, ("a", "y"): 1})]),
    ("a: !!omap [{x: 1}]\n", [({"a": [{"x": 1}]}, 1, {("a",): 1, ("a", 0): 1, ("a", 0, "x"): 1})]),
    # a collection tag on a scalar, or a scalar tag on a collection: the node's shape decides
    ("a: !!map x\nb: !!seq y\nc: !!str {x: 1}\nd: !!int [1]\n",
     [({"a": {}, "b": [], "c": {"x": 1}, "d": [1]}, 1,
       {("a",): 1, ("b",): 2, ("c",): 3, ("c", "x"): 3, ("d",): 4, ("d", 0): 4})]),
]


@pytest.mark.parametrize("text, documents", PARSED, ids=[repr(t[0])[:40] for t in PARSED])
def test_values_and_lines(text, documents):
    parsed = [(d.data, d.line, d.lines) for d in parse_documents(text.encode())]
    assert parsed == documents
    # the values are those of PyYAML's own safe loader, timestamps and binary aside
    if "2026-01-01" not in text and "!!" not in text and not text.startswith("1:"):
        assert [d for d, _, _ in parsed] == [d for d in yaml.safe_load_all(text) if d is not None]


def test_special_floats_and_types_are_kept():
    (doc,) = parse_documents(b"a: .inf\nb: -.Inf\nc: .nan\nd: 1e3\ne: 6.8523015e+5\nf: 190:20:30\n")
    assert (doc.data["a"], doc.data["b"], math.isnan(doc.data["c"]), doc.data["d"], doc.data["e"], doc.data["f"]) == (
        math.inf, -math.inf, True, "1e3", 685230.15, 685230)
    assert [type(doc.data[k]) for k in "abcdef"] == [float, float, float, str, float, int]


REFUSED = [
    ("=: v\nw: =\n", 2, "invalid YAML: could not determine a constructor for the tag 'tag:yaml.org,2002:value'"),
    ("a: !foo bar\n", 1, "invalid YAML: could not determine a constructor for the tag '!foo'"),
    ("a:\n  b: !!python/name:os.system ''\n", 2,
     "invalid YAML: could not determine a constructor for the tag 'tag:yaml.org,2002:python/name:os.system'"),
    ("a: <<\n", 1, "invalid YAML: could not determine a constructor for the tag 'tag:yaml.org,2002:merge'"),
    # a value its tag cannot read (PyYAML's constructors raise plain exceptions for these)
    ("a: !!int x\n", 1, "invalid YAML: 'x' is not a valid !!int"),
    ("a: !!int 0x\n", 1, "invalid YAML: '0x' is not a valid !!int"),
    ("a:\n  - !!float x\n", 2, "invalid YAML: 'x' is not a valid !!float"),
    ("a: !!bool maybe\n", 1, "invalid YAML: 'maybe' is not a valid !!bool"),
    ("a: !!timestamp x\n", 1, "invalid YAML: 'x' is not a valid !!timestamp"),
    ("a: " + "1" * 5000 + "\n", 1, "invalid YAML: '" + "1" * 40 + "'... (5000 characters) is not a valid !!int"),
    ("a: 1\nb: 2\na: 3\n", 3, "duplicate key 'a'"),
    ("null: c\n~: e\n", 2, "duplicate key 'None'"),
    ("1: a\n'1': b\n", 2, "duplicate key '1'"),
    ("? [a]\n: b\n", 1, "mapping keys must be plain scalars"),
    ("? {a: 1}\n: b\n", 1, "mapping keys must be plain scalars"),
    ("b: &b {y: 1}\nspec: {<<: *b, x: 1, x: 2}\n", 2, "duplicate key 'x'"),
    ("a: [1, 2\n", 2, "invalid YAML: did not find expected ',' or ']'"),
    ("a: *nothing\n", 1, "invalid YAML: found undefined alias"),
    ("a: b: c\n", 1, "invalid YAML: mapping values are not allowed in this context"),
    ("a: " + "[" * 70 + "]" * 70 + "\n", 1, "nesting deeper than 64 levels"),
    ("a:\n" + "".join("  " * i + "- \n" for i in range(1, 70)), 66, "nesting deeper than 64 levels"),
]


@pytest.mark.parametrize("text, line, message", REFUSED, ids=[repr(t[0])[:40] for t in REFUSED])
def test_refused_with_its_line(text, line, message):
    with pytest.raises(YamlError, match="^" + message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[") + "$") as err:
        list(parse_documents(text.encode()))
    assert err.value.line == line


def test_a_key_its_tag_cannot_read_is_refused_too():
    with pytest.raises(YamlError, match=r"^invalid YAML: 'x' is not a valid !!int$") as err:
        list(parse_documents(b"a: 1\n!!int x: 2\n"))
    assert err.value.line == 2


def test_tags_are_resolved_per_file_not_carried_between_files():
    # the same text resolves alike in each file; a quoted "1" stays text where a plain 1 is a number
    first = [d.data for d in parse_documents(b"a: 1\nb: '1'\n---\nc: 1\n")]
    second = [d.data for d in parse_documents(b"a: '1'\nb: 1\n")]
    assert (first, second) == ([{"a": 1, "b": "1"}, {"c": 1}], [{"a": "1", "b": 1}])
    assert not yaml.SafeLoader.yaml_path_resolvers  # what caching resolved tags relies on
