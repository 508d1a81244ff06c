"""Live metric charts (textual-plotext), cheap enough to redraw while a model trains in the same process.

Four things keep them cheap, because every millisecond the UI thread holds the GIL is a millisecond
the trainer thread waits:
- each chart plots at most one bucket per column (min/max per bucket, so spikes survive), whatever the
  history length (`Series.downsample`);
- plotext lays out the frame, axes and ticks; the lines are rasterized into its matrix in one pass
  (`raster.draw_lines`), a third of what plotext's own line drawing cost;
- a chart rebuilds its plot only when its data, size, theme or options changed, and keeps the built
  text for every other repaint;
- `RedrawScheduler` redraws only visible charts with new data, stalest first, within a budget: a share
  of wall time (token bucket) while a run is training, freely when it is paused or has ended.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Iterable

from rich.color import Color as RichColor
from rich.segment import Segment
from rich.style import Style
from textual.strip import Strip
from textual_plotext import PlotextPlot

from workbench.numbers import format_number
from workbench.tui.series import Buckets, ema
from workbench.tui.state import RunState
from workbench.tui.widgets.raster import draw_lines

RGB = tuple[int, int, int]
FAINT: RGB = (96, 102, 122)
SMOOTHING_STEPS = (0.0, 0.6, 0.8, 0.9, 0.95, 0.99)
ZOOM_STEPS = (1.0, 0.5, 0.25, 0.1, 0.05)


@dataclass(frozen=True)
class Line:
    """One metric drawn on a chart."""

    metric: str
    label: str
    color: RGB
    smooth: bool = True  # sparse lines (val loss) are drawn as they are
    fmt: str = ".4g"


@dataclass
class ChartOptions:
    """View options shared by every chart on the dashboard (changed by keys and palette commands)."""

    log_y: bool = False
    smoothing: float = 0.0
    x_axis: str = "step"  # "step" or "time"
    zoom: float = 1.0  # the most recent fraction of the x range shown
    version: int = 0

    def changed(self) -> None:
        self.version += 1

    def describe(self) -> str:
        zoom = "all" if self.zoom >= 1 else f"last {self.zoom:.0%}"
        smooth = f"EMA {self.smoothing:g}" if self.smoothing else "off"
        return (f"y {'log' if self.log_y else 'linear'}  ·  smoothing {smooth}  ·  x {'wall time (s)' if self.x_axis == 'time' else 'steps'}"
                f"  ·  zoom {zoom}")


def nice_ticks(lo: float, hi: float, count: int) -> list[float]:
    """About `count` round tick positions (1, 2, 2.5 or 5 times a power of ten apart) within [lo, hi]."""
    if hi <= lo:
        return [lo]
    power = 10 ** math.floor(math.log10((hi - lo) / max(1, count)))
    candidates = [m * power for m in (0.5, 1, 2, 2.5, 5, 10, 20)]

    def ticks_for(step: float) -> int:
        return math.floor(hi / step + 1e-9) - math.ceil(lo / step - 1e-9) + 1

    step = min(candidates, key=lambda c: (abs(ticks_for(c) - count), -c))
    ticks = []
    value = math.ceil(lo / step - 1e-9) * step
    while value <= hi + step * 1e-9:
        ticks.append(round(value, 12))
        value += step
    return ticks


def log_ticks(lo: float, hi: float) -> list[float]:
    """Powers of ten within [lo, hi]; 1-2-5 steps when the range spans less than two decades."""
    decades = list(range(math.floor(math.log10(lo)), math.ceil(math.log10(hi)) + 1))
    ticks = [10.0 ** e for e in decades if lo <= 10.0 ** e <= hi]
    if len(ticks) < 3:
        ticks = sorted({m * 10.0 ** e for e in decades for m in (1, 2, 5) if lo <= m * 10.0 ** e <= hi})
    return ticks or [lo, hi]


def format_value(value: float) -> str:
    """Compact y labels: 0.0025, 1.5, 740, 3.6k, 1.2M, 3e-05, 2e+17."""
    return format_number(value, compact=True)


def tick_labels(ticks: list[float]) -> list[str]:
    """Compact labels with as many digits as it takes to tell neighbouring ticks apart (949.5, 950, 950.5)."""
    for digits in range(3, 8):
        labels = [format_number(t, digits=digits, compact=True) for t in ticks]
        if len(set(labels)) == len(labels):
            return labels
    return labels


def format_metric(value: float, fmt: str) -> str:
    """A line's latest value in a chart title, in the line's style (".4g", ".3g", ",.0f")."""
    if fmt == ",.0f":
        return format_number(value, decimals=0)
    return format_number(value, digits=int(fmt[1:-1]) if fmt[1:-1].isdigit() else 4)


def format_tick(value: float, axis: str) -> str:
    """Steps as 750, 1.5k, 2M; wall time as 45s, 2:30, 1:02:00."""
    if axis == "time":
        seconds = int(round(value))
        if seconds < 60:
            return f"{seconds}s"
        hours, rest = divmod(seconds, 3600)
        minutes, secs = divmod(rest, 60)
        return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"
    if math.isfinite(value) and value == int(value) and abs(value) < 1e3:
        return str(int(value))
    return format_number(value, compact=True)


def _rich_style(color) -> Style:
    """A plotext colour (an RGB tuple, a 256-colour index or a name) as a foreground style."""
    if isinstance(color, tuple) and len(color) == 3:
        return Style(color=RichColor.from_rgb(*color))
    if isinstance(color, int):
        return Style(color=RichColor.from_ansi(color))
    return Style()  # "default" and friends: the widget's own colour


def _markup(color: RGB) -> str:
    return f"rgb({color[0]},{color[1]},{color[2]})"


class MetricChart(PlotextPlot):
    """A chart of one or more metrics from a RunState; rebuilt only when something it shows changed."""

    DEFAULT_CSS = """
    MetricChart {
        border: round $panel;
        border-title-color: $text;
        border-subtitle-color: $warning;
        padding: 0;
    }
    MetricChart.-selected {
        border: round $accent;
    }
    """

    def __init__(self, title: str, lines: Iterable[Line], state: RunState, options: ChartOptions,
                 *, unit: str = "", hlines: Iterable[tuple[float, str, RGB]] = (), priority: int = 1,
                 id: str | None = None, classes: str | None = None):
        super().__init__(id=id, classes=classes)
        self.title = title
        self.lines = list(lines)
        self.state = state
        self.options = options
        self.unit = unit
        self.hlines = list(hlines)
        self.priority = priority  # lower = redrawn first when the budget is short
        self._version = 0
        self._cache_key: tuple | None = None
        self._cached: list[Strip] | None = None
        self.drawn_data_version = -1  # data + options version at the last redraw request
        self.last_redraw = 0.0
        self.builds = 0
        self.spent = 0.0  # seconds spent building, ever
        self.cost_estimate = 0.01
        self.last_points = 0  # points handed to plotext at the last build (tests check the bound)
        self.paced = False  # redrawn with the progress line, not by the scheduler, while a run trains
        self.drawn_window: tuple[float, float] | None = None  # the x range of the last build
        self._window: tuple[float, float] | None = None  # the x range asked for at the last redraw()
        self.border_title = title

    # -- what changed -------------------------------------------------------------------------------
    def data_version(self) -> int:
        total = self.options.version * 1_000_003
        for line in self.lines:
            series = self.state.series.get(line.metric)
            if series is not None:
                total += series.version
        return total

    @property
    def dirty(self) -> bool:
        return self.data_version() != self.drawn_data_version

    def set_state(self, state: RunState) -> None:
        self.state = state
        self.drawn_data_version = -1
        self._window = None

    def redraw(self) -> None:
        """Rebuild at the next repaint with the data as it is then."""
        self.drawn_data_version = self.data_version()
        self.last_redraw = time.monotonic()
        # The x range is fixed here, not at the next build: a rebuild for a resize shows this same frame,
        # so a paced chart never runs ahead of the progress line it was drawn with.
        self._window = self._x_window()
        self._version += 1
        self._update_titles()
        self.refresh()

    # -- drawing ------------------------------------------------------------------------------------
    def render_line(self, y: int) -> Strip:
        """The line API: rows come from strips built once per change, not re-rendered per repaint."""
        strips = self._strips()
        return strips[y] if 0 <= y < len(strips) else Strip.blank(self.size.width, self.rich_style)

    def _strips(self) -> list[Strip]:
        key = (self.size.width, self.size.height, self._version, self.app.theme)
        if self._cached is not None and key == self._cache_key:
            return self._cached
        # CPU time of this thread, not wall time: waiting for the GIL is not a cost we impose.
        started = time.thread_time()
        self._cached = self._build(self.size.width, self.size.height)
        self._cache_key = key
        cost = time.thread_time() - started
        self.spent += cost
        self.cost_estimate = cost if self.builds == 0 else 0.7 * self.cost_estimate + 0.3 * cost
        self.builds += 1
        return self._cached

    def _build(self, width: int, height: int) -> list[Strip]:
        """Lay the plot out with plotext and read its character matrix straight into strips.

        Going through plotext's ANSI text (build() -> Text.from_ansi -> Textual content) cost more than
        plotting itself; the matrix holds the same characters and colours."""
        if width < 4 or height < 2:
            return [Strip.blank(width, self.rich_style) for _ in range(max(height, 0))]
        plt = self.plt
        plt.plotsize(width, height)
        plt._set_size(width, height)
        self._fill()
        plt._set_sizes()
        plt._build_matrix()
        self._draw_over(plt.monitor)
        matrix = plt.monitor.matrix
        base = self.rich_style
        styles: dict = {}
        strips = []
        for row in range(matrix.rows - 1, -1, -1):
            markers, colors = matrix.marker[row], matrix.fullground[row]
            segments = []
            start = 0
            for col in range(1, len(markers) + 1):
                if col == len(markers) or colors[col] != colors[start]:
                    style = styles.get(colors[start])
                    if style is None:
                        style = styles[colors[start]] = base + _rich_style(colors[start])
                    segments.append(Segment("".join(markers[start:col]), style))
                    start = col
            strips.append(Strip(segments, len(markers)).adjust_cell_length(width, base))
        while len(strips) < height:
            strips.append(Strip.blank(width, base))
        return strips[:height]

    def _series_data(self, series, buckets: int, window: tuple[float, float]) -> Buckets:
        """One line's points for this build: the series re-bucketed to the chart's columns."""
        return series.downsample(buckets, window[0], window[1], self.options.x_axis, positive_only=self.options.log_y)

    def _x_window(self) -> tuple[float, float] | None:
        lo = hi = None
        for line in self.lines:
            series = self.state.series.get(line.metric)
            span = series.x_range(self.options.x_axis) if series is not None else None
            if span is None:
                continue
            lo = span[0] if lo is None else min(lo, span[0])
            hi = span[1] if hi is None else max(hi, span[1])
        if lo is None or hi is None:
            return None
        if self.options.zoom < 1 and hi > lo:
            lo = hi - (hi - lo) * self.options.zoom
        return lo, hi

    def _fill(self) -> None:
        """Hand plotext the frame (limits, ticks, threshold lines) and collect the lines to rasterize."""
        plt = self.plt
        plt.clear_data()
        options = self.options
        width = max(self.size.width, 10)
        height = max(self.size.height, 4)
        buckets = max(4, width - 12)  # plot columns, less the y tick labels
        window = self._window or self._x_window()
        self.drawn_window = window
        self._pending: list[tuple[RGB, Buckets]] = []
        plotted = 0
        y_range: list[float] = []
        if window is not None:
            for line in self.lines:
                series = self.state.series.get(line.metric)
                if series is None or not len(series):
                    continue
                data = self._series_data(series, buckets, window)
                plotted += self._plot_line(line, data)
                if len(data):
                    y_range += [min(data.lo), max(data.hi)]
        if plotted:
            for y, label, color in self.hlines:
                if y > 0 or not options.log_y:
                    plt.horizontal_line(y, color=color)
                    y_range.append(y)
        log = options.log_y and plotted > 0
        plt.yscale("log" if log else "linear")
        plt.xaxes(True, False)
        plt.yaxes(True, False)
        if plotted and window is not None and window[1] > window[0]:
            plt.xlim(window[0], window[1])
            ticks = nice_ticks(window[0], window[1], max(2, width // 12))
            plt.xticks(ticks, [format_tick(t, options.x_axis) for t in ticks])
        else:
            plt.xlim(None, None)
            plt.xticks([], [])
        if y_range:
            lo, hi = min(y_range), max(y_range)
            if hi <= lo:  # a flat line: give it room, centred
                pad = abs(lo) * 0.1 if lo else 1.0
                lo, hi = (lo / 2, hi * 2) if log else (lo - pad, hi + pad)
            self._y_limits = (math.log10(lo), math.log10(hi)) if log else (lo, hi)  # plotext's log limits are log10
            plt.ylim(*self._y_limits)
            rows = max(1, (height - 2) // 2)  # labels need a free row between them
            ticks = log_ticks(lo, hi) if log else nice_ticks(lo, hi, max(3, (height - 3) // 2))
            if len(ticks) > rows:  # thin out evenly, keeping both ends, rather than let plotext pick
                ticks = [ticks[round(i * (len(ticks) - 1) / max(1, rows - 1))] for i in range(rows)] \
                    if rows > 1 else [ticks[len(ticks) // 2]]
            plt.yticks(ticks, tick_labels(ticks))
            if self._pending:
                # One blank point gives plotext a signal, so it draws the axes and ticks for the limits set.
                plt.scatter([self._pending[0][1].x[0]], [lo], marker=" ")
        else:
            plt.ylim(None, None)
            plt.yticks([], [])
        self.last_points = plotted

    def _plot_line(self, line: Line, data: Buckets) -> int:
        """Queue a line for `_draw_over`; returns the points it plots (two for a bucket whose min != max)."""
        if not len(data):
            return 0
        envelope = len(data) + sum(1 for a, b in zip(data.lo, data.hi) if a != b)
        smoothing = self.options.smoothing if line.smooth else 0.0
        if smoothing > 0:  # the raw envelope stays visible, faint, under the smoothed curve
            self._pending.append((FAINT, data))
            smooth = ema(data.mean, smoothing)
            self._pending.append((line.color, Buckets(data.x, smooth, smooth, smooth)))
            return envelope + len(data)
        self._pending.append((line.color, data))
        return envelope

    def _draw_over(self, monitor) -> None:
        """Rasterize the queued lines into the matrix plotext built (its frame, axes and ticks)."""
        pending = getattr(self, "_pending", None)
        x_limits = monitor.xlim[0]
        if not pending or x_limits[0] is None:
            return
        draw_lines(monitor.matrix, x_limits, self._y_limits, self.options.log_y,
                   [(color, data.x, data.lo, data.hi) for color, data in pending])

    def _update_titles(self) -> None:
        parts = [f"[b]{self.title}[/b]"]
        for line in self.lines:
            series = self.state.series.get(line.metric)
            if series is None or series.latest is None:
                continue
            value = series.latest
            label = f"{line.label} " if line.label else ""
            parts.append(f"[{_markup(line.color)}]━[/] {label}{format_metric(value, line.fmt)}")
        for y, label, color in self.hlines:
            parts.append(f"[{_markup(color)}]┄[/] {label}")
        if self.unit:
            parts.append(f"[dim]{self.unit}[/dim]")
        self.border_title = "  ".join(parts)
        bad = [(line.label, self.state.series[line.metric]) for line in self.lines
               if line.metric in self.state.series and self.state.series[line.metric].nonfinite]
        self.border_subtitle = "  ".join(
            f"⚠ {label}: {series.nonfinite} non-finite (last at step {series.last_nonfinite_step:,})"
            for label, series in bad)


@dataclass
class RedrawBudget:
    """A token bucket of the UI thread's CPU time while the trainer runs.

    Everything the UI thread does is charged (draining telemetry, the progress line, compositing, chart
    builds), since every CPU second it takes is one the trainer thread may have waited for; only chart
    redraws are optional, so they spend whatever the rest leaves of `share`."""

    share: float = 0.03  # target: UI thread CPU seconds per wall second while training
    burst: float = 0.05  # seconds that may be spent at once after a quiet spell
    tokens: float = 0.05
    last_wall: float | None = None
    last_cpu: float | None = None

    def update(self, now: float, cpu: float, limited: bool) -> None:
        if self.last_wall is None or not limited:
            self.tokens = self.burst
        else:
            spent = cpu - self.last_cpu
            self.tokens = min(self.burst, self.tokens + (now - self.last_wall) * self.share - spent)
            self.tokens = max(-self.burst, self.tokens)  # one slow frame can't freeze the charts for long
        self.last_wall, self.last_cpu = now, cpu


class RedrawScheduler:
    """Decides, once per UI tick, which charts to rebuild: visible ones with new data, stalest first."""

    # Redrawing a chart costs about this much more than building it (compositing and output).
    COMPOSITE_FACTOR = 2.0

    def __init__(self, charts: list[MetricChart], budget: RedrawBudget | None = None,
                 min_interval: float = 0.25, max_stale: float = 5.0, training_interval: float = 0.0):
        self.charts = charts
        self.budget = budget or RedrawBudget()
        self.min_interval = min_interval
        # While training, the charts the scheduler draws wait at least this long between redraws: their
        # builds and repaints are most of what the UI thread takes from the trainer.
        self.training_interval = training_interval
        self.max_stale = max_stale  # a visible chart with new data waits at most this long, budget or not
        self.redraws = 0

    def tick(self, limited: bool, now: float | None = None, cpu: float | None = None,
             force: bool = False) -> list[MetricChart]:
        """Redraw what is due; `limited` is True while training runs (then the budget applies).

        `force` redraws every visible chart that changed at once (a key press changed the view)."""
        now = time.monotonic() if now is None else now
        budget = self.budget
        budget.update(now, time.thread_time() if cpu is None else cpu, limited and not force)
        interval = max(self.min_interval, self.training_interval) if limited else self.min_interval
        due = [c for c in self.charts
               if c.dirty and c.is_on_screen and (force or now - c.last_redraw >= interval)
               and not (c.paced and limited and not force)]
        due.sort(key=lambda c: (c.last_redraw + 0.5 * c.priority, c.priority))
        drawn = []
        planned = 0.0
        for chart in due:
            overdue = now - chart.last_redraw >= self.max_stale
            if limited and not force and budget.tokens - planned <= 0 and not overdue:
                continue
            planned += chart.cost_estimate * self.COMPOSITE_FACTOR
            chart.redraw()
            drawn.append(chart)
        self.redraws += len(drawn)
        return drawn
