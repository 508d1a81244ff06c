"""Flush and probe cadence by wall time: simulated loops at very different step costs."""

from __future__ import annotations

import pytest

from workbench.training.cadence import FLUSH_HZ, MAX_WINDOW, Cadence


def simulate(step_seconds: float, seconds: float, **kwargs) -> tuple[int, list[int], Cadence]:
    """Run the loop's bookkeeping for `seconds` of simulated steps; (flushes, flush steps, cadence)."""
    cadence = Cadence(**kwargs)
    now = last_time = 0.0
    last_step = step = 0
    flushes = []
    while now < seconds:
        step += 1
        now += step_seconds
        if step >= cadence.next_flush:
            cadence.flushed(step, step - last_step, now - last_time)
            flushes.append(step)
            last_step, last_time = step, now
    return len(flushes), flushes, cadence


@pytest.mark.parametrize("step_seconds", [0.0003, 0.002, 0.02])
def test_flushes_come_at_the_target_rate_whatever_a_step_costs(step_seconds):
    flushes, steps, _ = simulate(step_seconds, 20.0)
    assert steps[0] == 1  # the dashboard sees the run after its first step
    assert flushes / 20.0 == pytest.approx(FLUSH_HZ, rel=0.1)


@pytest.mark.parametrize("step_seconds", [0.05, 0.1])
def test_steps_near_the_interval_flush_within_one_step_of_it(step_seconds):
    _, steps, _ = simulate(step_seconds, 20.0)
    for a, b in zip(steps[1:], steps[2:]):
        assert abs((b - a) * step_seconds - 1 / FLUSH_HZ) <= step_seconds / 2 + 1e-9


def test_a_step_slower_than_the_interval_flushes_every_step():
    flushes, steps, _ = simulate(3.0, 30.0)
    assert steps == list(range(1, 11))


def test_the_window_is_bounded():
    _, steps, cadence = simulate(1e-6, 0.1)
    assert max(b - a for a, b in zip(steps, steps[1:])) == MAX_WINDOW


def test_log_every_is_an_explicit_step_interval():
    _, steps, _ = simulate(0.0003, 1.0, log_every=50)
    assert steps[:3] == [50, 100, 150] and all(s % 50 == 0 for s in steps)
    _, steps, _ = simulate(0.0003, 30.0, log_every=10_000)  # larger than the time-based window cap
    assert steps[:2] == [10_000, 20_000]


def test_probes_keep_their_step_interval_within_the_time_budget():
    cadence = Cadence(probe_every=200)
    assert cadence.next_probe == 0  # the first step is probed
    cadence.probed(0, 0.005)  # no step time measured yet: the step interval
    assert cadence.next_probe == 200
    cadence.flushed(100, 100, 0.2)  # 2 ms a step
    cadence.probed(200, 0.005)  # 5 ms is 2% of 250 ms = 125 steps: the interval stands
    assert cadence.next_probe == 400
    cadence.probed(400, 0.1)  # 100 ms needs 5 s between probes = 2,500 steps
    assert cadence.next_probe == 400 + 2500


def test_an_explicit_probe_interval_ignores_the_budget_and_zero_is_off():
    cadence = Cadence(probe_every=10, probe_budget=None)
    cadence.flushed(5, 5, 0.005)
    cadence.probed(10, 1.0)
    assert cadence.next_probe == 20
    assert Cadence(probe_every=0).next_probe == float("inf")


def test_log_every_keeps_its_multiples_after_a_resume():
    cadence = Cadence(log_every=50, start=130)
    assert cadence.next_flush == 150
    cadence.flushed(150, 20, 0.04)
    assert cadence.next_flush == 200
