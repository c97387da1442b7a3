"""Lay out the pull-request action's bucket credentials as `--secrets-dir` expects them:
DIR/<namespace>/<secret name>/<key>, one file per SharedBackupConfig's credentials Secret, its name
and key taken from the manifests (`reconcile.py rbac -o secrets`).

Inputs (environment): CREDENTIALS, the value for every config without an entry of its own;
CREDENTIALS_ENV, lines `NAMESPACE/CONFIG: ENV_VAR` naming the variable that holds that config's value.
Errors are one line each on stderr and exit status 1; no value is ever printed.
"""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

LINE = re.compile(r"^\s*([a-z0-9][-a-z0-9.]*)/([a-z0-9][-a-z0-9.]*)\s*:\s*([A-Za-z_][A-Za-z0-9_]*)\s*$")


def parse_mapping(text: str) -> dict[str, str]:
    """`NAMESPACE/CONFIG: ENV_VAR` lines -> {"NAMESPACE/CONFIG": "ENV_VAR"}; ValueError naming the line."""
    mapping: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        match = LINE.match(line)
        if not match:
            raise ValueError(f"bucket-credentials-env line {number}: expected 'NAMESPACE/CONFIG: ENV_VAR'")
        config = f"{match[1]}/{match[2]}"
        if config in mapping:
            raise ValueError(f"bucket-credentials-env line {number}: {config} given twice")
        mapping[config] = match[3]
    return mapping


def plan_files(uses: list[dict], default: str, mapping: dict[str, str], env: dict[str, str]) -> dict[Path, str]:
    """{relative file: value} for every config's credentials Secret key; ValueError on a mapping
    that names no config, a variable that is empty, or one Secret key given two different values."""
    configs = {who.split(" ", 1)[1]: use for use in uses if use["use"] == "bucket-credentials"
               for who in use["usedBy"] if who.startswith("SharedBackupConfig ")}
    unknown = sorted(set(mapping) - set(configs))
    if unknown:
        raise ValueError(f"bucket-credentials-env names {', '.join(unknown)}: no such SharedBackupConfig "
                         f"with Secret credentials in the manifests")
    files: dict[Path, str] = {}
    for config, use in sorted(configs.items()):
        if config in mapping:
            value = env.get(mapping[config], "")
            if not value:
                raise ValueError(f"bucket-credentials-env: ${mapping[config]} (for {config}) is empty or not set "
                                 f"in the step's env")
        elif default:
            value = default
        else:
            continue  # no credentials for this config: the plan says which Secret it could not read
        path = Path(use["namespace"], use["name"], use["key"])
        if files.get(path, value) != value:
            raise ValueError(f"Secret {use['namespace']}/{use['name']} key {use['key']}: two configs share it "
                             f"with different credentials")
        files[path] = value
    return files


def main(argv: list[str]) -> int:
    listing, root = Path(argv[1]), Path(argv[2])
    try:
        files = plan_files(json.loads(listing.read_text()), os.environ.get("CREDENTIALS", ""),
                           parse_mapping(os.environ.get("CREDENTIALS_ENV", "")), dict(os.environ))
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    for relative, value in files.items():
        target = root / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(value)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
