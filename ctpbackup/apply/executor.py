"""Carry out a plan: take backups, run restores, delete or orphan, recording each result in the index
as it completes. One failure never stops the others; the report says what failed and why.

Order of writes for a backup (nothing is ever recorded Completed without a whole archive):
InProgress record -> archive upload (committed only when whole, and only if no archive is there) ->
Completed record with size, sha256 and counts. A deletion marks the record Deleted before it removes
the archive.

Nothing is ever overwritten: before a backup is taken, an archive already at its key is adopted when
its per-backup record is Completed with that size and sha256; else, when the index records the backup
as interrupted, it is removed (under the lease) and taken again; when the index does not know the
backup at all, it is reported and left alone. Archives are reached only through the target's backup
store, at keys the layout builds from (namespace, control plane, backup), never from a record:
whoever can edit a record cannot point it at another archive.
Every index write passes the lease's fence; once the lease is lost the run stops (LeaseLost).
"""

from __future__ import annotations

import dataclasses
import logging
import tempfile
from collections import defaultdict
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from ctpbackup.apply import archives, verification
from ctpbackup.desired.model import DeletionPolicy, DesiredState
from ctpbackup.engines import backup as backup_engine
from ctpbackup.engines import restore as restore_engine
from ctpbackup.kube.api import reachable
from ctpbackup.kube.connect import ConnectionSecretUnusable, api_client_for
from ctpbackup.kube.secrets import SecretSource
from ctpbackup.plan.planner import DEFAULT_MAX_RESTORE_ATTEMPTS, Action, ActionType, Plan
from ctpbackup.rules.reasons import FailureReason
from ctpbackup.rules.sizes import human_size
from ctpbackup.rules.times import utcnow
from ctpbackup.storage.base import StorageError
from ctpbackup.store import record_mac
from ctpbackup.store.controlplane_index import IndexCorrupt
from ctpbackup.store.index import RecordExists
from ctpbackup.store.lease import LeaseLost
from ctpbackup.store.locations import BackupLocation
from ctpbackup.store.records import (
    BackupRecord,
    Condition,
    Phase,
    RestoreRecord,
    bounded,
    set_condition,
)

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]


@dataclass(frozen=True)
class Outcome:
    action: Action
    ok: bool
    message: str
    #: a restore that could not start yet (not a failure)
    waiting: bool = False
    size: int = 0  # archive bytes written (backups)
    seconds: float = 0.0

    def __post_init__(self) -> None:  # printed and exported: bounded whatever produced it
        if len(self.message) > 500:
            object.__setattr__(self, "message", bounded(self.message))


@dataclass(frozen=True)
class Verified:
    """The verification of a backup this run completed: the condition recorded, or why none was."""

    namespace: str
    name: str
    condition: Condition | None
    unavailable: str = ""

    @property
    def ok(self) -> bool:
        return self.condition is not None and self.condition.status == "True"


@dataclass
class ApplyReport:
    outcomes: list[Outcome] = field(default_factory=list)
    #: the backups this run completed, verified after every other action
    verifications: list[Verified] = field(default_factory=list)

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
    locations: Mapping[tuple[str, str], BackupLocation]
    secrets: SecretSource
    clock: Clock = utcnow
    concurrency: int = 4
    existing: str = "skip"  # restore: "skip" or "update" objects already in the target
    workdir: Path | None = None
    progress: bool = False
    #: a restore that has not Completed after this many attempts ends (finishedAt) as it stands
    max_restore_attempts: int = DEFAULT_MAX_RESTORE_ATTEMPTS
    #: verify every backup this run completes (after all other actions: it never holds one up)
    verify: bool = True
    _completed: list[tuple[BackupLocation, BackupRecord]] = field(default_factory=list, init=False, repr=False)
    #: seconds each of a restore's waits lasts (CRDs Established, providers Healthy, XRDs Established)
    restore_wait: float = 120.0

    def run(self, plan: Plan) -> ApplyReport:
        """Carry out `plan`: backups first (different control planes `concurrency` at a time, one
        control plane's in order), then restores, then deletions and orphans, one by one. Returns one
        Outcome per action; a failed action never stops the others. Raised: LeaseLost as soon as an
        index write finds the lease taken over (nothing more is written); bugs propagate."""
        report = ApplyReport()
        by_control_plane: dict[tuple[str, str], list[Action]] = defaultdict(list)
        for action in plan.actions:
            if action.type in (ActionType.BACKUP, ActionType.RETRY, ActionType.GIVE_UP):
                by_control_plane[(action.namespace, action.control_plane)].append(action)
        # different control planes concurrently; one control plane's backups one after another
        with ThreadPoolExecutor(max_workers=max(1, self.concurrency), thread_name_prefix="backup") as pool:
            for outcomes in pool.map(lambda group: [self._backup_or_give_up(a) for a in group],
                                     by_control_plane.values()):
                report.outcomes.extend(outcomes)
        for action in plan.actions:
            if action.type is ActionType.RESTORE:
                report.outcomes.append(self._unless_the_index_fails(self.restore, action))
        for action in plan.actions:
            if action.type in (ActionType.DELETE, ActionType.ORPHAN):
                report.outcomes.append(self._unless_the_index_fails(self.delete, action))
        if self.verify and self._completed:
            with ThreadPoolExecutor(max_workers=max(1, self.concurrency), thread_name_prefix="verify") as pool:
                report.verifications.extend(pool.map(lambda done: self.verify_backup(*done), self._completed))
        return report

    def verify_backup(self, location: BackupLocation, record: BackupRecord) -> Verified:
        """Verify a backup this run completed and record the outcome (its `Verified` condition); a
        bucket that cannot be read leaves the record as it is."""
        if location.index.fence is not None:
            location.index.fence()
        try:
            updated, _ = verification.verify_and_record(location, record, self.clock, workdir=self.workdir)
        except verification.VerificationUnavailable as err:
            log.warning("backup %s/%s not verified: %s", record.namespace, record.name, err)
            return Verified(record.namespace, record.name, None, str(err))
        return Verified(record.namespace, record.name, updated.condition(verification.VERIFIED))

    def _unless_the_index_fails(self, do: Callable[[Action], Outcome], action: Action) -> Outcome:
        """A restore or deletion whose index record cannot be written (the bucket fails, or the
        control-plane index is damaged) fails alone; the other actions go on, and the next run tries again."""
        try:
            return do(action)
        except StorageError as err:
            log.warning("%s %s/%s: the index could not be updated: %s", action.type.value, action.namespace,
                        action.name, err)
            return Outcome(action, False, f"{FailureReason.INDEX_WRITE_FAILED}: {err}")

    # -- backups -----------------------------------------------------------------------------------

    def _backup_or_give_up(self, action: Action) -> Outcome:
        return self.give_up(action) if action.type is ActionType.GIVE_UP else self.backup(action)

    def give_up(self, action: Action) -> Outcome:
        """A backup interrupted at every try up to the retry limit: Failed, reason Interrupted (so
        that status, wait and SharedBackup phases see an end)."""
        request = action.request
        assert request is not None and action.record is not None
        location = self.locations[(action.namespace, request.options.config)]
        now = self.clock()
        tries = action.record.retries + 1
        message = f"interrupted at each of {tries} tries (the run was killed or lost its lease); retry limit reached"

        def fail(old: BackupRecord | None) -> BackupRecord:
            base = old or action.record
            return dataclasses.replace(base, phase=Phase.FAILED, conditions=set_condition(
                base.conditions, Condition("Completed", "False", FailureReason.INTERRUPTED, message, now)))

        try:
            location.index.update_backup(request.namespace, request.control_plane, request.name, fail)
        except StorageError as err:
            return Outcome(action, False, f"{FailureReason.INDEX_WRITE_FAILED}: {err}")
        log.warning("backup %s/%s failed: %s: %s", request.namespace, request.name,
                    FailureReason.INTERRUPTED, message)
        return Outcome(action, True, f"recorded Failed: {FailureReason.INTERRUPTED}: {message}")

    def _adopt_or_clear(self, action: Action, location: BackupLocation) -> Outcome | None:
        """Before a backup is taken: what is already at its keys. None to go on and take it; else
        the outcome (adopted, or reported and left alone). Raises StorageError when the bucket
        cannot tell."""
        request = action.request
        assert request is not None
        ns, cp, name = request.namespace, request.control_plane, request.name
        store = location.store
        attrs = store.archive_attributes(ns, cp, name)
        beside, readable = store.backup_record_beside(ns, cp, name)
        if attrs is None:
            if action.record is None and not readable:
                return Outcome(action, False, f"RecordUnreadable: the record of Backup {name} in the bucket is "
                                              "unreadable and the index does not list the backup; nothing was taken "
                                              "(run `reconcile.py index rebuild`)")
            if action.record is None and beside is not None and beside.phase is Phase.COMPLETED:
                return Outcome(action, False, f"ArchiveMissing: Backup {name} is recorded Completed beside its "
                                              "archive's key but the archive is gone; nothing was taken again")
            return None
        if beside is not None and beside.phase is Phase.COMPLETED and beside.size == attrs.size and \
                beside.sha256 and store.archive_sha256(ns, cp, name) == beside.sha256:
            location.index.update_backup(ns, cp, name, lambda _old: beside, replace_unindexed=True)
            log.warning("backup %s/%s: adopted the archive already in the bucket (it matches its record)", ns, name)
            return Outcome(action, True, f"adopted: the archive in the bucket matches its Completed record "
                                         f"({beside.size} bytes, sha256 {beside.sha256[:12]}…)", size=0)
        if action.record is None or not readable:
            why = "the index does not list" if action.record is None else "the index records as interrupted"
            return Outcome(action, False, f"ArchiveExists: an archive of Backup {name} is in the bucket that {why} "
                                          "and no readable Completed record matches; it is kept and not taken "
                                          "again (run `reconcile.py index rebuild`, or remove it)")
        # the index records this backup as interrupted: the archive is a killed run's, never recorded
        store.delete_archive(ns, cp, name)
        log.warning("backup %s/%s: removed the archive of an interrupted try (no Completed record matches it); "
                    "taking the backup again", ns, name)
        return None

    def backup(self, action: Action) -> Outcome:
        """Take (or retake) one backup: an archive already at its key is adopted or cleared first
        (`_adopt_or_clear`); then the record goes InProgress, the archive is uploaded create-if-absent,
        and the record goes Completed with size, sha256 and counts, or Failed with a FailureReason
        (retries counted against --max-retries by the planner). API calls are retried inside the
        engine (KubeAPI: 6 attempts with backoff on 429/5xx/dropped connections); the upload is not.
        Index writes are retried as `BucketIndex.update_backup` says; when they fail, the Outcome
        says IndexWriteFailed. Raised: LeaseLost only."""
        request = action.request
        assert request is not None
        location = self.locations[(action.namespace, request.options.config)]
        retries = action.record.retries + 1 if action.type is ActionType.RETRY and action.record else 0
        archive_key = location.store.archive_key(request.namespace, request.control_plane, request.name)
        try:
            settled = self._adopt_or_clear(action, location)
        except RecordExists as err:
            return Outcome(action, False, f"RecordExists: {err}")
        except StorageError as err:
            return Outcome(action, False, f"{FailureReason.INDEX_WRITE_FAILED}: {err}")
        if settled is not None:
            return settled
        started = self.clock()

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
                retry_request=request.retry_request,
            )

        index = location.index
        try:
            index.update_backup(request.namespace, request.control_plane, request.name, begin, replace_unindexed=True)
        except StorageError as err:  # nothing recorded, nothing taken: the next run tries again
            return Outcome(action, False, f"{FailureReason.INDEX_WRITE_FAILED}: {err}")
        control_plane = self.desired.control_planes[(request.namespace, request.control_plane)]
        try:
            api = api_client_for(control_plane, self.secrets)
            with api:
                result = backup_engine.take_backup(
                    api, location.store,
                    backup_engine.ArchiveInfo(namespace=request.namespace, control_plane=request.control_plane,
                                              backup=request.name, git_commit=self.desired.commit,
                                              excluded_resources=request.options.excluded_resources),
                    progress=self.progress, encryption_key=location.keyring,
                )
        except (ConnectionSecretUnusable, backup_engine.BackupFailed) as err:
            return self._backup_failed(action, index, err.reason, err.message, retries)
        except Exception as err:  # noqa: BLE001 - one backup's bug must not stop the others
            log.exception("backup %s/%s failed unexpectedly", request.namespace, request.name)
            return self._backup_failed(action, index, FailureReason.INTERNAL_ERROR, f"{type(err).__name__}: {err}", retries)

        finished = self.clock()

        def complete(old: BackupRecord | None) -> BackupRecord:
            assert old is not None
            return record_mac.sign(dataclasses.replace(
                old, phase=Phase.COMPLETED, completed_at=finished, size=result.size, sha256=result.sha256,
                counts=dict(result.counts), archive_format_version=result.format_version, encrypted=result.encrypted,
                warnings=result.warnings, server_version=result.server_version,
                conditions=set_condition(old.conditions, Condition(
                    "Completed", "True", "BackupCompleted",
                    f"{sum(result.counts.values())} objects, {human_size(result.size)}"
                    + (f", {len(result.warnings)} warning(s)" if result.warnings else ""), finished)),
            ), location.keyring)

        try:
            completed = index.update_backup(request.namespace, request.control_plane, request.name, complete)
        except StorageError as err:  # the archive is whole but not recorded: the next run retakes it
            return Outcome(action, False, f"{FailureReason.INDEX_WRITE_FAILED}: {err}")
        self._completed.append((location, completed))
        log.info("backup %s/%s completed", request.namespace, request.name, extra={"fields": {
            "event": "backup", "namespace": request.namespace, "backup": request.name,
            "controlPlane": request.control_plane, "phase": "Completed", "objects": sum(result.counts.values()),
            "bytes": result.size, "sha256": result.sha256, "seconds": round((finished - started).total_seconds(), 3)}})
        return Outcome(action, True, f"{sum(result.counts.values())} objects, {human_size(result.size)}", size=result.size,
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
        message = bounded(message)
        log.warning("backup %s/%s failed: %s: %s", request.namespace, request.name, reason, message, extra={"fields": {
            "event": "backup", "namespace": request.namespace, "backup": request.name,
            "controlPlane": request.control_plane, "phase": "Failed", "reason": reason}})
        return Outcome(action, False, f"{reason}: {message}")

    # -- restores ----------------------------------------------------------------------------------

    def restore(self, action: Action) -> Outcome:
        """Restore one ControlPlane from the backup the plan chose: wait (Pending, no attempt used)
        while its connection Secret is missing or its API does not answer (`kube.api.reachable`:
        2 attempts); refuse a record or archive a restore must not trust (record MAC, size, sha256,
        metadata) before anything is written to the target; then restore tier by tier. The restore
        record ends Completed, PartiallyFailed (retried by the next run, up to
        `max_restore_attempts`) or Failed with a FailureReason. Raised: LeaseLost, and StorageError
        when the restore record cannot be written (`run` turns it into IndexWriteFailed)."""
        ns, name = action.namespace, action.name
        source = action.record
        assert source is not None
        location = self.locations[(ns, source.config)]
        control_plane = self.desired.control_planes[(ns, name)]
        now = self.clock()

        def pending(reason: str, message: str, phase: Phase = Phase.PENDING) -> Outcome:
            def change(old: RestoreRecord | None) -> RestoreRecord:
                base = old or RestoreRecord(ns, name, action.restore_source[0], action.restore_source[1], Phase.PENDING)
                return dataclasses.replace(base, phase=phase, git_commit=self.desired.commit,
                                           conditions=set_condition(base.conditions, Condition(
                                               "Restored", "False", reason, message, now)))
            location.index.update_restore(ns, name, change)
            if phase is Phase.FAILED:
                return Outcome(action, False, f"{reason}: {message}")
            return Outcome(action, False, f"waiting: {message}", waiting=True)

        try:
            api = api_client_for(control_plane, self.secrets)
        except ConnectionSecretUnusable as err:  # a refused kubeconfig is there to stay: a failure, not a wait
            return pending(err.reason, err.message, Phase.FAILED if err.reason is FailureReason.INSECURE_KUBECONFIG else Phase.PENDING)
        with api:
            if not reachable(api):
                return pending(FailureReason.CONTROL_PLANE_UNREACHABLE, f"the API of control plane {ns}/{name} does not answer")
            started = self.clock()
            location.index.update_restore(ns, name, lambda old: dataclasses.replace(
                old or RestoreRecord(ns, name, action.restore_source[0], action.restore_source[1], Phase.PENDING),
                phase=Phase.IN_PROGRESS, backup_name=source.name, git_commit=self.desired.commit,
                attempts=(old.attempts if old else 0) + 1, started_at=started,
                conditions=set_condition(old.conditions if old else (), Condition(
                    "Restored", "False", "InProgress", f"restoring from Backup {source.name}", started))))
            try:
                with tempfile.TemporaryDirectory(prefix="ctpbackup-restore-", dir=self.workdir) as tmp:
                    # the record's MAC, then the archive at the layout's key (never the editable record's)
                    # members and names are checked by the restore's own single pass (backup=source)
                    archive = archives.fetch_trusted(location, source, Path(tmp), check_members=False)
                    if location.index.fence is not None:
                        location.index.fence()  # a run that lost its lease writes nothing to the target either
                    result = restore_engine.run_restore(api, archive, existing=self.existing, progress=self.progress,
                                                         wait_seconds=self.restore_wait, backup=source,
                                                         label=f"restore {ns}/{name} ← {source.name}")
            except (restore_engine.RestoreFailed, archives.ArchiveRefused) as err:
                return self._restore_failed(action, location, err.reason, err.message)
            except LeaseLost:
                raise
            except Exception as err:  # noqa: BLE001
                log.exception("restore of %s/%s failed unexpectedly", ns, name)
                return self._restore_failed(action, location, FailureReason.INTERNAL_ERROR, f"{type(err).__name__}: {err}")
        finished = self.clock()
        if not result.completed:
            return self._restore_partially_failed(action, location, result, started, finished)
        location.index.update_restore(ns, name, lambda old: dataclasses.replace(
            old, phase=Phase.COMPLETED, finished_at=finished, counts=result.counts, warnings=result.warnings,
            conditions=set_condition(old.conditions, Condition(
                "Restored", "True", "RestoreCompleted", result.summary(), finished))))
        log.info("restore %s/%s completed", ns, name, extra={"fields": {
            "event": "restore", "namespace": ns, "controlPlane": name, "backup": source.name, "phase": "Completed",
            "restored": result.total("restored"), "skipped": result.total("skipped"), "failed": result.total("failed"),
            "warnings": len(result.warnings), "seconds": round((finished - started).total_seconds(), 3)}})
        return Outcome(action, True, result.summary(), seconds=(finished - started).total_seconds())

    def _restore_partially_failed(self, action: Action, location: BackupLocation, result: restore_engine.RestoreResult,
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
                    "Restored", "False", FailureReason.PARTIALLY_FAILED, message, finished)))

        location.index.update_restore(ns, name, change)
        log.warning("restore %s/%s partially failed: %s", ns, name, message, extra={"fields": {
            "event": "restore", "namespace": ns, "controlPlane": name, "phase": "PartiallyFailed",
            "restored": result.total("restored"), "skipped": result.total("skipped"), "failed": result.total("failed"),
            "stillPaused": result.still_paused, "seconds": round((finished - started).total_seconds(), 3)}})
        return Outcome(action, False, f"PartiallyFailed: {message}", seconds=(finished - started).total_seconds())

    def _restore_failed(self, action: Action, location: BackupLocation, reason: str, message: str) -> Outcome:
        now = self.clock()
        log.warning("restore %s/%s failed: %s: %s", action.namespace, action.name, reason, message)
        try:
            location.index.update_restore(action.namespace, action.name, lambda old: dataclasses.replace(
                old, phase=Phase.FAILED, finished_at=now if old.attempts >= self.max_restore_attempts else None,
                conditions=set_condition(old.conditions, Condition("Restored", "False", reason, message, now))))
        except StorageError as err:  # the cause stays in the outcome; the record still says InProgress: retried
            return Outcome(action, False, f"{reason}: {message} (and the index could not be updated: {err})")
        return Outcome(action, False, f"{reason}: {message}")

    # -- deletions ---------------------------------------------------------------------------------

    def delete(self, action: Action) -> Outcome:
        """Delete or orphan one backup: the record is marked Deleted first (with the policy), then,
        for Delete, its archive is removed (at the key the layout gives, never the record's), fenced
        by the lease. The removal is tried 3 times (waiting 0.5 s, then 1 s); if it still fails the
        Deleted record stays and the Outcome reports the leftover archive. Raised: LeaseLost, and
        StorageError when the record cannot be written (`run` turns it into IndexWriteFailed)."""
        record = action.record
        assert record is not None
        location = self.locations.get((record.namespace, record.config))
        if location is None:
            return Outcome(action, False, f"SharedBackupConfig {record.namespace}/{record.config} is not in Git: "
                                          "cannot reach its bucket")
        now = self.clock()
        policy = DeletionPolicy.DELETE if action.type is ActionType.DELETE else DeletionPolicy.ORPHAN

        def deleted(old: BackupRecord | None) -> BackupRecord:
            if old is None:  # the record was read from another control plane's control-plane index
                raise IndexCorrupt(f"backup {record.namespace}/{record.name} is not in the index shard of control "
                                   f"plane {record.control_plane}; run `reconcile.py index rebuild`")
            if old != record:  # the plan read another copy (a name in two indexes): it decides nothing here
                raise IndexCorrupt(f"backup {record.namespace}/{record.name}: the index shard of control plane "
                                   f"{record.control_plane} records it otherwise than the plan read it; "
                                   "run `reconcile.py index rebuild`")
            return dataclasses.replace(old, phase=Phase.DELETED, deleted_with=policy, deleted_at=now,
                                       conditions=set_condition(old.conditions, Condition(
                                           "Deleted", "True", f"DeletionPolicy{policy}", action.reason, now)))

        location.index.update_backup(record.namespace, record.control_plane, record.name, deleted)
        if action.type is ActionType.DELETE:
            # this backup's own archive, at the layout's key: a record's archiveKey is never trusted
            try:
                location.store.delete_archive(record.namespace, record.control_plane, record.name, attempts=3)
            except Exception as err:  # noqa: BLE001 - the record already says Deleted; report the leftover
                return Outcome(action, False, f"marked Deleted but the archive could not be removed: {err}")
        return Outcome(action, True, "archive removed" if action.type is ActionType.DELETE else "archive kept")

