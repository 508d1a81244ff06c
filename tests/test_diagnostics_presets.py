"""Every preset, trained briefly as configured, raises nothing above info; diagnostics stay cheap."""

from __future__ import annotations

import time

import pytest

from conftest import quick_preset
from diagnostics_support import train
from workbench.presets import discover_presets

PRESETS = sorted(discover_presets())
# Short but long enough for the first probes, evaluations and flushes to be judged.
SHORT = {"train.max_steps": 40, "train.eval_every": 20, "train.eval_batches": 2, "train.probe_every": 10,
         "train.log_every": 10, "train.threads": 1}


@pytest.mark.parametrize("name", PRESETS)
def test_a_healthy_run_of_every_preset_raises_nothing_above_info(store, name):
    out = train(quick_preset(name, **SHORT), store)
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

    preset = quick_preset("mlp-quadrants", **{"train.threads": 1, "train.max_steps": 1500, "train.eval_every": 0})
    started = time.thread_time()
    result = Trainer(preset, store, callbacks=[Timed()]).run()
    total = time.thread_time() - started
    assert result.status == "completed"
    assert Timed.spent < 0.02 * total, (Timed.spent, total)
