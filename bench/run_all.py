"""Run every benchmark (not part of the test suite): `make bench`.

Each benchmark prints JSON with its figures, their goals and whether each was met, against baselines
measured in the same run; this prints them as they come, then one line per goal: figure, goal, met.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

#: (name, arguments): the order runs the quick ones first
RUNS = (
    ("emulator", []),
    ("deflate", []),
    ("plan", ["--control-planes", "1000"]),
    ("plan", ["--control-planes", "10000"]),
    ("plan", ["--control-planes", "10000", "--shard", "0/4"]),
    ("backup", []),
    ("restore", []),
    ("verify", []),
    ("scale", []),
    ("many", []),
    ("profiling", []),
)


def goals(name: str, args: list[str], report: dict) -> list[tuple[str, object, object, object]]:
    """(figure, measured, goal, met) of one benchmark's report."""
    label = " ".join([name, *args])
    rows = []

    def walk(prefix: str, doc: dict) -> None:
        met = doc.get("met")
        for key, value in doc.items():
            if key.startswith("goal_"):
                figure = key[len("goal_"):]
                measured = doc.get(figure)
                if figure == "seconds":  # judged on CPU seconds (see bench/plan.py)
                    measured = (doc.get("cpu_seconds") or {}).get("total")
                if isinstance(measured, dict):  # one goal for several figures (backup and restore)
                    rows.extend((f"{label}{prefix}: {figure} {k}", v, value, v <= value) for k, v in measured.items())
                    continue
                ok = met.get(figure) if isinstance(met, dict) else met
                if ok is None and isinstance(measured, int | float) and isinstance(value, int | float):
                    ok = measured >= value if not figure.startswith(("rss", "rate_drop", "size")) else measured <= value
                rows.append((f"{label}{prefix}: {figure}", measured, value, ok))
            elif isinstance(value, dict) and key not in ("met", "seconds", "cpu_seconds", "actions", "candidates"):
                walk(f" {key}", value)
    walk("", report)
    return rows


if __name__ == "__main__":
    failed, summary = 0, []
    for name, args in RUNS:
        print(f"== bench/{name}.py {' '.join(args)}".rstrip(), flush=True)
        done = subprocess.run([sys.executable, str(HERE / f"{name}.py"), *args], cwd=HERE, capture_output=True, text=True,
                              env={**os.environ, "PYTHONUNBUFFERED": "1"})
        print(done.stdout, end="", flush=True)
        if done.returncode != 0:
            failed += 1
            print(done.stderr[-2000:], file=sys.stderr)
            continue
        text = done.stdout[done.stdout.index("{"):] if "{" in done.stdout else "{}"
        summary += goals(name, args, json.loads(text))
    print("\n== goals")
    for figure, measured, goal, met in summary:
        verdict = "met" if met else ("not met" if met is not None else "")
        print(f"{figure:<60} {measured!s:>12}  goal {goal!s:<6} {verdict}")
    sys.exit(1 if failed else 0)
