"""A flush's per-step columns (TelemetryBatch.series) say exactly what its rows say, for both loops: the
diagnostics' history takes the columns, the store and the dashboard the rows."""

from __future__ import annotations

import torch
from torch import nn

import workbench
from support.diagnostics import fast_preset
from workbench.diagnostics.base import History
from workbench.store import RunStore
from workbench.training.telemetry import Callback
from workbench.training.trainer import Trainer


class Batches(Callback):
    def __init__(self):
        self.batches = []

    def on_batch(self, run, batch) -> None:
        self.batches.append(batch)


def histories(batches) -> tuple[History, History]:
    from_rows, from_series = History(), History()
    for batch in batches:
        if batch.series is None:  # an evaluation's batch: rows only, no train steps
            assert not any(name == "loss" for _, name, _ in batch.rows)
            continue
        assert from_rows.add_rows(batch.rows) == from_series.add_series(*batch.series) == len(batch.series[0])
    return from_rows, from_series


def assert_same(from_rows: History, from_series: History, steps: int) -> None:
    assert from_series.steps == from_rows.steps == list(range(steps))
    for name in ("loss", "grad_norm", "lr"):
        assert getattr(from_series, name) == getattr(from_rows, name), name
    assert (from_series.first_loss, from_series.start_loss) == (from_rows.first_loss, from_rows.start_loss)


def test_the_trainers_columns_match_its_rows(runs_dir):
    store = RunStore(runs_dir)
    seen = Batches()
    trainer = Trainer(fast_preset(**{"train.max_steps": 120, "train.log_every": 0}), store, callbacks=[seen])
    assert trainer.run().status == "completed"
    store.close()
    assert_same(*histories(seen.batches), 120)


def test_an_own_loops_columns_match_its_rows_with_a_step_logged_twice(runs_dir):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Linear(16, 4))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    x, y = torch.randn(256, 2), torch.randint(0, 4, (256,))
    seen = Batches()
    with workbench.init("series", runs_dir=runs_dir) as run:
        run.session.callbacks.append(seen)
        run.watch(model, optimizer)
        for step in range(90):
            loss = nn.functional.cross_entropy(model(x[step:step + 64]), y[step:step + 64])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            run.log({"loss": loss, "accuracy": 0.5}, step=step)
            if step == 40:
                run.log({"loss": 7.0}, step=step)  # logged again: the last value counts, in both
            if step % 30 == 29:
                run._flush()
    from_rows, from_series = histories(seen.batches)
    assert_same(from_rows, from_series, 90)
    assert from_series.loss[40] == 7.0
