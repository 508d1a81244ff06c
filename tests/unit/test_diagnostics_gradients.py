"""Exploding and vanishing gradients, each built on purpose in more than one way."""

from __future__ import annotations

from support.diagnostics import custom_data, custom_model, fast_preset, healthy_run, train

NO_CLIP = {"train.grad_clip": 0.0}


def test_gradient_spikes_from_a_custom_layer(store):
    out = train(fast_preset(**custom_model("gradient_burst", every=60, factor=300.0), **NO_CLIP,
                            **{"train.max_steps": 250}), store)
    spike = out.of("exploding_gradients")
    assert spike and spike[0]["severity"] == "warning"
    assert spike[0]["evidence"]["ratio"] >= 10 and spike[0]["step"] % 60 == 59
    assert spike[0]["count"] >= 2  # repeats update one entry


def test_gradient_spikes_from_outliers_in_the_data(store):
    out = train(fast_preset(**custom_data("outlier_batches"), **NO_CLIP, **{"train.max_steps": 250}), store)
    assert out.of("exploding_gradients")[0]["evidence"]["ratio"] >= 10


def test_gradients_growing_backwards_through_a_custom_layer_name_the_earliest_layer(store):
    out = train(fast_preset(**custom_model("amplified", factor=1e4), **{"train.max_steps": 110}), store)
    per_layer = [f for f in out.of("exploding_gradients") if f["layer"]]
    assert [f["layer"] for f in per_layer] == ["first"]
    assert per_layer[0]["evidence"]["early_median"] > 1e3 * per_layer[0]["evidence"]["late_median"]


def test_clipping_active_on_almost_every_step_is_reported(store):
    out = train(fast_preset(**{"train.grad_clip": 0.02, "train.max_steps": 250}), store)
    clipped = [f for f in out.of("exploding_gradients") if "clipped_fraction" in f["evidence"]]
    assert clipped and clipped[0]["evidence"]["clipped_fraction"] >= 0.9
    assert clipped[0]["severity"] == "warning"  # the median norm is far above the clip


def test_vanishing_gradients_in_a_deep_sigmoid_stack(store):
    out = train(fast_preset(**custom_model("mlp", depth=10, activation="sigmoid"), **{"train.max_steps": 60}),
                store)
    vanishing = out.of("vanishing_gradients")
    assert [f["layer"] for f in vanishing] == ["body.0"] and vanishing[0]["step"] == 50  # 2nd probe in a row
    assert vanishing[0]["evidence"]["late_median"] > 1e3 * vanishing[0]["evidence"]["layer_grad_norm"]


def test_vanishing_gradients_from_a_tiny_init(store):
    out = train(fast_preset(**custom_model("mlp", depth=8, activation="tanh", weight_std=0.05),
                            **{"train.max_steps": 60}), store)
    assert out.layers("vanishing_gradients") == {"body.0"}


def test_a_layer_cut_off_by_a_custom_layer_gets_no_gradient(store):
    out = train(fast_preset(**custom_model("dead_after_custom"), **{"train.max_steps": 60}), store)
    finding = out.of("vanishing_gradients")[0]
    assert finding["layer"] == "fc1" and finding["evidence"]["layer_grad_norm"] == 0.0


def test_healthy_mlp_has_no_gradient_findings():
    assert not healthy_run().codes() & {"exploding_gradients", "vanishing_gradients"}


def test_a_repeated_finding_never_gets_milder(store):
    # Spikes (warnings) and then clipping active on most steps (info) share one entry: it stays a warning.
    out = train(fast_preset(**custom_model("gradient_burst", every=60, factor=300.0),
                            **{"train.grad_clip": 0.1, "train.max_steps": 250}), store)
    reports = out.reported("exploding_gradients")
    clipping = [r for r in reports if "clipped_fraction" in r["evidence"]]
    assert clipping and clipping[0]["evidence"]["median_norm"] < 10 * 0.1  # on its own only info
    assert {r["severity"] for r in reports} == {"warning"}
    assert out.of("exploding_gradients")[0]["severity"] == "warning"


def test_per_layer_evidence_stays_small_for_big_models():
    from workbench.diagnostics.base import compact

    norms = {f"layers.{i}": float(i) for i in range(40)}
    kept = compact(norms)
    assert list(kept)[:6] == [f"layers.{i}" for i in range(6)] and list(kept)[-1] == "layers.39"
    assert kept["..."] == "28 more layers" and len(kept) == 13
    assert compact({"head": 1.0}) == {"head": 1.0}
