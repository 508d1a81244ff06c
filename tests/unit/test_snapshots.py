"""The in-memory snapshots a rollback goes back to: taken only while the run is sane, bounded, and the
one chosen after a divergence is from before the explosion began."""

from __future__ import annotations

import math

import pytest
import torch

from workbench.training.snapshots import SnapshotKeeper, clone_state, weight_norm


def model_state(model):
    return lambda: {"model": model.state_dict(), "step": 0}


def test_snapshots_copy_the_state_and_stay_bounded():
    model = torch.nn.Linear(4, 2)
    keeper = SnapshotKeeper(every_steps=10, every_seconds=1e9, keep=2)
    norm = lambda: weight_norm(model.parameters())  # noqa: E731
    keeper.take(0, model_state(model), norm)
    before = model.weight.detach().clone()
    with torch.no_grad():
        model.weight.mul_(2)  # training moves on; the snapshot must not
    assert torch.equal(keeper.snapshots[0].payload["model"]["weight"], before)
    for start in range(0, 60, 10):
        keeper.offer(start, [1.0] * 10, [0.5] * 10, model_state(model), norm, now=0.0)
    assert len(keeper.snapshots) == 2 and [s.step for s in keeper.snapshots] == [50, 60]
    assert keeper.first.step == 0  # the run's start is kept whatever the bound


def test_no_snapshot_of_an_unhealthy_window_and_the_choice_is_before_the_explosion():
    model = torch.nn.Linear(4, 2)
    keeper = SnapshotKeeper(every_steps=10, every_seconds=1e9, keep=3)
    norm = lambda: weight_norm(model.parameters())  # noqa: E731
    keeper.take(0, model_state(model), norm)
    for start in range(0, 40, 10):  # healthy: loss falls, grad norms steady
        keeper.offer(start, [1.0 - start / 100] * 10, [0.5] * 10, model_state(model), norm, now=0.0)
    # the explosion: grad norms 40x their median, then the loss climbs, then non-finite
    assert keeper.offer(40, [0.6] * 10, [20.0] * 10, model_state(model), norm, now=0.0) is None
    assert keeper.offer(50, [5.0] * 10, [1e6] * 10, model_state(model), norm, now=0.0) is None
    assert keeper.offer(60, [math.inf] * 5, [math.inf] * 5, model_state(model), norm, now=0.0) is None
    assert keeper.explosion_start(64) == 40
    assert keeper.choose(64).step == 40  # the state after step 39, the last sane window
    assert keeper.choose(64, growth_seen_at=25).step == 20  # a detector saw growth earlier
    assert keeper.choose(64, growth_seen_at=-1).step == 0  # nothing sane after the start: the start


def test_a_blown_up_weight_norm_is_never_kept():
    model = torch.nn.Linear(4, 2)
    keeper = SnapshotKeeper(every_steps=1, every_seconds=1e9, keep=3)
    norm = lambda: weight_norm(model.parameters())  # noqa: E731
    keeper.take(0, model_state(model), norm)
    with torch.no_grad():
        model.weight.mul_(1e9)
    assert keeper.offer(0, [1.0], [0.5], model_state(model), norm, now=0.0) is None
    assert [s.step for s in keeper.snapshots] == [0]


def test_clone_state_copies_nested_optimizer_state():
    model = torch.nn.Linear(4, 2)
    optimizer = torch.optim.Adam(model.parameters())
    model(torch.randn(3, 4)).sum().backward()
    optimizer.step()
    copy = clone_state(optimizer.state_dict())
    exp_avg = optimizer.state_dict()["state"][0]["exp_avg"]
    exp_avg.add_(1.0)
    assert not torch.equal(copy["state"][0]["exp_avg"], exp_avg)
    with pytest.raises(ValueError):
        SnapshotKeeper(keep=0)


def test_a_single_bad_step_on_sane_weights_keeps_those_weights():
    model = torch.nn.Linear(4, 2)
    keeper = SnapshotKeeper(every_steps=10, every_seconds=1e9, keep=2)
    norm = lambda: weight_norm(model.parameters())  # noqa: E731
    keeper.take(0, model_state(model), norm)
    for start in range(0, 30, 10):
        keeper.offer(start, [1.0] * 10, [0.5] * 10, model_state(model), norm, now=0.0)
    assert keeper.choose(35, current_norm=norm()) is None  # nothing grew: roll back to the weights themselves
    assert keeper.choose(35, current_norm=norm() * 1e9).step == 30  # blown-up weights: the snapshot
    assert keeper.choose(35, growth_seen_at=25, current_norm=norm()).step == 20  # growth seen: before it
