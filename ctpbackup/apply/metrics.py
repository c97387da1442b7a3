"""Prometheus metrics of every run, for a job that does not live long enough to be scraped: written
to a node-exporter textfile and/or pushed to a Pushgateway (one group per shard: job + shard).

Two families, named per Prometheus' conventions (base units, `_seconds`/`_bytes`/`_info`; gauges for
values of one run, since a counter that starts from zero in every pod is no counter):
- state, derived in each run from the index headers planning reads, like kube-state-metrics derives
  from the API: last successful backup per control plane, the last backup's phase, backups per phase,
  the restore's phase, and the schedule interval the alert compares against. Only the control planes
  of this run's shard, so that the shards' groups never overlap.
- run: start time, duration, result, actions by type and outcome, and build/commit as an `_info`.

Metrics never fail a run: an error writing or pushing them is logged.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from prometheus_client import (
    CollectorRegistry,
    Gauge,
    Info,
    disable_created_metrics,
    push_to_gateway,
    write_to_textfile,
)

from ctpbackup import __version__
from ctpbackup.apply.executor import Outcome
from ctpbackup.desired.model import DesiredState
from ctpbackup.plan.planner import ActionType, shard_of
from ctpbackup.rules.schedules import parse_schedule
from ctpbackup.rules.selectors import selects
from ctpbackup.store.controlplane_index import ControlPlaneIndexView
from ctpbackup.store.index import RecordedState
from ctpbackup.store.records import BackupRecord, Phase

log = logging.getLogger(__name__)

JOB = "ctpbackup"
#: the phases of a backup or restore, each a series of a state set (1 for the current one, 0 otherwise)
PHASES = tuple(p.value for p in Phase)
RESULTS = ("success", "failure", "error")
OUTCOMES = ("ok", "waiting", "failed")
VERIFIED_STATES = ("True", "False", "Unknown")

disable_created_metrics()  # no `_created` series beside each gauge (prometheus_client emits them by default)


@dataclass(frozen=True)
class Run:
    """What one run was: when it started and ended (Unix seconds), how it ended (`success`: every
    action done; `failure`: some action failed; `error`: no plan, or the plan has errors), the Git
    commit it applied and its shard (index, count)."""

    started_at: float
    finished_at: float
    result: str
    commit: str
    shard: tuple[int, int] = (0, 1)


def grouping_key(shard: tuple[int, int]) -> dict[str, str]:
    """The Pushgateway group of a shard: one per pod of the Indexed Job, so none overwrites another."""
    index, count = shard
    return {"shard": f"{index}-of-{count}"}


def _state_set(gauge: Gauge, labels: tuple[str, ...], states: Iterable[str], current: str) -> None:
    for state in dict.fromkeys([*states, current]):
        gauge.labels(*labels, state).set(1 if state == current else 0)


def _phase_of_line(line: bytes) -> str:
    """A backup's phase off its index line without decoding it: shard lines are compact JSON with
    sorted keys, `phase` always written (ctpbackup.store.controlplane_index)."""
    start = line.find(b'"phase":"')
    end = line.find(b'"', start + 9) if start >= 0 else -1
    return line[start + 9:end].decode() if end >= 0 else ""


def _phases(view: ControlPlaneIndexView) -> list[str]:
    if view.records is not None:  # index versions 1 to 3: decoded already
        return [record.phase.value for record in view.records]
    return [_phase_of_line(line) for line in view.record_lines()]


def _when(record: BackupRecord) -> datetime | None:
    return record.completed_at or record.started_at or record.created_at or record.slot


def schedule_intervals(desired: DesiredState, now: datetime) -> dict[tuple[str, str], float]:
    """Seconds between a control plane's current slot and the next one, of its most frequent
    schedule that is not suspended (BackupSchedule or a SharedBackupSchedule selecting it)."""
    out: dict[tuple[str, str], float] = {}

    def note(key: tuple[str, str], text: str) -> None:
        schedule = parse_schedule(text)
        slot = schedule.latest_slot(now)
        seconds = (schedule.next_slot(slot) - slot).total_seconds()
        out[key] = min(out.get(key, seconds), seconds)

    for s in desired.backup_schedules.values():
        if not s.suspend and (s.namespace, s.control_plane) in desired.control_planes:
            note((s.namespace, s.control_plane), s.schedule)
    for s in desired.shared_backup_schedules.values():
        if s.suspend:
            continue
        for (ns, name), cp in desired.control_planes.items():
            if ns == s.namespace and selects(s.selector, name, cp.labels):
                note((ns, name), s.schedule)
    return out


def build_registry(desired: DesiredState, recorded: RecordedState, outcomes: Iterable[Outcome], run: Run,
                   now: datetime) -> CollectorRegistry:
    """Every metric of one run, state and run families, in a fresh registry."""
    registry = CollectorRegistry()
    cp = ["namespace", "controlplane"]
    last_ok = Gauge("ctpbackup_backup_last_success_timestamp_seconds",
                    "When the newest Completed backup of the control plane completed (Unix time).", cp,
                    registry=registry)
    last_size = Gauge("ctpbackup_backup_last_success_size_bytes",
                      "Archive size of the newest Completed backup of the control plane.", cp, registry=registry)
    last_seconds = Gauge("ctpbackup_backup_last_success_duration_seconds",
                         "How long the newest Completed backup of the control plane took.", cp, registry=registry)
    last_phase = Gauge("ctpbackup_backup_last_phase",
                       "Phase of the control plane's newest backup that is not Deleted (1 for the current phase).",
                       [*cp, "phase"], registry=registry)
    backups = Gauge("ctpbackup_backups", "Backups of the control plane recorded in the index, by phase.",
                    [*cp, "phase"], registry=registry)
    last_verified = Gauge("ctpbackup_backup_last_success_verified",
                          "Offline verification of the newest Completed backup of the control plane (1 for its "
                          "Verified status: True, False, or Unknown while not verified).", [*cp, "status"],
                          registry=registry)
    restore = Gauge("ctpbackup_restore_phase", "Phase of the restore into the control plane (1 for the current phase).",
                    [*cp, "phase"], registry=registry)
    interval = Gauge("ctpbackup_backup_schedule_interval_seconds",
                     "Interval of the control plane's most frequent active backup schedule.", cp, registry=registry)

    index, count = run.shard

    def mine(namespace: str, control_plane: str) -> bool:
        return shard_of(namespace, control_plane, count) == index

    for view in recorded.backups.index_views():
        _shard_state(view, mine, last_ok, last_size, last_seconds, last_phase, backups, last_verified)
    for (namespace, control_plane), record in sorted(recorded.restores.items()):
        if mine(namespace, control_plane):
            _state_set(restore, (namespace, control_plane), PHASES, record.phase.value)
    for (namespace, control_plane), seconds in sorted(schedule_intervals(desired, now).items()):
        if mine(namespace, control_plane):
            interval.labels(namespace, control_plane).set(seconds)

    Gauge("ctpbackup_run_start_timestamp_seconds", "When this run started (Unix time).",
          registry=registry).set(run.started_at)
    Gauge("ctpbackup_run_duration_seconds", "How long this run took.", registry=registry).set(
        max(0.0, run.finished_at - run.started_at))
    result = Gauge("ctpbackup_run_result", "How this run ended (1 for its result).", ["result"], registry=registry)
    _state_set(result, (), RESULTS, run.result)
    actions = Gauge("ctpbackup_run_actions", "Actions carried out in this run, by type and outcome.",
                    ["type", "outcome"], registry=registry)
    done: dict[tuple[str, str], int] = defaultdict(int)
    for outcome in outcomes:
        done[(outcome.action.type.value, "ok" if outcome.ok else "waiting" if outcome.waiting else "failed")] += 1
    for type_ in (t.value for t in ActionType if t is not ActionType.ERROR):
        for state in OUTCOMES:
            actions.labels(type_, state).set(done.get((type_, state), 0))
    Info("ctpbackup_build", "The reconciler's version and the Git commit of the desired state this run applied.",
         registry=registry).info({"version": __version__, "commit": run.commit})
    return registry


def _shard_state(view: ControlPlaneIndexView, mine, last_ok: Gauge, last_size: Gauge, last_seconds: Gauge, last_phase: Gauge,
                 backups: Gauge, last_verified: Gauge | None = None) -> None:
    """One control plane's backup state from its shard: the phase of each line, counted without
    decoding; only the newest Completed backups (the header's summary names them) and the backups not
    Completed nor Deleted (few: a failed or running one) are decoded."""
    namespace = view.namespace or (view.records[0].namespace if view.records else "")
    control_plane = view.control_plane or (view.records[0].control_plane if view.records else "")
    if not control_plane or not mine(namespace, control_plane):
        return
    phases = _phases(view)
    counts: dict[str, int] = defaultdict(int)
    for phase in phases:
        counts[phase or "Unknown"] += 1
    for phase in dict.fromkeys([*PHASES, *counts]):
        backups.labels(namespace, control_plane, phase).set(counts.get(phase, 0))
    positions = {name: i for i, name in enumerate(view.names)}
    candidates = {positions[key[1]] for _, key in view.summary.newest_completed.values() if key[1] in positions}
    candidates |= {positions[key[1]] for key in view.summary.standalone if key[1] in positions}
    candidates |= {i for i, phase in enumerate(phases) if phase not in (Phase.COMPLETED.value, Phase.DELETED.value)}
    records = []
    for i in sorted(candidates):
        try:
            records.append(view.record(i))
        except Exception as err:  # a damaged line: planning reports it; metrics skip it
            log.warning("metrics: record %d of %s unreadable: %s", i, view.key, type(err).__name__)
    records = [r for r in records if r.phase is not Phase.DELETED]
    completed = [r for r in records if r.phase is Phase.COMPLETED and r.completed_at is not None]
    if completed:
        newest = max(completed, key=lambda r: (r.completed_at, r.name))
        last_ok.labels(namespace, control_plane).set(newest.completed_at.timestamp())
        last_size.labels(namespace, control_plane).set(newest.size)
        if last_verified is not None:
            verified = newest.condition("Verified")
            _state_set(last_verified, (namespace, control_plane), VERIFIED_STATES,
                       verified.status if verified is not None else "Unknown")
        if newest.started_at is not None:
            last_seconds.labels(namespace, control_plane).set(
                max(0.0, (newest.completed_at - newest.started_at).total_seconds()))
    timed = [r for r in records if _when(r) is not None]
    if timed:
        latest = max(timed, key=lambda r: (_when(r), r.name))
        _state_set(last_phase, (namespace, control_plane), [p for p in PHASES if p != Phase.DELETED.value],
                   latest.phase.value)


def export(registry: CollectorRegistry, shard: tuple[int, int], *, textfile: str | None = None,
           pushgateway: str | None = None) -> None:
    """Write the textfile (atomically: prometheus_client writes a temporary file and renames it) and/or
    replace this shard's group on the Pushgateway (HTTP PUT /metrics/job/ctpbackup/shard/<i>-of-<n>,
    10 s timeout, not retried: the next run pushes again). A failure is logged, never raised."""
    if textfile:
        try:
            write_to_textfile(textfile, registry)
        except OSError as err:
            log.warning("metrics textfile %s not written: %s", textfile, err)
    if pushgateway:
        try:
            push_to_gateway(pushgateway, job=JOB, registry=registry, grouping_key=grouping_key(shard), timeout=10)
        except OSError as err:
            log.warning("metrics not pushed to %s: %s", pushgateway, type(err).__name__)
