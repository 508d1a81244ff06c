"""Overfitting, underfitting and dead units, each built on purpose in more than one way."""

from __future__ import annotations

import pytest

from support.diagnostics import custom_data, custom_model, fast_preset, healthy_run, train

CONSTANT = {"schedule.name": "constant", "schedule.warmup_steps": 0}
UNREGULARISED = {"model.args.dropout": 0.0, "optim.weight_decay": 0.0}


# -- overfitting --------------------------------------------------------------------------------------
def test_overfitting_a_tiny_noisy_training_set(store):
    preset = fast_preset(**CONSTANT, **UNREGULARISED, **{
        "data.args.train_size": 64, "data.args.noise": 0.3, "model.args.hidden": [256, 256],
        "train.batch_size": 32, "train.max_steps": 400})
    out = train(preset, store)
    finding = out.of("overfitting")[0]
    evidence = finding["evidence"]
    assert evidence["val_loss"] > evidence["best_val_loss"] and evidence["gap"] > evidence["gap_at_best"]
    assert evidence["evals_since_best"] >= 2


def test_overfitting_a_big_model_on_a_few_clean_samples(store):
    preset = fast_preset(**custom_model("mlp", hidden=256, depth=3), **custom_data("xor", train_size=24),
                         **CONSTANT, **{"optim.weight_decay": 0.0, "train.batch_size": 24, "train.max_steps": 400})
    out = train(preset, store)
    finding = out.of("overfitting")[0]
    assert finding["evidence"]["train_loss"] < 0.01 < 0.3 < finding["evidence"]["val_loss"]


def test_the_training_loss_beside_an_evaluation_never_reaches_back_to_the_first_steps():
    from workbench.diagnostics.base import History

    history = History()
    # 25 high-loss steps, then a converged run with a little noise; a flush lagging behind the evaluation
    history.add_rows([(step, "loss", 2.0 if step < 25 else 0.2 + 0.01 * (step % 2)) for step in range(50)])
    mean, se = history.train_loss_near(50, 50)  # the first evaluation, at step 50, with a 50-step window
    assert abs(mean - 0.205) < 0.002 and 0 < se < 0.005
    assert history.train_loss_near(200, 50) == (None, None)  # nothing recent to compare with: no train loss


@pytest.mark.slow
def test_val_flat_within_noise_while_train_creeps_down_is_only_an_info(store):
    preset = fast_preset(**CONSTANT, **UNREGULARISED, **custom_data("overlapping_blobs", train_size=1024, val_size=256,
                                                                      spread=1.0), **{
        "model.args.hidden": [128, 128], "train.max_steps": 1500, "train.eval_every": 100})
    out = train(preset, store)
    finding = out.of("overfitting")[0]
    evidence = finding["evidence"]
    assert finding["severity"] == "info" and "early stopping would have saved" in finding["message"]
    assert abs(evidence["val_loss"] - evidence["best_val_loss"]) <= 2 * evidence["val_noise"]
    assert evidence["saved_fraction"] >= 0.1 and evidence["stopped_improving_at"] < 1500


def test_no_overfitting_nor_underfitting_with_plenty_of_data():
    assert not healthy_run().codes() & {"overfitting", "underfitting"}


# -- underfitting -------------------------------------------------------------------------------------
def test_underfitting_a_linear_model_on_xor(store):
    out = train(fast_preset(**custom_model("linear"), **custom_data("xor"), **CONSTANT,
                            **{"train.max_steps": 400}), store)
    finding = out.of("underfitting")[0]
    assert finding["evidence"]["train_loss"] >= 0.6 * finding["evidence"]["reference"]


def test_underfitting_under_crushing_weight_decay(store):
    out = train(fast_preset(**CONSTANT, **{"optim.name": "sgd", "optim.lr": 0.1, "optim.weight_decay": 5.0,
                                           "train.max_steps": 300}), store)
    assert "underfitting" in out.codes()


def test_underfitting_when_every_unit_is_dead(store):
    out = train(fast_preset(**custom_model("dead_after_custom"), **{"train.max_steps": 300}), store)
    assert "underfitting" in out.codes()


# -- dead units ---------------------------------------------------------------------------------------
def test_dead_units_from_a_negative_bias_init(store):
    out = train(fast_preset(**custom_model("mlp", bias=-5.0), **{"train.max_steps": 60}), store)
    assert out.layers("dead_units") == {"body.1", "body.3"}
    finding = out.of("dead_units")[0]
    assert finding["step"] == 0 and finding["evidence"]["dead_fraction"] == 1.0
    assert finding["evidence"]["feeding_layer"] in ("body.0", "body.2")


def test_dead_units_behind_a_custom_layer(store):
    out = train(fast_preset(**custom_model("dead_after_custom"), **{"train.max_steps": 60}), store)
    assert out.layers("dead_units") == {"act2"}  # act1 is fine: only the ReLU after the custom layer dies
    assert out.of("dead_units")[0]["evidence"]["feeding_layer"] == "fc2"


def test_dead_units_killed_by_a_too_high_learning_rate(store):
    out = train(fast_preset(**{"optim.lr": 1.0, "train.batch_size": 256, "train.max_steps": 110}), store)
    dead = out.of("dead_units")
    assert dead and all(f["evidence"]["dead_fraction"] >= 0.5 for f in dead)


def test_dead_units_in_conv_maps_count_channels(store):
    from workbench.diagnostics.dead_units import DeadUnitsDetector
    from types import SimpleNamespace

    import torch
    from torch import nn

    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU())
    with torch.no_grad():
        model[0].bias[:6] = -100.0  # 6 of 8 channels can never fire
    reports = []
    ctx = SimpleNamespace(trainer=SimpleNamespace(model=model),
                          report=lambda code, step, message, evidence, layer=None: reports.append((layer, evidence)))
    detector = DeadUnitsDetector()
    detector.setup(ctx)
    detector.probe_start(ctx, 0)
    model(torch.rand(8, 3, 10, 10))
    detector.probe_end(ctx, 0, {})
    assert detector.handles == []  # hooks exist only during the probe
    assert [(layer, e["units"], e["dead_units"]) for layer, e in reports] == [("1", 8, 6)]


def test_healthy_relu_mlp_has_no_dead_units():
    assert "dead_units" not in healthy_run().codes()


def test_an_evaluation_between_flushes_waits_for_the_steps_before_it():
    """A flush cadence that does not line up with the evaluations (time-based, or eval_every not a multiple of
    log_every): the evaluation is judged at the flush that brings the steps before it, not without them."""
    from types import SimpleNamespace

    from support import quick_preset
    from workbench.diagnostics.base import Detector
    from workbench.diagnostics.engine import DiagnosticsEngine
    from workbench.training.telemetry import TelemetryBatch

    seen = []

    class Record(Detector):
        name = "record"

        def after_eval(self, ctx, point):
            seen.append((point.step, point.train_loss, len(ctx.history)))

    trainer = SimpleNamespace(preset=quick_preset(**{"train.log_every": 25}), info=None, model=None, val_data=None,
                              log=lambda *a, **k: None)
    engine = DiagnosticsEngine([Record()])
    engine.on_setup(trainer)
    rows = lambda start, stop: [(s, "loss", 2.0 if s < 40 else 0.5) for s in range(start, stop)]
    engine.on_batch(trainer, TelemetryBatch(step=59, elapsed=0.0, rows=rows(0, 60)))
    engine.on_eval(trainer, 100, {"val_loss": 0.6})  # steps 60..99 not flushed yet
    assert seen == []
    engine.on_batch(trainer, TelemetryBatch(step=129, elapsed=0.0, rows=rows(60, 130)))
    assert seen == [(100, 0.5, 130)]  # judged now, on the 50 steps before step 100
    engine.on_eval(trainer, 200, {"val_loss": 0.6})
    engine.on_end(trainer, "completed")  # the run ended before its flush: judged with what there is
    assert [s for s, _, _ in seen] == [100, 200] and seen[1][1] is None


def test_the_evaluation_reports_the_standard_error_of_its_val_loss(store):
    import math

    from workbench.diagnostics.base import EvalPoint
    from workbench.diagnostics.overfitting import val_noise
    from workbench.training.evaluate import standard_error

    # equal batches: the sample std of their losses over sqrt(batches); one batch says nothing about noise
    assert math.isclose(standard_error([(1.0, 64), (2.0, 64), (3.0, 64), (2.0, 64)]), math.sqrt(2 / 3) / 2)
    assert standard_error([(1.0, 64)]) is None and standard_error([(1.0, 64), (math.nan, 64)]) is None
    out = train(fast_preset(**{"train.max_steps": 100, "train.eval_every": 50, "train.eval_batches": 8}), store)
    metrics = out.trainer.last_eval
    assert 0 < metrics["val_loss_se"] < metrics["val_loss"]
    assert len(store.metric_series(out.trainer.run_id, "val_loss_se")) == 2
    point = EvalPoint(100, metrics["val_loss"], 0.1, metrics)
    assert val_noise([point], point) == max(metrics["val_loss_se"], 0.01 * metrics["val_loss"])
