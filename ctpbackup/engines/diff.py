"""Differences between two sets of control-plane objects: two backups, or a backup and the control plane
now (drift). Per resource: objects added (+), removed (-) and changed (~), Terraform's signs.

Fields the server owns are not differences: uid, resourceVersion, generation, creationTimestamp,
managedFields (the archive format's SERVER_FIELDS), the uids in ownerReferences (every control plane
gives its own), and whatever the restore's clean-up table (`restore_order.CLEANUPS`) drops before a
write: the status of built-ins, Service cluster IPs and allocated node ports, token Secrets' data, CRD
status. The same table, not a second list: what a restore would not bring back is no difference.

Streaming, in bounded memory: the left side is read once, each object normalised and spooled to a
temporary file, keeping only its key, a sha256 of its normalised JSON and its offset; the right side
is read once and compared by hash. Only a changed object's two bodies are ever in memory together
(to name the fields that differ). Secret values are never shown: a changed Secret says which of its
top-level fields changed, and its data only "changed".
"""

from __future__ import annotations

import copy
import hashlib
import json
import tempfile
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from ctpbackup.engines import jsoncodec
from ctpbackup.engines.archive import SERVER_FIELDS
from ctpbackup.engines.restore import is_custom
from ctpbackup.engines.restore_order import clean

FORMAT_VERSION = "1"
#: the fields of a Secret whose values are never shown, even with show_values
SECRET_VALUES = ("data", "stringData")
HIDDEN = object()  #: a value not shown


@dataclass(frozen=True)
class FieldChange:
    """One field that differs: its path (`data.mode`, `metadata.labels["app.kubernetes.io/name"]`,
    `spec.ports[0].port`) and, when values are shown, the old and new value (HIDDEN otherwise;
    None for a field only one side has)."""

    path: str
    old: Any = HIDDEN
    new: Any = HIDDEN

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"path": self.path}
        if self.old is not HIDDEN:
            out["old"], out["new"] = self.old, self.new
        return out


@dataclass(frozen=True)
class Change:
    """One object added (`+`), removed (`-`) or changed (`~`, with the fields that differ)."""

    sign: str
    resource: str
    namespace: str
    name: str
    fields: tuple[FieldChange, ...] = ()

    @property
    def ident(self) -> str:
        return f"{self.namespace}/{self.name}" if self.namespace else self.name


@dataclass
class DiffResult:
    """Every change, sorted by resource then object; `unchanged` counts per resource."""

    left: str
    right: str
    changes: list[Change] = field(default_factory=list)
    unchanged: dict[str, int] = field(default_factory=dict)
    show_values: bool = False

    def summary(self) -> dict[str, dict[str, int]]:
        """resource -> {"added", "removed", "changed", "unchanged"} (every resource seen on either side)."""
        out: dict[str, dict[str, int]] = {r: {"added": 0, "removed": 0, "changed": 0, "unchanged": n}
                                          for r, n in self.unchanged.items()}
        names = {"+": "added", "-": "removed", "~": "changed"}
        for change in self.changes:
            row = out.setdefault(change.resource, {"added": 0, "removed": 0, "changed": 0, "unchanged": 0})
            row[names[change.sign]] += 1
        return dict(sorted(out.items()))

    def totals(self) -> dict[str, int]:
        totals = {"added": 0, "removed": 0, "changed": 0, "unchanged": 0}
        for row in self.summary().values():
            for k in totals:
                totals[k] += row[k]
        return totals

    @property
    def has_changes(self) -> bool:
        return bool(self.changes)

    # -- rendering ------------------------------------------------------------------------------

    def lines(self) -> Iterator[str]:
        """The Terraform-style lines: `+ resource ns/name`, `~ resource ns/name` and its fields."""
        for change in self.changes:
            yield f"{change.sign} {change.resource} {change.ident}"
            for f in change.fields:
                if f.old is HIDDEN:
                    yield f"    ~ {f.path}"
                else:
                    yield f"    ~ {f.path}: {_shown(f.old)} → {_shown(f.new)}"

    def headline(self) -> str:
        t = self.totals()
        return f"Diff: {t['added']} added, {t['removed']} removed, {t['changed']} changed, {t['unchanged']} unchanged."

    def to_text(self) -> str:
        out = [f"Comparing {self.left} (-) with {self.right} (+); server-owned fields ignored"
               + ("" if self.show_values else "; values not shown (--show-values)") + ".", ""]
        body = list(self.lines())
        out += [f"  {line}" for line in body] or ["  No differences."]
        return "\n".join([*out, "", self.headline()]) + "\n"

    def to_dict(self) -> dict[str, Any]:
        resources: dict[str, dict[str, Any]] = {}
        for change in self.changes:
            entry = resources.setdefault(change.resource, {"added": [], "removed": [], "changed": []})
            if change.sign == "+":
                entry["added"].append(change.ident)
            elif change.sign == "-":
                entry["removed"].append(change.ident)
            else:
                entry["changed"].append({"object": change.ident, "fields": [f.to_dict() for f in change.fields]})
        return {"format_version": FORMAT_VERSION, "left": self.left, "right": self.right, "showValues": self.show_values,
                "totals": self.totals(), "summary": self.summary(), "resources": dict(sorted(resources.items()))}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    def to_markdown(self) -> str:
        t = self.totals()
        out = [f"### Diff: {self.left} → {self.right}", "",
               f"**{t['added']} added, {t['removed']} removed, {t['changed']} changed**, {t['unchanged']} unchanged "
               "(server-owned fields ignored" + ("" if self.show_values else "; values not shown") + ").", ""]
        changed = {r: row for r, row in self.summary().items() if row["added"] or row["removed"] or row["changed"]}
        if changed:
            out += ["| resource | added | removed | changed |", "|---|---:|---:|---:|"]
            out += [f"| `{r}` | {row['added']} | {row['removed']} | {row['changed']} |" for r, row in changed.items()]
            out += ["", "```diff", *self._diff_block(), "```"]
        else:
            out.append("No differences.")
        return "\n".join(out) + "\n"

    def _diff_block(self) -> Iterator[str]:
        """Lines in a ```diff block: GitHub colours `+`/`-` lines; a change is shown as `!`."""
        for line in self.lines():
            yield ("!" + line[1:]) if line.startswith("~") else line


def _shown(value: Any) -> str:
    if value is None:
        return "(none)"
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


# -- normalising ------------------------------------------------------------------------------------


def normalize(resource: str, obj: dict[str, Any]) -> dict[str, Any]:
    """The object without what the server owns (see the module's docstring): what is compared."""
    obj = copy.deepcopy(obj)
    meta = obj.get("metadata") if isinstance(obj.get("metadata"), dict) else {}
    for key in SERVER_FIELDS:
        meta.pop(key, None)
    if meta.get("ownerReferences"):
        meta["ownerReferences"] = [{k: v for k, v in r.items() if k != "uid"} if isinstance(r, dict) else r
                                   for r in meta["ownerReferences"]]
    obj["metadata"] = meta
    clean(resource, obj, is_custom(resource, set()))
    return obj


def digest(obj: dict[str, Any]) -> bytes:
    """sha256 of the canonical JSON (keys sorted): equal for equal objects."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()).digest()


def _flatten(value: Any, path: str, out: dict[str, Any]) -> None:
    if isinstance(value, dict) and value:
        for key in sorted(value):
            part = f".{key}" if _plain(key) else f'["{key}"]'
            _flatten(value[key], (path + part) if path else part.lstrip("."), out)
    elif isinstance(value, list) and value:
        for i, item in enumerate(value):
            _flatten(item, f"{path}[{i}]", out)
    else:
        out[path] = value


def _plain(key: str) -> bool:
    return bool(key) and all(c.isalnum() or c in "_-" for c in key)


def field_changes(resource: str, old: dict[str, Any], new: dict[str, Any], show_values: bool) -> tuple[FieldChange, ...]:
    """The fields that differ (leaves, by path). A Secret: never a value (its annotations may hold a
    last-applied copy of its data), and its data/stringData one entry each, never a key of them."""
    secret = resource == "secrets"
    if secret:
        hidden = [k for k in SECRET_VALUES if old.get(k) != new.get(k)]
        old = {k: v for k, v in old.items() if k not in SECRET_VALUES}
        new = {k: v for k, v in new.items() if k not in SECRET_VALUES}
    flat_old: dict[str, Any] = {}
    flat_new: dict[str, Any] = {}
    _flatten(old, "", flat_old)
    _flatten(new, "", flat_new)
    out = []
    for path in sorted(set(flat_old) | set(flat_new)):
        before, after = flat_old.get(path), flat_new.get(path)
        if path in flat_old and path in flat_new and before == after:
            continue
        out.append(FieldChange(path, before, after) if show_values and not secret else FieldChange(path))
    if secret:
        out += [FieldChange(k) for k in hidden]  # "changed", never its values
        out.sort(key=lambda f: f.path)
    return tuple(out)


# -- comparing ----------------------------------------------------------------------------------------


def compare(left: Iterable[tuple[str, dict[str, Any]]], right: Iterable[tuple[str, dict[str, Any]]], *,
            left_name: str, right_name: str, show_values: bool = False) -> DiffResult:
    """Compare two streams of (resource key, object). Each is read once; memory holds a key, a
    32-byte hash and an offset per left object (bodies are spooled to a temporary file)."""
    index: dict[tuple[str, str, str], tuple[bytes, int]] = {}
    changes: list[Change] = []
    unchanged: dict[str, int] = defaultdict(int)
    with tempfile.TemporaryFile(prefix="ctpbackup-diff-") as spool:
        for resource, obj in left:
            body = normalize(resource, obj)
            index[_key(resource, body)] = (digest(body), spool.tell())
            spool.write(jsoncodec.dumps(body) + b"\n")
        for resource, obj in right:
            body = normalize(resource, obj)
            key = _key(resource, body)
            seen = index.pop(key, None)
            if seen is None:
                changes.append(Change("+", *key))
                continue
            if seen[0] == digest(body):
                unchanged[resource] += 1
                continue
            spool.seek(seen[1])
            before = jsoncodec.loads(spool.readline())
            changes.append(Change("~", *key, field_changes(resource, before, body, show_values)))
    changes += [Change("-", *key) for key in index]
    changes.sort(key=lambda c: (c.resource, c.namespace, c.name, c.sign))
    return DiffResult(left_name, right_name, changes, dict(unchanged), show_values)


def _key(resource: str, obj: dict[str, Any]) -> tuple[str, str, str]:
    meta = obj.get("metadata") or {}
    return resource, str(meta.get("namespace") or ""), str(meta.get("name") or "")
