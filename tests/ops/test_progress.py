"""The progress display on a real terminal (tmux): two concurrent backups and a restore each keep one
readable line, log lines print above the bars, nothing is left glued or half-overwritten."""

from __future__ import annotations

import logging
import re
import shutil
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import pytest

from ctpbackup.apply import progress

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = textwrap.dedent('''
    import logging, sys, threading, time
    from pathlib import Path
    from ctpbackup import logs
    from ctpbackup.apply.progress import Progress

    sync = Path(sys.argv[1])
    logs.configure("text", 0)
    log = logging.getLogger("ctpbackup.test")

    def wait(name):
        (sync / f"{name}.ready").touch()
        while not (sync / f"{name}.go").exists():
            time.sleep(0.02)

    bars = [Progress("backup default/ctp1 → nightly-1", enabled=True),
            Progress("backup default/ctp2 → nightly-2", enabled=True),
            Progress("restore default/ctp3 ← restore-me", enabled=True, total=400)]
    half = threading.Barrier(4)
    def work(i, bar):
        for n in range(100):
            bar.update(objects=2 if i == 2 else 2 + i, bytes_total=(n + 1) * 150_000 * (i + 1))
            time.sleep(0.005)
        if i == 2:
            bar.step("waiting for 34 CustomResourceDefinitions to be Established")
        half.wait()
        half.wait()
        for n in range(50):
            bar.update(objects=1, bytes_total=(n + 101) * 150_000 * (i + 1))
        if i == 2:
            bar.update(objects=400 - bar.objects)
            bar.step("unpausing 1,234 resources")
        bar.close()
    threads = [threading.Thread(target=work, args=(i, b)) for i, b in enumerate(bars)]
    for t in threads:
        t.start()
    log.warning("a log line while the bars run")
    half.wait()
    time.sleep(0.5)  # a few refreshes
    wait("middle")
    log.warning("another log line, then the second half")
    half.wait()
    for t in threads:
        t.join()
    print("all done", file=sys.stderr, flush=True)
    wait("end")
''')


class Tmux:
    """A tmux server of our own (its own socket), one session running a command."""

    def __init__(self, command: list[str], width: int = 150, height: int = 30):
        self.socket = f"ctpbackup-test-{uuid.uuid4().hex[:8]}"
        subprocess.run(["tmux", "-L", self.socket, "-f", "/dev/null", "new-session", "-d", "-s", "t", "-x", str(width),
                        "-y", str(height), *command], check=True, timeout=30)

    def screen(self) -> list[str]:
        out = subprocess.run(["tmux", "-L", self.socket, "capture-pane", "-p", "-t", "t"], capture_output=True,
                             text=True, check=True, timeout=30).stdout
        return [line.rstrip() for line in out.splitlines() if line.strip()]

    def close(self) -> None:
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], capture_output=True, timeout=30)


def wait_for(path: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path.name} never came"
        time.sleep(0.05)


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux (Debian package) not installed")
def test_two_backups_and_a_restore_stay_readable_on_a_terminal(tmp_path):
    script = tmp_path / "bars.py"
    script.write_text(SCRIPT)
    tmux = Tmux(["env", "-u", "COLUMNS", "-u", "LINES", f"PYTHONPATH={ROOT}", "TERM=xterm-256color", sys.executable, str(script), str(tmp_path)])
    try:
        wait_for(tmp_path / "middle.ready")
        time.sleep(0.5)  # let rich draw the latest state
        middle = tmux.screen()
        (tmp_path / "middle.go").touch()
        wait_for(tmp_path / "end.ready")
        time.sleep(0.3)
        end = tmux.screen()
        (tmp_path / "end.go").touch()
    finally:
        tmux.close()

    print("\n".join(middle), "\n--", "\n".join(end), sep="\n")  # shown when an assertion fails
    labels = ("backup default/ctp1 → nightly-1", "backup default/ctp2 → nightly-2", "restore default/ctp3 ← restore-me")
    for screen in (middle, end):
        for label in labels:
            (line,) = [text for text in screen if label in text]  # one line per backup or restore
            assert sum(other in line for other in labels) == 1, line  # none glued to another
            assert re.search(r"\d[\d,]*(/400)? objects +[\d.]+ [kM]B +[\d,]+ obj/s", line), line
        assert not any("obj/s s" in text for text in screen), screen
    # log lines above the bars, each on a line of its own
    assert middle[0] == "WARNING a log line while the bars run", middle
    (restore,) = [text for text in middle if labels[2] in text]
    assert "200/400 objects" in restore and restore.endswith("waiting for 34 CustomResourceDefinitions to be Established")
    assert [text for text in middle if "a log line" in text] == ["WARNING a log line while the bars run"]
    assert end[:2] == ["WARNING a log line while the bars run", "WARNING another log line, then the second half"], end
    (restore,) = [text for text in end if labels[2] in text]
    assert "400/400 objects" in restore and restore.endswith("unpausing 1,234 resources")
    for label in labels[:2]:
        (line,) = [text for text in end if label in text]
        assert line.endswith("done"), line
    assert end[-1] == "all done"
    assert end.index("all done") > max(end.index(t) for t in end if any(label in t for label in labels))


def test_off_a_terminal_progress_is_periodic_json_events(caplog):
    """No bar without a terminal: a `progress` event every PERIOD seconds and at each new step."""
    clock = iter([0.0, 5.0, 31.0, 32.0, 40.0])
    caplog.set_level(logging.INFO, logger="ctpbackup.apply.progress")
    meter = progress.Progress("restore default/ctp3 ← b1", enabled=True, total=100, stream=sys.stdout,
                              clock=lambda: next(clock))  # t=0
    assert meter._task is None  # stdout is captured by pytest: not a terminal
    meter.update(objects=10)  # t=5: too soon
    meter.update(objects=20)  # t=31: an event
    meter.update(objects=5)  # t=32: too soon
    meter.step("unpausing 3 resources")  # t=40: a new step is an event
    meter.close()
    events = [r.fields for r in caplog.records]
    assert [(e["event"], e["objects"], e["total"], e["step"], e["seconds"]) for e in events] == [
        ("progress", 30, 100, "", 31.0), ("progress", 35, 100, "unpausing 3 resources", 40.0)]
    assert [r.getMessage() for r in caplog.records] == ["restore default/ctp3 ← b1: 30/100 objects",
                                                         "restore default/ctp3 ← b1: 35/100 objects, unpausing 3 resources"]
