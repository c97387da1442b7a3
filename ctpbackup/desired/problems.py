"""Problems the user can cause, each located at a file, a line, an object and a field.

The CLI prints one line per problem (`path:LINE: Kind ns/name: spec.field: message`) and exits 1 on
any error; tracebacks are for bugs.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Severity(StrEnum):
    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True)
class Problem:
    path: str
    line: int
    message: str
    kind: str = ""
    namespace: str = ""
    name: str = ""
    field: str = ""
    severity: Severity = Severity.ERROR

    def __str__(self) -> str:
        """One line: the file, object and field as the user wrote them, control characters escaped
        (a name such as "ctp\n" or one carrying a terminal escape must not break or colour the line)."""
        where = f"{_shown(self.path)}:{self.line}" if self.line else _shown(self.path)
        parts = [where]
        if self.kind:
            ident = f"{self.namespace}/{self.name}" if self.namespace else (self.name or "<unnamed>")
            parts.append(_shown(f"{self.kind} {ident}"))
        if self.field:
            parts.append(_shown(self.field))
        text = ": ".join(parts) + f": {self.message}"
        return text if self.severity is Severity.ERROR else f"{text} (warning)"

    def sort_key(self) -> tuple:
        return (self.path, self.line, self.field, self.message)


class UserError(Exception):
    """An error the user can fix (bad flag, unreachable repo, missing ref). Printed as one line."""


class InvalidManifests(UserError):
    """The desired state has errors: nothing may be planned or applied."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        errors = [p for p in problems if p.severity is Severity.ERROR]
        super().__init__(f"{len(errors)} error(s) in the manifests")


def _shown(text: str) -> str:
    """`text` with every non-printable character escaped as Python writes it (\\n, \\x1b, \\u2028)."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)
