"""The bugs practitioners write: probabilities into a logits loss, unnormalised inputs, a validation set that
overlaps the training set, saturated tanh/sigmoid layers, and a model stuck at chance. Each is built with a
plain PyTorch model or dataset (tests/support/zoo.py) and has a healthy twin that must stay quiet."""

from __future__ import annotations

import math

import pytest

from support import quick_preset
from support.diagnostics import custom_data, custom_model, fast_preset, healthy_run, train

NEW_CODES = {"loss_on_probabilities", "unnormalized_inputs", "val_overlaps_train", "saturated_activations",
             "chance_level"}
CONSTANT = {"schedule.name": "constant", "schedule.warmup_steps": 0}


def binary_preset(**overrides):
    return quick_preset("mlp-tabular-binary", **{"train.threads": 1, "train.probe_every": 50, "train.eval_every": 100,
                                                 "train.log_every": 25, "data.args.train_size": 2048,
                                                 "data.args.val_size": 512, **overrides})


# -- loss_on_probabilities ----------------------------------------------------------------------------
def test_a_final_softmax_before_cross_entropy_is_named_and_slows_training(store):
    bug = train(fast_preset(**custom_model("probability_output"), **{"train.max_steps": 300}), store)
    twin = train(fast_preset(**custom_model("probability_output", final=False), **{"train.max_steps": 300}), store)
    finding = bug.of("loss_on_probabilities")[0]
    assert finding["layer"] == "probs" and finding["step"] == 0 and finding["severity"] == "warning"
    assert finding["evidence"]["last_module"] == "probs" and finding["evidence"]["row_sum_error"] < 1e-3
    assert not twin.codes() & NEW_CODES
    # the bug itself: softmax of probabilities in [0, 1] never gets below ln(1 + 3/e) = 0.74 even when right
    floor = math.log(1 + 3 / math.e)
    assert bug.trainer.last_eval["val_loss"] > floor > 2 * twin.trainer.last_eval["val_loss"]


def test_softmax_in_the_forward_code_is_caught_without_a_layer(store):
    out = train(fast_preset(**custom_model("probability_output", functional=True), **{"train.max_steps": 30}), store)
    finding = out.of("loss_on_probabilities")[0]
    assert finding["layer"] is None and finding["evidence"]["produced_by"] is None
    assert finding["evidence"]["last_module"] == "probs"  # defined, but not what made the output


def test_a_final_sigmoid_before_bce_with_logits(store):
    bug = train(binary_preset(**custom_model("probability_output", inputs=20, outputs=1), **{"train.max_steps": 60}),
                store)
    twin = train(binary_preset(**custom_model("probability_output", inputs=20, outputs=1, final=False),
                               **{"train.max_steps": 60}), store)
    assert bug.layers("loss_on_probabilities") == {"probs"}
    assert "loss_on_probabilities" not in twin.codes()


# -- unnormalized_inputs ------------------------------------------------------------------------------
def test_features_in_their_own_units_feeding_the_first_linear(store):
    bug = train(fast_preset(**custom_data("scaled_quadrants"), **{"train.max_steps": 30}), store)
    twin = train(fast_preset(**custom_data("scaled_quadrants", standardise=True), **{"train.max_steps": 30}), store)
    finding = bug.of("unnormalized_inputs")[0]
    assert finding["layer"] == "body.0" and finding["step"] == 0
    assert finding["evidence"]["largest_scale"] > 10_000 and finding["evidence"]["ratio"] > 100
    assert finding["evidence"]["largest_feature"] == 0 and finding["evidence"]["smallest_feature"] == 1
    assert not twin.codes() & NEW_CODES


def test_raw_0_to_255_pixels_feeding_a_conv(store):
    bug = train(fast_preset(**custom_data("raw_pixels"), **custom_model("small_conv"), **{"train.max_steps": 30}),
                store)
    twin = train(fast_preset(**custom_data("raw_pixels", scale=1.0), **custom_model("small_conv"),
                             **{"train.max_steps": 30}), store)
    finding = bug.of("unnormalized_inputs")[0]
    assert finding["layer"] == "conv" and finding["evidence"]["features"] == 3  # channels, not pixels
    assert not twin.codes() & NEW_CODES


def test_never_on_a_data_table_but_on_the_same_file_loaded_raw(store, tmp_path):
    from support.datafiles import table_rows, write_csv

    path = write_csv(tmp_path / "flowers.csv", table_rows(600))  # x1 ~ 500 +- 100, x2 ~ 0 +- 0.01, a colour
    table = train(fast_preset(**{"data.kind": "table", "data.args": {"path": str(path), "label": "species"},
                                 "train.max_steps": 30}), store)  # what `--data flowers.csv` trains
    raw = train(fast_preset(**custom_data("raw_csv", path=str(path), label="species"), **{"train.max_steps": 30}),
                store)
    assert table.status == "completed" and not table.codes() & NEW_CODES
    finding = raw.of("unnormalized_inputs")[0]
    assert finding["layer"] == "body.0" and finding["evidence"]["ratio"] > 1000


def test_inputs_behind_a_normalisation_layer_are_not_judged(store):
    """mlp-tabular-binary normalises after its first Linear; here a LayerNorm comes first, so raw scales are fine."""
    import torch

    from workbench.diagnostics.inputs import UnnormalizedInputsDetector
    from types import SimpleNamespace

    model = torch.nn.Sequential(torch.nn.LayerNorm(2), torch.nn.Linear(2, 4))
    x = torch.tensor([[50_000.0, 40.0], [20_000.0, 70.0]]).repeat(16, 1)
    reports = []
    ctx = SimpleNamespace(model=model, preset=SimpleNamespace(data=SimpleNamespace(kind="custom")),
                          train_batches=lambda rows: [(x, torch.zeros(len(x)))],
                          report=lambda *a, **k: reports.append((a, k)))
    detector = UnnormalizedInputsDetector()
    detector.setup(ctx)
    detector.probe_start(ctx, 0)
    model(x)
    detector.probe_end(ctx, 0, {})
    assert reports == [] and detector.handles == []


# -- val_overlaps_train -------------------------------------------------------------------------------
def test_a_split_made_after_oversampling_leaks_copies_into_validation(store):
    bug = train(fast_preset(**custom_data("oversampled"), **{"train.max_steps": 30}), store)
    twin = train(fast_preset(**custom_data("oversampled", split_after=False), **{"train.max_steps": 30}), store)
    finding = bug.of("val_overlaps_train")[0]
    assert finding["layer"] is None and finding["step"] == 0
    assert finding["evidence"]["fraction"] > 0.9 and finding["evidence"]["val_checked"] == 256
    assert not twin.codes() & NEW_CODES


# -- saturated_activations ----------------------------------------------------------------------------
@pytest.mark.parametrize("activation, weight_std", [("tanh", 8.0), ("sigmoid", 24.0)])
def test_tanh_and_sigmoid_saturated_by_a_too_large_init(store, activation, weight_std):
    bug = train(fast_preset(**custom_model("mlp", activation=activation, weight_std=weight_std),
                            **{"train.max_steps": 60}), store)
    twin = train(fast_preset(**custom_model("mlp", activation=activation), **{"train.max_steps": 60}), store)
    assert bug.layers("saturated_activations") == {"body.1", "body.3"}
    finding = next(f for f in bug.of("saturated_activations") if f["layer"] == "body.1")
    assert finding["evidence"]["feeding_layer"] == "body.0" and finding["evidence"]["saturated_fraction"] >= 0.5
    assert finding["evidence"]["tail"] == {"tanh": 3.0, "sigmoid": 6.0}[activation]
    assert not twin.codes() & NEW_CODES


# -- chance_level -------------------------------------------------------------------------------------
def test_chance_level_as_soon_as_two_evaluations_show_it(store):
    # warmup 50, evaluations every 100: the first two past the warmup are at steps 100 and 200
    out = train(fast_preset(**custom_data("random_labels"), **{"train.max_steps": 300}), store)
    first = out.reported("chance_level")[0]
    assert first["step"] == 200 and first["evidence"]["flat"]
    assert first["evidence"]["chance"] == max(0.25, first["evidence"]["majority_rate"])
    assert abs(first["evidence"]["val_accuracy"] - first["evidence"]["chance"]) < 0.1


def test_chance_level_when_validation_labels_are_encoded_differently(store):
    out = train(fast_preset(**custom_data("shifted_val_labels"), **{"train.max_steps": 200}), store)
    finding = out.of("chance_level")[0]
    assert finding["evidence"]["learned_train"] and finding["evidence"]["val_accuracy"] < 0.1
    assert finding["evidence"]["train_loss"] < 0.5 * math.log(4)


def test_no_chance_level_while_a_healthy_run_is_still_learning_the_class_prior(store):
    """90/10 classes: the first evaluations score exactly the majority rate (chance) while the loss falls."""
    out = train(fast_preset(**custom_model("mlp", outputs=2), **custom_data("rare_class"), **CONSTANT,
                            **{"optim.lr": 3e-4, "train.eval_every": 25, "train.max_steps": 200}), store)
    evals = out.trainer.callbacks[0].ctx.history.evals
    at_chance = [e for e in evals if e.metrics["val_accuracy"] <= 0.93]
    assert len(at_chance) >= 3  # the scenario: several evaluations at the majority rate...
    assert "chance_level" not in out.codes()  # ...while the training loss keeps falling


@pytest.mark.slow
def test_no_new_code_on_a_healthy_run():
    assert not healthy_run().codes() & NEW_CODES


def test_a_few_natural_copies_are_only_an_info(store):
    """Short common samples repeat across any split (lines like `return None`): a few percent is not a bug."""
    out = train(fast_preset(**custom_data("oversampled", train_size=2048, val_size=256, copies=1, split_after=False),
                            **{"data.args.shared": 8, "train.max_steps": 10}), store)
    finding = out.of("val_overlaps_train")[0]
    assert finding["severity"] == "info" and 0.01 <= finding["evidence"]["fraction"] < 0.1


def test_the_set_up_samples_leave_the_run_s_random_draws_alone(store):
    """Image augmentation draws from torch's global generator: reading training samples at set-up must not
    shift it, or a run with diagnostics (and a resumed one) would see other augmentations than without."""
    import torch

    from workbench.training.trainer import Trainer
    from workbench.diagnostics import default_callbacks

    preset = quick_preset("cnn-shapes", **{"train.max_steps": 3, "train.eval_every": 0, "train.threads": 1,
                                           "data.args.train_size": 128, "data.args.val_size": 64,
                                           "data.args.image_size": 16, "model.args.width_multiplier": 0.25})
    losses = []
    for callbacks in ([], default_callbacks(preset)):
        result = Trainer(preset, store, callbacks=callbacks).run()
        losses.append([v for _, v in store.metric_series(result.run_id, "loss")])
    assert losses[0] == losses[1]
