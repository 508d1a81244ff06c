"""Bounded metric history for live charts, and downsampling to a chart's width.

A `Series` keeps at most `capacity` buckets, each summarising consecutive points (first step, first
time, min, max, sum, count, last). When it fills up, neighbouring buckets merge pairwise and new points
go into buckets twice as wide, so memory is bounded however long the run is, and a spike stays visible
as some bucket's max. `Series.downsample(n)` re-buckets what is stored into at most n buckets (one per
chart column), so a redraw costs the same at 1,000 and at 1,000,000 logged steps.

No torch here: the UI thread must never run torch ops. Re-bucketing long histories uses numpy (no
OpenMP pool); appending stays pure Python.
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from dataclasses import dataclass

DEFAULT_CAPACITY = 2048


@dataclass
class Buckets:
    """Downsampled points for one chart: x (first x of the bucket), min, max and mean per bucket."""

    x: list[float]
    lo: list[float]
    hi: list[float]
    mean: list[float]

    def __len__(self) -> int:
        return len(self.x)

    def envelope(self) -> tuple[list[float], list[float]]:
        """Points tracing min and max of every bucket (two per bucket), so spikes are drawn."""
        xs: list[float] = []
        ys: list[float] = []
        for x, lo, hi in zip(self.x, self.lo, self.hi):
            xs.append(x)
            ys.append(lo)
            if hi != lo:
                xs.append(x)
                ys.append(hi)
        return xs, ys


class Series:
    """One metric's history: finite points kept in at most `capacity` buckets; non-finite ones counted."""

    __slots__ = ("name", "capacity", "stride", "steps", "times", "lo", "hi", "total", "count", "last",
                 "_pending", "version", "nonfinite", "last_nonfinite_step", "latest", "latest_step", "points",
                 "_mirror", "_mirrored")

    def __init__(self, name: str, capacity: int = DEFAULT_CAPACITY):
        if capacity < 2 or capacity % 2:
            raise ValueError("capacity must be an even number >= 2")
        self.name = name
        self.capacity = capacity
        self.stride = 1  # points per full bucket
        self.steps: list[float] = []
        self.times: list[float] = []
        self.lo: list[float] = []
        self.hi: list[float] = []
        self.total: list[float] = []
        self.count: list[int] = []
        self.last: list[float] = []
        self._pending = 0  # points already in the newest bucket
        self.version = 0
        self.nonfinite = 0
        self.last_nonfinite_step: int | None = None
        self.latest: float | None = None  # newest value, finite or not (for readouts)
        self.latest_step: int | None = None
        self.points = 0  # finite points ever appended
        # numpy copies of the bucket lists for downsample(): buckets before `_mirrored` are final (only the
        # newest bucket still changes), so each redraw converts a few new buckets, not all ~2,000.
        self._mirror = None
        self._mirrored = 0

    def __len__(self) -> int:
        return len(self.steps)

    def append(self, step: float, time: float, value: float) -> None:
        self.version += 1
        self.latest = value
        self.latest_step = int(step)
        if not math.isfinite(value):
            self.nonfinite += 1
            self.last_nonfinite_step = int(step)
            return
        self.points += 1
        if self.steps and self._pending < self.stride:
            i = len(self.steps) - 1
            if value < self.lo[i]:
                self.lo[i] = value
            if value > self.hi[i]:
                self.hi[i] = value
            self.total[i] += value
            self.count[i] += 1
            self.last[i] = value
            self._pending += 1
            return
        if len(self.steps) >= self.capacity:
            self._compact()
        self.steps.append(step)
        self.times.append(time)
        self.lo.append(value)
        self.hi.append(value)
        self.total.append(value)
        self.count.append(1)
        self.last.append(value)
        self._pending = 1

    def truncate(self, step: float) -> None:
        """Forget the buckets from `step` on: a rolled-back run continues from there."""
        from bisect import bisect_left

        keep = bisect_left(self.steps, step)
        if keep == len(self.steps):
            return
        for name in ("steps", "times", "lo", "hi", "total", "count", "last"):
            setattr(self, name, getattr(self, name)[:keep])
        self._pending = self.stride  # the next point starts a bucket of its own
        self._mirrored = 0
        self.version += 1
        self.latest = self.last[-1] if self.last else None
        self.latest_step = int(self.steps[-1]) if self.steps else None

    def _compact(self) -> None:
        """Merge neighbours pairwise: half the buckets, each twice as wide."""
        n = len(self.steps)
        steps, times, lo, hi, total, count, last = [], [], [], [], [], [], []
        for i in range(0, n - 1, 2):
            j = i + 1
            steps.append(self.steps[i])
            times.append(self.times[i])
            lo.append(self.lo[i] if self.lo[i] < self.lo[j] else self.lo[j])
            hi.append(self.hi[i] if self.hi[i] > self.hi[j] else self.hi[j])
            total.append(self.total[i] + self.total[j])
            count.append(self.count[i] + self.count[j])
            last.append(self.last[j])
        self.steps, self.times, self.lo, self.hi = steps, times, lo, hi
        self.total, self.count, self.last = total, count, last
        self.stride *= 2
        self._pending = self.stride  # only called when the newest bucket was full: the merged one is too
        self._mirrored = 0  # every bucket changed

    def _arrays(self, axis: str):
        """(x, lo, hi, total, count) as float64 arrays over every stored bucket, converting only what changed."""
        import numpy as np

        n = len(self.steps)
        if self._mirror is None:
            self._mirror = np.empty((6, self.capacity), dtype=np.float64)  # steps, times, lo, hi, total, count
        mirror, start = self._mirror, min(self._mirrored, n)
        if start < n:
            for row, values in enumerate((self.steps, self.times, self.lo, self.hi, self.total, self.count)):
                mirror[row, start:n] = values[start:n]
        self._mirrored = n - 1  # the newest bucket may still take points
        return (mirror[1, :n] if axis == "time" else mirror[0, :n]), mirror[2, :n], mirror[3, :n], mirror[4, :n], \
            mirror[5, :n]

    def x_values(self, axis: str) -> list[float]:
        return self.times if axis == "time" else self.steps

    def x_range(self, axis: str = "step") -> tuple[float, float] | None:
        xs = self.x_values(axis)
        if not xs:
            return None
        return xs[0], xs[-1]

    def downsample(self, n: int, x_min: float | None = None, x_max: float | None = None,
                   axis: str = "step", positive_only: bool = False) -> Buckets:
        """At most n buckets over [x_min, x_max] (default: everything stored), min/max/mean per bucket.

        positive_only drops buckets with no positive values (for a log-scale axis) and clamps lows to the
        smallest positive value seen, so a log axis never sees zero or a negative number.
        """
        xs = self.x_values(axis)
        out = Buckets([], [], [], [])
        if not xs or n < 1:
            return out
        lo_x = xs[0] if x_min is None else x_min
        hi_x = xs[-1] if x_max is None else x_max
        start = bisect_left(xs, lo_x)
        end = bisect_right(xs, hi_x)
        if start >= end:
            return out
        span = hi_x - lo_x
        if end - start <= n or span <= 0:
            for i in range(start, end):
                self._emit(out, xs[i], self.lo[i], self.hi[i], self.total[i] / self.count[i], positive_only)
            return out
        # Vectorised: a Python loop over ~2,000 stored buckets cost ~4 ms a line per redraw on these machines,
        # GIL time the trainer waits for. numpy is not torch: no OpenMP pool, safe on the UI thread.
        import numpy as np

        all_x, all_lo, all_hi, all_total, all_count = self._arrays(axis)
        x = all_x[start:end]
        k = ((x - lo_x) * (n / span)).astype(np.int64)
        np.clip(k, 0, n - 1, out=k)  # x that went back (a rollback) folds into the first bucket
        starts = np.concatenate(([0], np.flatnonzero(np.diff(k)) + 1))
        lo = np.minimum.reduceat(all_lo[start:end], starts)
        hi = np.maximum.reduceat(all_hi[start:end], starts)
        total = np.add.reduceat(all_total[start:end], starts)
        count = np.add.reduceat(all_count[start:end], starts)
        mean = total / count
        first_x = x[starts]
        if positive_only:
            keep = hi > 0
            first_x, lo, hi, mean = first_x[keep], lo[keep], hi[keep], mean[keep]
            lo = np.where(lo > 0, lo, hi * 1e-12)
            mean = np.where(mean > 0, mean, lo)
        return Buckets(first_x.tolist(), lo.tolist(), hi.tolist(), mean.tolist())

    @staticmethod
    def _emit(out: Buckets, x: float, lo: float, hi: float, mean: float, positive_only: bool) -> None:
        if positive_only:
            if hi <= 0:
                return
            floor = hi * 1e-12
            lo = lo if lo > 0 else floor
            mean = mean if mean > 0 else lo
        out.x.append(x)
        out.lo.append(lo)
        out.hi.append(hi)
        out.mean.append(mean)


def ema(values: list[float], weight: float) -> list[float]:
    """Debiased exponential moving average (TensorBoard-style smoothing); weight 0 returns a copy."""
    if weight <= 0 or not values:
        return list(values)
    out = []
    acc = 0.0
    norm = 0.0
    for value in values:
        acc = acc * weight + (1 - weight) * value
        norm = norm * weight + (1 - weight)
        out.append(acc / norm)
    return out

