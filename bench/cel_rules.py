"""How many `x-kubernetes-validations` rules of real CRDs kubevalidation's CEL library parses and evaluates.

Reads CRDs from local bare git mirrors (no network): crossplane/crossplane `cluster/crds/` and a sample of
crossplane-contrib/provider-upjet-aws `package/crds/`. Each rule is evaluated against a value built from
its schema (every declared field present), with `oldSelf` equal to `self`.
Run: .venv/bin/python bench/cel_rules.py [--crossplane GITDIR] [--aws GITDIR] [--sample 300]
"""

from __future__ import annotations

import argparse
import collections
import json
import random
import subprocess
import sys
from pathlib import Path

import yaml
from common import ROOT  # noqa: F401 - puts the project on sys.path

from kubevalidation import cel

MIRRORS = Path("/work/.mirror")


def _files(gitdir: str, prefix: str) -> list[str]:
    out = subprocess.run(["git", "-C", gitdir, "ls-tree", "--name-only", "HEAD", prefix], capture_output=True, text=True,
                         check=True)
    return [f for f in out.stdout.split() if f.endswith(".yaml")]


def _show(gitdir: str, path: str) -> dict:
    text = subprocess.run(["git", "-C", gitdir, "show", f"HEAD:{path}"], capture_output=True, text=True, check=True).stdout
    return yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))  # noqa: S506 - a safe loader


def _rules(schema: object, out: list) -> None:
    if not isinstance(schema, dict):
        return
    out.extend((rule, schema) for rule in schema.get("x-kubernetes-validations") or ())
    for child in (schema.get("properties") or {}).values():
        _rules(child, out)
    for key in ("items", "additionalProperties"):
        _rules(schema.get(key), out)


def _sample(schema: object, depth: int = 0, text: str = "x") -> object:
    """A value of the schema's shape with every declared field present; strings are `text`."""
    if not isinstance(schema, dict) or depth > 8:
        return text
    if schema.get("enum"):
        return schema["enum"][0]
    kind = schema.get("type")
    if kind == "object" or "properties" in schema:
        return {cel.escape(k): _sample(v, depth + 1, text) for k, v in (schema.get("properties") or {}).items()}
    return {"array": lambda: [_sample(schema.get("items"), depth + 1, text)], "integer": lambda: 1, "number": lambda: 1.5,
            "boolean": lambda: True}.get(kind, lambda: 1 if schema.get("x-kubernetes-int-or-string") else text)()


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--crossplane", default=str(MIRRORS / "crossplane+crossplane/repo"))
    parser.add_argument("--aws", default=str(MIRRORS / "crossplane-contrib+provider-upjet-aws/repo"))
    parser.add_argument("--sample", type=int, default=300)
    args = parser.parse_args()
    sources = []
    if Path(args.crossplane).exists():
        sources += [(args.crossplane, f) for f in _files(args.crossplane, "cluster/crds/")]
    if Path(args.aws).exists():
        files = _files(args.aws, "package/crds/")
        sources += [(args.aws, f) for f in random.Random(1).sample(files, min(args.sample, len(files)))]
    if not sources:
        print("no mirrors found: fetch crossplane/crossplane and crossplane-contrib/provider-upjet-aws first")
        return 1
    found: list = []
    for gitdir, path in sources:
        for version in (_show(gitdir, path).get("spec") or {}).get("versions") or ():
            _rules(((version.get("schema") or {}).get("openAPIV3Schema")), found)
    parsed = evaluated = 0
    failures: collections.Counter = collections.Counter()
    for spec, schema in found:
        rule = cel.compile_rule(spec)
        if rule.program is None:
            failures[f"unsupported: {rule.rule} ({rule.unsupported})"] += 1
            continue
        parsed += 1
        for text in ("x", "1s"):  # "1s" for string fields the rule reads as durations
            value = _sample(schema, text=text)
            try:
                cel.evaluate(rule, value, value, True)
            except cel.EvaluationError as err:
                error = str(err)
                continue
            evaluated += 1
            break
        else:
            failures[f"evaluation: {rule.rule} ({error})"] += 1
    print(json.dumps({"benchmark": "cel_rules", "crd_files": len(sources), "rules": len(found), "parsed": parsed,
                      "evaluated": evaluated, "unsupported": len(found) - evaluated,
                      "failures": dict(failures.most_common(20))}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
