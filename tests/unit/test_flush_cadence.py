"""The preset trainer flushes by wall time (a fast-step and a slow-step run both at the target rate),
log_every stays an explicit interval, and the intra-op thread rule is applied on the training thread and
logged at start."""

from __future__ import annotations

import time

import pytest
import torch

from support import quick_preset
from workbench.training.cadence import FLUSH_HZ
from workbench.training.telemetry import Callback
from workbench.training.threads import usable_cores
from workbench.training.trainer import Trainer

SLOW_MODEL = '''
import time
from torch import nn


class Slow(nn.Module):
    """A step that costs ~12 ms whatever the machine: most of it asleep."""

    def __init__(self):
        super().__init__()
        self.net = nn.Linear(2, 4)

    def forward(self, x):
        time.sleep(0.012)
        return self.net(x)


def build():
    return Slow()
'''


class FlushTimes(Callback):
    """Wall time of each flush; stops the run `seconds` after set-up."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.times: list[float] = []
        self.steps: list[int] = []
        self.threads_on_trainer_thread = None

    def on_setup(self, view) -> None:
        self.started = time.perf_counter()
        self.threads_on_trainer_thread = torch.get_num_threads()

    def on_flush_start(self, view) -> None:
        now = time.perf_counter()
        self.times.append(now)
        self.steps.append(view.step)
        if now - self.started > self.seconds:
            view.stop()

    def rate(self) -> float:
        """Flushes a second after the first (the first comes after one step)."""
        return (len(self.times) - 2) / (self.times[-2] - self.times[1])


def _run(store, preset, seconds: float) -> FlushTimes:
    times = FlushTimes(seconds)
    result = Trainer(preset, store, callbacks=[times]).run()
    assert result.status == "stopped", result.reason
    return times


@pytest.mark.slow
def test_a_fast_step_and_a_slow_step_run_both_flush_at_the_target_rate(store, tmp_path):
    fast = quick_preset(**{"train.max_steps": 10_000_000, "train.eval_every": 0, "train.probe_every": 0,
                           "train.log_every": 0})  # mlp-quadrants sets 50
    (tmp_path / "slow.py").write_text(SLOW_MODEL)
    slow = quick_preset(**{"train.max_steps": 10_000_000, "train.eval_every": 0, "train.probe_every": 0,
                           "model.kind": "custom", "model.target": str(tmp_path / "slow.py") + ":build",
                           "model.args": {}, "train.log_every": 0})
    assert type(fast.train).model_fields["log_every"].default == 0  # by time is the default
    quick, sluggish = _run(store, fast, 3.0), _run(store, slow, 3.0)
    assert quick.steps[0] == 1 and sluggish.steps[0] == 1  # the dashboard sees the run after its first step
    fast_window = (quick.steps[-2] - quick.steps[1]) / (len(quick.steps) - 3)
    slow_window = (sluggish.steps[-2] - sluggish.steps[1]) / (len(sluggish.steps) - 3)
    assert fast_window > 3 * slow_window  # steps per flush follow the step's cost...
    for times in (quick, sluggish):  # ...so that flushes keep the target rate
        assert 0.6 * FLUSH_HZ <= times.rate() <= 1.3 * FLUSH_HZ, (times.rate(), times.steps[:20])


def test_log_every_stays_an_explicit_interval(store):
    times = FlushTimes(60.0)
    preset = quick_preset(**{"train.max_steps": 60, "train.log_every": 20, "train.eval_every": 0, "train.threads": 1})
    assert Trainer(preset, store, callbacks=[times]).run().status == "completed"
    assert times.steps == [20, 40, 60]


def test_the_thread_rule_is_applied_on_the_training_thread_and_logged(store):
    times = FlushTimes(60.0)
    preset = quick_preset(**{"train.max_steps": 5, "train.eval_every": 0})
    result = Trainer(preset, store, callbacks=[times]).run()
    assert result.status == "completed"
    assert times.threads_on_trainer_thread == 1  # a small model: one thread
    texts = [event["text"] for event in store.events(result.run_id)]
    cores = usable_cores()
    assert f"{cores} core{'s' if cores != 1 else ''}: 1 intra-op thread (a small model: its ops are too small to split)" in texts

    times = FlushTimes(60.0)
    preset = quick_preset(**{"train.max_steps": 5, "train.eval_every": 0, "train.threads": 2})
    result = Trainer(preset, store, callbacks=[times]).run()
    assert times.threads_on_trainer_thread == 2
    assert any(text.endswith(": 2 intra-op threads (train.threads)") for text in
               (event["text"] for event in store.events(result.run_id)))
