"""The heap is frozen while a training loop runs and handed back when it ends."""

from __future__ import annotations

import gc
import threading

import pytest

from workbench.presets import load_preset
from workbench.store import RunStore
from workbench.training.heap import frozen_heap
from workbench.training.telemetry import Callback
from workbench.training.trainer import Trainer


def test_nested_and_concurrent_blocks_share_one_freeze():
    assert gc.get_freeze_count() == 0
    with frozen_heap():
        frozen = gc.get_freeze_count()
        assert frozen > 0
        inner_done = threading.Event()

        def other_loop():
            with frozen_heap():
                inner_done.set()

        thread = threading.Thread(target=other_loop)
        thread.start()
        thread.join()
        assert inner_done.is_set()
        assert gc.get_freeze_count() >= frozen  # the other loop's end did not unfreeze this one's heap
    assert gc.get_freeze_count() == 0


def test_an_exception_still_unfreezes():
    with pytest.raises(RuntimeError):
        with frozen_heap():
            raise RuntimeError("user code")
    assert gc.get_freeze_count() == 0


class FreezeSeen(Callback):
    def __init__(self):
        self.counts: list[int] = []

    def on_batch(self, run, batch):
        self.counts.append(gc.get_freeze_count())


def test_a_training_loop_runs_frozen_and_leaves_the_heap_as_it_found_it(tmp_path):
    """What was built before the loop is out of the collector's sight while it runs (no full collection
    of torch and the model in the first steps); garbage made before it is collectable again after."""
    seen = FreezeSeen()
    preset = load_preset("mlp-quadrants", ["train.max_steps=60", "train.log_every=20", "train.eval_every=0"])
    store = RunStore(tmp_path)
    try:
        result = Trainer(preset, store, callbacks=[seen]).run()
    finally:
        store.close()
    assert result.status == "completed"
    assert seen.counts and all(count > 0 for count in seen.counts)
    assert gc.get_freeze_count() == 0
