"""Carry out a plan: take backups, run restores, delete or orphan, recording each result in the index
as it completes. One failure never stops the others; the report says what failed and why.

Order of writes for a backup (nothing is ever recorded Completed without a whole archive):
InProgress record -> archive upload (committed only when whole) -> Completed record with size,
sha256 and counts. A deletion marks the record Deleted before it removes the archive.
"""

from __future__ import annotations

import dataclasses
import logging
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from ctpbackup import backup as backup_engine
from ctpbackup import restore as restore_engine
from ctpbackup.connect import ControlPlaneUnreachable, api_client_for
from ctpbackup.model import DesiredState
from ctpbackup.planner import DEFAULT_MAX_RESTORE_ATTEMPTS, Action, ActionType, Plan
from ctpbackup.records import BackupRecord, Condition, Phase, RestoreRecord, set_condition
from ctpbackup.secrets import SecretSource
from ctpbackup.shard import IndexCorrupt
from ctpbackup.storage.base import StorageError
from ctpbackup.targets import Target

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Outcome:
    action: Action
    ok: bool
    message: str
    #: a restore that could not start yet (not a failure)
    waiting: bool = False
    size: int = 0  # archive bytes written (backups)
    seconds: float = 0.0


@dataclass
class ApplyReport:
    outcomes: list[Outcome] = field(default_factory=list)

    @property
    def failed(self) -> list[Outcome]:
        return [o for o in self.outcomes if not o.ok and not o.waiting]

    def summary(self) -> dict[str, int]:
        done: dict[str, int] = defaultdict(int)
        for o in self.outcomes:
            done[f"{o.action.type.value}:{'waiting' if o.waiting else 'ok' if o.ok else 'failed'}"] += 1
        return dict(done)


@dataclass
class Executor:
    desired: DesiredState
    targets: Mapping[tuple[str, str], Target]
    secrets: SecretSource
    clock: Clock = utcnow
    concurrency: int = 4
    existing: str = "skip"  # restore: "skip" or "update" objects already in the target
    workdir: Path | None = None
    progress: bool = False
    #: a restore that has not Completed after this many attempts ends (finishedAt) as it stands
    max_restore_attempts: int = DEFAULT_MAX_RESTORE_ATTEMPTS

    def run(self, plan: Plan) -> ApplyReport:
        report = ApplyReport()
        by_control_plane: dict[tuple[str, str], list[Action]] = defaultdict(list)
        for action in plan.actions:
            if action.type in (ActionType.BACKUP, ActionType.RETRY):
                by_control_plane[(action.namespace, action.control_plane)].append(action)
        # different control planes concurrently; one control plane's backups one after another
        with ThreadPoolExecutor(max_workers=max(1, self.concurrency), thread_name_prefix="backup") as pool:
            for outcomes in pool.map(lambda group: [self.backup(a) for a in group], by_control_plane.values()):
                report.outcomes.extend(outcomes)
        for action in plan.actions:
            if action.type is ActionType.RESTORE:
                report.outcomes.append(self._unless_the_index_fails(self.restore, action))
        for action in plan.actions:
            if action.type in (ActionType.DELETE, ActionType.ORPHAN):
                report.outcomes.append(self._unless_the_index_fails(self.delete, action))
        return report

    def _unless_the_index_fails(self, do: Callable[[Action], Outcome], action: Action) -> Outcome:
        """A restore or deletion whose index record cannot be written (the bucket fails, or the
        shard is damaged) fails alone; the other actions go on, and the next run tries again."""
        try:
            return do(action)
        except StorageError as err:
            log.warning("%s %s/%s: the index could not be updated: %s", action.type.value, action.namespace,
                        action.name, err)
            return Outcome(action, False, f"IndexWriteFailed: {err}")

    # -- backups -----------------------------------------------------------------------------------

    def backup(self, action: Action) -> Outcome:
        request = action.request
        assert request is not None
        target = self.targets[(action.namespace, request.options.config)]
        retries = action.record.retries + 1 if action.type is ActionType.RETRY and action.record else 0
        started = self.clock()
        archive_key = target.layout.archive_key(request.namespace, request.control_plane, request.name)

        def begin(old: BackupRecord | None) -> BackupRecord:
            ttl = request.options.ttl
            created = old.created_at if old and old.created_at else started
            return BackupRecord(
                namespace=request.namespace, name=request.name, control_plane=request.control_plane,
                config=request.options.config, phase=Phase.IN_PROGRESS, owner_kind=request.owner_kind,
                owner_name=request.owner_name, slot=request.slot, git_commit=self.desired.commit,
                conditions=set_condition(old.conditions if old else (), Condition(
                    "Completed", "False", "InProgress", "backup in progress", started)),
                retries=retries, created_at=created, started_at=started, archive_key=archive_key,
                deletion_policy=request.options.deletion_policy, ttl=request.options.ttl_text,
                expires_at=created + ttl if ttl else None, excluded_resources=request.options.excluded_resources,
                use_owner_references=request.use_owner_references, selector=request.selector,
            )

        index = target.index
        try:
            index.update_backup(request.namespace, request.control_plane, request.name, begin)
        except StorageError as err:  # nothing recorded, nothing taken: the next run tries again
            return Outcome(action, False, f"IndexWriteFailed: {err}")
        control_plane = self.desired.control_planes[(request.namespace, request.control_plane)]
        try:
            api = api_client_for(control_plane, self.secrets)
            with api:
                result = backup_engine.take_backup(
                    api, target.bucket, archive_key,
                    backup_engine.ArchiveInfo(namespace=request.namespace, control_plane=request.control_plane,
                                              backup=request.name, git_commit=self.desired.commit,
                                              excluded_resources=request.options.excluded_resources),
                    progress=self.progress, encryption_key=target.encryption_key,
                )
        except (ControlPlaneUnreachable, backup_engine.BackupFailed) as err:
            return self._backup_failed(action, index, err.reason, err.message, retries)
        except Exception as err:  # noqa: BLE001 - one backup's bug must not stop the others
            log.exception("backup %s/%s failed unexpectedly", request.namespace, request.name)
            return self._backup_failed(action, index, "InternalError", f"{type(err).__name__}: {err}", retries)

        finished = self.clock()

        def complete(old: BackupRecord | None) -> BackupRecord:
            assert old is not None
            return dataclasses.replace(
                old, phase=Phase.COMPLETED, completed_at=finished, size=result.size, sha256=result.sha256,
                counts=dict(result.counts), archive_format_version=result.format_version, encrypted=result.encrypted,
                warnings=result.warnings, conditions=set_condition(old.conditions, Condition(
                    "Completed", "True", "BackupCompleted",
                    f"{sum(result.counts.values())} objects, {result.size} bytes"
                    + (f", {len(result.warnings)} warning(s)" if result.warnings else ""), finished)),
            )

        try:
            index.update_backup(request.namespace, request.control_plane, request.name, complete)
        except StorageError as err:  # the archive is whole but not recorded: the next run retakes it
            return Outcome(action, False, f"IndexWriteFailed: {err}")
        log.info("backup %s/%s completed", request.namespace, request.name, extra={"fields": {
            "event": "backup", "namespace": request.namespace, "backup": request.name,
            "controlPlane": request.control_plane, "phase": "Completed", "objects": sum(result.counts.values()),
            "bytes": result.size, "sha256": result.sha256, "seconds": round((finished - started).total_seconds(), 3)}})
        return Outcome(action, True, f"{sum(result.counts.values())} objects, {result.size} bytes", size=result.size,
                       seconds=(finished - started).total_seconds())

    def _backup_failed(self, action: Action, index, reason: str, message: str, retries: int) -> Outcome:
        request = action.request
        now = self.clock()

        def fail(old: BackupRecord | None) -> BackupRecord:
            assert old is not None
            return dataclasses.replace(old, phase=Phase.FAILED, retries=retries, conditions=set_condition(
                old.conditions, Condition("Completed", "False", reason, message, now)))

        try:
            index.update_backup(request.namespace, request.control_plane, request.name, fail)
        except StorageError as err:
            log.warning("could not record the failure of %s/%s: %s", request.namespace, request.name, err)
        log.warning("backup %s/%s failed: %s: %s", request.namespace, request.name, reason, message, extra={"fields": {
            "event": "backup", "namespace": request.namespace, "backup": request.name,
            "controlPlane": request.control_plane, "phase": "Failed", "reason": reason}})
        return Outcome(action, False, f"{reason}: {message}")

    # -- restores ----------------------------------------------------------------------------------

    def restore(self, action: Action) -> Outcome:
        ns, name = action.namespace, action.name
        source = action.record
        assert source is not None
        target = self.targets[(ns, source.config)]
        control_plane = self.desired.control_planes[(ns, name)]
        now = self.clock()

        def pending(reason: str, message: str) -> Outcome:
            def change(old: RestoreRecord | None) -> RestoreRecord:
                base = old or RestoreRecord(ns, name, action.restore_source[0], action.restore_source[1], Phase.PENDING)
                return dataclasses.replace(base, phase=Phase.PENDING, git_commit=self.desired.commit,
                                           conditions=set_condition(base.conditions, Condition(
                                               "Restored", "False", reason, message, now)))
            target.index.update_restore(ns, name, change)
            return Outcome(action, False, f"waiting: {message}", waiting=True)

        try:
            api = api_client_for(control_plane, self.secrets)
        except ControlPlaneUnreachable as err:
            return pending(err.reason, err.message)
        with api:
            if not restore_engine.answers(api):
                return pending("ControlPlaneUnreachable", f"the API of control plane {ns}/{name} does not answer")
            started = self.clock()
            target.index.update_restore(ns, name, lambda old: dataclasses.replace(
                old or RestoreRecord(ns, name, action.restore_source[0], action.restore_source[1], Phase.PENDING),
                phase=Phase.IN_PROGRESS, backup_name=source.name, git_commit=self.desired.commit,
                attempts=(old.attempts if old else 0) + 1, started_at=started,
                conditions=set_condition(old.conditions if old else (), Condition(
                    "Restored", "False", "InProgress", f"restoring from Backup {source.name}", started))))
            try:
                with tempfile.TemporaryDirectory(prefix="ctpbackup-restore-", dir=self.workdir) as tmp:
                    archive = restore_engine.fetch_verified(target.bucket, source, Path(tmp), target.encryption_key)
                    result = restore_engine.run_restore(api, archive, existing=self.existing, progress=self.progress)
            except restore_engine.RestoreFailed as err:
                return self._restore_failed(action, target, err.reason, err.message)
            except Exception as err:  # noqa: BLE001
                log.exception("restore of %s/%s failed unexpectedly", ns, name)
                return self._restore_failed(action, target, "InternalError", f"{type(err).__name__}: {err}")
        finished = self.clock()
        if not result.completed:
            return self._restore_partially_failed(action, target, result, started, finished)
        target.index.update_restore(ns, name, lambda old: dataclasses.replace(
            old, phase=Phase.COMPLETED, finished_at=finished, counts=result.counts, warnings=result.warnings,
            conditions=set_condition(old.conditions, Condition(
                "Restored", "True", "RestoreCompleted", result.summary(), finished))))
        log.info("restore %s/%s completed", ns, name, extra={"fields": {
            "event": "restore", "namespace": ns, "controlPlane": name, "backup": source.name, "phase": "Completed",
            "restored": result.total("restored"), "skipped": result.total("skipped"), "failed": result.total("failed"),
            "warnings": len(result.warnings), "seconds": round((finished - started).total_seconds(), 3)}})
        return Outcome(action, True, result.summary(), seconds=(finished - started).total_seconds())

    def _restore_partially_failed(self, action: Action, target: Target, result: restore_engine.RestoreResult,
                                  started: datetime, finished: datetime) -> Outcome:
        """Some objects failed, or something it paused is still paused: PartiallyFailed (as Velero
        reports it), exit 1. The next run tries again (existing objects skipped, what it paused
        unpaused) until Completed; after the last attempt it ends here, with finishedAt."""
        ns, name = action.namespace, action.name
        message = f"{result.summary()}; first: {result.first_reasons()}"

        def change(old: RestoreRecord | None) -> RestoreRecord:
            assert old is not None
            last = old.attempts >= self.max_restore_attempts
            return dataclasses.replace(
                old, phase=Phase.PARTIALLY_FAILED, finished_at=finished if last else None, counts=result.counts,
                warnings=result.warnings, conditions=set_condition(old.conditions, Condition(
                    "Restored", "False", "PartiallyFailed", message, finished)))

        target.index.update_restore(ns, name, change)
        log.warning("restore %s/%s partially failed: %s", ns, name, message, extra={"fields": {
            "event": "restore", "namespace": ns, "controlPlane": name, "phase": "PartiallyFailed",
            "restored": result.total("restored"), "skipped": result.total("skipped"), "failed": result.total("failed"),
            "stillPaused": result.still_paused, "seconds": round((finished - started).total_seconds(), 3)}})
        return Outcome(action, False, f"PartiallyFailed: {message}", seconds=(finished - started).total_seconds())

    def _restore_failed(self, action: Action, target: Target, reason: str, message: str) -> Outcome:
        now = self.clock()
        log.warning("restore %s/%s failed: %s: %s", action.namespace, action.name, reason, message)
        try:
            target.index.update_restore(action.namespace, action.name, lambda old: dataclasses.replace(
                old, phase=Phase.FAILED, finished_at=now if old.attempts >= self.max_restore_attempts else None,
                conditions=set_condition(old.conditions, Condition("Restored", "False", reason, message, now))))
        except StorageError as err:  # the cause stays in the outcome; the record still says InProgress: retried
            return Outcome(action, False, f"{reason}: {message} (and the index could not be updated: {err})")
        return Outcome(action, False, f"{reason}: {message}")

    # -- deletions ---------------------------------------------------------------------------------

    def delete(self, action: Action) -> Outcome:
        record = action.record
        assert record is not None
        target = self.targets.get((record.namespace, record.config))
        if target is None:
            return Outcome(action, False, f"SharedBackupConfig {record.namespace}/{record.config} is not in Git: "
                                          "cannot reach its bucket")
        now = self.clock()
        policy = "Delete" if action.type is ActionType.DELETE else "Orphan"

        def deleted(old: BackupRecord | None) -> BackupRecord:
            if old is None:  # the record was read from another control plane's shard
                raise IndexCorrupt(f"backup {record.namespace}/{record.name} is not in the index shard of control "
                                   f"plane {record.control_plane}; run `reconcile.py index rebuild`")
            return dataclasses.replace(old, phase=Phase.DELETED, deleted_with=policy, deleted_at=now,
                                       conditions=set_condition(old.conditions, Condition(
                                           "Deleted", "True", f"DeletionPolicy{policy}", action.reason, now)))

        target.index.update_backup(record.namespace, record.control_plane, record.name, deleted)
        if action.type is ActionType.DELETE and record.archive_key:
            for attempt in range(3):
                try:
                    target.bucket.delete(record.archive_key)
                    break
                except Exception as err:  # noqa: BLE001 - the record already says Deleted; report the leftover
                    if attempt == 2:
                        return Outcome(action, False, f"marked Deleted but the archive could not be removed: {err}")
                    time.sleep(0.5 * (attempt + 1))
        return Outcome(action, True, "archive removed" if action.type is ActionType.DELETE else "archive kept")
