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
        where = f"{self.path}:{self.line}" if self.line else self.path
        parts = [where]
        if self.kind:
            ident = f"{self.namespace}/{self.name}" if self.namespace else (self.name or "<unnamed>")
            parts.append(f"{self.kind} {ident}")
        if self.field:
            parts.append(self.field)
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
