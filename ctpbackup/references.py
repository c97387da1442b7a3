"""Checks across objects: every reference resolves, in the same namespace, to an object of the right kind.

References never cross namespaces (a namespace is a Spaces group: the isolation boundary).
"""

from __future__ import annotations

from collections.abc import Iterator

from ctpbackup.model import ControlPlaneSelector, DesiredState, Origin
from ctpbackup.naming import MAX_NAME, scheduled_backup_name, shared_backup_name
from ctpbackup.problems import Problem, Severity
from ctpbackup.schedules import EPOCH
from ctpbackup.schemas import field_name
from ctpbackup.selectors import requirement_problem, selects


def check_references(desired: DesiredState, recorded_backups: frozenset[tuple[str, str]] = frozenset(),
                     finished_restores: frozenset[tuple[str, str]] = frozenset(),
                     declared: frozenset[tuple[str, str, str]] = frozenset()) -> list[Problem]:
    """Problems with references. `declared` (kind, namespace, name) are objects found in Git that
    failed their own checks: a reference to one is not reported as dangling too."""
    return sorted(_check(desired, recorded_backups, finished_restores, declared), key=Problem.sort_key)


def _problem(kind: str, ns: str, name: str, origin: Origin | None, path: tuple, message: str,
             severity: Severity = Severity.ERROR) -> Problem:
    return Problem(origin.path if origin else "<unknown>", origin.line_of(*path) if origin else 0, message,
                   kind=kind, namespace=ns, name=name, field=field_name(path), severity=severity)


def _check(desired: DesiredState, recorded_backups: frozenset, finished_restores: frozenset,
           declared: frozenset) -> Iterator[Problem]:
    producers = [("Backup", desired.backups), ("BackupSchedule", desired.backup_schedules),
                 ("SharedBackup", desired.shared_backups), ("SharedBackupSchedule", desired.shared_backup_schedules)]
    for kind, objects in producers:
        for (ns, name), obj in objects.items():
            if (ns, obj.options.config) not in desired.configs and ("SharedBackupConfig", ns, obj.options.config) not in declared:
                yield _problem(kind, ns, name, obj.origin, ("spec", "configRef", "name"),
                               f"SharedBackupConfig {ns}/{obj.options.config} not found in namespace {ns!r}")

    for kind, objects in (("Backup", desired.backups), ("BackupSchedule", desired.backup_schedules)):
        for (ns, name), obj in objects.items():
            if (ns, obj.control_plane) not in desired.control_planes and ("ControlPlane", ns, obj.control_plane) not in declared:
                yield _problem(kind, ns, name, obj.origin, ("spec", "controlPlane"),
                               f"ControlPlane {ns}/{obj.control_plane} not found in namespace {ns!r}")

    # names a SharedBackup will give its backups: they must be valid and must not collide with a Backup
    derived: dict[tuple[str, str], str] = {}
    for (ns, name), shared in desired.shared_backups.items():
        yield from _check_selector("SharedBackup", ns, name, shared.origin, shared.selector, desired)
        for (cp_ns, cp_name), cp in desired.control_planes.items():
            if cp_ns == ns and selects(shared.selector, cp_name, cp.labels):
                backup_name = shared_backup_name(name, cp_name)
                derived[(ns, backup_name)] = f"SharedBackup {ns}/{name}"
                if len(backup_name) > MAX_NAME:
                    yield _problem("SharedBackup", ns, name, shared.origin, ("metadata", "name"),
                                   f"backup name {backup_name[:40]}... for control plane {cp_name} exceeds {MAX_NAME} characters")
                if (ns, backup_name) in desired.backups:
                    yield _problem("SharedBackup", ns, name, shared.origin, ("metadata", "name"),
                                   f"would create Backup {ns}/{backup_name}, which a Backup in Git already declares "
                                   f"({desired.backups[(ns, backup_name)].origin})")
    for (ns, name), schedule in desired.shared_backup_schedules.items():
        yield from _check_selector("SharedBackupSchedule", ns, name, schedule.origin, schedule.selector, desired)
        yield from _check_scheduled_names("SharedBackupSchedule", ns, name, schedule.origin,
                                          [cp for (cns, cp) in desired.control_planes if cns == ns])
    for (ns, name), schedule in desired.backup_schedules.items():
        yield from _check_scheduled_names("BackupSchedule", ns, name, schedule.origin, [schedule.control_plane])

    for (ns, name), cp in desired.control_planes.items():
        conn = cp.connection_secret
        if conn is not None and conn.namespace != ns:
            yield _problem("ControlPlane", ns, name, cp.origin, ("spec", "writeConnectionSecretToRef", "namespace"),
                           f"connection Secret must be in the control plane's namespace {ns!r}, not {conn.namespace!r} "
                           "(references never cross namespaces)")
        source = cp.restore_source
        if source is None or cp.restore_finished_at is not None or (ns, name) in finished_restores:
            continue
        if source.kind == "Backup":
            known = (ns, source.name) in derived or (ns, source.name) in recorded_backups
        else:
            known = False
        known = known or (source.kind, ns, source.name) in declared
        if not known:
            yield _problem("ControlPlane", ns, name, cp.origin, ("spec", "restore", "source", "name"),
                           f"restore source {source.kind} {ns}/{source.name} not found in namespace {ns!r} "
                           "(neither in Git nor recorded in the bucket index)")


def _check_selector(kind: str, ns: str, name: str, origin: Origin | None, selector: ControlPlaneSelector,
                    desired: DesiredState) -> Iterator[Problem]:
    path = ("spec", "controlPlaneSelector")
    if not selector.label_selectors and not selector.names:
        yield _problem(kind, ns, name, origin, path, "either names or a labelSelector must be specified")
        return
    for i, label_selector in enumerate(selector.label_selectors):
        for j, req in enumerate(label_selector.match_expressions):
            reason = requirement_problem(req.operator, req.values)
            if reason:
                yield _problem(kind, ns, name, origin, path + ("labelSelectors", i, "matchExpressions", j, "values"), reason)
    for i, cp_name in enumerate(selector.names):
        if (ns, cp_name) not in desired.control_planes:
            yield _problem(kind, ns, name, origin, path + ("names", i),
                           f"ControlPlane {ns}/{cp_name} not found in namespace {ns!r}", Severity.WARNING)
    if not any(selects(selector, cp, labels.labels) for (cns, cp), labels in desired.control_planes.items() if cns == ns):
        yield _problem(kind, ns, name, origin, path, "selects no control plane in this namespace", Severity.WARNING)


def _check_scheduled_names(kind: str, ns: str, name: str, origin: Origin | None, control_planes: list[str]) -> Iterator[Problem]:
    for cp_name in control_planes:
        if len(scheduled_backup_name(name, cp_name, EPOCH)) > MAX_NAME:
            yield _problem(kind, ns, name, origin, ("metadata", "name"),
                           f"scheduled backup names for control plane {cp_name} would exceed {MAX_NAME} characters")
            return
