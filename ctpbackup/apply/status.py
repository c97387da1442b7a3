"""What the index records, shown the way `kubectl get` / `describe` / `wait` show Spaces objects.

Every kind has a status here: a SharedBackupConfig's bucket (Available / Unavailable, as Velero
shows a BackupStorageLocation's phase), SharedBackups, SharedBackupSchedules, BackupSchedules and
ControlPlanes (computed from Git, the bucket index and the time), and Backups and restores (their
records). Each carries Kubernetes-style conditions, so `wait --for condition=Type[=Status]` works
on all of them.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import yaml

from ctpbackup.desired.model import DesiredState
from ctpbackup.plan.planner import DEFAULT_MAX_RETRIES, PlanOptions, plan
from ctpbackup.rules.naming import scheduled_name_prefix
from ctpbackup.rules.schedules import parse_schedule
from ctpbackup.rules.selectors import selects
from ctpbackup.rules.sizes import human_size
from ctpbackup.store.index import RecordedState
from ctpbackup.store.records import BackupRecord, Condition, OwnerKind, Phase, RestoreRecord, format_time


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


def _table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    lines = ["   ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    lines += ["   ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    return "\n".join(lines)


def to_table(recorded: RecordedState, now: datetime) -> str:
    backups = [[r.namespace, r.name, r.control_plane, r.phase.value + (f" ({r.deleted_with})" if r.deleted_with else ""),
                str(r.retries), human_size(r.size) if r.size else "", age(now, r.created_at),
                age(r.expires_at, now) if r.expires_at and r.phase is not Phase.DELETED else "", _verified(r)]
               for (_, _), r in sorted(recorded.backups.items())]
    out = [_table(["NAMESPACE", "NAME", "CONTROLPLANE", "PHASE", "RETRIES", "SIZE", "AGE", "EXPIRES", "VERIFIED"],
                  backups)
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


def _verified(record: BackupRecord) -> str:
    """The backup's `Verified` condition as a table shows it: `True`, `False (Reason)`, or empty."""
    condition = record.condition("Verified")
    if condition is None:
        return ""
    return condition.status if condition.status == "True" else f"{condition.status} ({condition.reason})"


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
        f"Size:           {human_size(record.size)}",
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
    check = record.verification
    if check:
        lines.append(f"Verification:   {check.get('verifiedAt', '')}")
        lines += [f"  {what:<25} {check.get(what, 0)}" for what in ("objects", "created", "skipped", "merged", "failed")]
        lines += [f"  {reason:<25} {count}" for reason, count in sorted((check.get("failures") or {}).items())]
        lines += [f"  - {example}" for example in check.get("examples") or ()]
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
    lines.append("Objects (restored / skipped / merged / failed):")
    lines += [f"  {k:<60} {v.get('restored', 0)} / {v.get('skipped', 0)} / {v.get('merged', 0)} / {v.get('failed', 0)}"
              for k, v in sorted(record.counts.items())] or ["  <none>"]
    if record.warnings:
        lines.append("Warnings:")
        lines += [f"  {w}" for w in record.warnings]
    return "\n".join(lines) + "\n"


def condition_met(record: BackupRecord | RestoreRecord | None, condition: str,
                  max_retries: int = DEFAULT_MAX_RETRIES) -> bool | None:
    """True when `Type[=Status]` holds, False when it can no longer hold (a backup Failed for good:
    its retries used up), None to keep waiting (a Failed backup with retries left is retried by the
    next apply)."""
    if record is None:
        return None
    ctype, _, wanted = condition.partition("=")
    wanted = wanted or "True"
    found = record.condition(ctype)
    if found is not None and found.status == wanted:
        return True
    if record.phase is Phase.FAILED and isinstance(record, BackupRecord) and record.retries >= max_retries:
        return False
    return None


# -- the status of every kind -------------------------------------------------------------------------

#: kind on the command line -> kind; and the condition `wait` waits for by default
KINDS = {
    "backup": "Backup", "restore": "Restore", "sharedbackup": "SharedBackup",
    "sharedbackupschedule": "SharedBackupSchedule", "backupschedule": "BackupSchedule",
    "controlplane": "ControlPlane", "sharedbackupconfig": "SharedBackupConfig",
}
DEFAULT_CONDITION = {
    "Backup": "Completed", "Restore": "Restored", "SharedBackup": "Completed", "SharedBackupSchedule": "Completed",
    "BackupSchedule": "Completed", "ControlPlane": "Ready", "SharedBackupConfig": "Available",
}
#: failure reasons that say the control plane's API could not be reached (ctpbackup.kube.connect)
UNREACHABLE = ("ControlPlaneUnreachable", "ConnectionSecretMissing", "InvalidKubeconfig")


@dataclass(frozen=True)
class ObjectStatus:
    """One object's status: kind-specific fields (camelCase, as `-o json` shows them) and conditions."""

    kind: str
    namespace: str
    name: str
    fields: Mapping[str, Any] = field(default_factory=dict)
    conditions: tuple[Condition, ...] = ()

    def condition(self, type_: str) -> Condition | None:
        return next((c for c in self.conditions if c.type == type_), None)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "namespace": self.namespace, "name": self.name,
                "status": {**self.fields, "conditions": [c.to_dict() for c in self.conditions]}}


@dataclass(frozen=True)
class BucketAvailability:
    """A config's bucket as last checked (ctpbackup.run.BucketCheck has this shape)."""

    namespace: str
    name: str
    available: bool
    message: str
    checked_at: datetime


@dataclass(frozen=True)
class Report:
    """Every object's status at one instant."""

    configs: tuple[ObjectStatus, ...] = ()
    control_planes: tuple[ObjectStatus, ...] = ()
    shared_backups: tuple[ObjectStatus, ...] = ()
    shared_backup_schedules: tuple[ObjectStatus, ...] = ()
    backup_schedules: tuple[ObjectStatus, ...] = ()
    recorded: RecordedState = field(default_factory=RecordedState)

    def find(self, kind: str, namespace: str, name: str) -> ObjectStatus | None:
        """The status of one object of `kind` (a KINDS value); Backups and restores from their records."""
        if kind == "Backup":
            record = self.recorded.backups.get((namespace, name))
            return _record_status(record) if record else None
        if kind == "Restore":
            restore = self.recorded.restores.get((namespace, name))
            return _restore_status(restore) if restore else None
        group = {"SharedBackupConfig": self.configs, "ControlPlane": self.control_planes,
                 "SharedBackup": self.shared_backups, "SharedBackupSchedule": self.shared_backup_schedules,
                 "BackupSchedule": self.backup_schedules}[kind]
        return next((o for o in group if (o.namespace, o.name) == (namespace, name)), None)


def report(desired: DesiredState, recorded: RecordedState, now: datetime,
           buckets: Iterable[BucketAvailability] = (), max_retries: int = DEFAULT_MAX_RETRIES) -> Report:
    """The status of every object in Git (and of every recorded backup and restore) at `now`."""
    records = list(recorded.backups.values())
    by_owner: dict[tuple[OwnerKind, str, str], list[BackupRecord]] = defaultdict(list)
    by_control_plane: dict[tuple[str, str], list[BackupRecord]] = defaultdict(list)
    for r in records:
        if r.owner_kind:
            by_owner[(r.owner_kind, r.namespace, r.owner_name)].append(r)
        by_control_plane[(r.namespace, r.control_plane)].append(r)
    checks = {(b.namespace, b.name): b for b in buckets}
    return Report(
        configs=tuple(_config_status(ns, name, checks.get((ns, name))) for (ns, name) in sorted(desired.configs)),
        control_planes=tuple(_control_plane_status(desired, recorded, ns, name, by_control_plane[(ns, name)])
                             for (ns, name) in sorted(desired.control_planes)),
        shared_backups=tuple(_shared_backup_statuses(desired, recorded, now, max_retries)),
        shared_backup_schedules=tuple(
            _schedule_status(desired, "SharedBackupSchedule", ns, name, now, max_retries,
                             by_owner[(OwnerKind.SHARED_BACKUP_SCHEDULE, ns, name)])
            for (ns, name) in sorted(desired.shared_backup_schedules)),
        backup_schedules=tuple(
            _schedule_status(desired, "BackupSchedule", ns, name, now, max_retries,
                             by_owner[(OwnerKind.BACKUP_SCHEDULE, ns, name)])
            for (ns, name) in sorted(desired.backup_schedules)),
        recorded=recorded,
    )


def _config_status(ns: str, name: str, check: BucketAvailability | None) -> ObjectStatus:
    if check is None:
        return ObjectStatus("SharedBackupConfig", ns, name, {"phase": "Unknown", "lastCheckTime": None},
                            (Condition("Available", "Unknown", "NotChecked", "the bucket was not checked"),))
    phase = "Available" if check.available else "Unavailable"
    condition = Condition("Available", "True" if check.available else "False",
                          "BucketAvailable" if check.available else "BucketUnavailable", check.message, check.checked_at)
    return ObjectStatus("SharedBackupConfig", ns, name, {"phase": phase, "lastCheckTime": format_time(check.checked_at)},
                        (condition,))


def _control_plane_status(desired: DesiredState, recorded: RecordedState, ns: str, name: str,
                          records: list[BackupRecord]) -> ObjectStatus:
    """Ready as last seen by a run: the newest backup attempt (Completed: the API answered, with its
    server version; failed as unreachable: not Ready), and the restore's last word when newer."""
    seen: list[tuple[datetime, Condition, str]] = []
    for r in records:
        if r.phase is Phase.COMPLETED and r.completed_at:
            seen.append((r.completed_at, Condition("Ready", "True", "APIAnswered",
                                                   f"the API answered backup {r.name}"
                                                   + (f" (Kubernetes {r.server_version})" if r.server_version else ""),
                                                   r.completed_at), r.server_version))
        elif r.phase is Phase.FAILED:
            cause = r.condition("Completed")
            if cause is not None and cause.reason in UNREACHABLE and cause.last_transition_time:
                seen.append((cause.last_transition_time, Condition("Ready", "False", cause.reason, cause.message,
                                                                   cause.last_transition_time), ""))
    restore = recorded.restores.get((ns, name))
    restored = restore.condition("Restored") if restore else None
    if restored is not None and restored.last_transition_time:
        answered = restored.reason not in UNREACHABLE
        seen.append((restored.last_transition_time, Condition(
            "Ready", "True" if answered else "False", "APIAnswered" if answered else restored.reason,
            "the API answered the restore" if answered else restored.message, restored.last_transition_time), ""))
    seen.sort(key=lambda s: s[0])
    ready = seen[-1][1] if seen else Condition("Ready", "Unknown", "NotSeen", "no run has reached this control plane yet")
    version = next((v for _, _, v in reversed(seen) if v), "")
    completed = [r for r in records if r.phase is Phase.COMPLETED]
    last = max(completed, key=lambda r: (format_time(r.completed_at) or "", r.name)) if completed else None
    fields: dict[str, Any] = {
        "serverVersion": version or None,
        "lastSeen": format_time(seen[-1][0]) if seen else None,
        "lastCompletedBackup": {"name": last.name, "completedAt": format_time(last.completed_at)} if last else None,
    }
    conditions = [ready]
    control_plane = desired.control_planes[(ns, name)]
    if control_plane.restore_source is not None:
        source = control_plane.restore_source
        fields["restoreSource"] = {"kind": source.kind, "name": source.name}
        if control_plane.restore_finished_at is not None and restore is None:
            conditions.append(Condition("Restored", "True", "FinishedAtInGit", "spec.restore.finishedAt is set in Git",
                                        control_plane.restore_finished_at))
        elif restored is not None:
            conditions.append(restored)
        else:
            conditions.append(Condition("Restored", "False", "Pending", "the restore has not started yet"))
    return ObjectStatus("ControlPlane", ns, name, fields, tuple(conditions))


def _shared_backup_statuses(desired: DesiredState, recorded: RecordedState, now: datetime,
                            max_retries: int) -> Iterable[ObjectStatus]:
    for s in plan(desired, recorded, now, PlanOptions(max_retries=max_retries)).shared_backups:
        done = s.phase in ("Completed", "Failed")
        completed = Condition("Completed", "True" if s.phase == "Completed" else "False",
                              {"Completed": "BackupsCompleted", "Failed": "TooManyFailures"}.get(s.phase, s.phase),
                              f"{len(s.completed)} of {len(s.selected)} control planes completed, {len(s.failed)} "
                              f"failed for good ({s.allowed_failures} allowed)")
        yield ObjectStatus("SharedBackup", s.namespace, s.name, {
            "phase": s.phase, "selectedControlPlanes": list(s.selected), "completed": list(s.completed),
            "failed": list(s.failed), "allowedFailures": s.allowed_failures, "done": done}, (completed,))


def _schedule_status(desired: DesiredState, kind: str, ns: str, name: str, now: datetime, max_retries: int,
                     records: list[BackupRecord]) -> ObjectStatus:
    """Selected control planes, the last slot taken for each (and that backup's phase), the next slot,
    suspended; Completed is True when the newest slot taken has every selected control plane's
    backup Completed."""
    if kind == "BackupSchedule":
        schedule = desired.backup_schedules[(ns, name)]
        selected = [schedule.control_plane]
    else:
        shared = desired.shared_backup_schedules[(ns, name)]
        schedule = shared  # type: ignore[assignment]
        selected = sorted(cp for (cns, cp), obj in desired.control_planes.items()
                          if cns == ns and selects(shared.selector, cp, obj.labels))
    newest: dict[str, BackupRecord] = {}
    for r in records:
        if r.slot is not None and r.name.startswith(scheduled_name_prefix(name, r.control_plane)) and \
                (r.control_plane not in newest or r.slot > newest[r.control_plane].slot):  # type: ignore[operator]
            newest[r.control_plane] = r
    last = {cp: {"slot": format_time(newest[cp].slot), "backup": newest[cp].name, "phase": newest[cp].phase.value}
            for cp in selected if cp in newest}
    next_slot = parse_schedule(schedule.schedule).next_slot(now)
    latest = max((format_time(newest[cp].slot) or "" for cp in selected if cp in newest), default="")
    current = [newest[cp] for cp in selected if cp in newest and format_time(newest[cp].slot) == latest]
    if not latest:
        completed = Condition("Completed", "False", "NoBackupYet", "no slot taken yet")
    elif len(current) == len(selected) and all(r.phase is Phase.COMPLETED for r in current):
        completed = Condition("Completed", "True", "BackupsCompleted", f"every backup of slot {latest} is Completed")
    elif any(r.phase is Phase.FAILED and r.retries >= max_retries for r in current):
        failed = sorted(r.control_plane for r in current if r.phase is Phase.FAILED and r.retries >= max_retries)
        completed = Condition("Completed", "False", "BackupFailed",
                              f"slot {latest}: failed for good for {', '.join(failed)}")
    else:
        completed = Condition("Completed", "False", "InProgress", f"slot {latest} is not done for every control plane")
    fields: dict[str, Any] = {"schedule": schedule.schedule, "suspended": schedule.suspend,
                              "nextSlot": None if schedule.suspend else format_time(next_slot)}
    if kind == "BackupSchedule":
        only = last.get(selected[0])
        fields = {"controlPlane": selected[0], "lastBackup": only, **fields}
    else:
        fields = {"selectedControlPlanes": selected, "lastSlots": last, **fields}
    scheduled = Condition("Scheduled", "False" if schedule.suspend else "True",
                          "Suspended" if schedule.suspend else "Scheduled",
                          "spec.suspend is true" if schedule.suspend else f"next slot {format_time(next_slot)}")
    return ObjectStatus(kind, ns, name, fields, (completed, scheduled))


def _record_status(record: BackupRecord) -> ObjectStatus:
    return ObjectStatus("Backup", record.namespace, record.name, {"phase": record.phase.value}, record.conditions)


def _restore_status(record: RestoreRecord) -> ObjectStatus:
    return ObjectStatus("Restore", record.namespace, record.control_plane, {"phase": record.phase.value},
                        record.conditions)


def report_dict(rep: Report) -> dict[str, Any]:
    """`status -o json|yaml`: every kind, Backups and restores as their records (as before)."""
    return {
        "sharedBackupConfigs": [o.to_dict() for o in rep.configs],
        "controlPlanes": [o.to_dict() for o in rep.control_planes],
        "sharedBackups": [o.to_dict() for o in rep.shared_backups],
        "sharedBackupSchedules": [o.to_dict() for o in rep.shared_backup_schedules],
        "backupSchedules": [o.to_dict() for o in rep.backup_schedules],
        "backups": [r.to_dict() for _, r in sorted(rep.recorded.backups.items())],
        "restores": [r.to_dict() for _, r in sorted(rep.recorded.restores.items())],
    }


def report_json(rep: Report) -> str:
    return json.dumps(report_dict(rep), indent=2) + "\n"


def report_yaml(rep: Report) -> str:
    return yaml.safe_dump(report_dict(rep), sort_keys=False, default_flow_style=False)


def _ready(o: ObjectStatus, type_: str) -> str:
    c = o.condition(type_)
    return f"{c.status} ({c.reason})" if c else ""


def report_table(rep: Report, now: datetime) -> str:
    """`status`: one table per kind, as `kubectl get` prints them, then backups and restores."""
    out: list[str] = []
    if rep.configs:
        out += [_table(["NAMESPACE", "SHAREDBACKUPCONFIG", "PHASE", "LAST CHECKED", "MESSAGE"],
                       [[o.namespace, o.name, o.fields["phase"], o.fields["lastCheckTime"] or "",
                         (o.condition("Available").message if o.condition("Available") else "")]  # type: ignore[union-attr]
                        for o in rep.configs]), ""]
    if rep.control_planes:
        out += [_table(["NAMESPACE", "CONTROLPLANE", "READY", "VERSION", "LAST SEEN", "RESTORED", "LAST BACKUP"],
                       [[o.namespace, o.name, _ready(o, "Ready"), o.fields["serverVersion"] or "",
                         age(now, _time(o.fields["lastSeen"])), _ready(o, "Restored"),
                         (o.fields["lastCompletedBackup"] or {}).get("name", "")] for o in rep.control_planes]), ""]
    if rep.shared_backups:
        out += [_table(["NAMESPACE", "SHAREDBACKUP", "PHASE", "SELECTED", "COMPLETED", "FAILED", "ALLOWED"],
                       [[o.namespace, o.name, o.fields["phase"], str(len(o.fields["selectedControlPlanes"])),
                         str(len(o.fields["completed"])), str(len(o.fields["failed"])), str(o.fields["allowedFailures"])]
                        for o in rep.shared_backups]), ""]
    schedules = [*rep.shared_backup_schedules, *rep.backup_schedules]
    if schedules:
        out += [_table(["NAMESPACE", "SCHEDULE", "KIND", "SELECTED", "LAST SLOT", "NEXT SLOT", "SUSPENDED", "COMPLETED"],
                       [[o.namespace, o.name, o.kind,
                         str(len(o.fields.get("selectedControlPlanes", [o.fields.get("controlPlane")]))),
                         max((v["slot"] for v in o.fields["lastSlots"].values()), default="") if "lastSlots" in o.fields
                         else (o.fields["lastBackup"] or {}).get("slot", ""),
                         o.fields["nextSlot"] or "", str(o.fields["suspended"]).lower(), _ready(o, "Completed")]
                        for o in schedules]), ""]
    return "\n".join(out) + to_table(rep.recorded, now)


def _time(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


def describe(o: ObjectStatus) -> str:
    """`describe KIND NAME` for the kinds computed here: fields, then conditions."""
    lines = [f"Kind:           {o.kind}", f"Name:           {o.name}", f"Namespace:      {o.namespace}"]
    for key, value in o.fields.items():
        if isinstance(value, dict) and value:
            lines.append(f"{key}:")
            lines += [f"  {k}: {_plain(v)}" for k, v in value.items()]
        else:
            lines.append(f"{key + ':':<16}{_plain(value)}")
    lines.append("Conditions:")
    lines += [f"  {c.type}={c.status}  {c.reason}  {c.message}" + (f"  ({format_time(c.last_transition_time)})"
                                                                   if c.last_transition_time else "")
              for c in o.conditions] or ["  <none>"]
    return "\n".join(lines) + "\n"


def _plain(value: Any) -> str:
    if value is None:
        return "<none>"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list):
        return ", ".join(str(v) for v in value) or "<none>"
    if isinstance(value, dict):
        return ", ".join(f"{k}={_plain(v)}" for k, v in value.items()) or "<none>"
    return str(value)


def status_condition_met(status: ObjectStatus | None, condition: str) -> bool | None:
    """Like condition_met, for any kind: True when `Type[=Status]` holds; False when it can no
    longer hold (a Backup Failed for good, a SharedBackup Failed, a schedule's slot failed for good);
    None to keep waiting."""
    if status is None:
        return None
    ctype, _, wanted = condition.partition("=")
    found = status.condition(ctype)
    if found is not None and found.status == (wanted or "True"):
        return True
    if found is not None and found.reason in ("TooManyFailures", "BackupFailed") and (wanted or "True") == "True":
        return False
    return None
