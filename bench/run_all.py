"""Run every benchmark (not part of the test suite): `make bench`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

if __name__ == "__main__":
    failed = 0
    for name in ("emulator", "plan", "backup", "restore", "verify"):
        print(f"== bench/{name}.py", flush=True)
        failed += subprocess.run([sys.executable, str(HERE / f"{name}.py")], cwd=HERE).returncode != 0
    sys.exit(1 if failed else 0)
