"""Parse YAML streams into plain data while remembering the line of every field.

PyYAML's composer gives each node its position; we build the Python values ourselves so that each
JSON path (`("spec", "deletionPolicy")`) maps to the line of its key. Building by hand also lets us
refuse what a safe loader should: duplicate keys, alias bombs, absurd nesting.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import yaml

MAX_DEPTH = 64
MAX_NODES = 200_000  # per document, counting alias and merge-key expansions
_MERGE_TAG = "tag:yaml.org,2002:merge"
_STR_TAG = "tag:yaml.org,2002:str"
#: keys that SafeConstructor.flatten_mapping rewrites: merge keys (`<<`) and value keys (`=`, read as text)
_FLATTENED = frozenset({_MERGE_TAG, "tag:yaml.org,2002:value"})
#: the safe loader's constructors that build a scalar in one call (no generator, no recursion)
_SCALAR_CONSTRUCTORS = {
    f"tag:yaml.org,2002:{name}": yaml.constructor.SafeConstructor.yaml_constructors[f"tag:yaml.org,2002:{name}"]
    for name in ("null", "bool", "int", "float", "binary", "timestamp", "str")
}
_TOO_LARGE = f"document too large (more than {MAX_NODES} values, merge keys and aliases expanded)"
MAX_FILE_BYTES = 8 * 1024 * 1024

Path = tuple[str | int, ...]


class YamlError(Exception):
    def __init__(self, line: int, message: str):
        super().__init__(message)
        self.line = line
        self.message = message


@dataclass(frozen=True)
class Document:
    """One YAML document of a file: its data, the line where it starts, and a line per field path."""

    data: Any
    line: int
    lines: dict[Path, int]

    def line_of(self, path: Path) -> int:
        """The line of `path`, or of its nearest ancestor that has one."""
        path = tuple(path)
        while path:
            if path in self.lines:
                return self.lines[path]
            path = path[:-1]
        return self.line


class _Loader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """The safe loader (libyaml's parser and composer when present: same nodes, faster) with the
    tag of each distinct plain scalar resolved once per file. SafeLoader resolves a plain scalar by
    trying its regular expressions for the value's first character, in Python, for every scalar the
    C composer makes, and most values (apiVersion, kind, keys, labels) repeat: 0.213 -> 0.188 CPU s
    composing 10,000 ControlPlanes, measured. A plain scalar's tag depends on its text alone:
    SafeLoader has no path resolvers."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._plain: dict[str, str] = {}

    def resolve(self, kind: type, value: Any, implicit: Any) -> str:
        if kind is yaml.ScalarNode and implicit[0]:
            tag = self._plain.get(value)
            if tag is None:
                tag = self._plain[value] = super().resolve(kind, value, implicit)
            return tag
        return super().resolve(kind, value, implicit)


class _Builder:
    def __init__(self) -> None:
        self.constructor = yaml.SafeLoader.__new__(yaml.SafeLoader)
        yaml.constructor.SafeConstructor.__init__(self.constructor)
        self.nodes = 0
        self.lines: dict[Path, int] = {}
        self._pairs: dict[int, int] = {}

    def expanded_pairs(self, node: yaml.MappingNode) -> int:
        """How many key/value pairs `node` holds once its merge keys (`<<`) are flattened, counted
        without flattening: PyYAML's flatten_mapping copies every merged pair, so nested merges of
        shared aliases grow exponentially (a 686-byte document, 1.4 GB) before any node is built.
        Memoised per node; stops counting past the limit."""
        known = self._pairs.get(id(node))
        if known is not None:
            return known
        self._pairs[id(node)] = MAX_NODES + 1  # a merge cycle counts as too large
        total = 0
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG:
                merged = value_node.value if isinstance(value_node, yaml.SequenceNode) else [value_node]
                for sub in merged:
                    if isinstance(sub, yaml.MappingNode):
                        total += self.expanded_pairs(sub)
                    if total > MAX_NODES:
                        break
            else:
                total += 1
            if total > MAX_NODES:
                break
        self._pairs[id(node)] = total
        return total

    def build(self, node: yaml.Node, path: Path, depth: int) -> Any:
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise YamlError(node.start_mark.line + 1, _TOO_LARGE)
        if depth > MAX_DEPTH:
            raise YamlError(node.start_mark.line + 1, f"nesting deeper than {MAX_DEPTH} levels")
        if isinstance(node, yaml.ScalarNode):
            if node.tag == _STR_TAG:
                return node.value
            value = self.scalar(node)
            if hasattr(value, "isoformat") or isinstance(value, bytes):
                # timestamps and !!binary stay text, as the Kubernetes API would see them
                return node.value
            return value
        if isinstance(node, yaml.MappingNode):
            if any(key_node.tag in _FLATTENED for key_node, _ in node.value):
                if self.nodes + self.expanded_pairs(node) > MAX_NODES:
                    raise YamlError(node.start_mark.line + 1, _TOO_LARGE)
                own = sum(1 for key_node, _ in node.value if key_node.tag != _MERGE_TAG)
                self.constructor.flatten_mapping(node)
                # flatten_mapping puts the merged pairs first (the earlier mapping of a merge list last),
                # then the mapping's own: a later pair wins, as YAML's merge key asks; only the
                # mapping's own keys must be distinct
                merged = len(node.value) - own
            else:  # no merge (`<<`) and no value (`=`) key: nothing to flatten, every key is the mapping's own
                if self.nodes + len(node.value) > MAX_NODES:
                    raise YamlError(node.start_mark.line + 1, _TOO_LARGE)
                merged = 0
            result: dict[str, Any] = {}
            own_keys: set[str] = set()
            lines = self.lines
            for position, (key_node, value_node) in enumerate(node.value):
                if not isinstance(key_node, yaml.ScalarNode):
                    raise YamlError(key_node.start_mark.line + 1, "mapping keys must be plain scalars")
                key = key_node.value if key_node.tag == _STR_TAG else self.scalar(key_node)
                if not isinstance(key, str):
                    key = str(key) if isinstance(key, int | float | bool) or key is None else key
                if position >= merged:
                    if key in own_keys:
                        raise YamlError(key_node.start_mark.line + 1, f"duplicate key {key!r}")
                    own_keys.add(key)
                child = path + (key,)
                lines[child] = key_node.start_mark.line + 1
                result[key] = self.build(value_node, child, depth + 1)
            return result
        items = []
        for i, item in enumerate(node.value):
            child = path + (i,)
            self.lines[child] = item.start_mark.line + 1
            items.append(self.build(item, child, depth + 1))
        return items

    def scalar(self, node: yaml.ScalarNode) -> Any:
        """The value of a scalar by its tag, as SafeConstructor builds it. A tag the safe loader has a
        plain scalar constructor for is built by calling it directly (construct_object's
        bookkeeping is for collections and recursion, and was a tenth of reading 10,000 manifests);
        any other tag goes through construct_object, which refuses it with its own message."""
        construct = _SCALAR_CONSTRUCTORS.get(node.tag)
        try:
            return construct(self.constructor, node) if construct else self.constructor.construct_object(node)
        except (ValueError, KeyError, AttributeError, TypeError):
            # PyYAML's scalar constructors raise these for a value their tag cannot read (`!!int x`,
            # `!!bool maybe`, `!!timestamp x`, an integer of more than 4,300 digits)
            raise YamlError(node.start_mark.line + 1,
                            f"invalid YAML: {_short(node.value)} is not a valid {_short_tag(node.tag)}") from None


def _short(value: str, limit: int = 40) -> str:
    return repr(value) if len(value) <= limit else repr(value[:limit]) + f"... ({len(value)} characters)"


def _short_tag(tag: str) -> str:
    """`tag:yaml.org,2002:int` -> `!!int`, as it is written in YAML."""
    return "!!" + tag.removeprefix("tag:yaml.org,2002:") if tag.startswith("tag:yaml.org,2002:") else tag


def parse_documents(text: bytes | str) -> Iterator[Document]:
    """Yield each non-empty document of a YAML stream. Raises YamlError with a 1-based line."""
    if isinstance(text, bytes):
        if len(text) > MAX_FILE_BYTES:
            raise YamlError(1, f"file larger than {MAX_FILE_BYTES // (1024 * 1024)} MiB")
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as err:
            line = text[: err.start].count(b"\n") + 1
            raise YamlError(line, "not valid UTF-8") from None
    try:
        for node in yaml.compose_all(text, Loader=_Loader):
            if node is None:
                continue
            builder = _Builder()
            data = builder.build(node, (), 0)
            if data is None:
                continue
            yield Document(data=data, line=node.start_mark.line + 1, lines=builder.lines)
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        line = mark.line + 1 if mark else 1
        raise YamlError(line, f"invalid YAML: {err.problem or err.context}") from None
    except yaml.YAMLError as err:
        raise YamlError(1, f"invalid YAML: {err}") from None
    except RecursionError:
        raise YamlError(1, f"nesting deeper than {MAX_DEPTH} levels") from None
