"""Live metric charts (textual-plotext), cheap enough to redraw while a model trains in the same process.

Three things keep them cheap, because every millisecond the UI thread holds the GIL is a millisecond
the trainer thread waits:
- each chart plots at most one bucket per column (min/max per bucket, so spikes survive), whatever the
  history length (`Series.downsample`);
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

from rich.text import Text
from textual_plotext import PlotextPlot

from workbench.tui.series import Buckets, ema
from workbench.tui.state import RunState

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
    """About `count` round tick positions (1, 2 or 5 times a power of ten apart) within [lo, hi]."""
    if hi <= lo:
        return [lo]
    raw = (hi - lo) / max(1, count)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    first = math.ceil(lo / step) * step
    ticks = []
    value = first
    while value <= hi + step * 1e-9:
        ticks.append(value)
        value += step
    return ticks


def format_tick(value: float, axis: str) -> str:
    """Steps as 750, 1.5k, 2M; wall time as 45s, 2:30, 1:02:00."""
    if axis == "time":
        seconds = int(round(value))
        if seconds < 60:
            return f"{seconds}s"
        hours, rest = divmod(seconds, 3600)
        minutes, secs = divmod(rest, 60)
        return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"
    for suffix, size in (("M", 1e6), ("k", 1e3)):
        if abs(value) >= size:
            return f"{value / size:.3g}{suffix}"
    return f"{value:.3g}" if value != int(value) else str(int(value))


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
        self._cached: Text | None = None
        self.drawn_data_version = -1  # data + options version at the last redraw request
        self.last_redraw = 0.0
        self.builds = 0
        self.spent = 0.0  # seconds spent building, ever
        self.cost_estimate = 0.01
        self.last_points = 0  # points handed to plotext at the last build (tests check the bound)
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

    def redraw(self) -> None:
        """Rebuild at the next repaint with the data as it is then."""
        self.drawn_data_version = self.data_version()
        self.last_redraw = time.monotonic()
        self._version += 1
        self._update_titles()
        self.refresh()

    # -- drawing ------------------------------------------------------------------------------------
    def render(self):
        key = (self.size.width, self.size.height, self._version, self.app.theme)
        if self._cached is not None and key == self._cache_key:
            return self._cached
        # CPU time of this thread, not wall time: waiting for the GIL is not a cost we impose.
        started = time.thread_time()
        self._fill()
        self._cached = super().render()
        self._cache_key = key
        cost = time.thread_time() - started
        self.spent += cost
        self.cost_estimate = cost if self.builds == 0 else 0.7 * self.cost_estimate + 0.3 * cost
        self.builds += 1
        return self._cached

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
        plt = self.plt
        plt.clear_data()
        options = self.options
        width = max(self.size.width, 10)
        buckets = max(4, width - 12)  # plot columns, less the y tick labels
        window = self._x_window()
        plotted = 0
        if window is not None:
            for line in self.lines:
                series = self.state.series.get(line.metric)
                if series is None or not len(series):
                    continue
                data = series.downsample(buckets, window[0], window[1], options.x_axis,
                                         positive_only=options.log_y)
                plotted += self._plot_line(line, data)
        for y, label, color in self.hlines:
            if window is not None and (y > 0 or not options.log_y):
                plt.horizontal_line(y, color=color)
        plt.yscale("log" if options.log_y and plotted else "linear")
        plt.xaxes(True, False)
        plt.yaxes(True, False)
        if plotted and window is not None and window[1] > window[0]:
            plt.xlim(window[0], window[1])
            ticks = nice_ticks(window[0], window[1], max(2, width // 14))
            plt.xticks(ticks, [format_tick(t, options.x_axis) for t in ticks])
        else:
            plt.xlim(None, None)
            plt.xticks([], [])
        self.last_points = plotted

    def _plot_line(self, line: Line, data: Buckets) -> int:
        if not len(data):
            return 0
        plt = self.plt
        smoothing = self.options.smoothing if line.smooth else 0.0
        xs, ys = data.envelope()
        if smoothing > 0:
            plt.plot(xs, ys, marker="braille", color=FAINT)
            plt.plot(data.x, ema(data.mean, smoothing), marker="braille", color=line.color)
            return len(xs) + len(data.x)
        if len(xs) == 1:
            plt.scatter(xs, ys, marker="braille", color=line.color)
        else:
            plt.plot(xs, ys, marker="braille", color=line.color)
        return len(xs)

    def _update_titles(self) -> None:
        parts = [f"[b]{self.title}[/b]"]
        for line in self.lines:
            series = self.state.series.get(line.metric)
            if series is None or series.latest is None:
                continue
            value = series.latest
            parts.append(f"[{_markup(line.color)}]━[/] {line.label} {format(value, line.fmt)}")
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
    """A token bucket of seconds the UI may spend building charts while the trainer is running."""

    share: float = 0.04  # fraction of wall time
    burst: float = 0.08  # seconds that may be spent at once after a quiet spell
    tokens: float = 0.08
    last: float = field(default_factory=time.monotonic)

    def refill(self, now: float, limited: bool) -> None:
        if not limited:
            self.tokens = self.burst
        else:
            self.tokens = min(self.burst, self.tokens + (now - self.last) * self.share)
        self.last = now

    def charge(self, seconds: float) -> None:
        """Spend; a debt is capped so one slow build (a resize) can't freeze the charts for long."""
        self.tokens = max(-self.burst, self.tokens - seconds)


class RedrawScheduler:
    """Decides, once per UI tick, which charts to rebuild."""

    def __init__(self, charts: list[MetricChart], budget: RedrawBudget | None = None,
                 min_interval: float = 0.25):
        self.charts = charts
        self.budget = budget or RedrawBudget()
        self.min_interval = min_interval
        self.redraws = 0
        self._charged = 0.0

    def tick(self, limited: bool, now: float | None = None) -> list[MetricChart]:
        """Redraw what is due; `limited` is True while training runs (the budget applies)."""
        now = time.monotonic() if now is None else now
        budget = self.budget
        # Charge what the builds since the last tick really cost (resizes included).
        spent = sum(chart.spent for chart in self.charts)
        budget.refill(now, limited)
        if limited:
            budget.charge(spent - self._charged)
        self._charged = spent
        due = [c for c in self.charts if c.dirty and c.is_on_screen and now - c.last_redraw >= self.min_interval]
        due.sort(key=lambda c: (c.last_redraw + 0.5 * c.priority, c.priority))
        drawn = []
        planned = 0.0
        for chart in due:
            if limited and budget.tokens - planned <= 0:
                break
            planned += chart.cost_estimate
            chart.redraw()
            drawn.append(chart)
        self.redraws += len(drawn)
        return drawn
