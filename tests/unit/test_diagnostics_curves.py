"""The loss curve: bad initial loss, plateaus, oscillation, and a learning rate too high or too low."""

from __future__ import annotations

import math

import pytest

from support.diagnostics import custom_data, custom_model, fast_preset, healthy_run, train

CONSTANT = {"schedule.name": "constant", "schedule.warmup_steps": 0}


# -- bad initial loss ---------------------------------------------------------------------------------
def test_bad_initial_loss_from_an_oversized_output_layer(store):
    out = train(fast_preset(**custom_model("mlp", head_scale=60.0), **{"train.max_steps": 30}), store)
    finding = out.of("bad_initial_loss")[0]
    assert finding["step"] == 0 and finding["evidence"]["expected"] == math.log(4)
    assert finding["evidence"]["initial_loss"] > finding["evidence"]["threshold"]


def test_bad_initial_loss_from_unnormalised_regression_targets(store):
    preset = fast_preset(**custom_model("mlp", outputs=1), **custom_data("shifted_regression", offset=100.0),
                         **{"task": "regression", "train.loss": "mse", "train.max_steps": 30})
    out = train(preset, store)
    finding = out.of("bad_initial_loss")[0]
    assert "variance" in finding["evidence"]["expected_from"] and finding["evidence"]["initial_loss"] > 1000


def test_bad_initial_loss_from_unnormalised_inputs(store):
    out = train(fast_preset(**custom_data("outlier_batches", fraction=0.05), **{"train.max_steps": 30}), store)
    assert "bad_initial_loss" in out.codes()


def test_initial_loss_of_a_healthy_model_passes():
    assert "bad_initial_loss" not in healthy_run().codes()


# -- plateau ------------------------------------------------------------------------------------------
def test_plateau_when_the_learning_rate_is_far_too_low(store):
    out = train(fast_preset(**CONSTANT, **{"optim.lr": 1e-7, "train.max_steps": 425}), store)
    plateau = out.of("loss_plateau")[0]
    assert plateau["severity"] == "warning" and abs(plateau["evidence"]["improvement"]) < 0.01
    assert "lr_too_low" in out.codes()


def test_plateau_when_the_labels_carry_no_signal(store):
    out = train(fast_preset(**custom_data("random_labels"), **CONSTANT, **{"train.max_steps": 425}), store)
    assert out.of("loss_plateau")[0]["severity"] == "warning"


def test_plateau_when_every_unit_starts_dead(store):
    out = train(fast_preset(**custom_model("mlp", bias=-5.0), **CONSTANT, **{"train.max_steps": 425}), store)
    assert {"loss_plateau", "dead_units"} <= out.codes()
    assert "lr_too_low" not in out.codes()  # dead layers move only by weight decay; that is not the LR


def test_no_plateau_while_the_schedule_anneals_a_converged_run():
    out = healthy_run()
    assert out.status == "completed" and "loss_plateau" not in out.codes()


# -- oscillation --------------------------------------------------------------------------------------
def test_oscillation_from_a_too_high_learning_rate_despite_clipping(store):
    out = train(fast_preset(**{"schedule.name": "constant", "optim.name": "sgd", "optim.lr": 2.0,
                               "train.max_steps": 225}), store)
    finding = out.of("loss_oscillation")[0]
    assert finding["evidence"]["rises"] >= 2 and finding["evidence"]["excess"] >= 0.15


def test_oscillation_from_a_custom_layer_that_keeps_changing_the_task(store):
    out = train(fast_preset(**custom_model("flipping_input", period=60, hidden=64), **CONSTANT,
                            **{"train.max_steps": 225}), store)
    assert "loss_oscillation" in out.codes()


def test_oscillation_from_sgd_momentum_at_the_edge_of_stability(store):
    out = train(fast_preset(**{"schedule.name": "constant", "optim.name": "sgd", "optim.lr": 1.0,
                               "train.grad_clip": 0.0, "train.max_steps": 225}), store)
    assert "loss_oscillation" in out.codes()


def test_healthy_run_does_not_oscillate_nor_blame_the_lr():
    out = healthy_run()
    assert not out.codes() & {"loss_oscillation", "lr_too_high", "lr_too_low"} and not out.serious()


# -- learning rate ------------------------------------------------------------------------------------
def test_lr_too_low_from_tiny_updates(store):
    out = train(fast_preset(**{"optim.lr": 1e-7, "train.max_steps": 160}), store)
    finding = out.of("lr_too_low")[0]
    assert finding["evidence"]["projected_ratio"] < 1e-5


def test_lr_too_low_from_slow_progress(store):
    out = train(fast_preset(**CONSTANT, **{"optim.lr": 1e-5, "train.max_steps": 360}), store)
    finding = out.of("lr_too_low")[0]
    assert "start_loss" in finding["evidence"] and finding["evidence"]["projected_ratio"] < 3e-4


def test_lr_too_high_from_huge_updates(store):
    out = train(fast_preset(**{"optim.name": "sgd", "optim.lr": 3.0, "train.max_steps": 160}), store)
    ratios = [r for r in out.reported("lr_too_high") if "projected_ratio" in r["evidence"]]
    assert ratios and ratios[0]["evidence"]["projected_ratio"] > 0.1


def test_lr_too_high_when_the_loss_explodes(store):
    out = train(fast_preset(**{"optim.name": "sgd", "optim.lr": 3.0, "train.grad_clip": 1.0,
                               "schedule.name": "constant", "schedule.warmup_steps": 0, "train.max_steps": 120}),
                store)
    rising = [r for r in out.reported("lr_too_high") if "recent_loss" in r["evidence"]]
    assert rising and rising[0]["evidence"]["recent_loss"] > 1.5 * rising[0]["evidence"]["scale"]


@pytest.mark.slow
def test_lr_too_low_in_a_recurrent_model(store):
    from support import quick_preset

    preset = quick_preset("lstm-forecaster", **CONSTANT, **{
        "optim.lr": 1e-7, "train.max_steps": 110, "train.threads": 1, "train.probe_every": 50,
        "model.args.hidden": 32, "data.args.train_size": 1024, "train.eval_every": 0})
    out = train(preset, store)
    assert out.of("lr_too_low")[0]["evidence"]["projected_ratio"] < 1e-5
