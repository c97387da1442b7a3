"""Command line: parse arguments and hand over to the package. Errors the user can fix become one
line and exit status 1; exit 2 (with --detailed-exitcode) means the plan has changes."""

from __future__ import annotations

import argparse
import json
import logging
import os
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta

from ctpbackup import __version__, logs, metrics, plan_output, rbac, run, status
from ctpbackup.durations import parse_duration
from ctpbackup.execute import Executor
from ctpbackup.gitsource import Snapshot, read_repository
from ctpbackup.index import RecordedState
from ctpbackup.manifests import LoadResult, load_desired_state
from ctpbackup.model import DesiredState
from ctpbackup.planner import DEFAULT_MAX_RETRIES, PlanOptions
from ctpbackup.problems import InvalidManifests, UserError
from ctpbackup.run import SourceOptions
from ctpbackup.shard import IndexCorrupt

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


def _planning(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("planning")
    group.add_argument("--max-retries", type=int, default=DEFAULT_MAX_RETRIES, help="retries of a Failed backup (default 3)")
    group.add_argument("--allow-mass-delete", action="store_true",
                       help="carry out deletions the mass-delete guard would hold back")
    group.add_argument("--shard", type=_shard, default=(0, 1), metavar="I/N",
                       help="only control planes whose stable hash falls in shard I of N (Indexed Jobs)")
    group.add_argument("--now", type=_timestamp, default=None, help=argparse.SUPPRESS)  # for tests and demos


def _shard(text: str) -> tuple[int, int]:
    try:
        index, count = (int(x) for x in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not I/N (e.g. 0/4)") from None
    if count < 1 or not 0 <= index < count:
        raise argparse.ArgumentTypeError(f"shard {text!r}: need 0 <= I < N")
    return index, count


def _timestamp(text: str) -> datetime:
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an RFC 3339 time") from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="reconcile.py",
        description="GitOps backups and restores of Kubernetes control planes (Upbound Spaces' backup API).",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("validate", help="load and validate the manifests of a commit; print what was found")
    _common(p)
    p.set_defaults(run=cmd_validate)

    p = sub.add_parser("plan", help="show what apply would do (reads the bucket index, changes nothing)")
    _common(p)
    _secrets(p)
    _planning(p)
    p.add_argument("-o", "--output", choices=("text", "json", "markdown"), default=None,
                   help="a document on stdout; default: text on a terminal, JSON events otherwise")
    p.add_argument("--detailed-exitcode", action="store_true", help="exit 0: no changes, 1: error, 2: changes")
    p.set_defaults(run=cmd_plan)

    p = sub.add_parser("apply", help="take the bucket lease and carry out the plan")
    _common(p)
    _secrets(p)
    _planning(p)
    p.add_argument("--concurrency", type=int, default=4, help="control planes backed up at once (default 4)")
    p.add_argument("--existing", choices=("skip", "update"), default="skip",
                   help="restore: objects already in the target are skipped (default) or updated")
    p.add_argument("--lease-wait", type=float, default=0.0, help="seconds to wait for another apply's lease (default 0)")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="progress bars (default: on a terminal)")
    p.add_argument("--metrics-textfile", default=os.environ.get("CTPBACKUP_METRICS_TEXTFILE") or None,
                   help="write Prometheus metrics of the run to this node-exporter textfile")
    p.add_argument("--pushgateway", default=os.environ.get("CTPBACKUP_PUSHGATEWAY") or None,
                   help="push Prometheus metrics of the run to this Pushgateway URL")
    p.set_defaults(run=cmd_apply)

    p = sub.add_parser("status", help="backups and restores recorded in the bucket index")
    _common(p)
    _secrets(p)
    p.add_argument("-o", "--output", choices=("table", "json"), default="table")
    p.set_defaults(run=cmd_status)

    p = sub.add_parser("describe", help="one backup or restore in detail: conditions and counts")
    p.add_argument("kind", choices=("backup", "restore"))
    p.add_argument("name", help="backup name, or the restored control plane's name")
    p.add_argument("-n", "--namespace", default="default")
    _common(p)
    _secrets(p)
    p.set_defaults(run=cmd_describe)

    p = sub.add_parser("wait", help="poll the index until a backup or restore meets a condition")
    p.add_argument("kind", choices=("backup", "restore"))
    p.add_argument("name")
    p.add_argument("-n", "--namespace", default="default")
    p.add_argument("--for", dest="condition", default="condition=Completed",
                   help="condition=Type[=Status] (default condition=Completed; restores: condition=Restored)")
    p.add_argument("--timeout", type=_duration, default=timedelta(minutes=30), help="e.g. 1h, 30m (default 30m)")
    p.add_argument("--interval", type=float, default=5.0, help=argparse.SUPPRESS)
    _common(p)
    _secrets(p)
    p.set_defaults(run=cmd_wait)

    p = sub.add_parser("index", help="maintenance of the bucket index")
    p.add_argument("action", choices=("rebuild",), help="rebuild: regroup the per-backup records into the index")
    _common(p)
    _secrets(p)
    p.set_defaults(run=cmd_index)

    p = sub.add_parser("rbac", help="print the Roles and RoleBindings the manifests need (get on their Secrets)")
    _common(p)
    p.add_argument("--service-account", type=_service_account, default=rbac.SERVICE_ACCOUNT, metavar="NS/NAME",
                   help="the job's ServiceAccount (default ctpbackup-system/ctpbackup)")
    p.add_argument("-o", "--output", choices=("yaml", "json", "secrets"), default="yaml",
                   help="yaml/json: the Role and RoleBinding objects; secrets: a JSON list of the Secrets read")
    p.set_defaults(run=cmd_rbac)
    return parser


def _service_account(text: str) -> tuple[str, str]:
    namespace, _, name = text.partition("/")
    if not namespace or not name or "/" in name:
        raise argparse.ArgumentTypeError(f"{text!r} is not NAMESPACE/NAME")
    return namespace, name


def _duration(text: str) -> timedelta:
    try:
        return parse_duration(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def _source(args: argparse.Namespace) -> SourceOptions:
    return SourceOptions(args.repo, args.ref, args.path, args.worktree, getattr(args, "secrets_dir", None),
                         getattr(args, "host_kubeconfig", None))


def _plan_options(args: argparse.Namespace) -> PlanOptions:
    return PlanOptions(max_retries=args.max_retries, allow_mass_delete=args.allow_mass_delete, shard=args.shard)


def load(args: argparse.Namespace) -> tuple[Snapshot, LoadResult]:
    snapshot = read_repository(args.repo, args.ref, args.path, args.worktree)
    return snapshot, load_desired_state(snapshot.files, snapshot.commit)


def describe_source(snapshot: Snapshot) -> str:
    where = f"{snapshot.repo}" + (f" ({snapshot.path}/)" if snapshot.path else "")
    if snapshot.worktree:
        return f"{where}: work tree on top of commit {snapshot.commit} (uncommitted files included)"
    return f"{where} at {snapshot.ref}: commit {snapshot.commit}"


def print_problems(result: LoadResult, console: logs.Console | None = None) -> None:
    console = console or logs.Console()
    for problem in sorted(result.problems, key=lambda p: p.sort_key()):
        console.problem(str(problem))


def cmd_validate(args: argparse.Namespace) -> int:
    snapshot, result = load(args)
    print(describe_source(snapshot))
    print_problems(result, args.console)
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


def cmd_plan(args: argparse.Namespace) -> int:
    console: logs.Console = args.console
    prepared = run.prepare(_source(args))
    now = args.now or run.utcnow()
    result = run.make_plan(prepared, now, _plan_options(args))
    _print_warnings(prepared, console)
    if args.output is None:
        _show_plan(console, prepared, result)
    else:
        if args.output == "text":
            print(describe_source(prepared.snapshot))
        console.document(plan_output.render(result, args.output))
    if result.has_errors:
        return EXIT_ERROR
    if args.detailed_exitcode and result.has_changes:
        return EXIT_CHANGES
    return EXIT_OK


def _show_plan(console: logs.Console, prepared: run.Prepared, result) -> None:
    """The plan: source line and Terraform-style text on a terminal, one `plan` event otherwise."""
    # the source line says the commit; the text plan's own first line ("Commit ...") would say it twice
    _, _, body = plan_output.to_text(result).partition("\n")
    shard = f", shard {result.shard[0]}/{result.shard[1]}" if result.shard[1] > 1 else ""
    console.text(describe_source(prepared.snapshot) + shard)
    console.text(body)
    if not console.json_stdout:
        return
    document = json.loads(plan_output.to_json(result))
    console.event("plan", plan_output.headline(result), source=describe_source(prepared.snapshot),
                  **{k: v for k, v in document.items() if k != "actions"})
    for line, action in zip(plan_output.action_lines(result.actions), document["actions"], strict=True):
        console.event("planned", line, logging.ERROR if action["action"] == "error" else logging.INFO, **action)
    for refusal in result.refusals:
        console.event("refused", f"! {refusal}", logging.ERROR)


def cmd_apply(args: argparse.Namespace) -> int:
    console: logs.Console = args.console
    started = time.time()
    shard = args.shard
    try:
        prepared = run.prepare(_source(args), encryption_keys=True)
    except Exception:  # the job ran and could not plan: that is a metric too
        metrics.export(metrics.build_registry(DesiredState(""), RecordedState(), [],
                                              metrics.Run(started, time.time(), "error", "", shard), run.utcnow()),
                       shard, textfile=args.metrics_textfile, pushgateway=args.pushgateway)
        raise
    _print_warnings(prepared, console)
    clock = (lambda: args.now) if args.now else run.utcnow
    outcomes: list = []
    with run.leases(prepared.targets, args.lease_wait, clock, shard):
        run.refresh(prepared)  # under the lease: what another run did before us is now visible
        result = run.make_plan(prepared, clock(), _plan_options(args))
        _show_plan(console, prepared, result)
        if result.actions:
            progress = console.progress_display() if args.progress is None else args.progress
            executor = Executor(prepared.desired, prepared.targets, prepared.secrets, clock=clock,
                                concurrency=args.concurrency, existing=args.existing, progress=progress)
            outcomes = executor.run(result).outcomes
            run.refresh(prepared)  # the state metrics show what this run recorded
    if outcomes:
        console.text()
    for outcome in outcomes:
        mark = "ok" if outcome.ok else "waiting" if outcome.waiting else "failed"
        console.text(f"  {outcome.action.sign} {outcome.action.type.value} {outcome.action.namespace}/"
                     f"{outcome.action.name}: {mark.upper() if mark == 'failed' else mark}: {outcome.message}")
        console.event("action", outcome.message, logging.INFO if mark != "failed" else logging.ERROR,
                      action=outcome.action.type.value, kind=outcome.action.kind, namespace=outcome.action.namespace,
                      name=outcome.action.name, controlplane=outcome.action.control_plane, outcome=mark,
                      bytes=outcome.size, seconds=round(outcome.seconds, 3))
    failed = sum(1 for o in outcomes if not o.ok and not o.waiting)
    outcome_of_run = "error" if result.has_errors else "failure" if failed else "success"
    metrics.export(metrics.build_registry(prepared.desired, prepared.recorded, outcomes,
                                          metrics.Run(started, time.time(), outcome_of_run,
                                                      prepared.snapshot.commit, shard), clock()),
                   shard, textfile=args.metrics_textfile, pushgateway=args.pushgateway)
    summary = (f"Apply complete: {len(outcomes) - failed} done, {failed} failed"
               + (f", {len(result.refusals)} refused" if result.refusals else "") + ".")
    if outcomes:
        console.text(summary)
    console.event("apply", summary if outcomes else "Nothing to apply.",
                  commit=prepared.snapshot.commit, result=outcome_of_run, actions=len(result.actions),
                  done=len(outcomes) - failed, failed=failed, refused=len(result.refusals),
                  seconds=round(time.time() - started, 3), **{f"planned_{k}": v for k, v in result.summary().items()})
    return EXIT_ERROR if failed or result.has_errors else EXIT_OK


def _print_warnings(prepared: run.Prepared, console: logs.Console) -> None:
    for problem in prepared.load.warnings:
        console.problem(str(problem))


def cmd_status(args: argparse.Namespace) -> int:
    prepared = run.prepare(_source(args))
    if args.output == "json":
        print(status.to_json(prepared.recorded), end="")
    else:
        print(status.to_table(prepared.recorded, run.utcnow()), end="")
    return EXIT_OK


def _find(prepared: run.Prepared, kind: str, namespace: str, name: str):
    table = prepared.recorded.backups if kind == "backup" else prepared.recorded.restores
    return table.get((namespace, name))


def cmd_describe(args: argparse.Namespace) -> int:
    prepared = run.prepare(_source(args))
    record = _find(prepared, args.kind, args.namespace, args.name)
    if record is None:
        raise UserError(f"{args.kind} {args.namespace}/{args.name} is not recorded in the bucket index")
    print(status.describe_backup(record) if args.kind == "backup" else status.describe_restore(record), end="")
    return EXIT_OK


def cmd_wait(args: argparse.Namespace) -> int:
    if not args.condition.startswith("condition="):
        raise UserError(f"--for {args.condition!r}: only condition=Type[=Status] is supported")
    condition = args.condition[len("condition="):]
    prepared = run.prepare(_source(args))
    deadline = time.monotonic() + args.timeout.total_seconds()
    while True:
        record = _find(prepared, args.kind, args.namespace, args.name)
        met = status.condition_met(record, condition)
        if met:
            print(f"{args.kind} {args.namespace}/{args.name} condition met")
            return EXIT_OK
        if met is False:
            last = record.condition(condition.split("=")[0]) if record else None
            raise UserError(f"{args.kind} {args.namespace}/{args.name} is {record.phase.value}"
                            + (f": {last.reason}: {last.message}" if last else ""))
        if time.monotonic() >= deadline:
            raise UserError(f"timed out waiting for {args.condition} on {args.kind} {args.namespace}/{args.name}")
        time.sleep(min(args.interval, max(0.0, deadline - time.monotonic())))
        run.refresh(prepared)


def cmd_index(args: argparse.Namespace) -> int:
    seen = set()
    for target in run.buckets(_source(args)).values():
        if target.location in seen:
            continue
        seen.add(target.location)
        with run.leases({("", ""): target}, 0.0, run.utcnow):
            report = target.index.rebuild()
        print(f"{target.bucket.description}: {report}")
    return EXIT_OK


def cmd_rbac(args: argparse.Namespace) -> int:
    snapshot, result = load(args)
    print_problems(result, args.console)
    desired = result.require()
    if args.output == "secrets":
        uses = [{"namespace": u.namespace, "name": u.name, "key": u.key, "use": u.use, "usedBy": list(u.used_by)}
                for u in rbac.secrets_read(desired)]
        print(json.dumps(uses, indent=2))
    elif args.output == "json":
        print(json.dumps({"apiVersion": "v1", "kind": "List", "items": rbac.objects(desired, args.service_account)},
                         indent=2))
    else:
        print(rbac.to_yaml(rbac.objects(desired, args.service_account),
                           f"# RBAC for {describe_source(snapshot)}\n# generated by `reconcile.py rbac`\n"), end="")
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logs.configure(args.log_format, args.verbose)
    # JSON events on stdout and stderr off a terminal: the job's commands (plan and apply); the
    # others are for people, and say their problems in text unless JSON is asked for
    fmt = args.log_format if args.command in ("plan", "apply") or args.log_format != "auto" else "text"
    args.console = console = logs.Console(fmt)
    run: Callable[[argparse.Namespace], int] = args.run
    try:
        return run(args)
    except InvalidManifests as err:
        for problem in err.problems:
            console.problem(str(problem), logging.ERROR)
        console.problem(f"error: {err}; nothing was done", logging.ERROR)
        return EXIT_ERROR
    except UserError as err:
        console.problem(f"error: {err}", logging.ERROR)
        return EXIT_ERROR
    except IndexCorrupt as err:  # a damaged record, decoded only when a plan or status needs it
        console.problem(f"error: {err}", logging.ERROR)
        return EXIT_ERROR
    except KeyboardInterrupt:
        console.problem("interrupted", logging.ERROR)
        return 130
