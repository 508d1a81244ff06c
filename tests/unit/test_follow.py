"""Following a run through the store (attach): history, live increments, findings, status, control."""

from __future__ import annotations

import time

import pytest

from support import quick_preset, wait_for
from workbench.follow import StoreControl, StoreFollower
from workbench.training.trainer import Trainer


def names(batches):
    return {name for batch in batches for _, name, _ in batch.rows}


def test_follower_reads_history_then_increments_and_the_final_status(store):
    preset = quick_preset(**{"train.max_steps": 300, "train.eval_every": 100, "train.log_every": 10})
    trainer = Trainer(preset, store)
    thread = trainer.start()
    assert trainer.wait_started(60)
    follower = StoreFollower(store, trainer.run_id)
    seen_steps: set[int] = set()
    all_events = []
    deadline = time.time() + 120
    while time.time() < deadline:
        batches, events = follower.drain()
        all_events += events
        seen_steps |= {step for batch in batches for step, name, _ in batch.rows if name == "loss"}
        if follower.finished:
            break
        time.sleep(0.1)
    thread.join(30)
    batches, events = follower.drain()
    seen_steps |= {step for batch in batches for step, name, _ in batch.rows if name == "loss"}
    assert seen_steps == set(range(300))  # every step exactly once across polls
    assert all_events[0].kind == "setup"
    final = [e for e in all_events if e.kind == "status" and e.text == "completed"]
    assert len(final) == 1


def test_follower_on_a_finished_run_downsamples_history(store):
    preset = quick_preset(**{"train.max_steps": 400, "train.eval_every": 200})
    result = Trainer(preset, store).run()
    follower = StoreFollower(store, result.run_id, history_points=50)
    batches, events = follower.drain()
    losses = [row for batch in batches for row in batch.rows if row[1] == "loss"]
    assert 0 < len(losses) <= 52
    assert {"val_loss", "lr", "grad_norm"} <= names(batches)
    assert follower.finished and any(e.kind == "status" for e in events)
    assert follower.drain() == ([], [])  # nothing new


@pytest.mark.slow
def test_store_control_steers_a_running_trainer(store):
    preset = quick_preset(**{"train.max_steps": 1_000_000, "train.eval_every": 0, "train.log_every": 5,
                             "schedule.name": "constant", "schedule.warmup_steps": 0})
    trainer = Trainer(preset, store)
    thread = trainer.start()
    assert trainer.wait_started(60)
    control = StoreControl(store, trainer.run_id)
    assert control.pause()
    wait_for(lambda: trainer.paused, timeout=30, interval=0.05, what="the pause")
    follower = StoreFollower(store, trainer.run_id)
    events = []

    def paused_event_read() -> bool:  # the store writer flushes the pause event on its own cadence
        events.extend(follower.drain()[1])
        return any(e.kind == "status" and e.data.get("paused") for e in events)

    wait_for(paused_event_read, timeout=30, interval=0.05, what="the pause read back from the store")
    assert control.set_lr(0.02) and control.resume()
    wait_for(lambda: not trainer.paused and trainer.optimizer.param_groups[0]["lr"] == 0.02, timeout=30,
             interval=0.05, what="the new learning rate")
    assert control.stop()
    thread.join(30)
    assert trainer.result.status == "stopped"
    assert not control.pause()  # nothing to steer once it has ended


@pytest.mark.parametrize("bad", [0, -1e-3, float("nan"), float("inf"), "fast", True])
def test_store_control_checks_a_learning_rate_as_the_run_does(store, bad):
    """One check (training/control.py's parse_lr) for the CLI, the attached TUI and the run itself."""
    run_id = store.create_run("p", {})
    control = StoreControl(store, run_id)
    with pytest.raises(ValueError, match="positive finite number"):
        control.set_lr(bad)
    assert control.set_lr(0.01) and store.take_commands(run_id) == [("set_lr", "0.01")]
