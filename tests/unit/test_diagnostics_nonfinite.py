"""Non-finite loss, gradients and activations: each built on purpose, traced to the module that made it."""

from __future__ import annotations

import json
import math
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from support.diagnostics import custom_data, custom_model, fast_preset, healthy_run, train


def test_nan_from_a_custom_layer_is_traced_to_that_layer(store):
    out = train(fast_preset(**custom_model("nan_after", after=30)), store)
    assert out.status == "diverged"
    assert out.layers("nonfinite_activation") == {"bad"}
    assert out.layers("nonfinite_loss") == {"bad"}
    finding = out.of("nonfinite_loss")[0]
    assert finding["step"] == 30 and finding["severity"] == "critical"
    assert "`bad`" in finding["message"] and finding["remedy"]
    kinds = {c["kind"] for c in store.checkpoints(out.trainer.run_id)}
    assert "last_good" in kinds  # the engine keeps the weights from before the bad step


def test_overflow_from_a_huge_init_is_traced_to_the_layer(store):
    out = train(fast_preset(**custom_model("exp_overflow", scale=1e4)), store)
    assert out.status == "diverged"
    activation = out.of("nonfinite_activation")
    assert [f["layer"] for f in activation] == ["bad"] and activation[0]["step"] == 0


def test_functional_code_is_blamed_on_the_module_whose_forward_runs_it(store):
    out = train(fast_preset(**custom_model("functional_log")), store)
    assert out.status == "diverged"
    finding = out.of("nonfinite_activation")[0]
    assert finding["layer"] == "block"
    assert "block.fc2" in finding["message"]  # it names the call the NaN reached first


def test_nan_in_the_data_is_blamed_on_the_data(store):
    out = train(fast_preset(**custom_data("quadrants_with_nan", every=97)), store)
    assert out.status == "diverged"
    assert "nonfinite_input" in out.codes()
    data = out.of("nonfinite_input")[0]
    assert data["layer"] is None and data["evidence"]["input_nonfinite_values"] >= 1
    assert out.layers("nonfinite_loss") == {None}
    assert "nonfinite_activation" not in out.codes()  # the model did nothing wrong


def test_nan_targets_are_blamed_on_the_data(store):
    preset = fast_preset(**custom_model("mlp", outputs=1), **custom_data("shifted_regression", offset=0.0,
                                                                         nan_every=300),
                         **{"task": "regression", "train.loss": "mse"})
    out = train(preset, store)
    assert out.status == "diverged"
    finding = out.of("nonfinite_input")[0]
    assert finding["evidence"]["target_nonfinite_values"] >= 1 and "targets" in finding["message"]


def test_nonfinite_gradient_with_a_finite_loss_names_the_backward_that_broke(store):
    out = train(fast_preset(**custom_model("where_sqrt")), store)
    assert out.status == "diverged"
    finding = out.of("nonfinite_grad")[0]
    assert finding["layer"] == "bad"
    assert math.isfinite(finding["evidence"]["replay_loss"])
    assert finding["evidence"]["first_nonfinite_grad_param"] == "fc1.bias"  # backward order: fc1's bias first


def test_a_custom_backward_that_emits_inf_is_named(store):
    out = train(fast_preset(**custom_model("gradient_burst", every=30, factor=1e39, stay=True)), store)
    assert out.status == "diverged"
    assert out.layers("nonfinite_grad") == {"bad"}
    assert out.of("nonfinite_grad")[0]["step"] == 29


def test_divergence_from_a_too_high_learning_rate_blames_the_lr(store):
    preset = fast_preset(**{"optim.name": "sgd", "optim.lr": 5.0, "train.grad_clip": 0.0})
    out = train(preset, store)
    assert out.status == "diverged"
    assert out.codes() & {"nonfinite_loss", "nonfinite_grad"}
    lr = out.of("lr_too_high")
    assert lr and 1.0 < lr[0]["evidence"]["lr"] <= 5.0  # the LR at the time (warming up towards 5)


def test_healthy_run_has_no_nonfinite_findings():
    out = healthy_run()
    assert out.status == "completed" and not [c for c in out.codes() if c.startswith("nonfinite")]


def test_replay_leaves_weights_buffers_grads_and_rng_untouched():
    from workbench.diagnostics.nonfinite import replay_batch

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Dropout(0.5), nn.Linear(8, 2))
    trainer = SimpleNamespace(model=model, device=torch.device("cpu"), autocast_dtype=None,
                              loss_fn=nn.functional.cross_entropy)
    x = torch.randn(16, 3)
    x[3, 1] = float("inf")
    y = torch.randint(0, 2, (16,))
    weights = {k: v.clone() for k, v in model.state_dict().items()}
    rng = torch.get_rng_state()
    replay = replay_batch(trainer, (x, y))
    assert replay.reproduced and replay.input_nonfinite == 1 and replay.first_bad_output == "0"
    assert all(torch.equal(weights[k], v) for k, v in model.state_dict().items())  # incl. BN running stats
    assert torch.equal(rng, torch.get_rng_state())
    assert all(p.grad is None for p in model.parameters())


def test_out_of_memory_is_reported_with_remedies(store, tmp_path):
    source = tmp_path / "oom.py"
    source.write_text(
        "import torch\nfrom torch import nn\n"
        "class Hungry(nn.Module):\n"
        "    def __init__(self):\n        super().__init__()\n        self.fc = nn.Linear(2, 4)\n        self.calls = 0\n"
        "    def forward(self, x):\n        self.calls += 1\n"
        "        if self.calls > 5:\n            raise torch.OutOfMemoryError('CUDA out of memory. Tried to allocate 2 GiB')\n"
        "        return self.fc(x)\n"
        "def model():\n    return Hungry()\n")
    out = train(fast_preset(**{"model.kind": "custom", "model.target": f"{source}:model", "model.args": {}}), store)
    assert out.status == "failed"
    finding = out.of("out_of_memory")[0]
    assert finding["severity"] == "critical"
    for word in ("batch_size", "grad_accum", "bf16", "checkpointing"):
        assert word in finding["remedy"]


def test_cli_exits_3_and_reports_the_layer_in_json(capsys, tmp_path):
    from workbench.cli import main
    from workbench.presets import preset_to_toml

    path = tmp_path / "nan.toml"
    path.write_text(preset_to_toml(fast_preset(**custom_model("nan_after", after=10))))
    code = main(["train", str(path), "--json"])
    summary = json.loads(capsys.readouterr().out)
    assert code == 3 and summary["status"] == "diverged"
    layers = {(f["code"], f["layer"]) for f in summary["findings"]}
    assert ("nonfinite_activation", "bad") in layers and ("nonfinite_loss", "bad") in layers


def test_without_the_batch_the_step_is_still_reported_and_the_lr_judged():
    """On CUDA the loss is read back at flushes, when the batch is gone: no replay, but a finding."""
    from workbench.diagnostics.base import History
    from workbench.diagnostics.nonfinite import NonFiniteDetector

    model = nn.Linear(4, 2)
    reports = []
    trainer = SimpleNamespace(model=model, optimizer=SimpleNamespace(param_groups=[{"lr": 0.5}]))
    ctx = SimpleNamespace(trainer=trainer, history=History(), current_lr=lambda: 0.5,
                          report=lambda code, step, message, evidence, layer=None: reports.append(
                              (code, step, layer, message, evidence)))
    detector = NonFiniteDetector()
    detector.setup(ctx)
    with torch.no_grad():
        model.weight.mul_(100.0)  # the weights blew up before the bad step
    detector.nonfinite(ctx, 123, None, "loss")
    codes = {code: (step, layer, message) for code, step, layer, message, _ in reports}
    assert codes["nonfinite_loss"][:2] == (123, None) and "no longer available" in codes["nonfinite_loss"][2]
    assert "grew" in codes["lr_too_high"][2]
