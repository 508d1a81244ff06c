"""A chart of many runs' curves at once (the compare view), as cheap to redraw with five runs as with one.

plotext draws a line by interpolating every segment into points and grouping them into braille cells in
Python, per series: five overlaid runs cost five times one. `OverlayChart` lets plotext lay out only the
frame, axes and ticks, and draws every line itself: a line's points (already downsampled by the store)
become one vertical span per braille sub-column (the curve is x-sorted, so what it covers in a column is
one interval), turned into braille dots a cell at a time. Overlapping lines share a cell's dots; the
line drawn last gives the cell its colour.
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right

from workbench.tui.series import Buckets
from workbench.tui.widgets.charts import Line, MetricChart

BRAILLE = 0x2800
# Dot bits of a braille cell by (sub-column, sub-row counted from the bottom).
DOTS = ((0x40, 0x04, 0x02, 0x01), (0x80, 0x20, 0x10, 0x08))
# MASKS[sub-column][a][b]: the dots of sub-rows a..b (from the bottom) in one cell.
MASKS = tuple(tuple(tuple(sum(DOTS[side][r] for r in range(a, b + 1)) for b in range(4)) for a in range(4))
              for side in (0, 1))
RAW_POINTS_PER_COLUMN = 8  # up to this many stored points per column are drawn as they are, not re-bucketed
NONE = 1 << 30


def column_spans(xs: list[int], lows: list[int], highs: list[int], width: int) -> tuple[list[int], list[int]]:
    """Per sub-column in [0, width): the lowest and highest sub-row a line covers (NONE/-NONE where none).

    Point i spans lows[i]..highs[i] at column xs[i] (x-sorted); consecutive points are joined from the
    previous high to the next low, as the min/max envelope is drawn."""
    bottom = [NONE] * width
    top = [-NONE] * width
    last = width - 1
    prev_x = prev_y = None
    for x, a, b in zip(xs, lows, highs):
        if prev_x is not None and x != prev_x:  # join from the previous point (none at the same column)
            if x == prev_x + 1:  # the common case: neighbouring columns, each takes half the step
                y = round((prev_y + a) / 2)
                for c in (prev_x, x):
                    if 0 <= c <= last:
                        if y < bottom[c]:
                            bottom[c] = y
                        if y > top[c]:
                            top[c] = y
            else:
                x0, y0 = prev_x, prev_y
                slope = (a - y0) / (x - x0)
                for c in range(max(x0, 0), min(x, last) + 1):
                    # the segment's extent across this column: from half a column before to half after it
                    ya = y0 + slope * ((c - 0.5 if c > x0 else x0) - x0)
                    yb = y0 + slope * ((c + 0.5 if c < x else x) - x0)
                    lo, hi = (round(ya), round(yb)) if ya <= yb else (round(yb), round(ya))
                    if lo < bottom[c]:
                        bottom[c] = lo
                    if hi > top[c]:
                        top[c] = hi
        if 0 <= x <= last:
            if a < bottom[x]:
                bottom[x] = a
            if b > top[x]:
                top[x] = b
        prev_x, prev_y = x, b
    return bottom, top


def braille_cells(bottom: list[int], top: list[int], height: int, cells: dict[tuple[int, int], int]) -> list:
    """OR a line's dots into `cells` ({(cell column, cell row): dot bits}); returns the cells it touched."""
    touched = []
    ceiling = height - 1
    for c, (lo, hi) in enumerate(zip(bottom, top)):
        if hi < 0 or lo > ceiling:
            continue
        if lo < 0:
            lo = 0
        if hi > ceiling:
            hi = ceiling
        masks, col = MASKS[c & 1], c >> 1
        first, end = lo >> 2, hi >> 2
        if first == end:  # the common case: the span fits in one cell
            key = (col, first)
            cells[key] = cells.get(key, 0) | masks[lo & 3][hi & 3]
            touched.append(key)
            continue
        for row in range(first, end + 1):
            base = row << 2
            key = (col, row)
            cells[key] = cells.get(key, 0) | masks[lo - base if lo > base else 0][hi - base if hi < base + 3 else 3]
            touched.append(key)
    return touched


class OverlayChart(MetricChart):
    """A MetricChart whose lines are rasterized in one pass over all runs; plotext draws only the frame."""

    def _fill(self) -> None:
        self._pending: list[tuple[Line, Buckets]] = []
        super()._fill()
        if not self._pending:
            return
        plt = self.plt
        log = self.options.log_y
        lo = min(min(data.lo) for _, data in self._pending)
        hi = max(max(data.hi) for _, data in self._pending)
        for y, _, _ in self.hlines:
            if y > 0 or not log:
                lo, hi = min(lo, y), max(hi, y)
        if hi <= lo:
            pad = abs(lo) * 0.1 if lo else 1.0
            lo, hi = (lo / 2, hi * 2) if log else (lo - pad, hi + pad)
        self._y_limits = (math.log10(lo), math.log10(hi)) if log else (lo, hi)  # plotext's log limits are log10
        plt.ylim(*self._y_limits)
        # One blank point gives plotext a signal, so it draws the axes and ticks for the limits set.
        plt.scatter([self._pending[0][1].x[0]], [lo], marker=" ")

    def _series_data(self, series, buckets: int, window: tuple[float, float]) -> Buckets:
        """The stored points as they are when there are few per column (the compare view's are already
        downsampled by the store): rasterizing merges what shares a column, re-bucketing first is waste."""
        axis = self.options.x_axis
        xs = series.x_values(axis)
        start, end = bisect_left(xs, window[0]), bisect_right(xs, window[1])
        if self.options.log_y or end - start > RAW_POINTS_PER_COLUMN * buckets:
            return super()._series_data(series, buckets, window)
        return Buckets(xs[start:end], series.lo[start:end], series.hi[start:end], series.lo[start:end])

    def _plot_line(self, line: Line, data: Buckets) -> int:
        """Collect the line; it is drawn in `_draw_over`, not by plotext."""
        if not len(data):
            return 0
        self._pending.append((line, data))
        return len(data) + sum(1 for a, b in zip(data.lo, data.hi) if a != b)

    def _draw_over(self, monitor) -> None:
        pending = getattr(self, "_pending", None)
        if not pending:
            return
        matrix = monitor.matrix
        cols, rows = matrix.Cols_canvas, matrix.Rows_canvas
        x_lo, x_hi = monitor.xlim[0]
        if not len(cols) or not len(rows) or x_lo is None:
            return
        y_lo, y_hi = self._y_limits
        width, height = len(cols) * 2, len(rows) * 4  # braille: 2x4 dots a cell
        x_scale = (width - 1) / (x_hi - x_lo) if x_hi != x_lo else 0.0
        y_scale = (height - 1) / (y_hi - y_lo) if y_hi != y_lo else 0.0
        floor, log10 = math.floor, math.log10
        cells: dict[tuple[int, int], int] = {}
        colors: dict[tuple[int, int], tuple[int, int, int]] = {}
        for line, data in pending:
            xs = [floor(0.5 + (x - x_lo) * x_scale) for x in data.x]
            if self.options.log_y:
                lows = [floor(0.5 + (log10(y) - y_lo) * y_scale) for y in data.lo]
            else:
                lows = [floor(0.5 + (y - y_lo) * y_scale) for y in data.lo]
            if data.hi == data.lo:  # single values, not buckets (the compare view's points): one mapping
                highs = lows
            elif self.options.log_y:
                highs = [floor(0.5 + (log10(y) - y_lo) * y_scale) for y in data.hi]
            else:
                highs = [floor(0.5 + (y - y_lo) * y_scale) for y in data.hi]
            colors.update(dict.fromkeys(braille_cells(*column_spans(xs, lows, highs, width), height, cells),
                                        line.color))
        col0, row0 = cols.start, rows.start
        marker, fullground = matrix.marker, matrix.fullground
        for (col, row), bits in cells.items():
            marker[row0 + row][col0 + col] = chr(BRAILLE + bits)
            fullground[row0 + row][col0 + col] = colors[(col, row)]
