"""The pull-request action's log (stderr of rbac, plan or validate) as Markdown for the job summary:
warnings and errors, one bullet each. `plan` writes JSON lines off a terminal; `validate` and this
action's own helpers write text lines (errors when the step failed, warnings otherwise)."""

from __future__ import annotations

import json
import sys
from pathlib import Path


def sections(lines: list[str], failed: bool) -> tuple[list[str], list[str]]:
    """(warnings, errors): each line's message, by its level."""
    warnings, errors = [], []
    for line in lines:
        if not line.strip():
            continue
        try:
            event = json.loads(line)
            level, message = event["level"], event["message"]
        except (ValueError, KeyError, TypeError):
            level, message = ("error" if failed or line.startswith("error:") else "warning"), line
        if level in ("error", "critical"):
            errors.append(message)
        elif level == "warning":
            warnings.append(message)
    return warnings, errors


def markdown(warnings: list[str], errors: list[str]) -> str:
    out = []
    for title, items in (("#### ⚠️ Warnings", warnings), ("#### ❌ Errors", errors)):
        if items:
            out += ["", title, ""] + ["- `" + item.replace("`", "'") + "`" for item in items]
    return "\n".join(out) + ("\n" if out else "")


def main(argv: list[str]) -> int:
    log = Path(argv[1])
    lines = log.read_text(errors="replace").splitlines() if log.exists() else []
    sys.stdout.write(markdown(*sections(lines, argv[2] == "1")))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
