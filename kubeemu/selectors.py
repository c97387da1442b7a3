"""Label and field selectors as the API server parses them (`a=b,c!=d,e in (x,y),!f,g`)."""

from __future__ import annotations

import re
from collections.abc import Callable

Predicate = Callable[[dict], bool]

_SET = re.compile(r"^\s*(!?)\s*([A-Za-z0-9./_-]+)\s*(?:(notin|in)\s*\(([^)]*)\))?\s*$")
_EQ = re.compile(r"^\s*([A-Za-z0-9./_-]+)\s*(==|!=|=)\s*([A-Za-z0-9._-]*)\s*$")


class SelectorError(ValueError):
    pass


def _split(text: str) -> list[str]:
    """Split on commas that are not inside parentheses."""
    parts, depth, current = [], 0, ""
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += ch
    if current.strip():
        parts.append(current)
    return parts


def label_selector(text: str | None) -> Predicate:
    if not text:
        return lambda obj: True
    checks: list[Callable[[dict], bool]] = []
    for part in _split(text):
        eq = _EQ.match(part)
        if eq:
            key, op, value = eq.groups()
            if op == "!=":
                checks.append(lambda labels, k=key, v=value: labels.get(k) != v)
            else:
                checks.append(lambda labels, k=key, v=value: labels.get(k) == v)
            continue
        st = _SET.match(part)
        if not st:
            raise SelectorError(f"unable to parse requirement: {part.strip()!r}")
        negate, key, op, values = st.groups()
        if op:
            wanted = {v.strip() for v in values.split(",") if v.strip()}
            if op == "in":
                checks.append(lambda labels, k=key, w=wanted: labels.get(k) in w)
            else:
                checks.append(lambda labels, k=key, w=wanted: labels.get(k) not in w)
        elif negate:
            checks.append(lambda labels, k=key: k not in labels)
        else:
            checks.append(lambda labels, k=key: k in labels)

    def matches(obj: dict) -> bool:
        labels = (obj.get("metadata") or {}).get("labels") or {}
        return all(check(labels) for check in checks)

    return matches


FIELDS = {"metadata.name": ("metadata", "name"), "metadata.namespace": ("metadata", "namespace")}


def field_selector(text: str | None) -> Predicate:
    if not text:
        return lambda obj: True
    checks = []
    for part in _split(text):
        eq = _EQ.match(part)
        if not eq:
            raise SelectorError(f"invalid field selector: {part.strip()!r}")
        field, op, value = eq.groups()
        if field not in FIELDS:
            raise SelectorError(f'field label not supported: "{field}"')
        path = FIELDS[field]
        checks.append((path, op, value))

    def matches(obj: dict) -> bool:
        for (a, b), op, value in checks:
            actual = ((obj.get(a) or {}).get(b)) or ""
            if (actual == value) != (op != "!="):
                return False
        return True

    return matches
