"""A chart of many runs' curves at once (the compare view), as cheap to redraw with five runs as with one.

Every chart rasterizes its lines in one pass (`raster.draw_lines`), so five overlaid runs cost little
more than one. What the compare view adds: its runs come from the store already downsampled, so their
points are drawn as they are unless a column would get more than a few.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right

from workbench.tui.series import Buckets
from workbench.tui.widgets.charts import MetricChart

RAW_POINTS_PER_COLUMN = 8  # up to this many stored points per column are drawn as they are, not re-bucketed


class OverlayChart(MetricChart):
    """A MetricChart over runs whose points the store already downsampled."""

    def _series_data(self, series, buckets: int, window: tuple[float, float]) -> Buckets:
        """The stored points as they are when there are few per column (the compare view's are already
        downsampled by the store): rasterizing merges what shares a column, re-bucketing first is waste."""
        axis = self.options.x_axis
        xs = series.x_values(axis)
        start, end = bisect_left(xs, window[0]), bisect_right(xs, window[1])
        if self.options.log_y or end - start > RAW_POINTS_PER_COLUMN * buckets:
            return super()._series_data(series, buckets, window)
        return Buckets(xs[start:end], series.lo[start:end], series.hi[start:end], series.lo[start:end])
