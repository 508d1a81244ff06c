"""A user's own loop (`workbench.init`) steered from another process with the same commands as a preset run:
`workbench control RUN set-lr X | pause | resume | checkpoint` and `workbench stop`; killed or sent SIGTERM,
it shows as interrupted."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from support import run_cli, wait_for
from support.own_loop import start_loop
from workbench.store import RunStore
from workbench.training.checkpoints import load_checkpoint

pytestmark = pytest.mark.slow


@pytest.fixture
def loop(runs_dir):
    process, run_id = start_loop(runs_dir)
    store = RunStore(runs_dir)
    wait_for(lambda: store.last_metric(run_id, "loss") is not None, timeout=60, what="the first flush")
    yield process, run_id, store
    if process.poll() is None:
        process.kill()
        process.wait(30)
    store.close()


def test_set_lr_then_stop_from_another_process(loop, runs_dir):
    process, run_id, store = loop
    done = run_cli("control", run_id, "set-lr", "0.0123", "--runs-dir", str(runs_dir), timeout=120)
    assert done.returncode == 0, done.stderr
    # The cosine schedule goes on from the new level: the LR reaches 0.0123 and then keeps its shape.
    wait_for(lambda: abs((store.last_metric(run_id, "lr") or 0) - 0.0123) < 1e-4, timeout=30, what="the new LR")
    events = [e["text"] for e in store.events(run_id)]
    assert any("learning rate 0.05 -> 0.0123" in text or "-> 0.0123" in text for text in events), events
    asked = time.monotonic()
    done = run_cli("stop", run_id, "--runs-dir", str(runs_dir), timeout=120)
    assert done.returncode == 0, done.stderr
    process.wait(60)
    took = time.monotonic() - asked
    assert process.returncode == 0, process.stderr.read()
    run = store.get_run(run_id)
    assert run["status"] == "stopped" and "on request" in run["reason"]
    assert took < 15, took  # seconds, including the CLI's own start-up
    stop = [c for c in store.checkpoints(run_id) if c["kind"] == "stop"]
    assert stop and set(load_checkpoint(Path(stop[0]["path"]))) >= {"model", "optimizer", "scheduler", "step"}
    assert process.stdout.read().split() == ["stopped", str(run["steps"])]


def test_pause_blocks_the_loop_until_resume_and_checkpoint_saves(loop, runs_dir):
    process, run_id, store = loop
    assert run_cli("control", run_id, "pause", "--runs-dir", str(runs_dir), timeout=120).returncode == 0
    wait_for(lambda: any("paused at step" in e["text"] for e in store.events(run_id)), timeout=30, what="paused")
    time.sleep(2.5)  # a heartbeat while paused records the step it paused at
    paused_at = store.get_run(run_id)["steps"]
    time.sleep(2.5)
    assert store.get_run(run_id)["steps"] == paused_at  # heartbeats only, no steps
    assert store.get_run(run_id)["status"] == "running"
    assert run_cli("control", run_id, "checkpoint", "--runs-dir", str(runs_dir), timeout=120).returncode == 0
    assert run_cli("control", run_id, "resume", "--runs-dir", str(runs_dir), timeout=120).returncode == 0
    wait_for(lambda: store.get_run(run_id)["steps"] > paused_at + 50, timeout=30, what="steps after resume")
    manual = [c for c in store.checkpoints(run_id) if c["kind"] == "manual"]
    assert manual and manual[0]["step"] == paused_at  # taken while paused
    state = load_checkpoint(Path(manual[0]["path"]))
    assert state["step"] == manual[0]["step"] and "0.weight" in state["model"] and state["optimizer"]["state"]


def test_a_killed_loop_shows_as_interrupted(loop):
    process, run_id, store = loop
    process.send_signal(signal.SIGKILL)
    process.wait(30)
    assert store.get_run(run_id)["status"] == "interrupted"  # its process is gone (same host: by pid)


def test_sigterm_marks_the_run_interrupted_and_ends_the_process(loop):
    process, run_id, store = loop
    process.send_signal(signal.SIGTERM)
    process.wait(30)
    assert process.returncode == -signal.SIGTERM  # the default action still ends the process
    run = store.get_run(run_id)
    assert run["status"] == "interrupted" and "SIGTERM" in run["reason"]


@pytest.mark.skipif(shutil.which("torchrun") is None and not (Path(sys.executable).parent / "torchrun").exists(),
                    reason="torchrun is not installed")
def test_under_torchrun_every_rank_joins_one_run_and_stops_and_sets_the_lr_together(runs_dir, tmp_path):
    from support.own_loop import DISTRIBUTED_LOOP

    script = tmp_path / "ddp_loop.py"
    script.write_text(DISTRIBUTED_LOOP)
    torchrun = str(Path(sys.executable).parent / "torchrun")
    done = subprocess.run([torchrun, "--nproc_per_node=2", "--master_port=29533", str(script), str(runs_dir)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = sorted(line.split() for line in done.stdout.splitlines() if line.startswith("rank "))
    assert len(lines) == 2
    (_, _, _, stop0, _, lr0, _, id0), (_, _, _, stop1, _, lr1, _, id1) = lines
    assert stop0 == stop1 and 120 <= int(stop0) < 200  # the same step on both ranks, soon after the request
    assert float(lr0) == float(lr1) == pytest.approx(0.02)
    runs = RunStore(runs_dir).list_runs()
    assert len(runs) == 1 and runs[0]["run_id"] == id0 == id1 and runs[0]["world_size"] == 2
    assert runs[0]["status"] == "stopped"


@pytest.mark.parametrize("mode, port", [("aligned", 29541), ("unaligned", 29542)])
def test_under_torchrun_the_loss_recorded_is_the_mean_over_the_ranks(runs_dir, tmp_path, mode, port):
    """As the preset trainer records it. A window where the ranks logged different numbers of losses
    keeps rank 0's, and the run's log says so."""
    from support.own_loop import DISTRIBUTED_LOSSES

    script = tmp_path / "ddp_losses.py"
    script.write_text(DISTRIBUTED_LOSSES)
    torchrun = str(Path(sys.executable).parent / "torchrun")
    done = subprocess.run([torchrun, "--nproc_per_node=2", f"--master_port={port}", str(script), str(runs_dir), mode],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    store = RunStore(runs_dir)
    (run,) = store.list_runs()
    recorded = dict(store.metric_series(run["run_id"], "loss"))
    assert sorted(recorded) == list(range(100))
    first_window = [1.0 + step / 100 if mode == "unaligned" else 1.5 + step / 100 for step in range(50)]
    assert [recorded[step] for step in range(50)] == pytest.approx(first_window)
    assert [recorded[step] for step in range(50, 100)] == pytest.approx([1.5 + step / 100 for step in range(50, 100)])
    said = [e["text"] for e in store.events(run["run_id"]) if "different numbers of losses" in e["text"]]
    assert len(said) == (1 if mode == "unaligned" else 0)
