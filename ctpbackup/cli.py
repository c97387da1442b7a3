"""Command line: parse arguments and hand over to the package. Errors the user can fix become one
line and exit status 1; exit 2 (with --detailed-exitcode) means the plan has changes."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence

from ctpbackup import logs
from ctpbackup.gitsource import Snapshot, read_repository
from ctpbackup.manifests import LoadResult, load_desired_state
from ctpbackup.problems import InvalidManifests, UserError

log = logging.getLogger(__name__)

EXIT_OK, EXIT_ERROR, EXIT_CHANGES = 0, 1, 2


def _common(parser: argparse.ArgumentParser) -> None:
    src = parser.add_argument_group("desired state (Git)")
    src.add_argument("--repo", default=".", help="a local repository path or a Git URL (https://, ssh://, file://); default: .")
    src.add_argument("--ref", default=None, help="branch, tag or commit; default: the remote's default branch / local HEAD")
    src.add_argument("--path", default="", help="folder inside the repository holding the manifests; default: the root")
    src.add_argument("--worktree", action="store_true", help="read a local repository's work tree, uncommitted files included")
    out = parser.add_argument_group("output")
    out.add_argument("--log-format", choices=("auto", "text", "json"), default="auto",
                     help="log lines: human on a terminal, JSON otherwise (auto)")
    out.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-vv for debug)")


def _secrets(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("where Secrets come from")
    group.add_argument("--secrets-dir", default=None,
                       help="read Secrets from DIR/<namespace>/<name>/<key> files (the layout of a mounted Secret)")
    group.add_argument("--host-kubeconfig", default=None,
                       help="read Secrets from the cluster of this kubeconfig (default in a pod: in-cluster config)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="reconcile.py",
        description="GitOps backups and restores of Kubernetes control planes (Upbound Spaces' backup API).",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("validate", help="load and validate the manifests of a commit; print what was found")
    _common(p)
    p.set_defaults(run=cmd_validate)

    for name, text in (("plan", "show what apply would do"), ("apply", "carry out the plan")):
        p = sub.add_parser(name, help=text)
        _common(p)
        _secrets(p)
        p.set_defaults(run=cmd_not_built)

    p = sub.add_parser("status", help="backups and restores recorded in the bucket index")
    _common(p)
    _secrets(p)
    p.set_defaults(run=cmd_not_built)
    return parser


def load(args: argparse.Namespace) -> tuple[Snapshot, LoadResult]:
    snapshot = read_repository(args.repo, args.ref, args.path, args.worktree)
    return snapshot, load_desired_state(snapshot.files, snapshot.commit)


def describe_source(snapshot: Snapshot) -> str:
    where = f"{snapshot.repo}" + (f" ({snapshot.path}/)" if snapshot.path else "")
    if snapshot.worktree:
        return f"{where}: work tree on top of commit {snapshot.commit} (uncommitted files included)"
    return f"{where} at {snapshot.ref}: commit {snapshot.commit}"


def print_problems(result: LoadResult) -> None:
    for problem in sorted(result.problems, key=lambda p: p.sort_key()):
        print(problem, file=sys.stderr)


def cmd_validate(args: argparse.Namespace) -> int:
    snapshot, result = load(args)
    print(describe_source(snapshot))
    print_problems(result)
    if result.errors:
        print(f"{len(result.errors)} error(s), {len(result.warnings)} warning(s) in {len(snapshot.files)} file(s): invalid.")
        return EXIT_ERROR
    desired = result.require()
    print(f"Read {len(snapshot.files)} YAML file(s). Objects found:")
    for kind, count in desired.counts().items():
        print(f"  {kind:<22}{count}")
    if result.skipped:
        other = ", ".join(f"{k}: {v}" for k, v in sorted(result.skipped.items()))
        print(f"Skipped {sum(result.skipped.values())} object(s) of other kinds ({other}).")
    print(f"Valid ({len(result.warnings)} warning(s)).")
    return EXIT_OK


def cmd_not_built(args: argparse.Namespace) -> int:
    code = cmd_validate(args)
    if code != EXIT_OK:
        return code
    print(f"'{args.command}' is not built yet: the manifests are valid, nothing else was done.", file=sys.stderr)
    return EXIT_ERROR


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logs.configure(args.log_format, args.verbose)
    run: Callable[[argparse.Namespace], int] = args.run
    try:
        return run(args)
    except InvalidManifests as err:
        for problem in err.problems:
            print(problem, file=sys.stderr)
        print(f"error: {err}; nothing was done", file=sys.stderr)
        return EXIT_ERROR
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
