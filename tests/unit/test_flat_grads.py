"""CPU training keeps the gradients in one flat buffer: the same training, the same logged norms, and the
buffer given up when a parameter gets no gradient (a zero there would make the optimizer step it)."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import workbench.training.trainer as trainer_module
from support import quick_preset
from workbench.training.flat_grads import FlatGrads
from workbench.training.telemetry import Callback
from workbench.training.trainer import Trainer

FAST = {"train.max_steps": 40, "train.eval_every": 0, "train.log_every": 10, "data.args.train_size": 512,
        "data.args.val_size": 128, "train.eval_batches": 2, "train.probe_every": 10}


def run(store, monkeypatch, flat: bool, callbacks=(), **overrides):
    if not flat:
        monkeypatch.setattr(FlatGrads, "suits", staticmethod(lambda *args: False))
    trainer = Trainer(quick_preset(**{**FAST, **overrides}), store, callbacks=list(callbacks))
    result = trainer.run()
    monkeypatch.undo()
    assert result.status == "completed", result.reason
    weights = torch.cat([p.detach().flatten() for p in trainer.model.parameters()])
    return trainer, weights, [v for _, v in store.metric_series(result.run_id, "grad_norm")]


@pytest.mark.parametrize("clip", [0.0, 0.5])
def test_the_buffer_trains_as_freed_gradients_do_and_logs_the_same_norms(store, monkeypatch, clip):
    with_buffer, weights, norms = run(store, monkeypatch, True, **{"train.grad_clip": clip})
    without, reference_weights, reference_norms = run(store, monkeypatch, False, **{"train.grad_clip": clip})
    assert with_buffer.flat_grads is not None and without.flat_grads is None
    assert len(norms) == 40
    assert torch.equal(weights, reference_weights)  # the very same numbers, clipped or not
    if clip:
        assert max(norms) > clip  # the logged norm is the one before clipping
    assert norms == pytest.approx(reference_norms, rel=1e-4)


def test_gradient_accumulation_accumulates_into_the_buffer(store, monkeypatch):
    overrides = {"train.grad_accum": 3, "train.grad_clip": 0.0}
    _, weights, norms = run(store, monkeypatch, True, **overrides)
    _, reference_weights, reference_norms = run(store, monkeypatch, False, **overrides)
    assert torch.equal(weights, reference_weights)
    assert norms == pytest.approx(reference_norms, rel=1e-4)


class Spare(nn.Module):
    """An MLP with a `spare` layer the forward uses only while `use_spare` is set."""

    def __init__(self, use_spare: bool):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(2, 32), nn.ReLU(), nn.Linear(32, 4))
        self.spare = nn.Linear(2, 4)
        self.use_spare = use_spare

    def forward(self, x):
        out = self.body(x)
        return out + self.spare(x) if self.use_spare else out


class Logs(Callback):
    def __init__(self):
        self.texts: list[str] = []

    def on_event(self, run, event) -> None:
        self.texts.append(event.text)


def model_run(store, monkeypatch, model: nn.Module, callbacks=()):
    monkeypatch.setattr(trainer_module, "build_model", lambda preset, info: model)
    trainer = Trainer(quick_preset(**FAST, **{"optim.name": "adamw", "optim.weight_decay": 0.1}), store,
                      callbacks=list(callbacks))
    result = trainer.run()
    assert result.status == "completed", result.reason
    return trainer


def test_a_parameter_that_never_gets_a_gradient_keeps_the_freed_gradients_and_is_never_stepped(store, monkeypatch):
    model, logs = Spare(use_spare=False), Logs()
    spare = model.spare.weight.detach().clone()
    trainer = model_run(store, monkeypatch, model, [logs])
    assert trainer.flat_grads is None
    assert [t for t in logs.texts if "got no gradient" in t] == [
        "spare.weight got no gradient at step 0: gradients are freed after each step from now on (not kept in "
        "one buffer)"]
    # freed gradients: AdamW skips the parameter, weight decay included
    assert torch.equal(model.spare.weight.detach(), spare)


class DropsTheSpareAfterAProbe(Callback):
    def __init__(self, model: Spare, at: int):
        self.model, self.at = model, at

    def on_probe_end(self, run, step, probe) -> None:
        if step == self.at:
            self.model.use_spare = False


def test_a_parameter_that_stops_getting_a_gradient_is_found_on_the_next_probe(store, monkeypatch):
    model, logs = Spare(use_spare=True), Logs()
    trainer = model_run(store, monkeypatch, model, [logs, DropsTheSpareAfterAProbe(model, at=10)])
    assert trainer.flat_grads is None
    said = [t for t in logs.texts if "got no gradient" in t]
    assert len(said) == 1 and said[0].startswith("spare.weight got no gradient at step 20"), said  # probes: 10 apart
    assert model.spare.weight.grad is None  # freed after each step from then on: AdamW skips the layer


class FreesGradients(Callback):
    """Frees the gradients at every flush, as a callback calling model.zero_grad() would."""

    def on_batch(self, run, batch) -> None:
        run.optimizer.zero_grad(set_to_none=True)


def test_gradients_freed_by_someone_else_are_taken_back_into_the_buffer(store, monkeypatch):
    _, weights, norms = run(store, monkeypatch, True, [FreesGradients()], **{"train.grad_clip": 0.0})
    _, reference_weights, reference_norms = run(store, monkeypatch, False, **{"train.grad_clip": 0.0})
    assert torch.equal(weights, reference_weights)
    assert norms == pytest.approx(reference_norms, rel=1e-4)


def named(*tensors):
    params = [nn.Parameter(t.clone()) for t in tensors]
    return [(f"p{i}", p) for i, p in enumerate(params)], params


def test_clip_and_norm_match_torch():
    named_params, params = named(torch.randn(5, 3), torch.randn(7))
    flat = FlatGrads(named_params)
    grads = [torch.randn_like(p) * 4 for p in params]
    for p, g in zip(params, grads):
        p.grad = g.clone()
    assert flat.adopt() is None and flat.holds_grads()
    reference = [nn.Parameter(p.detach().clone()) for p in params]
    for p, g in zip(reference, grads):
        p.grad = g.clone()
    expected = torch.nn.utils.clip_grad_norm_(reference, 1.0).item()
    assert flat.clip(1.0) == expected
    for p, r in zip(params, reference):
        assert torch.equal(p.grad, r.grad)  # bit for bit torch's clipping
    flat.zero()
    assert flat.norm() == 0.0 and all(p.grad.abs().sum() == 0 for p in params)


def test_non_finite_and_overflowing_gradients_read_truly():
    named_params, params = named(torch.zeros(4), torch.zeros(3))
    flat = FlatGrads(named_params)
    for p in params:
        p.grad = torch.zeros_like(p)
    flat.adopt()
    params[0].grad[0] = 1e20  # its square overflows float32; the norm does not
    assert flat.norm() == pytest.approx(1e20, rel=1e-6)
    params[1].grad[2] = math.inf
    assert flat.norm() == math.inf
    params[1].grad[1] = math.nan
    assert math.isnan(flat.norm())


def test_the_buffer_is_only_for_dense_single_dtype_cpu_training():
    _, params = named(torch.zeros(3), torch.zeros(2))
    cpu = torch.device("cpu")
    assert FlatGrads.suits(params, cpu, distributed=False, compiled=False, scaled=False)
    assert not FlatGrads.suits(params, torch.device("cuda"), distributed=False, compiled=False, scaled=False)
    assert not FlatGrads.suits(params, cpu, distributed=True, compiled=False, scaled=False)
    assert not FlatGrads.suits(params, cpu, distributed=False, compiled=True, scaled=False)
    assert not FlatGrads.suits([nn.Parameter(torch.zeros(2, dtype=torch.bfloat16))], cpu, False, False, False)
    assert not FlatGrads.suits([params[0], nn.Parameter(torch.zeros(2, dtype=torch.float64))], cpu, False, False,
                               False)
