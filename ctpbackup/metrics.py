"""Prometheus metrics of one run, for a job that does not live long enough to be scraped: written to a
node-exporter textfile and/or pushed to a Pushgateway, when configured."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, push_to_gateway, write_to_textfile

from ctpbackup.execute import Outcome
from ctpbackup.planner import ActionType

log = logging.getLogger(__name__)

JOB = "ctpbackup"


def build_registry(outcomes: Iterable[Outcome], commit: str, finished_at: float) -> CollectorRegistry:
    registry = CollectorRegistry()
    taken = Counter("ctpbackup_backups_total", "Backups attempted in this run, by result.",
                    ["namespace", "controlplane", "result"], registry=registry)
    size = Counter("ctpbackup_backup_bytes_total", "Bytes of archives written in this run.",
                   ["namespace", "controlplane"], registry=registry)
    seconds = Gauge("ctpbackup_backup_duration_seconds", "Duration of the last backup of a control plane in this run.",
                    ["namespace", "controlplane"], registry=registry)
    last_ok = Gauge("ctpbackup_last_success_timestamp_seconds", "When a backup of the control plane last completed.",
                    ["namespace", "controlplane"], registry=registry)
    restores = Counter("ctpbackup_restores_total", "Restores attempted in this run, by result.",
                       ["namespace", "controlplane", "result"], registry=registry)
    deletions = Counter("ctpbackup_deletions_total", "Backups deleted or orphaned in this run.",
                        ["namespace", "policy", "result"], registry=registry)
    run = Gauge("ctpbackup_run_timestamp_seconds", "When this run finished.", ["commit"], registry=registry)
    run.labels(commit=commit[:12]).set(finished_at)
    for outcome in outcomes:
        action = outcome.action
        result = "ok" if outcome.ok else "waiting" if outcome.waiting else "failed"
        if action.type in (ActionType.BACKUP, ActionType.RETRY):
            taken.labels(action.namespace, action.control_plane, result).inc()
            if outcome.ok:
                size.labels(action.namespace, action.control_plane).inc(outcome.size)
                seconds.labels(action.namespace, action.control_plane).set(outcome.seconds)
                last_ok.labels(action.namespace, action.control_plane).set(finished_at)
        elif action.type is ActionType.RESTORE:
            restores.labels(action.namespace, action.control_plane, result).inc()
        elif action.type in (ActionType.DELETE, ActionType.ORPHAN):
            deletions.labels(action.namespace, action.type.value, result).inc()
    return registry


def export(outcomes: Iterable[Outcome], commit: str, finished_at: float, *, textfile: str | None = None,
           pushgateway: str | None = None) -> None:
    """Write and/or push; a metrics failure is logged, never fails the run."""
    if not textfile and not pushgateway:
        return
    registry = build_registry(list(outcomes), commit, finished_at)
    if textfile:
        try:
            write_to_textfile(textfile, registry)
        except OSError as err:
            log.warning("metrics textfile %s not written: %s", textfile, err)
    if pushgateway:
        try:
            push_to_gateway(pushgateway, job=JOB, registry=registry, timeout=10)
        except OSError as err:
            log.warning("metrics not pushed to %s: %s", pushgateway, type(err).__name__)
