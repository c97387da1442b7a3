"""Every bucket key is built here and nowhere else (as Velero's object_store_layout.go does).

    <prefix>/<namespace>/<controlplane>/index.json                        the index of one control plane
    <prefix>/<namespace>/<controlplane>/backups/<backup>/archive.tar.gz   the archive
    <prefix>/<namespace>/<controlplane>/backups/<backup>/record.json      the per-backup record (for rebuild)
    <prefix>/<namespace>/<controlplane>/restore/record.json               the restore into this control plane
    <prefix>/.ctpbackup/lease.json                                        the apply lease of this prefix (one per shard)

Namespaces and control-plane names are Kubernetes names (validated upstream), so they cannot contain
`/` and two namespaces can never share a key.
"""

from __future__ import annotations

from dataclasses import dataclass

INDEX_FILE = "index.json"
ARCHIVE_FILE = "archive.tar.gz"
RECORD_FILE = "record.json"


@dataclass(frozen=True)
class BucketLayout:
    prefix: str = ""

    def _join(self, *parts: str) -> str:
        for part in parts:
            if not part or "/" in part or part in (".", ".."):
                raise ValueError(f"invalid bucket key segment {part!r}")
        head = self.prefix.strip("/")
        return "/".join(([head] if head else []) + list(parts))

    @property
    def root(self) -> str:
        """The prefix every key of this layout starts with ('' or 'prefix/')."""
        head = self.prefix.strip("/")
        return f"{head}/" if head else ""

    def namespace_prefix(self, namespace: str) -> str:
        return self._join(namespace) + "/"

    def control_plane_prefix(self, namespace: str, control_plane: str) -> str:
        return self._join(namespace, control_plane) + "/"

    def index_key(self, namespace: str, control_plane: str) -> str:
        return self._join(namespace, control_plane, INDEX_FILE)

    def archive_key(self, namespace: str, control_plane: str, backup: str) -> str:
        return self._join(namespace, control_plane, "backups", backup, ARCHIVE_FILE)

    def backup_record_key(self, namespace: str, control_plane: str, backup: str) -> str:
        return self._join(namespace, control_plane, "backups", backup, RECORD_FILE)

    def restore_record_key(self, namespace: str, control_plane: str) -> str:
        return self._join(namespace, control_plane, "restore", RECORD_FILE)

    def lease_key(self, shard: tuple[int, int] = (0, 1)) -> str:
        """The apply lease of shard `(index, count)` of the run: `lease.json` for an unsharded run
        (count 1), `lease-shard-<index>-of-<count>.json` for each shard of a sharded one."""
        index, count = shard
        name = "lease" if count == 1 else f"lease-shard-{index}-of-{count}"
        return self._join(".ctpbackup", f"{name}.json")

    def parse(self, key: str) -> tuple[str, str, str] | None:
        """(namespace, control plane, rest) for a key under this layout's prefix, else None."""
        root = self.root
        if not key.startswith(root):
            return None
        parts = key[len(root):].split("/", 2)
        if len(parts) < 3 or parts[0].startswith("."):
            return None
        return parts[0], parts[1], parts[2]
