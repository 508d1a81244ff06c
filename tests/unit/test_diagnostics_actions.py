"""Divergence actions: roll back to the last good checkpoint and continue with LR x 0.1 or clipping at 1.0."""

from __future__ import annotations

import pytest

from support.diagnostics import custom_model, fast_preset, train
from workbench.diagnostics.actions import (DIVERGENCE_ACTIONS, apply_action, rollback_with_clipping,
                                           rollback_with_lower_lr)
from workbench.errors import ConfigError
from workbench.training.telemetry import Callback

# One inf gradient on the 40th training call: the run diverges at step 39; a rebuilt model (call count back
# at 0) gets past it, so a resumed run can finish within 30 more steps.
ONE_BAD_STEP = {**custom_model("gradient_burst", every=40, factor=1e39), "train.max_steps": 70,
                "train.eval_every": 35, "schedule.name": "constant", "schedule.warmup_steps": 0}


class Rows(Callback):
    def __init__(self):
        self.rows = []

    def on_batch(self, trainer, batch):
        self.rows += batch.rows


def diverged_run(store):
    out = train(fast_preset(**ONE_BAD_STEP), store)
    assert out.status == "diverged" and out.trainer.step == 39
    return out.trainer.run_id


def test_the_panel_offers_both_actions():
    assert [a.label for a in DIVERGENCE_ACTIONS] == [
        "Roll back, continue with LR x 0.1",
        "Roll back, continue with gradient clipping at 1",
    ]


def test_roll_back_and_continue_with_a_tenth_of_the_lr(store):
    run_id = diverged_run(store)
    rows = Rows()
    trainer = rollback_with_lower_lr(store, run_id, callbacks=[rows])
    result = trainer.run()
    assert result.status == "completed" and result.steps == 70
    lrs = {step: value for step, name, value in rows.rows if name == "lr"}
    assert min(lrs) == 39  # resumed exactly at the bad step, whose batch is skipped
    assert lrs[39] == pytest.approx(3e-4)  # 3e-3 x 0.1
    run = store.get_run(run_id)
    assert run["status"] == "completed" and run["config"]["optim"]["lr"] == pytest.approx(3e-4)


def test_roll_back_and_continue_with_clipping(store):
    run_id = diverged_run(store)
    trainer = apply_action("rollback_clip", store, run_id)
    assert trainer.preset.train.grad_clip == 1.0
    assert trainer.run().status == "completed"
    assert store.get_run(run_id)["config"]["train"]["grad_clip"] == 1.0


def test_the_resumed_run_keeps_its_diagnostics(store):
    run_id = diverged_run(store)
    trainer = rollback_with_clipping(store, run_id, clip=0.5)
    assert any(type(c).__name__ == "DiagnosticsEngine" for c in trainer.callbacks)


def test_actions_refuse_what_they_cannot_do(store):
    with pytest.raises(ConfigError, match="not found"):
        rollback_with_lower_lr(store, "no-such-run")
    run_id = diverged_run(store)
    with pytest.raises(ConfigError, match="unknown divergence action"):
        apply_action("explode", store, run_id)
    store.reopen_run(run_id)  # looks like it is running again, in this very process
    with pytest.raises(ConfigError, match="still running"):
        rollback_with_lower_lr(store, run_id)
