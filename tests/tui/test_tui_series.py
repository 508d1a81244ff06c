"""Bounded chart history: memory stays bounded, spikes survive downsampling, redraw size is bounded."""

from __future__ import annotations

import math

import pytest

from workbench.tui.series import Series, ema


def filled(n: int, capacity: int = 256, spike_at: int | None = None) -> Series:
    series = Series("loss", capacity)
    for step in range(n):
        value = 1.0 / (1 + step)
        if step == spike_at:
            value = 50.0
        series.append(step, step * 0.01, value)
    return series


def test_capacity_bounds_memory_and_keeps_every_point_counted():
    series = filled(100_000, capacity=256)
    assert len(series) <= 256
    assert sum(series.count) == 100_000
    assert series.steps[0] == 0 and series.points == 100_000
    assert series.lo[-1] == pytest.approx(1 / 100_000)  # the newest point is in the newest bucket


def test_a_single_spike_survives_compaction_and_downsampling():
    series = filled(200_000, capacity=256, spike_at=123_457)
    buckets = series.downsample(60)
    assert len(buckets) <= 60
    assert max(buckets.hi) == 50.0
    spike_bucket = buckets.hi.index(50.0)
    assert buckets.x[spike_bucket] <= 123_457 <= (buckets.x[spike_bucket + 1] if spike_bucket + 1 < len(buckets) else 1e9)


@pytest.mark.parametrize("n", [1_000, 100_000, 1_000_000])
def test_points_handed_to_the_plot_do_not_grow_with_history(n):
    series = Series("loss", 2048)
    for step in range(n):
        series.append(step, float(step), math.sin(step / 50.0))
    buckets = series.downsample(100)
    xs, ys = buckets.envelope()
    assert len(buckets) <= 100 and len(xs) <= 200
    assert min(buckets.lo) == pytest.approx(-1, abs=1e-3) and max(buckets.hi) == pytest.approx(1, abs=1e-3)


def test_window_and_time_axis():
    series = filled(1000, capacity=128)
    recent = series.downsample(20, x_min=900, x_max=999)
    assert recent.x and min(recent.x) >= 880  # buckets are 8 steps wide after compaction
    by_time = series.downsample(20, axis="time")
    assert by_time.x[0] == 0 and by_time.x[-1] <= 9.99


def test_non_finite_values_are_counted_not_stored():
    series = Series("loss", 16)
    series.append(0, 0.0, 1.0)
    series.append(1, 0.1, float("nan"))
    series.append(2, 0.2, float("inf"))
    assert len(series) == 1 and series.nonfinite == 2 and series.last_nonfinite_step == 2
    assert math.isinf(series.latest)
    assert series.downsample(10).hi == [1.0]


def test_log_axis_gets_only_positive_values():
    series = Series("x", 16)
    for step, value in enumerate([0.0, -1.0, 2.0, 0.5]):
        series.append(step, 0.0, value)
    buckets = series.downsample(2, positive_only=True)
    assert all(v > 0 for v in buckets.lo + buckets.hi + buckets.mean)


def test_ema_is_debiased_and_weight_zero_is_identity():
    assert ema([1.0, 2.0, 3.0], 0.0) == [1.0, 2.0, 3.0]
    smooth = ema([2.0, 2.0, 2.0], 0.9)
    assert smooth == pytest.approx([2.0, 2.0, 2.0])  # no bias towards 0 at the start
    assert ema([0.0, 10.0], 0.5)[1] == pytest.approx(10 * 0.5 / 0.75)


def test_axis_ticks_and_labels():
    from workbench.tui.widgets.charts import format_tick, format_value, log_ticks, nice_ticks

    assert nice_ticks(0, 1500, 6) == [0, 250, 500, 750, 1000, 1250, 1500]
    assert nice_ticks(0.04, 1.44, 5) == pytest.approx([0.25, 0.5, 0.75, 1.0, 1.25])
    assert log_ticks(2e-8, 3e-3) == pytest.approx([1e-7, 1e-6, 1e-5, 1e-4, 1e-3])
    assert [format_value(v) for v in (0, 0.0025, 740, 3600, 89_600, 1.2e6)] == ["0", "0.0025", "740", "3.6k",
                                                                                "89.6k", "1.2M"]
    assert [format_tick(v, "step") for v in (0, 750, 1500, 2_000_000)] == ["0", "750", "1.5k", "2M"]
    assert [format_tick(v, "time") for v in (45, 150, 3720)] == ["45s", "2:30", "1:02:00"]


def _reference_downsample(series, n, axis="step", positive_only=False):
    """The straightforward per-bucket loop the vectorised downsample must match."""
    xs = series.x_values(axis)
    lo_x, hi_x = xs[0], xs[-1]
    scale = n / (hi_x - lo_x)
    groups = []
    for i, x in enumerate(xs):
        k = min(n - 1, max(0, int((x - lo_x) * scale)))
        if not groups or groups[-1][0] != k:
            groups.append([k, x, series.lo[i], series.hi[i], series.total[i], series.count[i]])
        else:
            g = groups[-1]
            g[2], g[3] = min(g[2], series.lo[i]), max(g[3], series.hi[i])
            g[4] += series.total[i]
            g[5] += series.count[i]
    out = []
    for _, x, lo, hi, total, count in groups:
        mean = total / count
        if positive_only:
            if hi <= 0:
                continue
            lo = lo if lo > 0 else hi * 1e-12
            mean = mean if mean > 0 else lo
        out.append((x, lo, hi, mean))
    return out


def test_vectorised_downsample_matches_the_reference_loop_including_rollbacks_and_log_axes():
    import random

    rng = random.Random(7)
    series = Series("loss", capacity=512)
    step = 0
    for i in range(20_000):
        step = step - 300 if i == 12_000 else step + 1  # a rollback: x goes back once
        series.append(step, step * 0.01, rng.uniform(-1.0, 3.0))
    for n, positive_only in ((7, False), (100, False), (100, True), (333, True)):
        got = series.downsample(n, positive_only=positive_only)
        want = _reference_downsample(series, n, positive_only=positive_only)
        assert len(got) == len(want) > 0
        for row, (x, lo, hi, mean) in zip(zip(got.x, got.lo, got.hi, got.mean), want):
            assert row == pytest.approx((x, lo, hi, mean))


def test_downsample_between_appends_sees_every_change_across_compactions():
    """Redraws happen while points arrive: the numpy copy kept between redraws must never go stale (the
    newest bucket still changing, a compaction rewriting every bucket, the time axis)."""
    import random

    rng = random.Random(11)
    series = Series("loss", capacity=64)
    compactions = 0
    for step in range(3_000):
        stride = series.stride
        series.append(step, step * 0.5, rng.uniform(0.0, 2.0) + (50.0 if step == 2_222 else 0.0))
        compactions += series.stride != stride
        if step % 37 == 0 and len(series) > 20:
            for axis in ("step", "time"):
                got = series.downsample(20, axis=axis)
                want = _reference_downsample(series, 20, axis=axis)
                assert len(got) == len(want)
                for row, expected in zip(zip(got.x, got.lo, got.hi, got.mean), want):
                    assert row == pytest.approx(expected)
    assert compactions >= 5
    assert max(series.downsample(20).hi) >= 50.0  # the spike, added after many redraws, is drawn
