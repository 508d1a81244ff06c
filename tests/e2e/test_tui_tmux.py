"""End to end in a real terminal: `workbench tui --preset mlp-quadrants --start` inside tmux."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import sys
import time
from pathlib import Path

import pytest

from support.tmux import Tmux
from workbench.store import RunStore

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")


def steps_on(screen: str) -> int:
    found = re.search(r"step ([\d,]+)/", screen)
    return int(found.group(1).replace(",", "")) if found else -1


def chart_rows(screen: str) -> list[str]:
    """The lines that hold braille plot cells (the charts' data)."""
    return [line for line in screen.splitlines() if re.search("[\u2801-\u28ff]", line)]


@pytest.mark.slow
def test_start_watch_the_charts_move_and_quit_with_confirmation(isolated, runs_dir):
    workbench = Path(sys.executable).parent / "workbench"
    command = [str(workbench) if workbench.exists() else sys.executable, *([] if workbench.exists() else
               ["-m", "workbench"]), "tui", "--preset", "mlp-quadrants", "--start", "--runs-dir", str(runs_dir),
               "--set", "train.max_steps=1000000", "--set", "train.threads=1"]
    env = {key: os.environ[key] for key in ("XDG_CACHE_HOME", "HF_HUB_OFFLINE", "PATH") if key in os.environ}
    shell = " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items()) + " TERM=xterm-256color " + \
        " ".join(shlex.quote(part) for part in command) + "; echo EXITED $?; sleep 60"
    tmux = Tmux(f"wbtest{os.getpid()}")
    tmux.run("new-session", "-d", "-s", tmux.session, "-x", "120", "-y", "40", "-c", str(isolated), shell)
    try:
        tmux.wait_for(r"RUNNING")
        first = tmux.wait_for(r"loss\s+━ train")
        assert chart_rows(first), "no plotted points on screen"
        deadline = time.monotonic() + 30
        second = first
        while chart_rows(second) == chart_rows(first) and time.monotonic() < deadline:
            time.sleep(0.5)
            second = tmux.screen()
        assert chart_rows(second) != chart_rows(first), "the charts did not move"
        # Other charts can redraw between two refreshes of the progress line (once a second): wait for it.
        while steps_on(second) <= steps_on(first) and time.monotonic() < deadline:
            time.sleep(0.5)
            second = tmux.screen()
        assert steps_on(second) > steps_on(first) >= 0
        for title in ("learning rate", "grad norm", "memory", "throughput", "diagnostics", "log"):
            assert title in second

        tmux.run("send-keys", "-t", tmux.session, "q")
        tmux.wait_for(r"A run is active\. Stop it and quit\?")
        tmux.run("send-keys", "-t", tmux.session, "y")
        tmux.wait_for(r"EXITED 0")
    finally:
        tmux.run("kill-server")
    store = RunStore(runs_dir)
    (run,) = store.list_runs()
    assert run["status"] == "stopped" and run["steps"] > 0
    assert any(c["kind"] == "stop" for c in store.checkpoints(run["run_id"]))
