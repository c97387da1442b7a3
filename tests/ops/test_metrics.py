"""Metrics an alert can use: every run writes them (a no-op too), state comes from the index headers,
the Pushgateway gets one group per shard. Read back with prometheus_client's own parser."""

from __future__ import annotations

import http.server
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from ctpbackup.apply import metrics
from ctpbackup.apply.executor import Outcome
from ctpbackup.desired.manifests import load_desired_state
from ctpbackup.plan.planner import Action, ActionType, shard_of
from ctpbackup.store.controlplane_index import ControlPlaneIndex, ControlPlaneIndexView
from ctpbackup.store.index import RecordedBackups, RecordedState
from ctpbackup.store.layout import BucketLayout
from ctpbackup.store.records import BackupRecord, OwnerKind, Phase, RestoreRecord
from kubeemu import EmulatorServer
from kubeemu.fixtures import seed_crossplane
from tests.fixtures.story import BACKUP, CONTROL_PLANE

ROOT = Path(__file__).resolve().parents[2]
LAYOUT = BucketLayout("prod")
NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
T0 = NOW - timedelta(hours=3)


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """{(sample name, sorted labels): value} of a Prometheus text exposition."""
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def types(text: str) -> dict[str, str]:
    return {family.name: family.type for family in text_string_to_metric_families(text)}


def record(name: str, phase: Phase, *, cp: str = "ctp1", hours: float = 0, size: int = 0, took: float = 60,
           owner: str = "nightly") -> BackupRecord:
    started = T0 + timedelta(hours=hours)
    done = {"completed_at": started + timedelta(seconds=took)} if phase is Phase.COMPLETED else {}
    return BackupRecord("default", name, cp, "default", phase, owner_kind=OwnerKind.SHARED_BACKUP_SCHEDULE,
                        owner_name=owner, slot=started, created_at=started, started_at=started, size=size,
                        archive_key=LAYOUT.archive_key("default", cp, name), **done)


def state(shards: dict[str, list[BackupRecord]], restores: dict[str, Phase] | None = None) -> RecordedState:
    """A RecordedState read the way planning reads it: shard bytes, headers parsed."""
    backups = RecordedBackups()
    restore_records = {}
    for cp in sorted(set(shards) | set(restores or {})):
        restore = None
        if restores and cp in restores:
            restore = RestoreRecord("default", cp, "Backup", "b", restores[cp])
            restore_records[("default", cp)] = restore
        shard = ControlPlaneIndex({r.name: r for r in shards.get(cp, [])}, restore)
        key = LAYOUT.index_key("default", cp)
        backups.add(ControlPlaneIndexView.parse(shard.to_bytes("default", cp, LAYOUT), key))
    return RecordedState(backups, restore_records)


DESIRED_YAML = """apiVersion: spaces.upbound.io/v1alpha1
kind: SharedBackupSchedule
metadata: {name: nightly, namespace: default}
spec:
  schedule: "@every 1h"
  configRef: {kind: SharedBackupConfig, name: default}
  controlPlaneSelector:
    labelSelectors: [{matchLabels: {backup: enabled}}]
---
apiVersion: spaces.upbound.io/v1alpha1
kind: BackupSchedule
metadata: {name: ctp2-often, namespace: default}
spec:
  schedule: "*/20 * * * *"
  configRef: {kind: SharedBackupConfig, name: default}
  controlPlane: ctp2
"""


def desired():
    from ctpbackup.desired.gitsource import ManifestFile

    text = DESIRED_YAML + "---\n" + (ROOT / "examples/config/sharedbackupconfig.yaml").read_text() + "---\n" + \
        CONTROL_PLANE.format(name="ctp1") + "---\n" + CONTROL_PLANE.format(name="ctp2") + "---\n" + \
        CONTROL_PLANE.format(name="ctp3").replace("backup: enabled", "backup: disabled")
    return load_desired_state([ManifestFile("all.yaml", text.encode())], "c0ffee" * 6 + "abcd").require()


def run_info(result: str = "success", shard: tuple[int, int] = (0, 1)) -> metrics.Run:
    return metrics.Run(NOW.timestamp() - 42.5, NOW.timestamp(), result, "c0ffee" * 6 + "abcd", shard)


def exposition(registry) -> str:
    from prometheus_client import generate_latest

    return generate_latest(registry).decode()


def test_state_metrics_come_from_the_index_headers():
    recorded = state({
        "ctp1": [record("a", Phase.COMPLETED, hours=0, size=100, took=30), record("b", Phase.COMPLETED, hours=1, size=250),
                 record("c", Phase.FAILED, hours=2), record("d", Phase.DELETED, hours=-5)],
        "ctp2": [record("e", Phase.COMPLETED, cp="ctp2", hours=2, size=7, took=13)],
        "ctp3": [record("f", Phase.IN_PROGRESS, cp="ctp3", hours=1)],
    }, restores={"ctp4": Phase.FAILED})
    text = exposition(metrics.build_registry(desired(), recorded, [], run_info(), NOW))
    got = samples(text)

    def cp(name: str, control_plane: str, **labels: str) -> float | None:
        return got.get((name, tuple(sorted({"namespace": "default", "controlplane": control_plane, **labels}.items()))))

    b_done = (T0 + timedelta(hours=1, seconds=60)).timestamp()
    assert cp("ctpbackup_backup_last_success_timestamp_seconds", "ctp1") == b_done
    assert cp("ctpbackup_backup_last_success_size_bytes", "ctp1") == 250
    assert cp("ctpbackup_backup_last_success_duration_seconds", "ctp1") == 60
    assert cp("ctpbackup_backup_last_success_timestamp_seconds", "ctp2") == (T0 + timedelta(hours=2, seconds=13)).timestamp()
    assert cp("ctpbackup_backup_last_success_duration_seconds", "ctp2") == 13
    assert cp("ctpbackup_backup_last_success_timestamp_seconds", "ctp3") is None  # never succeeded: no series
    # the newest backup of ctp1 failed after the last success
    assert [p for p in ("Pending", "InProgress", "Completed", "Failed")
            if cp("ctpbackup_backup_last_phase", "ctp1", phase=p) == 1] == ["Failed"]
    assert cp("ctpbackup_backup_last_phase", "ctp1", phase="Completed") == 0
    assert cp("ctpbackup_backup_last_phase", "ctp2", phase="Completed") == 1
    assert cp("ctpbackup_backup_last_phase", "ctp3", phase="InProgress") == 1
    assert {p: cp("ctpbackup_backups", "ctp1", phase=p) for p in metrics.PHASES} == {
        "Pending": 0, "InProgress": 0, "Completed": 2, "PartiallyFailed": 0, "Failed": 1, "Deleted": 1}
    assert cp("ctpbackup_restore_phase", "ctp4", phase="Failed") == 1
    assert cp("ctpbackup_restore_phase", "ctp4", phase="Completed") == 0
    # schedules: ctp1 by the hourly SharedBackupSchedule, ctp2 by both (the more frequent wins), ctp3 by none
    assert cp("ctpbackup_backup_schedule_interval_seconds", "ctp1") == 3600
    assert cp("ctpbackup_backup_schedule_interval_seconds", "ctp2") == 1200
    assert cp("ctpbackup_backup_schedule_interval_seconds", "ctp3") is None


def test_run_metrics_names_types_and_no_created_or_commit_on_numbers():
    action = Action(ActionType.BACKUP, "Backup", "default", "b1", "ctp1", "new")
    outcomes = [Outcome(action, True, "done", size=10), Outcome(action, False, "boom"),
                Outcome(Action(ActionType.RESTORE, "ControlPlane", "default", "r", "r", "x"), False, "later", waiting=True)]
    text = exposition(metrics.build_registry(desired(), state({}), outcomes, run_info("failure"), NOW))
    got = samples(text)
    assert got[("ctpbackup_run_start_timestamp_seconds", ())] == NOW.timestamp() - 42.5
    assert got[("ctpbackup_run_duration_seconds", ())] == 42.5
    assert {r: got[("ctpbackup_run_result", (("result", r),))] for r in metrics.RESULTS} == \
        {"success": 0, "failure": 1, "error": 0}
    actions = {labels: v for (name, labels), v in got.items() if name == "ctpbackup_run_actions" and v}
    assert actions == {(("outcome", "ok"), ("type", "backup")): 1, (("outcome", "failed"), ("type", "backup")): 1,
                       (("outcome", "waiting"), ("type", "restore")): 1}
    assert got[("ctpbackup_run_actions", (("outcome", "ok"), ("type", "delete")))] == 0
    assert got[("ctpbackup_build_info", (("commit", "c0ffee" * 6 + "abcd"), ("version", "0.1.0")))] == 1
    assert "_created" not in text and "_total" not in text
    assert all(name == "ctpbackup_build_info" or "commit" not in dict(labels) for name, labels in got)
    assert set(types(text).values()) == {"gauge"}  # an Info is a gauge of 1 in the text format
    assert all(name.startswith("ctpbackup_") for name in types(text))


def test_state_metrics_cover_only_this_shards_control_planes():
    names = [f"cp{i}" for i in range(12)]
    recorded = state({n: [record("x", Phase.COMPLETED, cp=n)] for n in names})
    seen = []
    for index in range(3):
        got = samples(exposition(metrics.build_registry(desired(), recorded, [], run_info(shard=(index, 3)), NOW)))
        mine = {dict(labels)["controlplane"] for name, labels in got
                if name == "ctpbackup_backup_last_success_timestamp_seconds"}
        assert mine == {n for n in names if shard_of("default", n, 3) == index}
        seen += mine
    assert sorted(seen) == sorted(names)  # each control plane in exactly one shard's group


class Pushgateway:
    """A stub Pushgateway: a real HTTP server on 127.0.0.1 recording each request."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str, str]] = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_PUT(self):  # noqa: N802 - http.server's naming
                body = self.rfile.read(int(self.headers.get("Content-Length", 0))).decode()
                outer.requests.append(("PUT", self.path, body))
                self.send_response(200)
                self.end_headers()

            do_POST = do_PUT  # noqa: N815

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def pushgateway():
    gateway = Pushgateway()
    yield gateway
    gateway.stop()


@pytest.mark.parametrize(("shard", "path"), [((0, 1), "/metrics/job/ctpbackup/shard/0-of-1"),
                                             ((2, 4), "/metrics/job/ctpbackup/shard/2-of-4")])
def test_push_replaces_one_group_per_shard(pushgateway, shard, path):
    registry = metrics.build_registry(desired(), state({}), [], run_info(shard=shard), NOW)
    metrics.export(registry, shard, pushgateway=pushgateway.url)
    ((method, got_path, body),) = pushgateway.requests
    assert (method, got_path) == ("PUT", path)  # PUT: the group is replaced, nothing stale stays
    assert samples(body)[("ctpbackup_run_result", (("result", "success"),))] == 1


def test_unreachable_pushgateway_and_unwritable_textfile_only_warn(tmp_path, caplog):
    registry = metrics.build_registry(desired(), state({}), [], run_info(), NOW)
    metrics.export(registry, (0, 1), textfile=str(tmp_path / "missing" / "m.prom"), pushgateway="http://127.0.0.1:9")
    assert [r.getMessage().split(":")[0] for r in caplog.records] == [
        f"metrics textfile {tmp_path / 'missing' / 'm.prom'} not written", "metrics not pushed to http"]


def test_every_apply_writes_metrics_a_noop_too(story, pushgateway, tmp_path):
    """The user's path: an apply that backs up, then one with nothing to do; both write the
    textfile and push, and the no-op run still carries the last success from the index."""
    source = EmulatorServer(establish_delay=0.05).start()
    try:
        seed_crossplane(source, 20)
        story.connect("ctp1", source)
        story.repo.write("ctp1.yaml", CONTROL_PLANE.format(name="ctp1"))
        story.repo.write("b.yaml", BACKUP.format(name="b1", control_plane="ctp1"))
        commit = story.repo.commit("a backup")
        textfile = tmp_path / "ctpbackup.prom"
        flags = ("--metrics-textfile", str(textfile), "--pushgateway", pushgateway.url)
        story.reconcile("apply", *flags)
        first = samples(textfile.read_text())
        size = story.backup("b1")["size"]
        assert first[("ctpbackup_run_actions", (("outcome", "ok"), ("type", "backup")))] == 1
        key = (("controlplane", "ctp1"), ("namespace", "default"))
        assert first[("ctpbackup_backup_last_success_size_bytes", key)] == size > 0
        completed = datetime.fromisoformat(story.backup("b1")["completedAt"].replace("Z", "+00:00")).timestamp()
        assert first[("ctpbackup_backup_last_success_timestamp_seconds", key)] == completed
        assert first[("ctpbackup_build_info", (("commit", commit), ("version", "0.1.0")))] == 1

        story.reconcile("apply", *flags)  # nothing to do
        second = samples(textfile.read_text())
        assert second[("ctpbackup_run_actions", (("outcome", "ok"), ("type", "backup")))] == 0
        assert second[("ctpbackup_run_result", (("result", "success"),))] == 1
        assert second[("ctpbackup_backup_last_success_timestamp_seconds", key)] == completed
        assert second[("ctpbackup_backups", (*key[:1], ("namespace", "default"), ("phase", "Completed")))] == 1
        assert second[("ctpbackup_run_start_timestamp_seconds", ())] > first[("ctpbackup_run_start_timestamp_seconds", ())]
        assert [(m, p) for m, p, _ in pushgateway.requests] == [("PUT", "/metrics/job/ctpbackup/shard/0-of-1")] * 2
    finally:
        source.stop()


def test_the_documented_alert_rules_use_existing_metrics():
    """The README's alert rules parse as YAML and every metric they name is one the job writes."""
    import re

    readme = (ROOT / "README.md").read_text()
    block = readme.split("```yaml\n# ctpbackup alert rules")[1].split("```")[0]
    groups = yaml.safe_load(block)["groups"]
    rules = groups[0]["rules"]
    assert [r["alert"] for r in rules] == ["CtpBackupMissed", "CtpBackupRestoreFailed", "CtpBackupJobNotRunning"]
    registry = metrics.build_registry(desired(), state({"ctp1": [record("a", Phase.COMPLETED)]},
                                                       restores={"ctp1": Phase.COMPLETED}), [], run_info(), NOW)
    written = set(types(exposition(registry)))
    for rule in rules:
        named = set(re.findall(r"\bctpbackup_[a-z_]+", rule["expr"]))
        assert named and named <= written, (rule["alert"], named - written)
        assert rule["labels"]["severity"] in ("warning", "critical") and rule["annotations"]["summary"]
