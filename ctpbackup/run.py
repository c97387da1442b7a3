"""One run of the job: Git -> desired state -> buckets -> recorded state -> plan -> (apply).

`apply` plans twice: once to show what it intends, and again under the bucket lease from a fresh
read of the index, so that what it carries out is computed from state no other run is changing.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import os
import socket
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta

from ctpbackup import logs
from ctpbackup.desired.gitsource import ManifestFile, Snapshot, read_repository
from ctpbackup.desired.manifests import LoadResult, load_desired_state
from ctpbackup.desired.model import DesiredState
from ctpbackup.desired.problems import InvalidManifests, UserError
from ctpbackup.kube.secrets import DirectorySecretSource, KubernetesSecretSource, SecretSource
from ctpbackup.plan.planner import ActionType, Plan, PlanOptions, plan, shard_of, shard_reads
from ctpbackup.storage.base import StorageError
from ctpbackup.store.index import RecordedState
from ctpbackup.store.lease import Lease, LeaseHeld
from ctpbackup.store.locations import BackupLocation, LocationError, load_recorded, open_locations

log = logging.getLogger(__name__)

LEASE_DURATION = timedelta(minutes=10)


@dataclass(frozen=True)
class SourceOptions:
    repo: str = "."
    ref: str | None = None
    path: str = ""
    worktree: bool = False
    secrets_dir: str | None = None
    host_kubeconfig: str | None = None


@dataclass
class Prepared:
    snapshot: Snapshot
    desired: DesiredState
    locations: dict[tuple[str, str], BackupLocation]
    recorded: RecordedState
    secrets: SecretSource
    load: LoadResult
    #: whose indexes were read (and are read again by `refresh`): None for all, else a shard's (shard_reads)
    control_planes: Callable[[str, str], bool] | None = None


def secret_source(options: SourceOptions) -> SecretSource:
    """--secrets-dir for local runs and CI; the host cluster's API in a pod (or --host-kubeconfig)."""
    if options.secrets_dir:
        source: SecretSource = DirectorySecretSource(options.secrets_dir)
    elif options.host_kubeconfig:
        source = host_cluster(options.host_kubeconfig)
    elif os.environ.get("KUBERNETES_SERVICE_HOST"):
        source = KubernetesSecretSource.in_cluster()
    else:
        raise UserError("no Secret source: pass --secrets-dir DIR (DIR/<namespace>/<name>/<key>) or "
                        "--host-kubeconfig FILE, or run in a pod")
    redactor = getattr(source, "redactor", None)
    if redactor is not None:
        logs.add_scrubber(redactor.scrub)
    return source


def host_cluster(path: str) -> KubernetesSecretSource:
    """The Secret source of --host-kubeconfig, checked once: a file that is missing, is not a usable
    kubeconfig, or whose cluster does not answer `/version` is one UserError line (no traceback, no
    file content). A cluster that answers at all, even 401/403, is reachable."""
    import urllib3
    import yaml
    from kubernetes.client import ApiClient, VersionApi
    from kubernetes.client.exceptions import ApiException
    from kubernetes.config import ConfigException

    if not os.path.isfile(path):
        raise UserError(f"--host-kubeconfig {path}: no such file")
    try:
        source = KubernetesSecretSource.from_kubeconfig(path)
    except (ConfigException, yaml.YAMLError, OSError, ValueError, TypeError, KeyError, AttributeError) as err:
        reason = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise UserError(f"--host-kubeconfig {path}: not a usable kubeconfig: {reason}") from None
    probe = copy.copy(source.api.api_client.configuration)
    probe.retries = False  # one try, no urllib3 retry warnings: a refused connection is the answer
    host = probe.host
    try:
        VersionApi(ApiClient(probe)).get_code(_request_timeout=10)
    except ApiException:
        pass  # it answered
    except (urllib3.exceptions.HTTPError, OSError) as err:
        reason = getattr(err, "reason", None) or err
        raise UserError(f"--host-kubeconfig {path}: the cluster at {host} does not answer: {reason}") from None
    return source


def read_source(options: SourceOptions) -> Snapshot:
    """The manifests of the run, read from Git once (`options.repo` at `options.ref`)."""
    return read_repository(options.repo, options.ref, options.path, options.worktree)


def prepare(options: SourceOptions, *, encryption_keys: bool = False, snapshot: Snapshot | None = None,
            shard: tuple[int, int] = (0, 1)) -> Prepared:
    """Read Git (unless `snapshot` is that read already) and parse it, once; then the bucket index.
    Fails closed on any invalid manifest or unreadable bucket: the buckets of the configs that did
    build are opened even when other manifests have errors (a broken config is then reported with
    the rest). Restore sources are resolved against the index later, by the plan. `encryption_keys`:
    also read the archives' encryption keys (apply needs them; plans and status do not, so a
    pull-request workflow never holds them). With a `shard` (index, count) of more than one, only
    the indexes that shard's plan needs are read (`plan.planner.shard_reads`)."""
    if snapshot is None:
        snapshot = read_source(options)
    result = load_desired_state(snapshot.files, snapshot.commit)
    secrets = secret_source(options)
    locations = _locations(result, secrets, encryption_keys)
    reads = shard_reads(result.require(), shard) if shard[1] > 1 and not result.errors else None
    with _fail_closed(result):
        recorded = load_recorded(locations, reads)
    return Prepared(snapshot, result.require(), locations, recorded, secrets, result, reads)


def buckets(options: SourceOptions) -> dict[tuple[str, str], BackupLocation]:
    """The buckets of the SharedBackupConfigs in Git, their index not read: what `index rebuild`
    needs, so that it can repair an index no plan can read."""
    snapshot = read_source(options)
    return _locations(load_desired_state(snapshot.files, snapshot.commit), secret_source(options), False)


def _locations(first: LoadResult, secrets: SecretSource, encryption_keys: bool) -> dict[tuple[str, str], BackupLocation]:
    partial = first.partial
    if partial is None or (first.errors and not partial.configs):
        raise InvalidManifests(first.problems)
    with _fail_closed(first):
        return open_locations(partial.configs.values(), secrets, encryption_keys=encryption_keys)


@contextmanager
def _fail_closed(first: LoadResult) -> Iterator[None]:
    """A bucket that cannot be opened or read stops the run: as the manifests' problems when there
    are some (a broken config is the likelier cause), else as the bucket's error."""
    try:
        yield
    except LocationError as err:
        if first.errors:
            raise InvalidManifests(first.problems) from None
        raise UserError(str(err)) from None


@dataclass(frozen=True)
class BucketCheck:
    """Whether a SharedBackupConfig's bucket could be opened and its index read, and when: its
    phase as Velero shows a BackupStorageLocation's (Available / Unavailable, lastValidationTime)."""

    namespace: str
    name: str
    available: bool
    message: str
    checked_at: datetime


@dataclass
class Survey:
    """What `status`, `describe` and `wait` read: the desired state and every bucket that could be
    read, each bucket's check kept instead of failing the whole command."""

    snapshot: Snapshot
    desired: DesiredState
    recorded: RecordedState
    checks: dict[tuple[str, str], BucketCheck]
    secrets: SecretSource
    locations: dict[tuple[str, str], BackupLocation]


def survey(options: SourceOptions, now: datetime, config_file: str | None = None) -> Survey:
    """Read Git (or, with `config_file`, only the SharedBackupConfigs of that local YAML file: for
    the day Git is down) and every config's bucket; a bucket that cannot be read is Unavailable with
    the reason, the others are still shown."""
    if config_file:
        try:
            content = open(config_file, "rb").read()  # noqa: SIM115 - one small file
        except OSError as err:
            raise UserError(f"--config {config_file}: {err.strerror}") from None
        snapshot = Snapshot(config_file, "", "", "", True, (ManifestFile(os.path.basename(config_file) or "config.yaml",
                                                                         content),))
    else:
        snapshot = read_source(options)
    result = load_desired_state(snapshot.files, snapshot.commit)
    desired = result.require()
    if config_file and not desired.configs:
        raise UserError(f"--config {config_file}: no SharedBackupConfig in it")
    return read_buckets(snapshot, desired, secret_source(options), now)


def read_buckets(snapshot: Snapshot, desired: DesiredState, secrets: SecretSource, now: datetime) -> Survey:
    """Open and read every config's bucket (again, for `wait`: Git is not read twice)."""
    locations: dict[tuple[str, str], BackupLocation] = {}
    states: list[RecordedState] = []
    checks: dict[tuple[str, str], BucketCheck] = {}
    for key, config in sorted(desired.configs.items()):
        try:
            opened = open_locations([config], secrets)
            states.append(load_recorded(opened))
        except LocationError as err:
            checks[key] = BucketCheck(*key, False, str(err), now)
            continue
        locations.update(opened)
        checks[key] = BucketCheck(*key, True, "the bucket and its index could be read", now)
    recorded = RecordedState.union(states) if states else RecordedState()
    return Survey(snapshot, desired, recorded, checks, secrets, locations)


def make_plan(prepared: Prepared, now: datetime, options: PlanOptions) -> Plan:
    """The plan, knowing which connection Secrets are missing where the Secret source holds any:
    the control planes a first plan would back up or restore into are checked (one `exists` each),
    and planned again with the missing ones. A source that holds none of them (the pull-request
    action's, with bucket credentials only) cannot tell; the plan says they were not checked."""
    first = plan(prepared.desired, prepared.recorded, now, options)
    acting = sorted({(a.namespace, a.control_plane) for a in first.actions
                     if a.type in (ActionType.BACKUP, ActionType.RETRY, ActionType.RESTORE)})
    if not acting:
        return first
    missing: dict[tuple[str, str], str] = {}
    for key in acting:
        ref = prepared.desired.control_planes[key].connection_secret
        if ref is not None and not prepared.secrets.exists(ref.namespace, ref.name):
            missing[key] = f"connection Secret {ref.namespace}/{ref.name} not found"
    if not missing:
        return first
    if len(missing) == len(acting) and not any(
            cp.connection_secret is not None and prepared.secrets.exists(cp.connection_secret.namespace,
                                                                         cp.connection_secret.name)
            for key, cp in sorted(prepared.desired.control_planes.items()) if key not in missing):
        return dataclasses.replace(first, connection_secrets_checked=False)
    return plan(prepared.desired, prepared.recorded, now, options, missing)


@contextmanager
def leases(locations: dict[tuple[str, str], BackupLocation], wait: float, clock: Callable[[], datetime],
           shard: tuple[int, int] = (0, 1), duration: timedelta = LEASE_DURATION) -> Iterator[None]:
    """Hold the apply lease of every bucket location of the run (in a fixed order: no deadlock).
    Shards touch disjoint control planes, so each shard has a lease of its own. While held, every
    index write of every location passes the lease's fence (`Lease.check`).

    Under the lease, multipart uploads left by a crashed run are swept: only those of this shard's
    control planes (another shard's run may be uploading right now) and only those older than a
    lease period (no live run of this shard has one that old without renewing past it)."""
    holder = f"{socket.gethostname()}/{os.getpid()}"
    seen: dict[tuple, BackupLocation] = {}
    for location in locations.values():
        seen.setdefault(location.address, location)
    index, count = shard
    with ExitStack() as stack:
        for address in sorted(seen):
            location = seen[address]
            lease = Lease(location.bucket, location.layout, holder=holder, duration=duration, clock=clock, shard=shard)
            try:
                lease.acquire(wait=wait)
            except LeaseHeld as err:
                raise UserError(f"another apply is running on {location.bucket.description}: {err}") from None
            except StorageError as err:
                raise UserError(f"cannot take the lease on {location.bucket.description}: {err}") from None
            stack.callback(lease.release)
            lease.start_renewing()
            for same in locations.values():
                if same.address == address:
                    same.fence_with(lease.check)
                    stack.callback(same.fence_with, None)
            swept = location.store.sweep_uploads(
                duration.total_seconds(),
                None if count == 1 else lambda namespace, name: shard_of(namespace, name, count) == index)
            if swept:
                log.warning("removed %d incomplete upload(s) left by an interrupted run", swept)
        yield


def refresh(prepared: Prepared) -> Prepared:
    """The same desired state with a fresh read of the index (taken under the lease)."""
    prepared.recorded = load_recorded(prepared.locations, prepared.control_planes)
    return prepared
