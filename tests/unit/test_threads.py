"""The intra-op thread rule: train.threads wins; small CPU models get one thread; otherwise every core but
one for a live dashboard."""

from __future__ import annotations

from workbench.training.threads import SMALL_MODEL_PARAMS, choose_threads, usable_cores


def test_train_threads_overrides_the_rule():
    choice = choose_threads(3, "cpu", 1000, cores=2, dashboard=True)
    assert choice.threads == 3 and choice.describe() == "2 cores: 3 intra-op threads (train.threads)"


def test_a_small_model_on_cpu_gets_one_thread_and_the_dashboard_the_other_core():
    choice = choose_threads(0, "cpu", 17_412, cores=2, dashboard=True)
    assert choice.threads == 1
    assert choice.describe().startswith("2 cores: 1 intra-op thread, 1 for the dashboard")
    headless = choose_threads(0, "cpu", 17_412, cores=2)
    assert headless.threads == 1 and headless.describe() == (
        "2 cores: 1 intra-op thread (a small model: its ops are too small to split)")


def test_larger_models_use_every_core_but_one_for_a_live_dashboard():
    big = SMALL_MODEL_PARAMS
    assert choose_threads(0, "cpu", big, cores=8).threads == 8
    live = choose_threads(0, "cpu", big, cores=8, dashboard=True)
    assert live.threads == 7 and live.describe() == "8 cores: 7 intra-op threads, 1 for the dashboard"
    assert choose_threads(0, "cpu", big, cores=1, dashboard=True).threads == 1  # never zero
    assert choose_threads(0, "cuda", 1000, cores=4, dashboard=True).threads == 3  # GPU: the CPU side only


def test_usable_cores_is_at_least_one():
    assert usable_cores() >= 1
