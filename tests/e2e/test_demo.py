"""The README's first command runs the whole story and succeeds."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_demo_runs_the_whole_story():
    result = subprocess.run([sys.executable, str(ROOT / "demo.py")], capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = result.stdout
    assert "Apply complete: 6 done, 0 failed." in out
    assert "~ restore default/my-awesome-restored-ctp ← restore-me" in out
    assert "super-secret-secret in my-awesome-restored-ctp: yes" in out
    assert out.rstrip().splitlines()[-1].startswith("Demo finished")
    assert "No changes. The bucket matches Git" in out
