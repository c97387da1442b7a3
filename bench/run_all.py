"""Run every benchmark (not part of the test suite): `make bench`, or `bench/run_all.py --quick`.

Each benchmark prints JSON with its figures and their goals, against baselines measured in the same
run; this prints them as they come, then one line for each goal of issue 22 (performance at scale):
figure, met / not met (or "shown" where the goal is a curve to show, "not measured" where its
benchmark was not run, failed or no longer prints the figure), goal, measured; then the other
benchmarks' goals, and the time the whole run took. The default sizes are the issue's (a full run
took 31 minutes on the shared 2-CPU machine, load average 9-28); `--quick` runs every benchmark at smoke sizes in
a few minutes, to check that they all still run (its figures are not the issue's).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent

#: (key, script, full-size arguments, --quick arguments): the quick ones first
RUNS = (
    ("emulator", "emulator", [], ["--objects", "2000"]),
    ("deflate", "deflate", [], ["--objects", "2000"]),
    ("plan", "plan", ["--control-planes", "1000"], ["--control-planes", "100"]),
    ("plan_large", "plan", ["--control-planes", "10000"], ["--control-planes", "1000"]),
    ("plan_shard", "plan", ["--control-planes", "10000", "--shard", "0/4"], ["--control-planes", "1000", "--shard", "0/4"]),
    ("backup", "backup", [], ["--objects", "2000", "--rss-large", "10000"]),
    # the median of 3 runs: one run of the ratios varies by +-30 % on a shared machine
    ("restore", "restore", ["--objects", "10000", "--runs", "3"], ["--objects", "2000"]),
    ("verify", "verify", [], ["--objects", "2000"]),
    ("scale", "scale", [], ["--sizes", "1000", "5000"]),
    ("many", "many", [], ["--control-planes", "8", "--objects", "100", "--servers", "2", "--parallelism", "1", "2"]),
    ("profiling", "profiling", [], ["--objects", "2000"]),
)
#: benchmarks whose goals are not issue 22's: their `goal_*` keys are listed as they are
OTHERS = ("emulator", "deflate", "verify")


def at(reports: dict, path: str):
    """The value at `key.field.field` of the reports, or None when the benchmark failed or lacks it."""
    value = reports
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def at_least(goal: float) -> Callable[[object], bool | None]:
    return lambda v: None if not isinstance(v, int | float) else v >= goal


def at_most(goal: float) -> Callable[[object], bool | None]:
    return lambda v: None if not isinstance(v, int | float) else v <= goal


def writes_by_kind(by_resource: dict | None) -> str | None:
    """`{"secrets": {"POST": 1.0}, ...}` as `secrets 1.0, ...` (every write verb added up)."""
    if not by_resource:
        return None
    return ", ".join(f"{kind} {round(sum(verbs.values()), 2)}" for kind, verbs in sorted(by_resource.items()))


def writes_at_most(limit: float) -> Callable[[object], bool | None]:
    def judge(text: object) -> bool | None:
        if not isinstance(text, str):
            return None
        return all(float(part.rsplit(" ", 1)[1]) <= limit for part in text.split(", "))
    return judge


def many_curve(reports: dict) -> str | None:
    rows = at(reports, "many.rows")
    if not rows:
        return None
    rates = " / ".join(f"{r['objects_per_s']:,}" for r in rows)
    ours = " / ".join(str(r["our_cpus"]) for r in rows)
    servers = " / ".join(str(r["servers_cpus"]) for r in rows)
    machine = " / ".join(str(r["machine_busy_cpus"]) for r in rows)
    return (f"objects/s at parallelism {' / '.join(str(r['parallelism']) for r in rows)}: {rates}; CPUs: ours {ours}, "
            f"emulators {servers}, machine {machine} of {at(reports, 'many.cpus')}; per CPU-second (last row): ours "
            f"{rows[-1]['objects_per_our_cpu_second']:,}, emulators {rows[-1]['objects_per_emulator_cpu_second']:,} "
            f"objects, so the CPUs saturate at {rows[-1]['cpu_bound_objects_per_s']:,} objects/s with nothing else running")


def shard_falls(reports: dict) -> str | None:
    whole, shard = at(reports, "plan_large.cpu_seconds.total"), at(reports, "plan_shard.cpu_seconds.total")
    return None if whole is None or shard is None else f"{shard} vs {whole} CPU s unsharded"


def issue_goals(reports: dict) -> list[tuple[str, object, str, bool | None]]:
    """(figure, measured, goal, met) for each goal of issue 22; met None: shown, or not measured."""
    def row(figure: str, path: str, goal: str, judge: Callable[[object], bool | None]):
        value = at(reports, path)
        return figure, value, goal, judge(value)

    shard = shard_falls(reports)
    many = many_curve(reports)
    return [
        row("1 backup vs raw paginated list", "backup.ratio_to_raw_list", ">= 0.7", at_least(0.7)),
        row("1 backup vs kubectl get -A -o json", "backup.ratio_to_kubectl", ">= 10x", at_least(10)),
        row("1 backup peak RSS, large vs 1,000 objects (bench/backup.py)", "backup.rss_growth", "<= 1.5x", at_most(1.5)),
        row("2 restore per write vs raw creates, core", "restore.core.ratio_per_write", ">= 0.9", at_least(0.9)),
        row("2 restore per write vs raw creates, Crossplane", "restore.crossplane.ratio_per_write", ">= 0.9", at_least(0.9)),
        ("2 writes per object by kind, core", writes_by_kind(at(reports, "restore.core.writes_per_object_by_resource")),
         "1 each", writes_at_most(1.0)(writes_by_kind(at(reports, "restore.core.writes_per_object_by_resource")))),
        ("2 writes per object by kind, Crossplane",
         writes_by_kind(at(reports, "restore.crossplane.writes_per_object_by_resource")), "<= 2 each (paused, unpaused)",
         writes_at_most(2.0)(writes_by_kind(at(reports, "restore.crossplane.writes_per_object_by_resource")))),
        row("2 core restore vs raw concurrent creates", "restore.core.ratio_to_raw_create", ">= 0.5", at_least(0.5)),
        row("2 core restore vs sequential kubectl create", "restore.core.ratio_to_kubectl", ">= 5x", at_least(5)),
        row(f"3 plan {' '.join(at(reports, 'plan.args') or [])} (CPU s)", "plan.cpu_seconds.total", "< 2 s",
            lambda v: None if v is None else v < 2),
        row(f"3 plan {' '.join(at(reports, 'plan_large.args') or [])} (CPU s)", "plan_large.cpu_seconds.total", "< 3 s",
            lambda v: None if v is None else v < 3),
        ("3 plan, one shard of 4 vs unsharded (CPU s)", shard, "falls with N",
         None if shard is None else at(reports, "plan_shard.cpu_seconds.total") < at(reports, "plan_large.cpu_seconds.total")),
        row("4 restore peak RSS, largest vs smallest (bench/scale.py)", "scale.rss_growth.restore", "<= 1.5x", at_most(1.5)),
        ("5 many control planes through apply", many, "grows until the CPUs saturate", None),
        row("6 cost curve: backup objects/s drop, smallest to largest", "scale.rate_drop.backup", "<= 2x (linear)", at_most(2)),
        row("6 cost curve: restore objects/s drop, smallest to largest", "scale.rate_drop.restore", "<= 2x (linear)", at_most(2)),
        row("6 cost curve: backup peak RSS growth", "scale.rss_growth.backup", "<= 1.5x (flat)", at_most(1.5)),
        row("6 cost curve: restore peak RSS growth", "scale.rss_growth.restore", "<= 1.5x (flat)", at_most(1.5)),
    ]


def other_goals(label: str, report: dict) -> list[tuple[str, object, object, object]]:
    """(figure, measured, goal, met) of every `goal_<figure>` key of one benchmark's report, and of
    its top-level yes/no figures."""
    rows = []

    def walk(prefix: str, doc: dict) -> None:
        met = doc.get("met")
        for key, value in doc.items():
            if key.startswith("goal_"):
                figure = key[len("goal_"):]
                measured = doc.get(figure)
                ok = met.get(figure) if isinstance(met, dict) else met
                if ok is None and isinstance(measured, int | float) and isinstance(value, int | float):
                    ok = measured >= value if not figure.startswith(("rss", "size")) else measured <= value
                rows.append((f"{label}{prefix}: {figure}", measured, value, ok))
            elif isinstance(value, dict) and key != "met":
                walk(f" {key}", value)
            elif isinstance(value, bool) and not prefix and not key.endswith("met"):  # a goal printed as a yes/no (bench/emulator.py)
                rows.append((f"{label}: {key}", value, "true", value))
    walk("", report)
    return rows


def verdict(met: object, measured: object) -> str:
    if measured is None:
        return "not measured"
    return "met" if met else "shown" if met is None else "not met"


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="smoke sizes: every benchmark runs, the figures are not the issue's")
    parser.add_argument("--only", nargs="+", choices=[key for key, *_ in RUNS], help="run these benchmarks only")
    args = parser.parse_args()
    started, failed, reports = time.monotonic(), [], {}
    for key, script, full, quick in RUNS:
        if args.only and key not in args.only:
            continue
        arguments = quick if args.quick else full
        print(f"== bench/{script}.py {' '.join(arguments)}".rstrip(), flush=True)
        run_started = time.monotonic()
        done = subprocess.run([sys.executable, str(HERE / f"{script}.py"), *arguments], cwd=HERE, capture_output=True,
                              text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        print(done.stdout, end="", flush=True)
        print(f"(bench/{script}.py: {time.monotonic() - run_started:.0f} s, load average {os.getloadavg()[0]:.1f})", flush=True)
        if done.returncode != 0 or "{" not in done.stdout:
            failed.append(key)
            print(done.stderr[-2000:], file=sys.stderr)
            continue
        report, _ = json.JSONDecoder().raw_decode(done.stdout[done.stdout.index("{"):])  # text may follow the JSON
        reports[key] = {**report, "args": arguments}
    print(f"\n== goals of issue 22{' (--quick: smoke sizes, not the issue figures)' if args.quick else ''}")
    for figure, measured, goal, met in issue_goals(reports):
        print(f"{figure:<62} {verdict(met, measured):<12} goal {goal:<30} measured {measured}")
    print("\n== other benchmarks' goals")
    for key in OTHERS:
        for figure, measured, goal, met in other_goals(key, reports.get(key, {})):
            print(f"{figure:<62} {verdict(met, measured):<12} goal {goal!s:<30} measured {measured}")
    minutes = (time.monotonic() - started) / 60
    print(f"\nmake bench took {minutes:.1f} minutes on {os.cpu_count()} CPUs (load average now {os.getloadavg()[0]:.1f})"
          + (f"; failed: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
