"""The buckets of a run: one per SharedBackupConfig, opened once, read only within its namespace.

Several configs may point at the same bucket and prefix; each reads only its own namespace's part of
the index, so one group can never see or touch another's backups.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from ctpbackup.desired.model import SharedBackupConfig
from ctpbackup.engines.encryption import EncryptionError, Keyring, parse_key
from ctpbackup.gcpause import cycle_collection_paused
from ctpbackup.kube.secrets import SecretSource, SecretUnreadable
from ctpbackup.storage.base import Bucket, StorageError
from ctpbackup.storage.factory import StorageConfigError, open_bucket
from ctpbackup.store.backup_store import BackupStore
from ctpbackup.store.index import BucketIndex, RecordedState
from ctpbackup.store.layout import BucketLayout


@dataclass(frozen=True)
class BackupLocation:
    """Where the backups of one SharedBackupConfig go, opened: its bucket, the key layout under its
    prefix, its index and its keys (what Velero calls a BackupStorageLocation). Not to be confused
    with a restore's target, the control plane restored into."""

    config: SharedBackupConfig
    bucket: Bucket
    layout: BucketLayout
    index: BucketIndex
    #: the client-side encryption keys (extension), when the config names some and they were read;
    #: the first encrypts and authenticates records, all decrypt; never in a repr
    keyring: Keyring | None = field(default=None, repr=False)
    #: the one way to this location's archives (built from `bucket` and `layout`)
    store: BackupStore = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "store", BackupStore(self.bucket, self.layout))

    def fence_with(self, check: Callable[[], None] | None) -> None:
        """Make every index write and archive deletion of this location first call `check` (the
        lease's fence; None when the lease is released)."""
        self.index.fence = check
        self.store.fence = check

    @property
    def address(self) -> tuple[str, str, str]:
        """(provider, bucket, prefix): configs with the same address share one bucket prefix and one lease."""
        storage = self.config.object_storage
        return (storage.provider, storage.bucket, storage.prefix)

    @property
    def namespace(self) -> str:
        return self.config.namespace


class LocationError(Exception):
    """A bucket of the run cannot be opened or read; the run fails closed."""


def open_config_bucket(config: SharedBackupConfig, secrets: SecretSource) -> Bucket:
    """The bucket a SharedBackupConfig names (`spec.objectStorage`: provider, bucket, config), with
    the credentials its Secret holds (`credentials.source: Secret`, the key `secretRef.key` of
    Secret `secretRef.name` in the config's namespace) or the SDK's default chain
    (`InjectedIdentity`), as Spaces' SharedBackupConfig defines them. Every secret value parsed
    from the credentials is given to the Secret source's redactor. Nothing is sent to the provider
    here. Raises StorageConfigError (the Secret is missing or refused, or the provider refuses the settings);
    the message never names the config (the caller does) nor carries a secret."""
    storage = config.object_storage
    credentials = None
    if storage.credentials.source == "Secret":
        ref = storage.credentials.secret_ref
        assert ref is not None  # the schema requires it for source Secret
        try:
            credentials = secrets.get(config.namespace, ref.name, ref.key)
        except SecretUnreadable as err:
            raise StorageConfigError(f"credentials: {err}") from None
    return open_bucket(storage.provider, storage.bucket, storage.config, credentials, redact=secrets.redactor.add)


def open_locations(configs: Iterable[SharedBackupConfig], secrets: SecretSource, *,
                   encryption_keys: bool = False) -> dict[tuple[str, str], BackupLocation]:
    """Open each config's bucket and index; with `encryption_keys`, also read its archive keys into a
    Keyring (a missing or malformed key then fails the run before anything is written, naming the
    Secret and never its value)."""
    locations = {}
    for config in configs:
        try:
            bucket = open_config_bucket(config, secrets)
        except StorageError as err:
            raise LocationError(f"SharedBackupConfig {config.namespace}/{config.name}: {err}") from None
        layout = BucketLayout(config.object_storage.prefix)
        keyring = None
        refs = config.object_storage.encryption_key_refs
        if refs and encryption_keys:
            materials = []
            for ref in refs:
                try:
                    materials.append(parse_key(secrets.get(config.namespace, ref.name, ref.key)))
                except (SecretUnreadable, EncryptionError) as err:
                    raise LocationError(f"SharedBackupConfig {config.namespace}/{config.name}: encryption key "
                                      f"{ref.name}/{ref.key}: {err}") from None
            keyring = Keyring.of(materials)
        locations[(config.namespace, config.name)] = BackupLocation(config, bucket, layout,
                                                          BucketIndex(bucket, layout, config_name=config.name), keyring)
    return locations


def load_recorded(locations: Mapping[tuple[str, str], BackupLocation],
                  control_planes: Callable[[str, str], bool] | None = None) -> RecordedState:
    """Union of what every bucket records, each read only for its config's namespace. Records made
    through another config of the same namespace and location are read once. `control_planes`
    (namespace, control plane): read only the indexes of those it keeps (a shard's, from
    `plan.planner.shard_reads`), so that a shard's load falls with the number of shards."""
    seen: dict[tuple[str, str, str, str], BackupLocation] = {}
    for location in locations.values():
        seen.setdefault(location.address + (location.namespace,), location)

    def read(location: BackupLocation) -> RecordedState:
        try:
            return location.index.load(namespaces=[location.namespace], control_planes=control_planes)
        except StorageError as err:
            raise LocationError(f"cannot read the bucket index of SharedBackupConfig "
                              f"{location.config.namespace}/{location.config.name}: {err}") from None

    with cycle_collection_paused(), ThreadPoolExecutor(max_workers=min(8, max(1, len(seen)))) as pool:
        states = list(pool.map(read, seen.values()))
    return RecordedState.union(states)
