"""Off a terminal, every line `plan` and `apply` write, on stdout and on stderr, is one JSON event;
with `-o` the document is on stdout exactly as asked and the logs on stderr are JSON."""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import sys
from pathlib import Path

from kubeemu import EmulatorServer
from kubeemu.fixtures import seed_crossplane
from tests.fixtures.cliprocess import reconcile_py
from tests.fixtures.story import BACKUP, CONTROL_PLANE

ROOT = Path(__file__).resolve().parents[2]


def reconcile(story, *args: str) -> subprocess.CompletedProcess:
    """As the CronJob runs it: stdout and stderr are pipes, no --log-format."""
    return reconcile_py(*args, "--repo", str(story.repo.path), "--secrets-dir", str(story.secrets), timeout=240)


def events(text: str) -> list[dict]:
    """Every line one JSON object with the common fields; nothing else on the stream."""
    out = []
    for line in text.splitlines():
        event = json.loads(line)
        assert isinstance(event, dict), line
        assert {"time", "level", "logger", "message"} <= set(event), line
        assert event["time"].endswith("Z") and event["level"] in ("debug", "info", "warning", "error"), line
        out.append(event)
    return out


def test_plan_and_apply_off_a_terminal_write_only_json_lines(story):
    source = EmulatorServer(establish_delay=0.05).start()
    try:
        seed_crossplane(source, 20)
        for name in ("ctp1", "ctp2"):
            story.connect(name, source)
            story.repo.write(f"{name}.yaml", CONTROL_PLANE.format(name=name))
            story.repo.write(f"b-{name}.yaml", BACKUP.format(name=f"b-{name}", control_plane=name))
        commit = story.repo.commit("two backups")

        planned = reconcile(story, "plan")
        assert planned.returncode == 0, planned.stderr
        out = events(planned.stdout)
        assert [e["event"] for e in out] == ["plan", "planned", "planned"]
        assert out[0]["message"] == "Plan: 2 backups, 0 restores, 0 deletions, 0 errors."
        assert out[0]["commit"] == commit and out[0]["summary"]["backup"] == 2
        assert [e["message"] for e in out[1:]] == ["+ backup default/b-ctp1 ← ctp1", "+ backup default/b-ctp2 ← ctp2"]
        assert [(e["action"], e["controlPlane"]) for e in out[1:]] == [("backup", "ctp1"), ("backup", "ctp2")]
        events(planned.stderr)
        assert commit not in planned.stderr  # the commit is said once, in the plan event

        applied = reconcile(story, "apply")
        assert applied.returncode == 0, applied.stderr
        out = events(applied.stdout)
        assert [e["event"] for e in out] == ["plan", "planned", "planned", "action", "action", "verified", "verified", "apply"]
        actions = sorted((e["name"], e["outcome"], e["level"]) for e in out if e["event"] == "action")
        assert actions == [("b-ctp1", "ok", "info"), ("b-ctp2", "ok", "info")]
        assert all(e["bytes"] > 0 for e in out if e["event"] == "action")
        assert out[-1]["message"] == "Apply complete: 2 done, 0 failed."
        assert (out[-1]["result"], out[-1]["done"], out[-1]["failed"], out[-1]["commit"]) == ("success", 2, 0, commit)
        events(applied.stderr)

        again = reconcile(story, "apply")  # nothing to do: still JSON, still a summary
        out = events(again.stdout)
        assert [e["event"] for e in out] == ["plan", "apply"]
        assert out[0]["message"].startswith("No changes.") and out[1]["result"] == "success"
        assert out[1]["message"] == "Nothing to apply."
    finally:
        source.stop()


def test_documents_go_to_stdout_as_asked_and_logs_stay_json(story):
    story.repo.write("ctp1.yaml", CONTROL_PLANE.format(name="ctp1"))
    story.repo.write("b.yaml", BACKUP.format(name="b1", control_plane="ctp1"))
    story.repo.commit("one backup")
    as_json = reconcile(story, "plan", "-o", "json")
    document = json.loads(as_json.stdout)  # the whole of stdout is one document
    assert document["format_version"] == "1" and [a["name"] for a in document["actions"]] == ["b1"]
    events(as_json.stderr)
    markdown = reconcile(story, "plan", "-o", "markdown")
    assert markdown.stdout.startswith("### Control-plane backup plan\n\n**Plan: 1 backup,")
    events(markdown.stderr)


def test_errors_and_problems_off_a_terminal_are_json_on_stderr(story):
    story.repo.write("ctp1.yaml", CONTROL_PLANE.format(name="ctp1"))
    story.repo.write("b.yaml", BACKUP.format(name="b1", control_plane="ctp1").replace("controlPlane: ctp1",
                                                                                        "controlPlane: 7"))
    story.repo.commit("a broken backup")
    for command in ("plan", "apply"):
        result = reconcile(story, command)
        assert result.returncode == 1 and result.stdout == ""
        problems = events(result.stderr)
        assert {e["event"] for e in problems} == {"problem"} and {e["level"] for e in problems} == {"error"}
        assert problems[0]["message"].startswith("b.yaml:") and "spec.controlPlane" in problems[0]["message"]
        assert problems[-1]["message"].startswith("error: ") and problems[-1]["message"].endswith("nothing was done")


def test_on_a_terminal_the_plan_is_human_text(story):
    story.repo.write("ctp1.yaml", CONTROL_PLANE.format(name="ctp1"))
    story.repo.write("b.yaml", BACKUP.format(name="b1", control_plane="ctp1"))
    commit = story.repo.commit("one backup")
    main, child = pty.openpty()
    process = subprocess.Popen([sys.executable, str(ROOT / "reconcile.py"), "plan", "--repo", str(story.repo.path),
                                "--secrets-dir", str(story.secrets)], stdin=child, stdout=child, stderr=child,
                               close_fds=True)
    os.close(child)
    output = b""
    while True:
        ready, _, _ = select.select([main], [], [], 60)
        if not ready:
            break
        try:
            chunk = os.read(main, 65536)
        except OSError:
            break
        if not chunk:
            break
        output += chunk
    process.wait(timeout=60)
    os.close(main)
    lines = output.decode().replace("\r\n", "\n").splitlines()
    assert lines[0].endswith(f"commit {commit}") and output.decode().count(commit) == 1  # said once
    assert "  + backup default/b1 ← ctp1" in lines
    assert lines[-1] == "Plan: 1 backup, 0 restores, 0 deletions, 0 errors."
    assert not any(line.startswith("{") for line in lines)
