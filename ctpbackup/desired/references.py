"""Checks across objects: every reference resolves, in the same namespace, to an object of the right kind.

References never cross namespaces (a namespace is a Spaces group: the isolation boundary).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from typing import NamedTuple

from ctpbackup.desired.model import ControlPlaneSelector, DesiredState, Origin
from ctpbackup.desired.problems import Problem, Severity
from ctpbackup.desired.schemas import field_name
from ctpbackup.rules.naming import MAX_NAME, scheduled_backup_name, scheduled_name_prefix, shared_backup_name
from ctpbackup.rules.schedules import EPOCH
from ctpbackup.rules.selectors import requirement_problem, selects


def check_references(desired: DesiredState, recorded_backups: frozenset[tuple[str, str]] = frozenset(),
                     finished_restores: frozenset[tuple[str, str]] = frozenset(),
                     declared: frozenset[tuple[str, str, str]] = frozenset()) -> list[Problem]:
    """Problems with references and generated names: what Git alone shows. `declared` (kind,
    namespace, name) are objects found in Git that failed their own checks: a reference to one is not
    reported as dangling too. Whether a restore's source exists needs the bucket index, so the plan
    checks it (`recorded_backups` and `finished_restores` are no longer needed here, and ignored)."""
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
    for (ns, name), shared in desired.shared_backups.items():
        yield from _check_selector("SharedBackup", ns, name, shared.origin, shared.selector, desired)
        for (cp_ns, cp_name), cp in desired.control_planes.items():
            if cp_ns == ns and selects(shared.selector, cp_name, cp.labels):
                backup_name = shared_backup_name(name, cp_name)
                if len(backup_name) > MAX_NAME:
                    yield _problem("SharedBackup", ns, name, shared.origin, ("metadata", "name"),
                                   f"backup name {backup_name[:40]}... for control plane {cp_name} exceeds {MAX_NAME} characters")
    for (ns, name), schedule in desired.shared_backup_schedules.items():
        yield from _check_selector("SharedBackupSchedule", ns, name, schedule.origin, schedule.selector, desired)
        yield from _check_scheduled_names("SharedBackupSchedule", ns, name, schedule.origin,
                                          [cp for (cns, cp) in desired.control_planes if cns == ns])
    for (ns, name), schedule in desired.backup_schedules.items():
        yield from _check_scheduled_names("BackupSchedule", ns, name, schedule.origin, [schedule.control_plane])
    yield from _check_name_collisions(desired)

    for (ns, name), cp in desired.control_planes.items():
        conn = cp.connection_secret
        if conn is not None and conn.namespace != ns:
            yield _problem("ControlPlane", ns, name, cp.origin, ("spec", "writeConnectionSecretToRef", "namespace"),
                           f"connection Secret must be in the control plane's namespace {ns!r}, not {conn.namespace!r} "
                           "(references never cross namespaces)")


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


class _Producer(NamedTuple):
    """One object in Git that gives a backup its name, and for which control plane. A named tuple:
    one is made per control plane a schedule selects, and a frozen dataclass's __init__ made
    building them a fifth of this check at 10,000 control planes."""

    kind: str
    namespace: str
    name: str
    control_plane: str
    origin: Origin | None

    def __str__(self) -> str:
        where = f" ({self.origin.path}:{self.origin.line_of('metadata', 'name')})" if self.origin else ""
        if self.kind == "Backup":
            return f"Backup {self.namespace}/{self.name}{where}"
        return f"{self.kind} {self.namespace}/{self.name} for control plane {self.control_plane}{where}"


def _check_name_collisions(desired: DesiredState) -> Iterator[Problem]:
    """Two objects that would give a backup the same name: the index keeps one record per name, so
    one would overwrite, or be mistaken for, the other (and a restore would read the wrong control
    plane's data). Names are `<sharedbackup>-<controlplane>` and `<schedule>-<controlplane>-<UTC
    yyyymmddhhmmss>`, so `a` + `b-c` and `a-b` + `c` collide; a schedule collides with another whose
    `<schedule>-<controlplane>-` prefix is the same, and with a Backup or SharedBackup name that is
    that prefix followed by 14 digits. Reported on the later source, naming both."""
    exact: dict[tuple[str, str], list[_Producer]] = defaultdict(list)
    for (ns, name), backup in desired.backups.items():
        exact[(ns, name)].append(_Producer("Backup", ns, name, backup.control_plane, backup.origin))
    for (ns, name), shared in desired.shared_backups.items():
        for (cp_ns, cp_name), cp in desired.control_planes.items():
            if cp_ns == ns and selects(shared.selector, cp_name, cp.labels):
                exact[(ns, shared_backup_name(name, cp_name))].append(
                    _Producer("SharedBackup", ns, name, cp_name, shared.origin))
    prefixes: dict[tuple[str, str], list[_Producer]] = defaultdict(list)
    for (ns, name), schedule in desired.backup_schedules.items():
        prefixes[(ns, scheduled_name_prefix(name, schedule.control_plane))].append(
            _Producer("BackupSchedule", ns, name, schedule.control_plane, schedule.origin))
    for (ns, name), shared_schedule in desired.shared_backup_schedules.items():
        for (cp_ns, cp_name), cp in desired.control_planes.items():
            if cp_ns == ns and selects(shared_schedule.selector, cp_name, cp.labels):
                prefixes[(ns, scheduled_name_prefix(name, cp_name))].append(
                    _Producer("SharedBackupSchedule", ns, name, cp_name, shared_schedule.origin))
    for (ns, backup_name), producers in sorted(exact.items()):
        for first, later in zip(producers, producers[1:], strict=False):
            yield _collision(later, first, f"Backup {ns}/{backup_name}")
    for (ns, prefix), producers in sorted(prefixes.items()):
        for first, later in zip(producers, producers[1:], strict=False):
            yield _collision(later, first, f"the scheduled backups {ns}/{prefix}<UTC yyyymmddhhmmss>")
    for (ns, backup_name), producers in sorted(exact.items()):
        stem, slot = backup_name[:-len(_SLOT_SAMPLE)], backup_name[-len(_SLOT_SAMPLE):]
        if slot.isdigit() and len(backup_name) > len(_SLOT_SAMPLE):
            for scheduled in prefixes.get((ns, stem), ()):
                yield _collision(producers[0], scheduled, f"Backup {ns}/{backup_name}")


_SLOT_SAMPLE = "yyyymmddhhmmss"


def _collision(later: _Producer, first: _Producer, what: str) -> Problem:
    return _problem(later.kind, later.namespace, later.name, later.origin, ("metadata", "name"),
                    f"generated name collision: {what} would come from both {first} and {later}; rename one of them")


def _check_scheduled_names(kind: str, ns: str, name: str, origin: Origin | None, control_planes: list[str]) -> Iterator[Problem]:
    # a slot's suffix has the same length for every slot: formatting one per control plane took a
    # third of this check at 10,000 control planes
    slot_length = len(scheduled_backup_name(name, "", EPOCH)) - len(scheduled_name_prefix(name, ""))
    for cp_name in control_planes:
        if len(scheduled_name_prefix(name, cp_name)) + slot_length > MAX_NAME:
            yield _problem(kind, ns, name, origin, ("metadata", "name"),
                           f"scheduled backup names for control plane {cp_name} would exceed {MAX_NAME} characters")
            return
