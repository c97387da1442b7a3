"""The bucket, fuzzed: 200 random mutations of shards, records, leases and archives (a fixed seed,
so every run checks the same ones), each round followed by plan, apply, status and index rebuild
through the real command line (in this process, against a real folder bucket and emulated control
planes). Zero tracebacks, zero overwritten or deleted good archives, zero writes to a restore
target before its archive is verified (issue 17, "What it must show")."""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import io
import json
import logging
import random
from pathlib import Path

from ctpbackup import cli
from ctpbackup.storage.base import ObjectNotFound
from ctpbackup.storage.filesystem import FilesystemBucket
from ctpbackup.store.controlplane_index import ControlPlaneIndex, IndexCorrupt
from ctpbackup.store.layout import BucketLayout
from ctpbackup.store.records import Phase
from kubeemu import EmulatorServer
from kubeemu.fixtures import seed_crossplane

SEED = 20261130
MUTATIONS = 200
LAYOUT = BucketLayout("fuzz")
CONTROL_PLANES = {"ctp1": ("b1", "b2"), "ctp2": ("b3", "b4")}
BACKUPS = [b for names in CONTROL_PLANES.values() for b in names]
#: reasons a restore fails for before it may write anything to its target
VERIFICATION = {"ArchiveMissing", "ArchiveRejected", "ArchiveMismatch", "IntegrityCheckFailed", "ArchiveUnreadable",
                "DecryptionFailed", "EncryptionKeyMissing"}

#: what the job says when it meets damage, each of which the fuzz must reach at least once
SIGNS = ("adopted:", "ArchiveExists:", "RecordUnreadable", "took over the lease", "IntegrityCheckFailed",
         "unreadable index shard", "+ retry", "+ backup", "no index shard", "restore default/restored")

CONFIG = """apiVersion: spaces.upbound.io/v1alpha1
kind: SharedBackupConfig
metadata: {{name: default, namespace: default}}
spec:
  objectStorage:
    provider: Filesystem
    bucket: {bucket}
    prefix: fuzz
    credentials: {{source: InjectedIdentity}}
"""
CONTROL_PLANE = """---
apiVersion: spaces.upbound.io/v1beta1
kind: ControlPlane
metadata: {{name: {name}, namespace: default}}
spec:
  writeConnectionSecretToRef: {{name: kubeconfig-{name}, namespace: default}}
"""
BACKUP = """---
apiVersion: spaces.upbound.io/v1alpha1
kind: Backup
metadata: {{name: {name}, namespace: default}}
spec:
  configRef: {{kind: SharedBackupConfig, name: default}}
  controlPlane: {cp}
"""
RESTORED = CONTROL_PLANE + """  restore:
    source: {{apiGroup: spaces.upbound.io, kind: Backup, name: {source}}}
"""


class _Tracebacks(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info:
            self.records.append(record)


class Fuzz:
    def __init__(self, root: Path, repo, rnd: random.Random):
        self.bucket = FilesystemBucket(root / "bucket")
        self.repo = repo
        self.secrets = root / "secrets"
        self.rnd = rnd
        self.servers: dict[str, EmulatorServer] = {}
        self.history: dict[str, list[bytes]] = {}
        self.restores: list[str] = []

    def connect(self, name: str, server: EmulatorServer) -> None:
        folder = self.secrets / "default" / f"kubeconfig-{name}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "kubeconfig").write_text(server.kubeconfig_text(name))
        self.servers[name] = server

    def manifests(self) -> None:
        text = CONFIG.format(bucket=self.bucket.root)
        for cp, names in CONTROL_PLANES.items():
            text += CONTROL_PLANE.format(name=cp) + "".join(BACKUP.format(name=n, cp=cp) for n in names)
        for name, source in self.restores:
            text += RESTORED.format(name=name, source=source)
        self.repo.write("all.yaml", text)
        self.repo.commit("fuzz round")

    def run(self, *args: str) -> tuple[int, str, str]:
        out, err = io.StringIO(), io.StringIO()
        argv = [*args, "--repo", str(self.repo.path), "--log-format", "json"]
        if args[0] != "validate":
            argv += ["--secrets-dir", str(self.secrets)]
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = cli.main(argv)  # an exception escaping here is a traceback: the test fails on it
        return code, out.getvalue(), err.getvalue()

    # -- what is in the bucket ----------------------------------------------------------------------

    def read(self, key: str) -> bytes | None:
        try:
            return self.bucket.read(key)[0]
        except ObjectNotFound:
            return None

    def good_archives(self) -> dict[str, str]:
        """Archives whose per-backup record is Completed with their sha256: what must never go."""
        good = {}
        for cp, names in CONTROL_PLANES.items():
            for name in names:
                data = self.read(LAYOUT.archive_key("default", cp, name))
                try:
                    record = json.loads(self.read(LAYOUT.backup_record_key("default", cp, name)) or b"null")
                except ValueError:
                    continue
                if data is not None and isinstance(record, dict) and record.get("phase") == "Completed" and \
                        record.get("sha256") == hashlib.sha256(data).hexdigest():
                    good[LAYOUT.archive_key("default", cp, name)] = record["sha256"]
        return good

    # -- mutations: each damages one object (a shard damages its control plane's backups) -------------

    def remember(self) -> None:
        """Keep every version of every record and shard seen, for the replay mutation."""
        for item in self.bucket.list(LAYOUT.root):
            if item.key.endswith(".json") and not item.key.endswith("lease.json"):
                data = self.read(item.key)
                if data is not None and data not in self.history.setdefault(item.key, []):
                    self.history[item.key].append(data)

    def replay(self, keys: list[str]) -> str:
        """An older (or the last good) version of a record or shard put back: a rollback, as a
        restored bucket snapshot or an operator's repair leaves it."""
        known = [k for k in keys if self.history.get(k)]
        if not known:
            return "replay: nothing to replay"
        key = self.rnd.choice(known)
        self.bucket.put(key, self.rnd.choice(self.history[key]))
        return f"replay {key}"

    def mutate(self, subject: str) -> str:
        rnd = self.rnd
        if subject != "lease" and rnd.random() < 0.3:
            cp, name = subject.split("/")
            return self.replay([LAYOUT.index_key("default", cp), LAYOUT.backup_record_key("default", cp, name)])
        if subject == "lease":
            key = LAYOUT.lease_key()
            body = rnd.choice([b"[]", b"null", b"{not json", b'{"holder": "x", "expiresAt": "2026-11-25T12:05:00"}',
                               b'{"holder": "x", "expiresAt": "2031-01-01T00:00:00Z", "token": 9}',
                               b'{"holder": "x", "expiresAt": "2020-01-01T00:00:00Z"}', b'{"holder": 5}'])
            self.bucket.put(key, body)
            return f"lease {body[:40]!r}"
        cp, name = subject.split("/")
        kind = rnd.choice(["shard", "record", "archive"])
        if kind == "shard":
            return self._mutate_shard(cp)
        if kind == "record":
            key = LAYOUT.backup_record_key("default", cp, name)
            return f"record {key}: " + self._mutate_json(key)
        key = LAYOUT.archive_key("default", cp, name)
        data = self.read(key)
        choice = rnd.choice(["delete", "truncate", "flip", "other", "plant"])
        if data is None or choice == "plant":
            self.bucket.put(key, rnd.randbytes(rnd.randint(0, 300)))
        elif choice == "delete":
            self.bucket.delete(key)
        elif choice == "truncate":
            self.bucket.put(key, data[: rnd.randint(0, len(data))])
        elif choice == "flip":
            pos = rnd.randrange(len(data))
            self.bucket.put(key, data[:pos] + bytes([data[pos] ^ 1 << rnd.randrange(8)]) + data[pos + 1:])
        else:
            other = self.read(LAYOUT.archive_key("default", cp, rnd.choice(CONTROL_PLANES[cp])))
            self.bucket.put(key, other or b"")
        return f"archive {key}: {choice}"

    def _mutate_shard(self, cp: str) -> str:
        key = LAYOUT.index_key("default", cp)
        data = self.read(key)
        choice = self.rnd.choice(["delete", "garbage", "list", "truncate", "line", "line", "interrupt", "interrupt",
                                  "drop"])
        if choice in ("interrupt", "drop") and data is not None:
            try:  # as a run killed mid-backup, or a lost update, leaves the shard
                shard = ControlPlaneIndex.from_bytes(data, key)
            except IndexCorrupt:
                shard = None
            if shard is not None and shard.backups:
                name = self.rnd.choice(sorted(shard.backups))
                if choice == "drop":
                    del shard.backups[name]
                else:
                    shard.backups[name] = dataclasses.replace(
                        shard.backups[name], phase=self.rnd.choice([Phase.IN_PROGRESS, Phase.PENDING, Phase.FAILED]),
                        retries=self.rnd.randint(0, 4), size=0, sha256="")
                self.bucket.put(key, shard.to_bytes("default", cp, LAYOUT))
                return f"shard {key}: {choice} {name}"
            choice = "delete"
        if data is None or choice == "delete":
            self.bucket.delete(key)
        elif choice == "garbage":
            self.bucket.put(key, self.rnd.randbytes(50))
        elif choice == "list":
            self.bucket.put(key, b"[]")
        elif choice == "truncate":
            self.bucket.put(key, data[: self.rnd.randint(0, len(data))])
        else:
            lines = data.split(b"\n")
            # the header or a backup's line (the JSON objects: not a version 4 index's names, offsets, expiry)
            objects = [i for i, line in enumerate(lines[:-1]) if line.startswith(b"{")] or [0]
            i = self.rnd.choice(objects)
            try:
                doc = json.loads(lines[i])
            except ValueError:
                doc = {}
            if isinstance(doc, dict):
                self._edit(doc)
                lines[i] = json.dumps(doc).encode()
            self.bucket.put(key, b"\n".join(lines))
        return f"shard {key}: {choice}"

    def _mutate_json(self, key: str) -> str:
        data = self.read(key)
        choice = self.rnd.choice(["delete", "list", "garbage", "edit", "edit"])
        if choice == "delete":
            self.bucket.delete(key)
        elif choice == "list" or data is None:
            self.bucket.put(key, b"[]")
        elif choice == "garbage":
            self.bucket.put(key, data[: len(data) // 2])
        else:
            try:
                doc = json.loads(data)
            except ValueError:
                doc = {}
            if isinstance(doc, dict):
                self._edit(doc)
            self.bucket.put(key, json.dumps(doc).encode())
        return choice

    def _edit(self, doc: dict) -> None:
        rnd = self.rnd
        field, value = rnd.choice([
            ("phase", rnd.choice(["Pending", "InProgress", "Failed", "Completed", "Deleted", "Bogus", 7])),
            ("retries", rnd.choice([0, 2, 3, 4, 99, -1, "3", None])),
            ("archiveKey", LAYOUT.archive_key("default", rnd.choice(list(CONTROL_PLANES)), rnd.choice(BACKUPS))),
            ("size", rnd.choice([0, 1, 10**12, -5, "big"])),
            ("sha256", rnd.choice(["", "ab" * 32, 5])),
            ("startedAt", rnd.choice(["2026-11-25T10:00:00", "2031-01-01T00:00:00Z", "yesterday", 3])),
            ("slot", "2031-01-01T00:00:00Z"),
            ("name", rnd.choice(BACKUPS)),
            ("namespace", rnd.choice(["team-b", "default", ""])),
            ("conditions", rnd.choice([[], "x", [{"type": "Completed"}], [{"type": "Completed", "status": "True",
                                                                             "message": "m" * 100_000}]])),
            ("schemaVersion", rnd.choice([1, 99, "1"])),
        ])
        doc[field] = value


def test_two_hundred_bucket_mutations_cost_no_traceback_no_good_archive_and_no_unverified_write(tmp_path, gitops_repo):
    rnd = random.Random(SEED)
    fuzz = Fuzz(tmp_path, gitops_repo, rnd)
    tracebacks = _Tracebacks()
    logging.getLogger().addHandler(tracebacks)
    try:
        for cp in CONTROL_PLANES:
            server = EmulatorServer(establish_delay=0.01).start()
            seed_crossplane(server, 10)
            fuzz.connect(cp, server)
        fuzz.manifests()
        code, out, err = fuzz.run("apply")
        assert code == 0, out + err
        assert len(fuzz.good_archives()) == len(BACKUPS)

        done = 0
        round_ = 0
        seen: dict[str, int] = dict.fromkeys(SIGNS, 0)
        while done < MUTATIONS:
            round_ += 1
            good = fuzz.good_archives()
            fuzz.remember()
            # one mutation per control plane a round (the job must cope with any single damage to
            # what it knows of a backup), and the lease now and then
            subjects = [f"{cp}/{rnd.choice(names)}" for cp, names in CONTROL_PLANES.items()]
            subjects += ["lease"] if rnd.random() < 0.4 else []
            applied = []
            for subject in subjects:
                cp = subject.split("/")[0]
                applied.append(fuzz.mutate(subject))
                if subject != "lease":
                    name = subject.split("/")[1]
                    if applied[-1].startswith("archive"):
                        good.pop(LAYOUT.archive_key("default", cp, name), None)
            done += len(applied)
            if round_ % 4 == 0:  # now and then a new restore target, from a backup picked at random
                name = f"restored{round_}"
                server = EmulatorServer(establish_delay=0.01).start()
                fuzz.connect(name, server)
                fuzz.restores.append((name, rnd.choice(BACKUPS)))
                fuzz.manifests()
            before = {name: server.store.rv for name, server in fuzz.servers.items() if name.startswith("restored")}
            outputs = []
            for command in (["plan"], ["apply"], ["status", "-o", "json"]) + ((["index", "rebuild"],)
                                                                              if round_ % 4 == 0 else ()):
                code, out, err = fuzz.run(*command)
                outputs.append(f"$ {' '.join(command)} -> {code}\n{out}{err}")
                for sign in SIGNS:
                    seen[sign] += (out + err).count(sign)
                assert "Traceback" not in out + err, "\n".join(applied + outputs)
                assert code in (0, 1, 2), "\n".join(applied + outputs)
                if command[0] == "status":
                    status = out if code == 0 else ""
            assert not tracebacks.records, [r.getMessage() for r in tracebacks.records] + applied + outputs
            for key, sha in good.items():
                data = fuzz.read(key)
                assert data is not None and hashlib.sha256(data).hexdigest() == sha, (
                    f"round {round_}: good archive {key} overwritten or deleted after {applied}\n" + "\n".join(outputs))
            _check_restores(fuzz, status, before, applied, outputs)
        assert done >= MUTATIONS
        # the mutations reached the paths they are meant to test (same seed, same counts)
        assert all(seen[sign] > 0 for sign in SIGNS), json.dumps(seen)
    finally:
        logging.getLogger().removeHandler(tracebacks)
        for server in fuzz.servers.values():
            server.stop()


def _check_restores(fuzz: Fuzz, status: str, before: dict[str, int], applied: list[str], outputs: list[str]) -> None:
    """A restore that failed its archive's verification wrote nothing to its target."""
    if not status:
        return  # the index cannot be read this round: nothing was restored from it either
    for restore in json.loads(status).get("restores", ()):
        name = restore.get("controlPlane")
        last = (restore.get("conditions") or [{}])[-1]
        if name in before and last.get("reason") in VERIFICATION:
            assert fuzz.servers[name].store.rv == before[name], (
                f"{name}: written to before its archive was verified ({last}) after {applied}\n" + "\n".join(outputs))
