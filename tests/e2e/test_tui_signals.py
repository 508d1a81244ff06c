"""The TUI in a real terminal that goes away: the run checkpoints, ends `interrupted`, and resumes."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from support import wait_for
from support.tmux import Tmux, workbench_shell
from workbench.store import RunStore
from workbench.tui.signals import EXIT_GRACE_S, STOP_WITHIN_S

pytestmark = [pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed"), pytest.mark.slow]


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def running_run(store: RunStore, min_steps: int) -> dict | None:
    runs = store.list_runs()
    return runs[0] if runs and runs[0]["status"] == "running" and runs[0]["steps"] >= min_steps else None


@pytest.mark.parametrize("how", ["kill-session", "SIGHUP", "SIGTERM"])
def test_the_terminal_going_away_leaves_a_resumable_checkpoint(isolated, runs_dir, how):
    # No periodic checkpoints: only the one the signal asks for can make the run resumable.
    shell = workbench_shell("tui", "--preset", "mlp-quadrants", "--start", "--runs-dir", str(runs_dir),
                            "--set", "train.max_steps=1000000", "--set", "train.threads=1",
                            "--set", "train.checkpoint_every=0", "--set", "train.eval_every=100")
    tmux = Tmux(f"wbsig{os.getpid()}")
    tmux.run("new-session", "-d", "-s", tmux.session, "-x", "120", "-y", "40", "-c", str(isolated), shell)
    try:
        tmux.wait_for(r"RUNNING")
        store = RunStore(runs_dir)
        run = wait_for(lambda: running_run(store, 300), timeout=120, what="300 steps recorded")
        pid = run["pid"]
        sent = time.monotonic()
        if how == "kill-session":  # what an SSH drop does to a TUI started without tmux: SIGHUP, no terminal
            tmux.run("kill-session", "-t", tmux.session)
        else:
            os.kill(pid, getattr(signal, how))
        wait_for(lambda: not pid_alive(pid), timeout=STOP_WITHIN_S + EXIT_GRACE_S + 10, what="the TUI to exit")
        took = time.monotonic() - sent
        if how != "kill-session":
            tmux.wait_for(r"EXITED 130", timeout=10)  # the shell in the pane saw the exit status
    finally:
        tmux.run("kill-server")
    run = store.get_run(run["run_id"])
    expected = "SIGHUP" if how == "kill-session" else how
    assert run["status"] == "interrupted" and f"{expected} received at step" in run["reason"], run
    stops = [c for c in store.checkpoints(run["run_id"]) if c["kind"] == "stop"]
    assert stops and stops[0]["step"] == run["steps"] and os.path.isfile(stops[0]["path"])
    assert took < STOP_WITHIN_S + EXIT_GRACE_S

    # `workbench train --resume RUN_ID` continues from that checkpoint; stop it once it has gone further.
    child = subprocess.Popen([sys.executable, "-m", "workbench", "train", "--resume", run["run_id"], "--json",
                              "--runs-dir", str(runs_dir)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: (r := store.get_run(run["run_id"]))["pid"] == child.pid and r["steps"] > run["steps"] + 50,
                 timeout=120, what="the resumed run to train on")
        store.send_command(run["run_id"], "stop")
        out, err = child.communicate(timeout=60)
    finally:
        if child.poll() is None:
            child.kill()
    assert child.returncode == 0, err
    summary = json.loads(out)
    assert summary["status"] == "stopped" and summary["steps"] > run["steps"]
    steps = [step for step, _ in store.metric_series(run["run_id"], "loss")]
    assert len(steps) == len(set(steps)) and max(steps) > run["steps"]  # went on from the checkpoint, not step 0
    store.close()


def test_a_terminal_killed_while_the_app_closes_leaves_no_process_behind(isolated, runs_dir):
    """q, then the pane killed while the app is still closing (what a script closing its tmux session
    does), with a fresh cache: Textual's input thread was left spinning on the dead terminal and the
    interpreter waited for it at exit, forever, at half a core (found by the TUI benchmark)."""
    pids = []
    for attempt in range(3):
        tmux = Tmux(f"wbgone{os.getpid()}-{attempt}")
        shell = workbench_shell("tui", "--runs-dir", str(runs_dir))
        tmux.run("new-session", "-d", "-s", tmux.session, "-x", "120", "-y", "40", "-c", str(isolated), shell)
        try:
            tmux.wait_for(r"mlp-quadrants")
            pane = tmux.run("list-panes", "-t", tmux.session, "-F", "#{pane_pid}").strip()
            pids += [int(p) for p in subprocess.run(["pgrep", "-P", pane], capture_output=True,
                                                    text=True).stdout.split()]
            tmux.run("send-keys", "-t", tmux.session, "q")
            time.sleep(0.3)
            tmux.run("kill-session", "-t", tmux.session)
        finally:
            tmux.run("kill-server")
    assert pids
    try:
        wait_for(lambda: not any(pid_alive(pid) for pid in pids), timeout=EXIT_GRACE_S + 15,
                 what="every TUI to exit")
    finally:
        for pid in pids:
            if pid_alive(pid):
                os.kill(pid, signal.SIGKILL)
