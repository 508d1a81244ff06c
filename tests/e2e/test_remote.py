"""Detached runs, cross-process control and torchrun (two CPU processes on gloo)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from support import wait_for
from workbench.store import RunStore
from workbench.training.batches import BatchOrder


def test_rank_shards_are_disjoint_and_cover_the_global_batch():
    orders = [BatchOrder(100, 8, seed=3, rank=r, world_size=2) for r in range(2)]
    single = BatchOrder(100, 16, seed=3)
    for _ in range(12):  # crosses an epoch boundary
        shards = [o.next_indices() for o in orders]
        assert not set(shards[0].tolist()) & set(shards[1].tolist())
        assert torch.equal(torch.cat(shards), single.next_indices())


@pytest.mark.slow
def test_detached_run_outlives_its_launcher_and_stops_from_another_process(runs_dir):
    launcher = subprocess.run(
        [sys.executable, "-m", "workbench", "train", "mlp-quadrants", "--detach", "--json", "--runs-dir",
         str(runs_dir), "--set", "train.max_steps=1000000", "--set", "train.eval_every=0", "--set", "train.threads=1"],
        capture_output=True, text=True, timeout=300,
    )
    assert launcher.returncode == 0, launcher.stderr
    info = json.loads(launcher.stdout)
    run_id = info["run_id"]
    assert "workbench attach" in launcher.stderr
    store = RunStore(runs_dir)
    first = wait_for(lambda: (store.get_run(run_id) or {}).get("steps", 0) > 0 and store.get_run(run_id)["steps"])
    wait_for(lambda: store.get_run(run_id)["steps"] > first)  # still advancing after the launcher exited
    assert store.get_run(run_id)["status"] == "running"
    stop = subprocess.run([sys.executable, "-m", "workbench", "stop", run_id, "--runs-dir", str(runs_dir)],
                          capture_output=True, text=True, timeout=120)
    assert stop.returncode == 0, stop.stderr
    run = wait_for(lambda: store.get_run(run_id)["status"] != "running" and store.get_run(run_id), timeout=60)
    assert run["status"] == "stopped"
    assert any(c["kind"] == "stop" for c in store.checkpoints(run_id))
    assert Path(info["log"]).is_file()


@pytest.mark.slow
def test_control_set_lr_reaches_a_detached_run(runs_dir):
    launcher = subprocess.run(
        [sys.executable, "-m", "workbench", "train", "mlp-quadrants", "--detach", "--runs-dir", str(runs_dir),
         "--set", "train.max_steps=1000000", "--set", "train.eval_every=0", "--set", "schedule.name=constant",
         "--set", "schedule.warmup_steps=0", "--set", "train.threads=1"],
        capture_output=True, text=True, timeout=300,
    )
    run_id = launcher.stdout.strip()
    store = RunStore(runs_dir)
    wait_for(lambda: store.get_run(run_id)["steps"] > 0)
    bad = subprocess.run([sys.executable, "-m", "workbench", "control", run_id, "set-lr", "-3", "--runs-dir",
                          str(runs_dir)], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "positive" in bad.stderr
    subprocess.run([sys.executable, "-m", "workbench", "control", run_id, "set-lr", "0.0123", "--runs-dir",
                    str(runs_dir)], check=True, capture_output=True, timeout=60)
    wait_for(lambda: any(abs(v - 0.0123) < 1e-9 for _, v in store.metric_series(run_id, "lr")[-5:]), timeout=60)
    subprocess.run([sys.executable, "-m", "workbench", "stop", run_id, "--runs-dir", str(runs_dir)], check=True,
                   capture_output=True, timeout=60)
    wait_for(lambda: store.get_run(run_id)["status"] == "stopped", timeout=60)


@pytest.mark.skipif(shutil.which("torchrun") is None and not (Path(sys.executable).parent / "torchrun").exists(),
                    reason="torchrun is not installed")
@pytest.mark.slow
def test_torchrun_two_cpu_processes_record_one_run(runs_dir):
    torchrun = str(Path(sys.executable).parent / "torchrun")
    result = subprocess.run(
        [torchrun, "--nproc_per_node=2", "--master_port=29531", "-m", "workbench", "train", "mlp-quadrants",
         "--json", "--runs-dir", str(runs_dir), "--set", "train.max_steps=120", "--set", "train.eval_every=60",
         "--set", "train.threads=1", "--set", "train.checkpoint_every=60"],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    summary = json.loads(result.stdout.strip().splitlines()[-1])  # rank 0 alone prints
    assert len(result.stdout.strip().splitlines()) == 1
    assert summary["status"] == "completed" and summary["world_size"] == 2 and summary["steps"] == 120
    runs = RunStore(runs_dir).list_runs()
    assert len(runs) == 1 and runs[0]["world_size"] == 2
    assert summary["metrics"]["val_accuracy"] > 0.5
