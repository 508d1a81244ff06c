"""Fault injection: kills, signals, torn checkpoint writes, OOM, dying workers, a full disk, two writers,
and hostile input. Each test builds the fault on purpose and checks nothing is lost or corrupted."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from support import quick_preset, wait_for
from workbench.store import RunStore
from workbench.training.checkpoints import load_checkpoint
from workbench.training.trainer import Trainer
from workbench.training.telemetry import Callback

COUNTING_MODEL = """
import os
import torch
from torch import nn

class Counting(nn.Module):
    '''A small MLP that writes how many training steps it has run to a file every 10 steps.'''
    def __init__(self, path):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(2, 64), nn.ReLU(), nn.Linear(64, 4))
        self.path = path
        self.calls = 0
    def forward(self, x):
        if self.training:
            self.calls += 1
            if self.calls % 10 == 0:
                # written aside, then renamed: a kill -9 between truncate and write left an empty file
                fd = os.open(self.path + ".tmp", os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
                os.write(fd, str(self.calls).encode())
                os.close(fd)
                os.replace(self.path + ".tmp", self.path)
        return self.net(x)

def build(path):
    return Counting(path)
"""


def start_training(tmp_path: Path, runs_dir: Path, *sets: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "workbench", "train", "mlp-quadrants", "--json", "--runs-dir", str(runs_dir), *sets],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path,
    )


def only_run(runs_dir: Path) -> dict:
    runs = RunStore(runs_dir).list_runs()
    return runs[0] if runs else None


@pytest.mark.slow
def test_kill_9_loses_under_a_second_and_resume_matches_an_uninterrupted_run(tmp_path, runs_dir):
    model_file = tmp_path / "counting.py"
    model_file.write_text(COUNTING_MODEL)
    counter = tmp_path / "steps.txt"
    sets = ["--set", "model.kind=custom", "--set", f"model.target='{model_file}:build'",
            "--set", f"model.args={{path = '{counter}'}}", "--set", "train.max_steps=3000",
            "--set", "train.checkpoint_every=200", "--set", "train.eval_every=400", "--set", "train.log_every=10"]
    process = start_training(tmp_path, runs_dir, *sets)
    store = RunStore(runs_dir)
    wait_for(lambda: only_run(runs_dir) and any(c["kind"] == "periodic"
                                                 for c in store.checkpoints(only_run(runs_dir)["run_id"])))
    # mid-run: well past the first periodic checkpoint (200) and far from the end (3,000)
    wait_for(lambda: only_run(runs_dir)["steps"] >= 500, interval=0.02, what="step 500")
    process.send_signal(signal.SIGKILL)
    process.wait(30)
    steps_done = int(counter.read_text())
    run = only_run(runs_dir)
    assert run["status"] == "interrupted"
    assert store.integrity_ok()
    series = store.metric_series(run["run_id"], "loss")
    last_logged = series[-1][0] + 1
    rate = store.last_metric(run["run_id"], "steps_per_s")
    assert steps_done - last_logged <= rate * 1.0 + 10, (steps_done, last_logged, rate)
    newest = store.checkpoints(run["run_id"])[0]
    assert load_checkpoint(Path(newest["path"]))["step"] == newest["step"]

    resumed = subprocess.run([sys.executable, "-m", "workbench", "train", "--resume", run["run_id"], "--json",
                              "--runs-dir", str(runs_dir)], capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    summary = json.loads(resumed.stdout)
    assert summary["status"] == "completed" and summary["steps"] == 3000 and summary["run_id"] == run["run_id"]

    # The same preset, uninterrupted, gives the same losses at every step.
    reference = Trainer(_preset_of(store, run["run_id"]), RunStore(tmp_path / "ref"))
    result = reference.run()
    expected = RunStore(tmp_path / "ref").metric_series(result.run_id, "loss")
    got = store.metric_series(run["run_id"], "loss")
    assert [s for s, _ in got] == [s for s, _ in expected]
    assert [v for _, v in got] == pytest.approx([v for _, v in expected], rel=1e-4, abs=1e-6)


def _preset_of(store: RunStore, run_id: str):
    from workbench.presets import preset_from_dict

    return preset_from_dict(store.get_run(run_id)["config"])


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT])
def test_signals_checkpoint_and_mark_interrupted(tmp_path, runs_dir, signum):
    process = start_training(tmp_path, runs_dir, "--set", "train.max_steps=1000000", "--set", "train.eval_every=0")
    wait_for(lambda: (only_run(runs_dir) or {}).get("steps", 0) > 50)
    process.send_signal(signum)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 130, err
    summary = json.loads(out)
    assert summary["status"] == "interrupted"
    assert f"workbench train --resume {summary['run_id']}" in err
    store = RunStore(runs_dir)
    assert store.get_run(summary["run_id"])["status"] == "interrupted"
    stop = [c for c in store.checkpoints(summary["run_id"]) if c["kind"] == "stop"]
    assert stop and load_checkpoint(Path(stop[0]["path"]))["step"] == summary["steps"]


def test_a_crash_mid_checkpoint_leaves_the_previous_one_intact(store, monkeypatch):
    preset = quick_preset(**{"train.max_steps": 40, "train.checkpoint_every": 10, "train.eval_every": 0})
    import workbench.training.checkpoints as checkpoint

    real_save = torch.save
    calls = {"n": 0}

    def torn_save(obj, handle, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:  # the second checkpoint dies halfway through writing
            handle.write(b"PK\x03\x04 partial")
            raise OSError(28, "No space left on device")
        return real_save(obj, handle, *args, **kwargs)

    monkeypatch.setattr(checkpoint.torch, "save", torn_save)
    trainer = Trainer(preset, store)
    thread = trainer.start()
    wait_for(lambda: trainer.paused or trainer.result, timeout=60)
    assert trainer.paused  # a failed checkpoint pauses the run rather than ending it
    folder = store.run_dir(trainer.run_id) / "checkpoints"
    assert [p.name for p in folder.iterdir()] == ["step-000000010.pt"]  # no temp file, first one intact
    assert load_checkpoint(folder / "step-000000010.pt")["step"] == 10
    assert ("disk_full", "") in trainer.findings
    trainer.resume()
    thread.join(60)
    assert trainer.result.status == "completed"


@pytest.mark.parametrize("full_at", [100, 295])  # mid-run, and in the last window (before the final writes)
def test_store_full_mid_run_pauses_with_a_finding_and_loses_nothing(store, monkeypatch, full_at):
    preset = quick_preset(**{"train.max_steps": 300, "train.eval_every": 0, "train.log_every": 10})
    real_transaction = store.transaction
    state = {"full": False}

    def transaction(work):
        if state["full"]:
            raise sqlite3.OperationalError("database or disk is full")
        return real_transaction(work)

    monkeypatch.setattr(store, "transaction", transaction)

    class FillDisk(Callback):
        def on_batch(self, trainer, batch):
            if trainer.step >= full_at and not state.get("filled"):  # once: space freed stays freed
                state["full"] = state["filled"] = True

    trainer = Trainer(preset, store, callbacks=[FillDisk()])
    thread = trainer.start()
    wait_for(lambda: trainer.paused, timeout=60)
    assert trainer.findings[("disk_full", "")]["severity"] == "critical"
    paused_at = trainer.step
    time.sleep(0.5)  # not a wait for a condition: no step may happen in this window
    assert trainer.step == paused_at
    state["full"] = False  # space freed
    trainer.resume()
    thread.join(60)
    assert trainer.result.status == "completed"
    steps = [s for s, _ in store.metric_series(trainer.run_id, "loss")]
    assert steps == list(range(300))  # every step's loss reached the store after all
    assert store.integrity_ok()


def test_out_of_memory_is_reported_and_history_kept(store, tmp_path):
    model_file = tmp_path / "oom.py"
    model_file.write_text(
        "import torch\n"
        "class Greedy(torch.nn.Module):\n"
        "    def __init__(self):\n"
        "        super().__init__(); self.lin = torch.nn.Linear(2, 4); self.calls = 0\n"
        "    def forward(self, x):\n"
        "        self.calls += 1\n"
        "        if self.calls == 30:\n"
        "            raise torch.OutOfMemoryError('CUDA out of memory. Tried to allocate 20.00 GiB')\n"
        "        return self.lin(x)\n"
        "def build():\n"
        "    return Greedy()\n"
    )
    preset = quick_preset(**{"model.kind": "custom", "model.target": f"{model_file}:build", "model.args": {},
                             "train.max_steps": 100, "train.eval_every": 0, "train.log_every": 5})
    result = Trainer(preset, store).run()
    assert result.status == "failed" and result.reason.startswith("out of memory")
    findings = store.findings(result.run_id)
    assert findings[0]["code"] == "out_of_memory" and "batch_size" in findings[0]["remedy"]
    assert len(store.metric_series(result.run_id, "loss")) == 29


def test_a_dying_dataloader_worker_fails_the_run_cleanly(store, tmp_path):
    data_file = tmp_path / "dying.py"
    data_file.write_text(
        "import os\nimport torch\n"
        "class Dying(torch.utils.data.Dataset):\n"
        "    def __len__(self):\n"
        "        return 4096\n"
        "    def __getitem__(self, i):\n"
        "        if torch.utils.data.get_worker_info() is not None and i % 97 == 13:\n"
        "            os._exit(1)\n"
        "        x = torch.randn(2)\n"
        "        return x, int(x[0] > 0) + 2 * int(x[1] > 0)\n"
        "class Val(Dying):\n"
        "    def __getitem__(self, i):\n"
        "        x = torch.randn(2)\n"
        "        return x, int(x[0] > 0) + 2 * int(x[1] > 0)\n"
        "def build():\n"
        "    from workbench.data import DataBundle, DataInfo\n"
        "    return DataBundle(Dying(), Val(), DataInfo(task='classification', num_classes=4, input_shape=(2,)))\n"
    )
    preset = quick_preset(**{"data.kind": "custom", "data.target": f"{data_file}:build", "data.args": {},
                             "train.num_workers": 1, "train.max_steps": 500, "train.eval_every": 0,
                             "model.args.hidden": [8]})
    result = Trainer(preset, store).run()
    assert result.status == "failed"
    assert "worker" in result.reason.lower()
    assert store.get_run(result.run_id)["traceback"]


@pytest.mark.slow
def test_two_processes_train_into_one_store(tmp_path, runs_dir):
    # One intra-op thread each: two processes on two cores must not oversubscribe OpenMP.
    sets = ["--set", "train.max_steps=600", "--set", "train.eval_every=200", "--set", "train.log_every=5",
            "--set", "train.checkpoint_every=100", "--set", "train.threads=1"]
    first = start_training(tmp_path, runs_dir, *sets)
    second = start_training(tmp_path, runs_dir, *sets)
    outputs = [p.communicate(timeout=300) for p in (first, second)]
    for process, (out, err) in zip((first, second), outputs):
        assert process.returncode == 0, err
        assert "locked" not in err
        assert json.loads(out)["status"] == "completed"
    runs = RunStore(runs_dir).list_runs()
    assert len(runs) == 2 and all(r["status"] == "completed" and r["steps"] == 600 for r in runs)


def test_runs_dir_that_is_a_file_fails_at_start(tmp_path, capsys):
    from workbench.cli import main

    blocker = tmp_path / "blocker"
    blocker.write_text("not a folder")
    assert main(["train", "mlp-quadrants", "--runs-dir", str(blocker / "runs")]) == 2
    err = capsys.readouterr().err
    assert "runs dir" in err and "cannot create" in err and "Traceback" not in err


def test_trust_remote_code_raises_a_warning_finding(store):
    preset = quick_preset(**{"train.max_steps": 5, "model.trust_remote_code": True})
    trainer = Trainer(preset, store)
    result = trainer.run()
    assert result.status == "completed"
    finding = store.findings(result.run_id)[0]
    assert finding["code"] == "remote_code_enabled" and finding["severity"] == "warning"
    plain = Trainer(quick_preset(**{"train.max_steps": 5}), store).run()
    assert all(f["code"] != "remote_code_enabled" for f in store.findings(plain.run_id))
