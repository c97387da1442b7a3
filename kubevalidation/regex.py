"""Regular expressions as kube-apiserver's Go `regexp` (RE2) and JSON Schema (ECMA-262) read them.

Python's `re` differs from both where it matters for names: its `$` also matches before a final
newline, so `^[a-z0-9]...$` accepts "ctp\\n", which kube-apiserver refuses (in Go's regexp and in
ECMA-262 without the multiline flag, `$` is the end of the text).
"""

from __future__ import annotations

import functools
import re


@functools.cache
def end_anchored(pattern: str) -> re.Pattern[str]:
    r"""`pattern` compiled for `re` with `$` meaning the end of the text only: every `$` outside a
    character class and not escaped becomes `\Z`; nothing else changes. Raises re.error as
    `re.compile` does."""
    out, i, in_class = [], 0, False
    while i < len(pattern):
        char = pattern[i]
        if char == "\\":
            out.append(pattern[i:i + 2])
            i += 2
            continue
        if in_class:
            in_class = char != "]"
        elif char == "[":
            in_class = True
        elif char == "$":
            char = r"\Z"
        out.append(char)
        i += 1
    return re.compile("".join(out))
