"""The Hugging Face Trainer with WorkbenchCallback: a 2-layer BERT built from config on generated tokens,
recorded, charted and steered from another process like any workbench run. Offline (report_to="none")."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from support import run_cli, show_run, wait_for
from support.trainers import hf_trainer

pytestmark = pytest.mark.slow


def test_a_trainer_run_is_recorded_with_train_and_val_metrics_and_its_config(tmp_path, store):
    from workbench.integrations.transformers import WorkbenchCallback

    callback = WorkbenchCallback(name="tiny-bert")
    trainer = hf_trainer(tmp_path, [callback])
    trainer.train()
    run = callback.run
    record = store.get_run(run.id)
    assert record["status"] == "completed" and record["preset"] == "tiny-bert"
    assert record["steps"] == 40
    config = record["config"]
    assert config["training_args"]["learning_rate"] == 2e-3 and config["training_args"]["max_steps"] == 40
    assert config["model_config"]["num_hidden_layers"] == 2 and config["model_class"] == "BertForSequenceClassification"
    names = set(store.metric_names(run.id))
    assert {"loss", "lr", "grad_norm", "val_loss", "val_accuracy"} <= names, names
    assert "eval_loss" not in names and "learning_rate" not in names
    # HF's own (pre-clip) norm beside the watched per-step one: where HF did not clip they are the same
    # number at the same step, so the steps line up
    unclipped = dict(store.metric_series(run.id, "grad_norm_unclipped"))
    watched = dict(store.metric_series(run.id, "grad_norm"))
    assert sorted(unclipped) == list(range(4, 40, 5)) and sorted(watched) == list(range(40))
    assert all(watched[step] == pytest.approx(value, rel=1e-4) for step, value in unclipped.items() if value < 1.0)
    # HF's own log history and the store agree on the eval at step 40
    eval_40 = [h for h in trainer.state.log_history if h.get("step") == 40 and "eval_loss" in h][0]
    val = dict(store.metric_series(run.id, "val_loss"))
    assert val[39] == pytest.approx(eval_40["eval_loss"])  # at the step just taken, 0-based like every row
    summary = show_run(run.id)
    assert summary["status"] == "completed" and summary["run_id"] == run.id and summary["steps"] == 40
    assert summary["metrics"]["val_loss"] == pytest.approx(eval_40["eval_loss"])
    assert summary["metrics"]["val_accuracy"] == pytest.approx(eval_40["eval_accuracy"])
    assert summary["metrics"]["train_loss"] is not None
    assert [f for f in summary["findings"] if f["severity"] != "info"] == []


def _steer(callback, *commands: tuple[str, ...], after=None):
    """From another thread: wait for the run, then send each command with the CLI (another process)."""
    sent: dict[str, float] = {}

    def work():
        wait_for(lambda: callback.run is not None, timeout=120, what="the run to start")
        if after is not None:
            wait_for(after, timeout=120, what="the moment to steer")
        for command in commands:
            result = run_cli(command[0], callback.run.id, *command[1:], timeout=60)
            assert result.returncode == 0, result.stderr
            sent[" ".join(command)] = time.monotonic()

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    return thread, sent


def test_stop_from_another_process_ends_training_within_seconds_as_stopped(tmp_path, store):
    from workbench.integrations.transformers import WorkbenchCallback

    callback = WorkbenchCallback()
    trainer = hf_trainer(tmp_path, [callback], max_steps=100_000, eval_strategy="no", logging_steps=50)
    thread, sent = _steer(callback, ("stop",), after=lambda: trainer.state.global_step >= 5)
    trainer.train()
    ended = time.monotonic()
    thread.join(10)
    assert "stop" in sent and ended - sent["stop"] < 5.0
    record = store.get_run(callback.run.id)
    assert record["status"] == "stopped" and 5 <= trainer.state.global_step < 100_000
    assert show_run(callback.run.id)["status"] == "stopped"


def test_set_lr_from_another_process_reaches_the_optimizer(tmp_path, store):
    from workbench.integrations.transformers import WorkbenchCallback

    callback = WorkbenchCallback()
    trainer = hf_trainer(tmp_path, [callback], max_steps=100_000, eval_strategy="no", logging_steps=10,
                         lr_scheduler_type="constant")
    lr_seen = []

    def optimizer_lr():
        lr_seen.append(trainer.optimizer.param_groups[0]["lr"])  # read from this thread, no torch compute
        return lr_seen[-1] == pytest.approx(0.0123)

    def work():
        wait_for(lambda: callback.run is not None and trainer.state.global_step >= 3, what="training")
        assert run_cli("control", callback.run.id, "set-lr", "0.0123", timeout=60).returncode == 0
        wait_for(optimizer_lr, timeout=30, what="the new learning rate")
        assert run_cli("stop", callback.run.id, timeout=60).returncode == 0

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    trainer.train()
    thread.join(10)
    assert lr_seen and lr_seen[-1] == pytest.approx(0.0123)
    lrs = [value for _, value in store.metric_series(callback.run.id, "lr")]
    assert lrs[0] == pytest.approx(2e-3) and lrs[-1] == pytest.approx(0.0123)
    assert store.get_run(callback.run.id)["status"] == "stopped"


def test_under_torchrun_two_ranks_make_one_run_and_stop_and_set_lr_reach_both(tmp_path, store, runs_dir):
    """gloo on CPU: rank 0 records the run (world_size 2); set-lr and stop from another process reach both
    ranks at the same step, so neither hangs in a collective."""
    from support import start_torchrun, stop_torchrun, wait_for_recorded_run

    process = start_torchrun("hf_torchrun.py", str(tmp_path), "100000")
    try:
        run = wait_for_recorded_run(process, store)
        wait_for(lambda: store.metric_names(run["run_id"]), timeout=60, what="the first metrics")
        assert run_cli("control", run["run_id"], "set-lr", "0.0042", timeout=60).returncode == 0
        # under torchrun flushes go by step count (about every 100 steps): a few flushes on a busy machine
        wait_for(lambda: (store.last_metric(run["run_id"], "lr") or 0) == pytest.approx(0.0042), timeout=120,
                 what="the new learning rate")
        ranks = stop_torchrun(process, run["run_id"])
    finally:
        if process.poll() is None:
            process.kill()
    assert sorted(r["rank"] for r in ranks) == [0, 1]
    assert len({r["step"] for r in ranks}) == 1 and ranks[0]["step"] < 100_000  # both stopped at the same step
    assert all(r["lr"] == pytest.approx(0.0042) for r in ranks)
    assert {r["run_id"] for r in ranks} == {run["run_id"]}
    assert len(store.list_runs()) == 1
    record = store.get_run(run["run_id"])
    assert record["status"] == "stopped" and record["world_size"] == 2


def test_a_checkpoint_request_makes_hf_save_and_a_stop_saves_first(tmp_path, store):
    from workbench.integrations.transformers import WorkbenchCallback

    callback = WorkbenchCallback()
    trainer = hf_trainer(tmp_path, [callback], max_steps=100_000, eval_strategy="no", logging_steps=10)
    output = tmp_path / "hf-out"

    def work():
        wait_for(lambda: callback.run is not None and trainer.state.global_step >= 3, what="training")
        assert run_cli("control", callback.run.id, "checkpoint", timeout=60).returncode == 0
        wait_for(lambda: list(output.glob("checkpoint-*")), timeout=30, what="HF's checkpoint")
        assert run_cli("stop", callback.run.id, timeout=60).returncode == 0

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    trainer.train()
    thread.join(10)
    saved = sorted(int(path.name.split("-")[1]) for path in output.glob("checkpoint-*"))
    assert len(saved) == 2 and saved[-1] == trainer.state.global_step  # the request's, then the stop's
    assert (output / f"checkpoint-{saved[-1]}" / "optimizer.pt").exists()  # resumable by HF itself
    assert store.get_run(callback.run.id)["status"] == "stopped"
    # ... and the run lists both, newest first, as `workbench show` does
    listed = show_run(callback.run.id)["checkpoints"]
    assert [(c["kind"], c["step"], c["path"]) for c in listed] == [
        ("stop", saved[1], str(output / f"checkpoint-{saved[1]}")),
        ("manual", saved[0], str(output / f"checkpoint-{saved[0]}"))]


def test_a_layer_that_makes_nan_stops_training_as_diverged_with_the_layer_named(tmp_path, store):
    import torch

    from workbench.integrations.transformers import WorkbenchCallback

    callback = WorkbenchCallback()
    trainer = hf_trainer(tmp_path, [callback], max_steps=200, eval_strategy="no", logging_steps=5)
    broken = trainer.model.bert.encoder.layer[1].intermediate.dense
    calls = {"n": 0}

    def poison(module, inputs, output):
        calls["n"] += 1
        return output * torch.nan if calls["n"] > 12 else output

    broken.register_forward_hook(poison)
    trainer.train()
    assert trainer.state.global_step < 200
    record = store.get_run(callback.run.id)
    assert record["status"] == "diverged"
    findings = {f["code"]: f for f in store.findings(callback.run.id)}
    assert "nonfinite_grad" in findings or "nonfinite_activation" in findings, findings
    layers = {f["layer"] for f in findings.values()}
    assert "bert.encoder.layer.1.intermediate.dense" in layers, layers


def raise_at_step(step: int):
    """A user's callback that raises inside train() at one step (HF has no hook for that)."""
    from transformers import TrainerCallback

    class Raise(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == step:
                raise RuntimeError(f"raised at step {step}")

    return Raise()


def test_a_train_that_raised_and_was_caught_is_recorded_failed_and_the_next_train_is_a_new_watched_run(
        tmp_path, store):
    from workbench.integrations.transformers import UNFINISHED, WorkbenchCallback

    callback, raiser = WorkbenchCallback(name="raises"), raise_at_step(3)
    trainer = hf_trainer(tmp_path, [callback, raiser], eval_strategy="no")
    with pytest.raises(RuntimeError, match="raised at step 3"):
        trainer.train()
    first = callback.run.id
    assert store.get_run(first)["status"] == "running"  # nothing said the run ended yet
    trainer.remove_callback(raiser)
    trainer.train()  # the user tries again
    record = store.get_run(first)
    assert record["status"] == "failed" and record["reason"] == UNFINISHED
    second = store.get_run(callback.run.id)
    assert callback.run.id != first and second["status"] == "completed" and second["steps"] == 40
    assert len(store.metric_series(callback.run.id, "grad_norm")) == 40  # watched again


def test_a_train_that_raised_and_was_caught_is_failed_when_the_process_exits(tmp_path, runs_dir):
    script = f"""
import sys
sys.path.insert(0, {str(Path(__file__).resolve().parent.parent)!r})
from support.trainers import hf_trainer
from test_integrations_transformers import raise_at_step
from workbench.integrations.transformers import WorkbenchCallback
callback = WorkbenchCallback(runs_dir={str(runs_dir)!r}, name="raises")
trainer = hf_trainer({str(tmp_path)!r}, [callback, raise_at_step(3)], eval_strategy="no")
try:
    trainer.train()
except RuntimeError:
    pass
print(callback.run.id)
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                          cwd=Path(__file__).resolve().parent)
    assert done.returncode == 0, done.stderr[-2000:]
    from workbench.integrations.transformers import UNFINISHED

    record = show_run(done.stdout.split()[-1])
    assert record["status"] == "failed" and record["reason"] == UNFINISHED
