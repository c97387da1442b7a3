"""How a plan is shown: Terraform-style text, a stable JSON document, and Markdown for pull requests.

Nothing here reads secrets: a plan holds names, reasons and counts only.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

from ctpbackup.desired.model import RETRY_ANNOTATION
from ctpbackup.plan.planner import Action, ActionType, Plan
from ctpbackup.rules.times import RFC3339

FORMAT_VERSION = "1"
NOT_CHECKED = ("Connection Secrets were not checked (the Secret source holds none of them): a backup or restore "
               "may still wait for its control plane's")
MARKDOWN_LIMIT = 60_000  # bytes; GitHub comments stop at 65,536 characters


def _target(action: Action) -> str:
    ident = f"{action.namespace}/{action.name}"
    if action.type in (ActionType.BACKUP, ActionType.RETRY):
        return f"{action.type.value} {ident} ← {action.control_plane}"
    if action.type in (ActionType.RESTORE, ActionType.WAIT):
        return f"{action.type.value} {ident}" + (f" ← {action.restore_backup}" if action.restore_backup else "")
    if action.type is ActionType.ERROR:
        return f"error {action.kind} {ident}"
    if action.type is ActionType.FAILED:
        return f"failed {ident}: {action.reason}"
    return f"{action.type.value} {ident} ({action.control_plane})"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else ('es' if word.endswith('h') else 's')}"


def headline(plan: Plan) -> str:
    s = plan.summary()
    if not plan.has_changes and not plan.has_errors and not s["wait"] and not s["failed"]:
        return f"No changes. The bucket matches Git (commit {plan.commit[:7]})."
    parts = [
        _plural(s["backup"] + s["retry"], "backup"),
        _plural(s["restore"], "restore"),
        f"{s['delete'] + s['orphan']} deletion{'' if s['delete'] + s['orphan'] == 1 else 's'}",
        f"{s['error'] + len(plan.refusals)} error{'' if s['error'] + len(plan.refusals) == 1 else 's'}",
    ]
    if s["failed"]:
        parts.append(f"{s['failed']} failed for good")
    tail = f" ({s['retry']} retried, {s['orphan']} orphaned, {s['wait']} waiting)" if s["retry"] or s["orphan"] or s["wait"] else ""
    return f"Plan: {', '.join(parts)}.{tail}"


def _detail(action: Action) -> str:
    """The line under an action: its reason, or for a backup failed for good how to ask again."""
    if action.type is ActionType.FAILED and action.reason.startswith("failed verification"):
        return ("Completed, but a restore of it would fail; never taken again automatically (take a new backup "
                "under a new name; `reconcile.py verify backup NAME` checks it again)")
    if action.type is ActionType.FAILED:
        return f"retries used up; set the annotation {RETRY_ANNOTATION} to a new value for a fresh attempt"
    return action.reason


def to_text(plan: Plan) -> str:
    lines = [f"Commit {plan.commit}" + (f", shard {plan.shard[0]}/{plan.shard[1]}" if plan.shard[1] > 1 else "")]
    if plan.actions or plan.refusals:
        lines.append("")
    for action in plan.actions:
        lines.append(f"  {action.sign} {_target(action)}")
        lines.append(f"      {_detail(action)}")
    for refusal in plan.refusals:
        lines.append(f"  ! {refusal}")
    if not plan.connection_secrets_checked:
        lines.append(f"  {NOT_CHECKED}")
    for status in plan.shared_backups:
        lines.append(f"  SharedBackup {status.namespace}/{status.name}: {status.phase} "
                     f"({len(status.completed)}/{len(status.selected)} completed, {len(status.failed)} failed, "
                     f"{status.allowed_failures} allowed)")
    lines.append("")
    lines.append(headline(plan))
    return "\n".join(lines) + "\n"


def to_json(plan: Plan) -> str:
    document = {
        "format_version": FORMAT_VERSION,
        "commit": plan.commit,
        "time": plan.now.strftime(RFC3339),
        "shard": {"index": plan.shard[0], "count": plan.shard[1]},
        "actions": [_action_json(a) for a in plan.actions],
        "refusals": list(plan.refusals),
        "connectionSecretsChecked": plan.connection_secrets_checked,
        "sharedBackups": [
            {"namespace": s.namespace, "name": s.name, "phase": s.phase, "selectedControlPlanes": list(s.selected),
             "completed": list(s.completed), "failed": list(s.failed), "allowedFailures": s.allowed_failures}
            for s in plan.shared_backups
        ],
        "failedBeyondAllowance": [{"namespace": ns, "name": name} for ns, name in plan.failed_beyond_allowance],
        "summary": {**plan.summary(), "changes": plan.has_changes, "errors": plan.has_errors},
    }
    return json.dumps(document, indent=2) + "\n"


def _action_json(action: Action) -> dict:
    entry = {
        "action": action.type.value,
        "kind": action.kind,
        "namespace": action.namespace,
        "name": action.name,
        "controlPlane": action.control_plane,
        "reason": action.reason,
    }
    if action.config:
        entry["config"] = action.config
    if action.request is not None:
        entry["owner"] = ({"kind": action.request.owner_kind.value, "name": action.request.owner_name}
                          if action.request.owner_kind else None)
        if action.request.slot is not None:
            entry["slot"] = action.request.slot.strftime(RFC3339)
    if action.restore_backup:
        entry["backup"] = action.restore_backup
    return entry


def to_markdown(plan: Plan, title: str = "Control-plane backup plan") -> str:
    """Summary first, a warning heading when anything is deleted, details folded; always under the
    size GitHub accepts for a comment, however large the plan."""
    s = plan.summary()
    deleting = s["delete"] + s["orphan"]
    head = [f"### {title}", "", f"**{headline(plan)}**", "", f"Commit `{plan.commit[:12]}`", ""]
    if deleting:
        head[:0] = [f"## ⚠️ This plan deletes or orphans {deleting} backup{'s' if deleting != 1 else ''}", ""]
    if not plan.connection_secrets_checked:
        head += [f"_{NOT_CHECKED}._", ""]
    if plan.refusals:
        head += ["#### ❌ Refused", ""] + [f"- {r}" for r in plan.refusals] + [""]
    errors = [a for a in plan.actions if a.type is ActionType.ERROR]
    if errors:
        head += ["#### ❌ Errors", ""] + [f"- `{a.kind} {a.namespace}/{a.name}`: {_md(a.reason)}" for a in errors] + [""]
    failed = [a for a in plan.actions if a.type is ActionType.FAILED]
    if failed:
        head += ["#### ⚠️ Failed for good", ""] + [f"- `{a.namespace}/{a.name}`: {_md(a.reason)}" for a in failed]
        head += ["", f"Set the annotation `{RETRY_ANNOTATION}` to a new value for a fresh attempt.", ""]
    table = ["| | action | object | control plane | reason |", "|---|---|---|---|---|"]
    table += [f"| {a.sign} | {a.type.value} | `{a.namespace}/{a.name}` | `{a.control_plane}` | {_md(a.reason)} |"
              for a in plan.actions]
    out = "\n".join(head)
    budget = MARKDOWN_LIMIT - len(out.encode()) - 400
    kept = _fit(table, budget)
    omitted = len(table) - len(kept)
    details = ["<details><summary>Details: " + _plural(len(plan.actions), "action") + "</summary>", ""] + kept
    if omitted:
        details += ["", f"… and {omitted} more action(s) not shown; run `reconcile.py plan` for the full list."]
    details += ["", "</details>", ""]
    return out + "\n".join(details)


def _fit(lines: list[str], budget: int) -> list[str]:
    kept, used = [], 0
    for line in lines:
        size = len(line.encode()) + 1
        if used + size > budget:
            break
        kept.append(line)
        used += size
    return kept


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render(plan: Plan, fmt: str) -> str:
    return {"text": to_text, "json": to_json, "markdown": to_markdown}[fmt](plan)


def action_lines(actions: Iterable[Action]) -> list[str]:
    return [f"{a.sign} {_target(a)}" for a in actions]
