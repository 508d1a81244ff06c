"""Every preset, trained briefly as configured, raises nothing above info; diagnostics stay cheap."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from support import quick_preset
from support.diagnostics import custom_data, fast_preset, train
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

# The MLPs stay in the fast tier; the other presets build bigger models (and prompt tuning pre-trains).
@pytest.mark.parametrize("name", [name if name.startswith("mlp-") else pytest.param(name, marks=pytest.mark.slow)
                                  for name in PRESETS])
def test_a_healthy_run_of_every_preset_raises_nothing_above_info(store, name):
    out = train(quick_preset(name, **SHORT, **SMALLER.get(name, {})), store)
    assert out.status == "completed"
    assert out.serious() == [], [(f["code"], f["layer"], f["message"]) for f in out.serious()]


# Healthy runs that converge by their first evaluations on noisy, overlapping classes (Gaussian clouds whose
# best possible loss is well above 0): afterwards the val loss only moves within its noise while the training
# loss creeps down. (seed, train samples, val samples, hidden width, cloud spread, schedule). The first three
# raised `overfitting` as a warning while the training loss set beside an evaluation was a mean reaching
# back to the first steps and val changes did not have to beat their noise.
OVERLAPPING = [
    (1, 1024, 1024, 128, 0.75, "constant"),
    (1, 1024, 1024, 256, 0.75, "constant"),
    (2, 2048, 1024, 256, 0.75, "constant"),
    (3, 4096, 256, 64, 0.75, "constant"),
    (4, 2048, 4096, 128, 0.75, "constant"),
    (5, 1024, 512, 256, 0.9, "constant"),
    (6, 2048, 1024, 128, 0.6, "warmup_cosine"),
    (7, 1024, 2048, 128, 1.0, "constant"),
    (8, 512, 1024, 64, 0.75, "warmup_cosine"),
    (9, 8192, 1024, 256, 0.75, "constant"),
]


def overlapping_run(store, seed, train_size, val_size, hidden, spread, schedule):
    overrides = {"train.max_steps": 400, "train.eval_every": 50, "train.log_every": 25,
                 "train.eval_batches": val_size // 64, "train.seed": seed, "model.args.hidden": [hidden, hidden],
                 "model.args.dropout": 0.0, "schedule.name": schedule}
    if schedule == "constant":
        overrides["schedule.warmup_steps"] = 0
    return train(fast_preset(**overrides, **custom_data("overlapping_blobs", train_size=train_size,
                                                         val_size=val_size, spread=spread, seed=seed)), store)


def test_a_run_that_converged_early_on_overlapping_classes_is_not_overfitting(store):
    out = overlapping_run(store, *OVERLAPPING[0])
    assert out.status == "completed"
    assert out.serious() == [], [(f["code"], f["message"], f["evidence"]) for f in out.serious()]


@pytest.mark.slow
@pytest.mark.parametrize("case", OVERLAPPING[1:], ids=lambda c: "seed{}-train{}-val{}-h{}-s{}-{}".format(*c))
def test_healthy_runs_on_noisy_overlapping_data_raise_nothing_above_info(store, case):
    out = overlapping_run(store, *case)
    assert out.status == "completed"
    assert out.serious() == [], [(f["code"], f["message"], f["evidence"]) for f in out.serious()]


@pytest.mark.slow
def test_diagnostics_cost_under_two_percent_of_the_loop_on_the_smallest_model(store):
    from workbench.diagnostics.engine import DiagnosticsEngine
    from workbench.training.trainer import Trainer

    class Timed(DiagnosticsEngine):
        spent = 0.0

        def _each(self, method, *args):
            started = time.thread_time()
            try:
                super()._each(method, *args)
            finally:
                Timed.spent += time.thread_time() - started

    # the preset's own 1,500 steps: the detectors' one-off set-up (hashing the data for val_overlaps_train)
    # is not a per-step cost, and 800 steps of the faster loop (flat gradients) last only ~0.85 s
    preset = quick_preset("mlp-quadrants", **{"train.threads": 1, "train.eval_every": 0})
    started = time.thread_time()
    result = Trainer(preset, store, callbacks=[Timed()]).run()
    total = time.thread_time() - started
    assert result.status == "completed"
    assert Timed.spent < 0.02 * total, (Timed.spent, total)


# The benchmarks' default-settings custom preset (constant LR 3e-3, no clipping, no warmup): once the model
# fits, a typical batch's gradient norm is tiny and a batch with a misclassified sample has 15x the running
# median, with its loss. It raised `exploding_gradients` as a warning at step 1,902 when a spike had only
# to beat the median norm.
CUSTOM_MLP = Path(__file__).resolve().parents[2] / "benchmarks" / "custom" / "custom-mlp.toml"


def test_hard_batches_late_in_a_constant_lr_run_are_not_exploding_gradients(store):
    from workbench.presets import load_preset

    out = train(load_preset(str(CUSTOM_MLP), ["train.max_steps=2000", "train.threads=1"]), store)
    assert out.status == "completed"
    assert out.serious() == [], [(f["code"], f["message"], f["evidence"]) for f in out.serious()]
