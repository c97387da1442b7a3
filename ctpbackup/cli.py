"""Command line: parse arguments and hand over to the package. Errors the user can fix become one
line and exit status 1; exit 2 (with --detailed-exitcode) means the plan has changes."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import NoReturn

from ctpbackup import __version__, logs, run
from ctpbackup.apply import drift, dryrun, status
from ctpbackup.apply.executor import Executor
from ctpbackup.desired.gitsource import Snapshot, read_repository
from ctpbackup.desired.manifests import LoadResult, load_desired_state
from ctpbackup.desired.model import DesiredState
from ctpbackup.desired.problems import InvalidManifests, UserError
from ctpbackup.kube import rbac
from ctpbackup.kube.api import reachable
from ctpbackup.kube.connect import ConnectionSecretUnusable, api_client_for
from ctpbackup.plan import render
from ctpbackup.plan.planner import (
    DEFAULT_MAX_RETRIES,
    NOT_CHANGES,
    ActionType,
    Plan,
    PlanOptions,
    requested_backups,
)
from ctpbackup.rules import times
from ctpbackup.rules.durations import parse_duration
from ctpbackup.rules.reasons import FailureReason
from ctpbackup.run import SourceOptions
from ctpbackup.store.controlplane_index import IndexCorrupt
from ctpbackup.store.index import RecordedState
from ctpbackup.store.lease import LeaseLost
from ctpbackup.store.records import Condition

log = logging.getLogger(__name__)

EXIT_OK, EXIT_ERROR, EXIT_CHANGES = 0, 1, 2


class _Parser(argparse.ArgumentParser):
    """Usage errors exit 1, as Terraform's do: 2 is what `plan --detailed-exitcode` means by
    "changes", so a mistyped option must never look like one. (Subcommands use this class too.)"""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EXIT_ERROR, f"{self.prog}: error: {message}\n")


def version() -> str:
    """The package's version: `ctpbackup.__version__`, which pyproject.toml reads too, so an image that
    copies the files without installing them says the same as an installed wheel."""
    return __version__


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


def _offline(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--max-retries", type=int, default=DEFAULT_MAX_RETRIES,
                        help="retries after which a Failed backup counts as failed for good (as apply's; default 3)")
    parser.add_argument("--config", default=None, metavar="FILE",
                        help="read the bucket of the SharedBackupConfig(s) in this local YAML file, without Git "
                             "(for the day Git is down)")


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


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    parser = _Parser(
        prog=prog or _prog(),
        description="GitOps backups and restores of Kubernetes control planes (Upbound Spaces' backup API).",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {version()}")
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
    p.add_argument("--dry-run-restores", action="store_true",
                   help="also run each planned restore against its target with dryRun=All and show what it would do")
    p.set_defaults(run=cmd_plan)

    p = sub.add_parser("apply", help="take the bucket lease and carry out the plan")
    _common(p)
    _secrets(p)
    _planning(p)
    p.add_argument("--concurrency", type=int, default=4, help="control planes backed up at once (default 4)")
    p.add_argument("--existing", choices=("skip", "update"), default="skip",
                   help="restore: objects already in the target are skipped (default) or updated")
    p.add_argument("--lease-wait", type=float, default=0.0, help="seconds to wait for another apply's lease (default 0)")
    p.add_argument("--restore-wait", type=_duration, default=timedelta(minutes=2),
                   help="restore: how long each wait lasts (CRDs Established, providers Healthy, XRDs Established; "
                        "default 2m)")
    p.add_argument("--lease-duration", type=_duration, default=run.LEASE_DURATION,
                   help="lease period: how long a lease lasts unrenewed, the age of an upload swept as a crashed "
                        "run's, and how far ahead a recorded time may be before it is a clock error (default 10m)")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="progress bars (default: on a terminal)")
    p.add_argument("--metrics-textfile", default=os.environ.get("CTPBACKUP_METRICS_TEXTFILE") or None,
                   help="write Prometheus metrics of the run to this node-exporter textfile")
    p.add_argument("--pushgateway", default=os.environ.get("CTPBACKUP_PUSHGATEWAY") or None,
                   help="push Prometheus metrics of the run to this Pushgateway URL")
    p.set_defaults(run=cmd_apply)

    kinds = tuple(status.KINDS)
    p = sub.add_parser("status", help="the status of every kind: buckets, control planes, backups, schedules, restores")
    _common(p)
    _secrets(p)
    _offline(p)
    p.add_argument("-o", "--output", choices=("table", "json", "yaml"), default="table")
    p.set_defaults(run=cmd_status)

    p = sub.add_parser("describe", help="one object in detail: its status fields, conditions and counts")
    p.add_argument("kind", choices=kinds)
    p.add_argument("name", help="the object's name (a restore: the restored control plane's name)")
    p.add_argument("-n", "--namespace", default="default")
    _common(p)
    _secrets(p)
    _offline(p)
    p.set_defaults(run=cmd_describe)

    p = sub.add_parser("wait", help="poll until an object meets a condition, as kubectl wait does")
    p.add_argument("kind", choices=kinds)
    p.add_argument("name")
    p.add_argument("-n", "--namespace", default="default")
    p.add_argument("--for", dest="condition", default=None,
                   help="condition=Type[=Status]; default: the kind's own (Backup, SharedBackup, schedules: "
                        "Completed; restore: Restored; controlplane: Ready; sharedbackupconfig: Available)")
    p.add_argument("--timeout", type=_duration, default=timedelta(minutes=30), help="e.g. 1h, 30m (default 30m)")
    p.add_argument("--interval", type=float, default=5.0, help=argparse.SUPPRESS)
    _common(p)
    _secrets(p)
    _offline(p)
    p.set_defaults(run=cmd_wait)

    _restore_parser(sub)
    _diff_parser(sub)

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
    _verify_and_download_parsers(sub)
    return parser


def _restore_parser(sub) -> None:
    p = sub.add_parser("restore", help="dry-run the planned restore of a ControlPlane against its target (dryRun=All)")
    p.add_argument("name", help="the ControlPlane with spec.restore")
    p.add_argument("-n", "--namespace", default="default")
    p.add_argument("--dry-run", action="store_true",
                   help="required: send every write with dryRun=All and record nothing (real restores run in apply)")
    p.add_argument("-o", "--output", choices=("text", "json"), default="text")
    p.add_argument("--existing", choices=("skip", "update"), default="skip",
                   help="objects already in the target: skipped (default) or updated, as apply's --existing")
    _common(p)
    _secrets(p)
    _planning(p)
    p.set_defaults(run=cmd_restore)


def _diff_parser(sub) -> None:
    p = sub.add_parser("diff", help="objects added, removed and changed between two backups, or a backup and its "
                                    "control plane now (--live)")
    p.add_argument("kind", choices=("backup",))
    p.add_argument("left", metavar="A", help="the Backup compared from (-)")
    p.add_argument("right", metavar="B", nargs="?", default=None, help="the Backup compared with (+)")
    p.add_argument("--live", action="store_true", help="compare A with its control plane now (drift)")
    p.add_argument("-n", "--namespace", default="default")
    p.add_argument("-o", "--output", choices=("text", "json", "markdown"), default="text")
    p.add_argument("--show-values", action="store_true",
                   help="show old and new values of changed fields (never a Secret's)")
    p.add_argument("--detailed-exitcode", action="store_true", help="exit 0: no differences, 1: error, 2: differences")
    _common(p)
    _secrets(p)
    p.set_defaults(run=cmd_diff)


def cmd_diff(args: argparse.Namespace) -> int:
    """`diff backup A B` / `diff backup A --live`: per resource, objects added (+), removed (-), changed (~)."""
    if (args.right is None) == (not args.live):
        raise UserError("diff backup: give a second Backup B, or --live (not both)")
    prepared = run.prepare(_source(args), encryption_keys=True)  # encrypted archives are read too
    if args.live:
        result = drift.diff_live(prepared, args.namespace, args.left, show_values=args.show_values)
    else:
        result = drift.diff_backups(prepared, args.namespace, args.left, args.right, show_values=args.show_values)
    render = {"json": lambda: result.to_json() + "\n", "markdown": result.to_markdown}.get(args.output, result.to_text)
    print(render(), end="")
    return EXIT_CHANGES if args.detailed_exitcode and result.has_changes else EXIT_OK


def _prog() -> str:
    """`ctpbackup` for the console script, `reconcile.py` for the entry-point file."""
    name = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    return name if name in ("ctpbackup", "reconcile.py") else "ctpbackup"


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
    return PlanOptions(max_retries=args.max_retries, allow_mass_delete=args.allow_mass_delete, shard=args.shard,
                       clock_tolerance=getattr(args, "lease_duration", run.LEASE_DURATION))


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
    prepared = run.prepare(_source(args), encryption_keys=args.dry_run_restores,  # a dry run reads the archives
                           shard=args.shard)
    now = args.now or times.utcnow()
    result = run.make_plan(prepared, now, _plan_options(args))
    _print_warnings(prepared, console)
    _print_plan_warnings(result, console)
    if args.output is None:
        _show_plan(console, prepared, result)
    else:
        if args.output == "text":
            print(describe_source(prepared.snapshot))
        console.document(render.render(result, args.output))
    refused = _dry_run_restores(args, prepared, result) if args.dry_run_restores else False
    if result.has_errors or refused:
        return EXIT_ERROR
    if args.detailed_exitcode and result.has_changes:
        return EXIT_CHANGES
    return EXIT_OK


def _dry_run_restores(args: argparse.Namespace, prepared: run.Prepared, result: Plan) -> bool:
    """`plan --dry-run-restores`: each planned restore dry-run against its target, its report printed
    after the plan. True when one would refuse objects or could not run."""
    refused = False
    for action in result.actions:
        if action.type is not ActionType.RESTORE:
            continue
        control_plane = prepared.desired.control_planes[(action.namespace, action.name)]
        try:
            report = dryrun.dry_run_restore(action, prepared.locations, control_plane, prepared.secrets)
        except dryrun.DryRunFailed as err:
            args.console.problem(f"error: dry run of the restore of {action.namespace}/{action.name}: {err}", logging.ERROR)
            refused = True
            continue
        if args.output == "json":
            args.console.document(report.to_json() + "\n")
        elif args.output is not None:
            args.console.document("\n" + report.to_text())
        else:  # text on a terminal, one JSON event otherwise
            args.console.text("\n" + report.to_text())
            args.console.event("dryrun", report.headline(), **report.to_dict())
        refused = refused or bool(report.totals()["refuse"])
    return refused


def cmd_restore(args: argparse.Namespace) -> int:
    """`restore NAME --dry-run`: the restore `apply` would run into ControlPlane NAME, against its
    target with dryRun=All; exit 1 when it would refuse objects (or cannot run)."""
    if not args.dry_run:
        raise UserError("restores run in `apply` (spec.restore in Git); `restore` only runs them with --dry-run")
    key = (args.namespace, args.name)
    prepared = run.prepare(_source(args), encryption_keys=True)
    control_plane = prepared.desired.control_planes.get(key)
    if control_plane is None:
        raise UserError(f"ControlPlane {args.namespace}/{args.name} is not in Git")
    if control_plane.restore_source is None:
        raise UserError(f"ControlPlane {args.namespace}/{args.name} has no spec.restore: nothing to dry-run")
    result = run.make_plan(prepared, args.now or times.utcnow(), _plan_options(args))
    action = next((a for a in result.actions if a.kind == "ControlPlane" and (a.namespace, a.name) == key), None)
    if action is None:
        raise UserError(f"ControlPlane {args.namespace}/{args.name}: no restore is planned (it finished, or ended "
                        "after its last attempt): nothing to dry-run")
    if action.type is not ActionType.RESTORE:
        raise UserError(f"ControlPlane {args.namespace}/{args.name}: the restore cannot run yet: {action.reason}")
    try:
        report = dryrun.dry_run_restore(action, prepared.locations, control_plane, prepared.secrets, existing=args.existing)
    except dryrun.DryRunFailed as err:
        raise UserError(f"dry run of the restore of {args.namespace}/{args.name}: {err}") from None
    print(report.to_json() if args.output == "json" else report.to_text(), end="\n" if args.output == "json" else "")
    return EXIT_ERROR if report.totals()["refuse"] else EXIT_OK


def _show_plan(console: logs.Console, prepared: run.Prepared, result) -> None:
    """The plan: source line and Terraform-style text on a terminal, one `plan` event otherwise."""
    # the source line says the commit; the text plan's own first line ("Commit ...") would say it twice
    _, _, body = render.to_text(result).partition("\n")
    shard = f", shard {result.shard[0]}/{result.shard[1]}" if result.shard[1] > 1 else ""
    console.text(describe_source(prepared.snapshot) + shard)
    console.text(body)
    if not console.json_stdout:
        return
    document = json.loads(render.to_json(result))
    console.event("plan", render.headline(result), source=describe_source(prepared.snapshot),
                  **{k: v for k, v in document.items() if k != "actions"})
    for line, action in zip(render.action_lines(result.actions), document["actions"], strict=True):
        console.event("planned", line, logging.ERROR if action["action"] == "error" else logging.INFO, **action)
    for refusal in result.refusals:
        console.event("refused", f"! {refusal}", logging.ERROR)


def cmd_apply(args: argparse.Namespace) -> int:
    from ctpbackup.apply import metrics  # prometheus_client: only apply writes metrics

    console: logs.Console = args.console
    started = time.time()
    shard = args.shard
    try:
        prepared = run.prepare(_source(args), encryption_keys=True, shard=shard)
    except Exception:  # the job ran and could not plan: that is a metric too
        metrics.export(metrics.build_registry(DesiredState(""), RecordedState(), [],
                                              metrics.Run(started, time.time(), "error", "", shard), times.utcnow()),
                       shard, textfile=args.metrics_textfile, pushgateway=args.pushgateway)
        raise
    _print_warnings(prepared, console)
    clock = (lambda: args.now) if args.now else times.utcnow
    outcomes: list = []
    verifications: list = []
    with run.leases(prepared.locations, args.lease_wait, clock, shard, args.lease_duration):
        run.refresh(prepared)  # under the lease: what another run did before us is now visible
        result = run.make_plan(prepared, clock(), _plan_options(args))
        _print_plan_warnings(result, console)
        _show_plan(console, prepared, result)
        if any(a.type not in NOT_CHANGES for a in result.actions):
            progress = console.progress_display() if args.progress is None else args.progress
            executor = Executor(prepared.desired, prepared.locations, prepared.secrets, clock=clock,
                                concurrency=args.concurrency, existing=args.existing, progress=progress,
                                restore_wait=args.restore_wait.total_seconds())
            applied = executor.run(result)
            outcomes, verifications = applied.outcomes, applied.verifications
            run.refresh(prepared)  # the state metrics show what this run recorded
    if outcomes:
        console.text()
    for outcome in outcomes:
        mark = "ok" if outcome.ok else "waiting" if outcome.waiting else "failed"
        message = outcome.message.removeprefix(f"{mark}: ")  # said once, not "waiting: waiting: ..."
        console.text(f"  {outcome.action.sign} {outcome.action.type.value} {outcome.action.namespace}/"
                     f"{outcome.action.name}: {mark.upper() if mark == 'failed' else mark}: {message}")
        console.event("action", message, logging.INFO if mark != "failed" else logging.ERROR,
                      action=outcome.action.type.value, kind=outcome.action.kind, namespace=outcome.action.namespace,
                      name=outcome.action.name, controlplane=outcome.action.control_plane, outcome=mark,
                      bytes=outcome.size, seconds=round(outcome.seconds, 3))
    failed = sum(1 for o in outcomes if not o.ok and not o.waiting)
    unverified = _print_verifications(verifications, console)  # backups of this run that failed verification
    beyond = _failed_beyond_allowance(result, console)
    outcome_of_run = "error" if result.has_errors else "failure" if failed or unverified or beyond else "success"
    metrics.export(metrics.build_registry(prepared.desired, prepared.recorded, outcomes,
                                          metrics.Run(started, time.time(), outcome_of_run,
                                                      prepared.snapshot.commit, shard), clock()),
                   shard, textfile=args.metrics_textfile, pushgateway=args.pushgateway)
    summary = (f"Apply complete: {len(outcomes) - failed} done, {failed} failed"
               + (f", {unverified} failed verification" if unverified else "")
               + (f", {len(result.refusals)} refused" if result.refusals else "") + ".")
    if outcomes:
        console.text(summary)
    console.event("apply", summary if outcomes else "Nothing to apply.",
                  commit=prepared.snapshot.commit, result=outcome_of_run, actions=len(result.actions),
                  done=len(outcomes) - failed, failed=failed, refused=len(result.refusals),
                  seconds=round(time.time() - started, 3), **{f"planned_{k}": v for k, v in result.summary().items()})
    return EXIT_ERROR if failed or unverified or result.has_errors or beyond else EXIT_OK


def _print_verifications(verifications: list, console: logs.Console) -> int:
    """One line (and one `verified` event) per backup this run verified; how many failed."""
    failed = 0
    for done in verifications:
        condition = done.condition
        if condition is None:
            console.text(f"  ? verify {done.namespace}/{done.name}: not verified: {done.unavailable}")
            console.event("verified", done.unavailable, logging.WARNING, namespace=done.namespace, name=done.name,
                          verified=None)
            continue
        failed += 0 if done.ok else 1
        mark = "ok" if done.ok else "FAILED"
        console.text(f"  {'✓' if done.ok else '!'} verify {done.namespace}/{done.name}: {mark}: "
                     f"Verified={condition.status} {condition.reason}: {condition.message}")
        console.event("verified", condition.message, logging.INFO if done.ok else logging.ERROR,
                      namespace=done.namespace, name=done.name, verified=done.ok, reason=condition.reason)
    return failed


def _failed_beyond_allowance(result: Plan, console: logs.Console) -> bool:
    """Backups Failed for good beyond their SharedBackup's failures.controlPlanes allowance make
    `apply` exit 1 (while `plan` keeps its exit code: a broken control plane blocks no pull request)."""
    if result.failed_beyond_allowance:
        names = ", ".join(f"{ns}/{name}" for ns, name in result.failed_beyond_allowance)
        console.problem(f"error: failed for good beyond the allowed failures: {names}", logging.ERROR)
    return bool(result.failed_beyond_allowance)


def _print_plan_warnings(result: Plan, console: logs.Console) -> None:
    for warning in result.warnings:
        console.problem(f"warning: {warning}")


def _print_warnings(prepared: run.Prepared, console: logs.Console) -> None:
    for problem in prepared.load.warnings:
        console.problem(str(problem))


def _survey(args: argparse.Namespace, now: datetime,
            previous: run.Survey | None = None) -> tuple[run.Survey, status.Report]:
    """Git (once) and every bucket (each time), and the status of every object at `now`."""
    if previous is None:
        survey = run.survey(_source(args), now, getattr(args, "config", None))
    else:
        survey = run.read_buckets(previous.snapshot, previous.desired, previous.secrets, now)
    checks = [status.BucketAvailability(c.namespace, c.name, c.available, c.message, c.checked_at)
              for c in survey.checks.values()]
    return survey, status.report(survey.desired, survey.recorded, now, checks, args.max_retries)


def cmd_status(args: argparse.Namespace) -> int:
    now = times.utcnow()
    _, report = _survey(args, now)
    formatter = {"json": status.report_json, "yaml": status.report_yaml}.get(args.output)
    print(formatter(report) if formatter else status.report_table(report, now), end="")
    # every bucket that could be read is shown; one that could not makes the command fail, with one
    # line each (as kubectl exits 1 when part of what it was asked for could not be fetched)
    unavailable = [c for c in report.configs if c.fields.get("phase") == "Unavailable"]
    for config in unavailable:
        args.console.problem(f"error: {config.conditions[0].message}", logging.ERROR)
    return EXIT_ERROR if unavailable else EXIT_OK


def cmd_describe(args: argparse.Namespace) -> int:
    kind = status.KINDS[args.kind]
    _, report = _survey(args, times.utcnow())
    if kind == "Backup":
        record = report.recorded.backups.get((args.namespace, args.name))
        text = status.describe_backup(record) if record else None
    elif kind == "Restore":
        restore = report.recorded.restores.get((args.namespace, args.name))
        text = status.describe_restore(restore) if restore else None
    else:
        found = report.find(kind, args.namespace, args.name)
        text = status.describe(found) if found else None
    if text is None:
        where = "recorded in the bucket index" if kind in ("Backup", "Restore") else "in Git"
        raise UserError(f"{args.kind} {args.namespace}/{args.name} is not {where}")
    print(text, end="")
    return EXIT_OK


def _known(survey: run.Survey, kind: str, namespace: str, name: str, now: datetime) -> bool:
    """Whether `wait` can ever see the object: it is in Git or recorded (a Backup: also a name Git
    asks for, such as a SharedBackup's, before it is taken)."""
    key = (namespace, name)
    desired, recorded = survey.desired, survey.recorded
    if kind == "Backup":
        return key in recorded.backups or any(
            (r.namespace, r.name) == key for r in requested_backups(desired, recorded, now))
    if kind == "Restore":
        control_plane = desired.control_planes.get(key)
        return key in recorded.restores or (control_plane is not None and control_plane.restore_source is not None)
    return key in {"SharedBackupConfig": desired.configs, "ControlPlane": desired.control_planes,
                   "SharedBackup": desired.shared_backups, "SharedBackupSchedule": desired.shared_backup_schedules,
                   "BackupSchedule": desired.backup_schedules}[kind]


def _live_ready(survey: run.Survey, namespace: str, name: str, now: datetime) -> status.ObjectStatus:
    """A ControlPlane's Ready checked now: its connection Secret readable and its API answering."""
    control_plane = survey.desired.control_planes[(namespace, name)]
    try:
        client = api_client_for(control_plane, survey.secrets)
    except ConnectionSecretUnusable as err:
        condition = Condition("Ready", "False", err.reason, err.message, now)
    else:
        with client:
            answered = reachable(client)
        condition = Condition("Ready", "True" if answered else "False",
                              "APIAnswered" if answered else FailureReason.CONTROL_PLANE_UNREACHABLE,
                              "the API answered" if answered else f"the API of {namespace}/{name} does not answer", now)
    return status.ObjectStatus("ControlPlane", namespace, name, {}, (condition,))


def cmd_wait(args: argparse.Namespace) -> int:
    kind = status.KINDS[args.kind]
    condition_text = args.condition or f"condition={status.DEFAULT_CONDITION[kind]}"
    if not condition_text.startswith("condition="):
        raise UserError(f"--for {condition_text!r}: only condition=Type[=Status] is supported")
    condition = condition_text[len("condition="):]
    what = f"{args.kind} {args.namespace}/{args.name}"
    deadline = time.monotonic() + args.timeout.total_seconds()
    survey: run.Survey | None = None
    while True:
        now = times.utcnow()
        survey, report = _survey(args, now, survey)
        if not _known(survey, kind, args.namespace, args.name, now):
            raise UserError(f"{what} is neither in Git nor recorded in the bucket index")
        if kind == "ControlPlane" and condition.split("=")[0] == "Ready":
            found = _live_ready(survey, args.namespace, args.name, now)
        else:
            found = report.find(kind, args.namespace, args.name)
        if kind == "Backup":
            record = survey.recorded.backups.get((args.namespace, args.name))
            found = status.backup_status(record, args.max_retries) if record else None
        met = status.status_condition_met(found, condition)
        if met:
            print(f"{what} condition met")
            return EXIT_OK
        if met is False:  # a terminal failure: waiting longer changes nothing
            raise UserError(f"{what} will not meet {condition_text}: it is {status.why_ended(found, condition)}")
        if time.monotonic() >= deadline:
            raise UserError(f"timed out waiting for {condition_text} on {what}")
        time.sleep(min(args.interval, max(0.0, deadline - time.monotonic())))


def cmd_index(args: argparse.Namespace) -> int:
    seen = set()
    for location in run.buckets(_source(args)).values():
        if location.address in seen:
            continue
        seen.add(location.address)
        with run.leases({("", ""): location}, 0.0, times.utcnow):
            report = location.index.rebuild()
        print(f"{location.bucket.description}: {report}")
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


# -- verify and download (issue 21) -----------------------------------------------------------------


def _verify_and_download_parsers(sub) -> None:
    p = sub.add_parser("verify", help="read a backup's archive back and check, offline, that a restore would succeed; "
                                      "record the outcome (its Verified condition)")
    p.add_argument("kind", choices=("backup",))
    p.add_argument("name")
    p.add_argument("-n", "--namespace", default="default")
    _common(p)
    _secrets(p)
    p.set_defaults(run=cmd_verify)

    p = sub.add_parser("download", help="fetch a backup's archive, check it against the index, decrypt it and write "
                                        "a plain .tar.gz")
    p.add_argument("kind", choices=("backup",))
    p.add_argument("name")
    p.add_argument("-n", "--namespace", default="default")
    p.add_argument("-o", "--output", default=None, metavar="FILE", help="where to write it (default: NAME.tar.gz)")
    _common(p)
    _secrets(p)
    p.set_defaults(run=cmd_download)


def _recorded_backup(args: argparse.Namespace):
    """(location, record) of the backup the command names, read with the configs' encryption keys."""
    prepared = run.prepare(_source(args), encryption_keys=True)
    record = prepared.recorded.backups.get((args.namespace, args.name))
    if record is None:
        raise UserError(f"backup {args.namespace}/{args.name} is not recorded in the bucket index")
    location = prepared.locations.get((record.namespace, record.config))
    if location is None:
        raise UserError(f"backup {args.namespace}/{args.name}: its SharedBackupConfig {record.namespace}/"
                        f"{record.config} is not in Git")
    return location, record


def cmd_verify(args: argparse.Namespace) -> int:
    """Exit 0 when Verified=True, 1 otherwise (the outcome is recorded either way)."""
    from ctpbackup.apply import verification
    from ctpbackup.store.records import Phase

    location, record = _recorded_backup(args)
    if record.phase is not Phase.COMPLETED:
        raise UserError(f"backup {args.namespace}/{args.name} is {record.phase.value}; only a Completed backup has a "
                        "whole archive to verify")
    try:
        _, result = verification.verify_and_record(location, record, times.utcnow)
    except verification.VerificationUnavailable as err:
        raise UserError(str(err)) from None
    condition = verification.condition_of(result, times.utcnow())
    print(f"Backup {args.namespace}/{args.name}: Verified={condition.status} ({condition.reason})")
    print(f"  {result.summary()}")
    for reason, count in sorted(result.failures.items()):
        print(f"  {reason}: {count}")
    for example in result.examples:
        print(f"  - {example}")
    return EXIT_OK if result.verified else EXIT_ERROR


def cmd_download(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ctpbackup.apply import download

    location, record = _recorded_backup(args)
    out = Path(args.output or f"{args.name}.tar.gz")
    try:
        size = download.download(location, record, out)
    except download.DownloadRefused as err:
        raise UserError(f"backup {args.namespace}/{args.name} not downloaded: {err}") from None
    print(f"Backup {args.namespace}/{args.name}: {size} bytes written to {out} (a plain .tar.gz: tar -tzf {out})")
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
    except LeaseLost as err:  # another run took the lease over: stop at once, write nothing more
        console.problem(f"error: {err}", logging.ERROR)
        return EXIT_ERROR
    except KeyboardInterrupt:
        console.problem("interrupted", logging.ERROR)
        return 130
