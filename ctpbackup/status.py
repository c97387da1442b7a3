"""What the index records, shown the way `kubectl get` / `describe` / `wait` show Spaces objects."""

from __future__ import annotations

import json
from datetime import datetime

from ctpbackup.index import RecordedState
from ctpbackup.records import BackupRecord, Phase, RestoreRecord, format_time


def age(later: datetime | None, earlier: datetime | None) -> str:
    """Kubernetes-style short duration (`5m`, `3h`, `2d`); negative when `later` is before `earlier`."""
    if later is None or earlier is None:
        return ""
    seconds = int((later - earlier).total_seconds())
    sign = "-" if seconds < 0 else ""
    seconds = abs(seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{sign}{seconds // size}{unit}"
    return f"{sign}{seconds}s"


def human_size(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f}{unit}" if unit == "B" else f"{value:.1f}{unit}"
        value /= 1024
    return f"{size}B"


def _table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    lines = ["   ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    lines += ["   ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    return "\n".join(lines)


def to_table(recorded: RecordedState, now: datetime) -> str:
    backups = [[r.namespace, r.name, r.control_plane, r.phase.value + (f" ({r.deleted_with})" if r.deleted_with else ""),
                str(r.retries), human_size(r.size) if r.size else "", age(now, r.created_at),
                age(r.expires_at, now) if r.expires_at and r.phase is not Phase.DELETED else ""]
               for (_, _), r in sorted(recorded.backups.items())]
    out = [_table(["NAMESPACE", "NAME", "CONTROLPLANE", "PHASE", "RETRIES", "SIZE", "AGE", "EXPIRES"], backups)
           if backups else "No backups recorded."]
    restores = [[r.namespace, r.control_plane, f"{r.source_kind}/{r.source_name}", r.backup_name, r.phase.value,
                 str(sum(c.get("restored", 0) for c in r.counts.values())),
                 str(sum(c.get("skipped", 0) for c in r.counts.values())),
                 str(sum(c.get("failed", 0) for c in r.counts.values())),
                 age(now, r.finished_at) if r.finished_at else ""]
                for (_, _), r in sorted(recorded.restores.items())]
    if restores:
        out += ["", _table(["NAMESPACE", "CONTROLPLANE", "SOURCE", "BACKUP", "PHASE", "RESTORED", "SKIPPED",
                            "FAILED", "FINISHED"], restores)]
    return "\n".join(out) + "\n"


def to_json(recorded: RecordedState) -> str:
    return json.dumps({
        "backups": [r.to_dict() for _, r in sorted(recorded.backups.items())],
        "restores": [r.to_dict() for _, r in sorted(recorded.restores.items())],
    }, indent=2) + "\n"


def describe_backup(record: BackupRecord) -> str:
    lines = [
        f"Name:           {record.name}",
        f"Namespace:      {record.namespace}",
        f"ControlPlane:   {record.control_plane}",
        f"Config:         {record.config}",
        f"Phase:          {record.phase.value}" + (f" ({record.deleted_with})" if record.deleted_with else ""),
        f"Owner:          {record.owner_kind.value + ' ' + record.owner_name if record.owner_kind else '<none>'}",
        f"Git commit:     {record.git_commit}",
        f"Retries:        {record.retries}",
        f"Started:        {format_time(record.started_at) or ''}",
        f"Completed:      {format_time(record.completed_at) or ''}",
        f"TTL:            {record.ttl or '<none>'}" + (f" (expires {format_time(record.expires_at)})" if record.expires_at else ""),
        f"DeletionPolicy: {record.deletion_policy}",
        f"Archive:        {record.archive_key}",
        f"Size:           {record.size} bytes",
        f"SHA-256:        {record.sha256}",
        "Conditions:",
    ]
    lines += [f"  {c.type}={c.status}  {c.reason}  {c.message}  ({format_time(c.last_transition_time)})"
              for c in record.conditions] or ["  <none>"]
    lines.append("Objects:")
    lines += [f"  {resource:<60} {count}" for resource, count in sorted(record.counts.items())] or ["  <none>"]
    if record.warnings:
        lines.append("Warnings:")
        lines += [f"  {w}" for w in record.warnings]
    return "\n".join(lines) + "\n"


def describe_restore(record: RestoreRecord) -> str:
    lines = [
        f"ControlPlane:   {record.namespace}/{record.control_plane}",
        f"Source:         {record.source_kind} {record.source_name}",
        f"Backup:         {record.backup_name}",
        f"Phase:          {record.phase.value}",
        f"Attempts:       {record.attempts}",
        f"Started:        {format_time(record.started_at) or ''}",
        f"Finished:       {format_time(record.finished_at) or ''}",
        "Conditions:",
    ]
    lines += [f"  {c.type}={c.status}  {c.reason}  {c.message}" for c in record.conditions] or ["  <none>"]
    lines.append("Objects (restored / skipped / failed):")
    lines += [f"  {k:<60} {v.get('restored', 0)} / {v.get('skipped', 0)} / {v.get('failed', 0)}"
              for k, v in sorted(record.counts.items())] or ["  <none>"]
    if record.warnings:
        lines.append("Warnings:")
        lines += [f"  {w}" for w in record.warnings]
    return "\n".join(lines) + "\n"


def condition_met(record: BackupRecord | RestoreRecord | None, condition: str) -> bool | None:
    """True when `Type[=Status]` holds, False when it can no longer hold (the record failed), None to keep waiting."""
    if record is None:
        return None
    ctype, _, wanted = condition.partition("=")
    wanted = wanted or "True"
    found = record.condition(ctype)
    if found is not None and found.status == wanted:
        return True
    if record.phase is Phase.FAILED and isinstance(record, BackupRecord):
        return False
    return None
