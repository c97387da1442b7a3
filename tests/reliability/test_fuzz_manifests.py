"""Bad input, fuzzed: mutated manifests never cause a traceback, always give a located error, and
never let a plan happen. Cases come from a fixed seed, so every run checks the same ones."""

from __future__ import annotations

import copy
import random
from datetime import UTC, datetime
from pathlib import Path

import yaml
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

from ctpbackup.desired.manifests import ManifestFile, load_desired_state
from ctpbackup.desired.problems import Severity

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
FILES = sorted(EXAMPLES.rglob("*.yaml"))
DOCS = [d for f in FILES for d in yaml.safe_load_all(f.read_text()) if d]
NOW = datetime(2026, 11, 25, tzinfo=UTC)

JUNK = st.one_of(
    st.none(), st.booleans(), st.integers(-2**70, 2**70), st.floats(allow_nan=True), st.text(max_size=30),
    st.text(min_size=5000, max_size=20000), st.lists(st.integers(), max_size=3), st.dictionaries(st.text(max_size=5), st.integers(), max_size=3),
)


def paths(value, prefix=()):
    yield prefix
    if isinstance(value, dict):
        for k, v in value.items():
            yield from paths(v, prefix + (k,))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from paths(v, prefix + (i,))


def mutate(doc: dict, rnd: random.Random, junk) -> dict:
    doc = copy.deepcopy(doc)
    targets = [p for p in paths(doc) if p]
    path = rnd.choice(targets)
    parent = doc
    for part in path[:-1]:
        parent = parent[part]
    op = rnd.choice(["replace", "delete", "unknown", "nest"])
    if op == "replace":
        parent[path[-1]] = junk
    elif op == "delete" and isinstance(parent, dict):
        del parent[path[-1]]
    elif op == "unknown" and isinstance(parent, dict):
        parent[f"{path[-1]}x"] = junk
    else:
        nested = junk
        for _ in range(rnd.randint(1, 120)):
            nested = {"n": nested}
        parent[path[-1]] = nested
    return doc


def check(files: list[ManifestFile]) -> None:
    """The properties: no exception escapes; errors are located; an invalid repo yields no state to plan."""
    result = load_desired_state(files, "f" * 40)
    for problem in result.problems:
        assert problem.path and problem.message
        assert problem.line >= 0
        text = str(problem)
        assert text.startswith(problem.path)
    if result.errors:
        assert result.desired is None
        assert all(p.line > 0 for p in result.errors), [str(p) for p in result.errors if p.line <= 0]


def base_files(replacement: bytes) -> list[ManifestFile]:
    """The valid examples plus one fuzzed file: the valid ones must not mask the bad one."""
    files = [ManifestFile(str(f.relative_to(EXAMPLES)), f.read_bytes()) for f in FILES]
    files.append(ManifestFile("fuzz/case.yaml", replacement))
    return files


@seed(20261125)
@settings(max_examples=700, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(st.integers(0, len(DOCS) - 1), st.integers(0, 2**32), JUNK)
def test_mutated_documents(which, rnd_seed, junk):
    doc = mutate(DOCS[which], random.Random(rnd_seed), junk)
    try:
        text = yaml.safe_dump(doc, allow_unicode=True).encode()
    except (yaml.YAMLError, RecursionError, ValueError):
        return
    check(base_files(text))


RAW = st.one_of(
    st.binary(max_size=400),
    st.text(max_size=400).map(lambda t: t.encode("utf-8", "surrogatepass")),
    st.sampled_from([
        b"a: &a [x,x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\n"
        b"d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\ne: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]\nf: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]\n",
        b"kind: Backup\nkind: Backup\n",
        b"\xff\xfe\x00bad",
        b"[" * 5000,
        b"apiVersion: spaces.upbound.io/v1alpha1\nkind: Backup\nmetadata: {name: " + b"x" * 100000 + b"}\n",
        b"---\n" * 3000 + b"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n",
        b"apiVersion: spaces.upbound.io/v1alpha1\nkind: SharedBackup\nmetadata: {name: s}\nspec: !!python/object:os.system {}\n",
    ]),
)


@seed(20261125)
@settings(max_examples=350, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(RAW)
def test_raw_bytes(data):
    check(base_files(data))


def test_thousands_of_documents_are_read():
    one = (EXAMPLES / "backups" / "single.yaml").read_text().split("---")[0]
    many = "\n---\n".join(one.replace("restore-me", f"b{i}") for i in range(3000)).encode()
    files = base_files(many)
    result = load_desired_state(files, "f" * 40)
    assert not result.errors and len(result.require().backups) == 3000 + 2


def test_a_fuzzed_error_never_reaches_the_planner():
    bad = yaml.safe_dump({**DOCS[0], "spec": {"objectStorage": "nope"}}).encode()
    result = load_desired_state(base_files(bad), "f" * 40)
    assert result.errors and result.desired is None
    assert all(p.severity in (Severity.ERROR, Severity.WARNING) for p in result.problems)
