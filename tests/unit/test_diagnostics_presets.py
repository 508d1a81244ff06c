"""Every preset, trained briefly as configured, raises nothing above info; diagnostics stay cheap."""

from __future__ import annotations

import time

import pytest

from support import quick_preset
from support.diagnostics import train
from workbench.presets import discover_presets

PRESETS = sorted(discover_presets())
# Short, with probes, flushes and evaluations often enough to be judged several times. What a short run
# cannot show (plateaus, over/underfitting, late spikes) was checked on full-length runs of every preset.
SHORT = {"train.max_steps": 12, "train.eval_every": 0, "train.eval_batches": 1, "train.probe_every": 4,
         "train.log_every": 4, "train.threads": 1}
# Smaller data and inputs (and, for the slowest, fewer or thinner layers) keep this fast; the optimizer,
# schedule and loss stay as configured.
SMALLER = {
    "resnet18-transfer": {"data.args.image_size": 16, "data.args.train_size": 256, "data.args.val_size": 64,
                          "train.batch_size": 8},
    "cnn-shapes": {"data.args.train_size": 256, "data.args.val_size": 64, "data.args.image_size": 16,
                   "model.args.width_multiplier": 0.25},
    "gpt-char": {"data.args.max_chars": 20000, "data.args.block_size": 32, "model.args.n_layer": 1},
    "hf-gpt2-lm": {"data.args.max_chars": 20000, "data.args.block_size": 32, "model.args.n_layer": 1},
    "hf-gpt2-lora": {"data.args.max_chars": 20000, "data.args.block_size": 32, "model.args.n_layer": 1},
    "hf-prompt-tuning": {"data.args.max_chars": 20000, "data.args.block_size": 32, "model.args.n_layer": 1,
                         "model.args.base_steps": 40},
    "hf-bert-classifier": {"data.args.max_per_class": 200, "model.args.num_layers": 1},
    "transformer-classifier": {"data.args.max_per_class": 200, "model.args.n_layer": 1},
    "lstm-classifier": {"data.args.train_size": 1024, "data.args.val_size": 128},
    "gru-classifier": {"data.args.train_size": 1024, "data.args.val_size": 128},
}

@pytest.mark.parametrize("name", PRESETS)
def test_a_healthy_run_of_every_preset_raises_nothing_above_info(store, name):
    out = train(quick_preset(name, **SHORT, **SMALLER.get(name, {})), store)
    assert out.status == "completed"
    assert out.serious() == [], [(f["code"], f["layer"], f["message"]) for f in out.serious()]


def test_diagnostics_cost_under_two_percent_of_the_loop_on_the_smallest_model(store):
    from workbench.diagnostics.engine import DiagnosticsEngine
    from workbench.training.engine import Trainer

    class Timed(DiagnosticsEngine):
        spent = 0.0

        def _each(self, method, *args):
            started = time.thread_time()
            try:
                super()._each(method, *args)
            finally:
                Timed.spent += time.thread_time() - started

    preset = quick_preset("mlp-quadrants", **{"train.threads": 1, "train.max_steps": 800, "train.eval_every": 0})
    started = time.thread_time()
    result = Trainer(preset, store, callbacks=[Timed()]).run()
    total = time.thread_time() - started
    assert result.status == "completed"
    assert Timed.spent < 0.02 * total, (Timed.spent, total)
