"""The training engine: optimizers, schedules, losses, accumulation, clipping, control, checkpoints."""

from __future__ import annotations

import math
import threading
import time

import pytest
import torch

from support import quick_preset, wait_for
from workbench.training.trainer import Trainer
from workbench.training.telemetry import Callback, TelemetryBuffer

FAST = {"train.max_steps": 30, "train.eval_every": 0, "train.log_every": 10, "data.args.train_size": 512,
        "data.args.val_size": 128, "train.eval_batches": 2}


def train(store, callbacks=(), **overrides):
    preset = quick_preset(**{**FAST, **overrides})
    trainer = Trainer(preset, store, callbacks=callbacks)
    return trainer, trainer.run()


@pytest.mark.parametrize("name", ["sgd", "adam", "adamw", "rmsprop", "muon"])
def test_each_optimizer_builds_and_trains(store, name):
    lr = {"sgd": 0.1, "rmsprop": 1e-3, "muon": 0.02}.get(name, 3e-3)
    overrides = {"optim.name": name, "optim.lr": lr, "train.max_steps": 60}
    if name == "sgd":
        overrides["optim.nesterov"] = True
    trainer, result = train(store, **overrides)
    assert result.status == "completed", result.reason
    losses = [v for _, v in store.metric_series(result.run_id, "loss")]
    assert len(losses) == 60 and sum(losses[-10:]) < sum(losses[:10])


@pytest.mark.parametrize("schedule", ["constant", "step", "cosine", "warmup_cosine", "onecycle", "linear"])
def test_each_schedule_steps_the_lr(store, schedule):
    trainer, result = train(store, **{"schedule.name": schedule, "schedule.warmup_steps": 5,
                                      "schedule.step_size": 10, "optim.lr": 0.01})
    assert result.status == "completed"
    lrs = [v for _, v in store.metric_series(result.run_id, "lr")]
    assert len(lrs) == 30
    if schedule == "constant":
        assert lrs[0] < lrs[-1] == pytest.approx(0.01)  # warmup, then flat
    elif schedule == "step":
        assert lrs[0] == pytest.approx(0.01) and lrs[25] == pytest.approx(0.0001)
    else:
        assert max(lrs) <= 0.01 + 1e-9 and lrs[-1] < max(lrs)


@pytest.mark.parametrize("preset,loss", [("mlp-quadrants", "cross_entropy"), ("mlp-quadrants", "nll"),
                                         ("mlp-tabular-binary", "bce_with_logits"), ("mlp-tabular-binary", "mse"),
                                         ("mlp-tabular-binary", "l1")])
def test_each_loss_trains(store, preset, loss):
    overrides = {**FAST, "train.loss": loss, "train.label_smoothing": 0.1 if loss == "cross_entropy" else 0.0}
    trainer = Trainer(quick_preset(preset, **overrides), store)
    result = trainer.run()
    assert result.status == "completed", result.reason
    losses = [v for _, v in store.metric_series(result.run_id, "loss")]
    assert all(torch.isfinite(torch.tensor(losses)))


def _weights_after(store, **overrides):
    trainer, result = train(store, **{"optim.name": "sgd", "optim.momentum": 0.0, "optim.lr": 0.05,
                                      "model.args.dropout": 0.0, "schedule.name": "constant",
                                      "schedule.warmup_steps": 0, "train.grad_clip": 0.0, **overrides})
    assert result.status == "completed"
    return torch.cat([p.detach().flatten() for p in trainer.model.parameters()])


def test_gradient_accumulation_equals_a_bigger_batch(store):
    big = _weights_after(store, **{"train.batch_size": 64, "train.grad_accum": 1, "train.max_steps": 10})
    accumulated = _weights_after(store, **{"train.batch_size": 32, "train.grad_accum": 2, "train.max_steps": 10})
    assert torch.allclose(big, accumulated, atol=1e-5)


class StepSpy(Callback):
    """Wraps optimizer.step to see the gradients the optimizer actually applies."""

    def __init__(self):
        self.applied_norms: list[float] = []

    def on_setup(self, trainer):
        original = trainer.optimizer.step

        def step(*args, **kwargs):
            grads = [p.grad for p in trainer.trainable if p.grad is not None]
            self.applied_norms.append(float(torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)))))
            return original(*args, **kwargs)

        trainer.optimizer.step = step


def test_clipping_bounds_the_applied_norm_and_logs_the_pre_clip_norm(store):
    spy = StepSpy()
    trainer, result = train(store, [spy], **{"train.grad_clip": 0.05, "schedule.name": "constant",
                                              "schedule.warmup_steps": 0})
    assert result.status == "completed"
    assert max(spy.applied_norms) <= 0.05 + 1e-5
    logged = [v for _, v in store.metric_series(result.run_id, "grad_norm")]
    assert max(logged) > 0.05  # the logged norm is the one before clipping


def test_control_from_another_thread(store):
    buffer = TelemetryBuffer()
    preset = quick_preset(**{**FAST, "train.max_steps": 200_000, "train.log_every": 5,
                             "schedule.name": "constant", "schedule.warmup_steps": 0})
    trainer = Trainer(preset, store, callbacks=[buffer])
    thread = trainer.start()
    assert trainer.wait_started(60)
    wait_for(lambda: trainer.step >= 20, timeout=30, interval=0.01, what="20 steps")
    trainer.pause()
    wait_for(lambda: trainer.paused, timeout=30, interval=0.01, what="the pause")
    paused_at = trainer.step
    time.sleep(0.5)  # not a wait for a condition: nothing may happen in this window
    assert trainer.paused and trainer.step == paused_at
    trainer.set_lr(0.123)
    trainer.checkpoint_now()
    trainer.resume()
    wait_for(lambda: trainer.step >= paused_at + 20, timeout=30, interval=0.01, what="training to go on")
    assert trainer.optimizer.param_groups[0]["lr"] == pytest.approx(0.123)
    trainer.stop()
    thread.join(30)
    assert not thread.is_alive()
    assert trainer.result.status == "stopped"
    run = store.get_run(trainer.run_id)
    assert run["status"] == "stopped" and run["steps"] == trainer.step
    kinds = {c["kind"] for c in store.checkpoints(trainer.run_id)}
    assert {"manual", "stop"} <= kinds
    _, events = buffer.drain()
    assert any(e.kind == "status" and e.text == "stopped" for e in events)
    with pytest.raises(ValueError):
        trainer.set_lr(-1)


def test_set_lr_keeps_the_schedule_shape(store):
    from workbench.training.optim import build_optimizer, build_scheduler, scale_learning_rate

    preset = quick_preset(**{"schedule.name": "warmup_cosine", "schedule.warmup_steps": 10, "optim.lr": 0.1})
    model = torch.nn.Linear(2, 2)
    optimizer = build_optimizer(model, preset.optim)
    scheduler = build_scheduler(optimizer, preset.schedule, 100)
    for _ in range(30):
        optimizer.step()
        scheduler.step()
    before = optimizer.param_groups[0]["lr"]
    scale_learning_rate(optimizer, scheduler, before / 10)
    assert optimizer.param_groups[0]["lr"] == pytest.approx(before / 10)
    optimizer.step()
    scheduler.step()
    assert optimizer.param_groups[0]["lr"] < before / 10  # still decaying along the cosine


def test_checkpoint_resume_matches_uninterrupted_run(store):
    overrides = {"train.max_steps": 40, "train.eval_every": 20, "train.checkpoint_every": 20}
    _, full = train(store, **overrides)
    full_losses = store.metric_series(full.run_id, "loss")

    class StopAt(Callback):
        def on_batch(self, trainer, batch):
            if trainer.step == 20:
                trainer.stop()

    trainer, partial = train(store, [StopAt()], **overrides)
    assert partial.status == "stopped" and partial.steps == 20
    resumed = Trainer(trainer.preset, store, resume_run_id=partial.run_id).run()
    assert resumed.status == "completed" and resumed.run_id == partial.run_id and resumed.steps == 40
    resumed_losses = store.metric_series(partial.run_id, "loss")
    assert [s for s, _ in resumed_losses] == [s for s, _ in full_losses]
    assert [v for _, v in resumed_losses] == pytest.approx([v for _, v in full_losses], rel=1e-5, abs=1e-6)


def test_checkpoints_are_pruned_and_load_weights_only(store):
    from workbench.training.checkpoints import load_checkpoint

    trainer, result = train(store, **{"train.max_steps": 50, "train.checkpoint_every": 10,
                                      "train.keep_checkpoints": 2, "train.eval_every": 25})
    files = sorted((store.run_dir(result.run_id) / "checkpoints").glob("step-*.pt"))
    assert [f.name for f in files] == ["step-000000040.pt", "step-000000050.pt"]
    state = load_checkpoint(files[-1])
    assert state["step"] == 50 and set(state) >= {"model", "optimizer", "scheduler", "rng", "data"}
    assert (store.run_dir(result.run_id) / "checkpoints" / "best.pt").is_file()


def test_exception_in_user_code_fails_the_run_and_keeps_history(store, tmp_path):
    model_file = tmp_path / "boom.py"
    model_file.write_text(
        "import torch\n"
        "class Boom(torch.nn.Module):\n"
        "    def __init__(self):\n"
        "        super().__init__(); self.lin = torch.nn.Linear(2, 4); self.calls = 0\n"
        "    def forward(self, x):\n"
        "        self.calls += 1\n"
        "        if self.calls > 15:\n"
        "            raise RuntimeError('user bug in forward')\n"
        "        return self.lin(x)\n"
        "def build():\n"
        "    return Boom()\n"
    )
    trainer, result = train(store, **{"model.kind": "custom", "model.target": f"{model_file}:build",
                                      "model.args": {}, "train.log_every": 5})
    assert result.status == "failed" and "user bug in forward" in result.reason
    run = store.get_run(result.run_id)
    assert run["status"] == "failed" and "RuntimeError" in run["traceback"]
    assert len(store.metric_series(result.run_id, "loss")) == 15


def test_nonfinite_loss_stops_as_diverged_before_touching_weights(store, tmp_path):
    data_file = tmp_path / "nan_data.py"
    data_file.write_text(
        "import torch\n"
        "from torch.utils.data import TensorDataset\n"
        "def build(n=512):\n"
        "    g = torch.Generator().manual_seed(0)\n"
        "    x = torch.randn(n, 2, generator=g)\n"
        "    y = (x[:, 0] > 0).long()\n"
        "    x[::50] = float('nan')  # a few corrupt rows\n"
        "    return TensorDataset(x, y), TensorDataset(x[1:49], y[1:49])\n"
    )
    trainer, result = train(store, **{"data.kind": "custom", "data.target": f"{data_file}:build", "data.args": {},
                                      "train.max_steps": 200})
    assert result.status == "diverged"
    assert all(torch.isfinite(p).all() for p in trainer.model.parameters())
    assert any(code.startswith("nonfinite") for code, _ in trainer.findings)
    assert any(c["kind"] == "last_good" for c in store.checkpoints(result.run_id))
    losses = store.metric_series(result.run_id, "loss")
    assert losses[-1][0] == result.steps and losses[-1][1] is None  # the NaN step is recorded (as null)


def test_ema_and_early_stopping(store):
    trainer, result = train(store, **{"train.ema_decay": 0.9, "train.eval_every": 5, "train.max_steps": 400,
                                      "train.early_stop_patience": 2, "optim.lr": 1e-9,
                                      "train.early_stop_min_delta": 1e-4,
                                      "schedule.name": "constant", "schedule.warmup_steps": 0})
    assert trainer.ema is not None
    assert result.status == "completed"
    assert result.steps < 400 and "early stopping" in (result.reason or "")


def test_telemetry_rows_cover_the_contract(store):
    buffer = TelemetryBuffer()
    trainer, result = train(store, [buffer], **{"train.eval_every": 10, "train.probe_every": 10})
    batches, events = buffer.drain()
    names = {name for batch in batches for _, name, _ in batch.rows}
    assert {"loss", "grad_norm", "lr", "steps_per_s", "samples_per_s", "mem/rss_mb", "val_loss",
            "val_accuracy"} <= names
    assert "mem/cuda_allocated_mb" not in names  # CPU runs report process RSS, labelled as such
    layers = store.metric_names(result.run_id)
    assert any(n.startswith("grad_norm/") for n in layers) and any(n.startswith("update_ratio/") for n in layers)
    assert any(e.kind == "setup" for e in events)


@pytest.mark.slow
def test_torch_compile_switch(store):
    trainer, result = train(store, **{"train.compile": True, "train.max_steps": 3})
    assert result.status == "completed", result.reason
    assert trainer.forward_model is not trainer.model


def test_bf16_autocast_on_cpu_and_fp16_refused_without_cuda(store):
    trainer, result = train(store, **{"train.precision": "bf16", "train.max_steps": 20})
    assert result.status == "completed", result.reason
    assert trainer.autocast_dtype == torch.bfloat16 and trainer.scaler is None
    if not torch.cuda.is_available():
        trainer, result = train(store, **{"train.precision": "fp16"})
        assert result.status == "invalid" and "fp16 needs a CUDA device" in result.reason


@pytest.mark.parametrize("max_steps,pct_start", [(5, 0.2), (4, 0.25), (10, 0.1), (2, 0.5), (3, 0.3), (1, 0.3)])
def test_onecycle_survives_runs_whose_warm_phase_ends_at_step_zero(max_steps, pct_start):
    """torch's OneCycleLR divides by zero when pct_start * total_steps == 1 (cnn-shapes at 5 steps did)."""
    from workbench.config import ScheduleConfig
    from workbench.training.optim import build_scheduler

    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    scheduler = build_scheduler(optimizer, ScheduleConfig(name="onecycle", pct_start=pct_start), max_steps)
    lrs = []
    for _ in range(max_steps - 1):  # torch allows total_steps - 1 steps after the initial one
        optimizer.step()
        scheduler.step()
        lrs.append(optimizer.param_groups[0]["lr"])
    assert all(math.isfinite(lr) and 0 < lr <= 0.1 + 1e-12 for lr in lrs)
