"""The dashboard's progress line: status, step/total bar, epoch, elapsed, ETA, speed and latest metrics."""

from __future__ import annotations

import time
from functools import lru_cache

from rich.segment import Segment
from rich.style import Style
from textual.strip import Strip
from textual.widget import Widget

from workbench.numbers import format_number
from workbench.tui.formatting import format_duration
from workbench.tui.state import RunState

NARROW_WIDTH = 100
STATUS_COLOR = {
    "starting": "grey62", "running": "green3", "paused": "yellow", "completed": "green3",
    "stopped": "dodger_blue2", "diverged": "red1", "failed": "red1", "interrupted": "yellow", "invalid": "red1",
}


def status_label(state: RunState) -> str:
    if state.status == "running" and state.paused:
        return "paused"
    return state.status


class RunProgress(Widget):
    """Two lines: status and a step bar; then epoch, time, speed and the latest metrics.

    It changes at every drain while a run trains, so it repaints at most every `min_interval` seconds
    then (a status change shows at once) and draws its two rows as cached strips: going through Rich
    text and Textual's content pipeline cost about 2 ms a repaint, all of it GIL the trainer waits for."""

    DEFAULT_CSS = """
    RunProgress {
        height: 2;
        padding: 0 1;
    }
    """

    def __init__(self, state: RunState, *, min_interval: float = 0.5, id: str | None = None):
        super().__init__(id=id)
        self.state = state
        self.min_interval = min_interval
        self._last_text: tuple | None = None
        self._last_refresh = 0.0
        self._strips: tuple[tuple, list[Strip]] | None = None

    def set_state(self, state: RunState) -> None:
        self.state = state
        self._last_text = None
        self.refresh()

    def summary(self) -> tuple:
        """What the widget shows, as plain values (refresh only when this changes)."""
        state = self.state
        rate = state.steps_per_second()
        metrics = []
        for name, label, decimals in (("loss", "loss", 4), ("val_loss", "val", 4), ("val_accuracy", "acc", 3),
                                      ("val_perplexity", "ppl", 2), ("val_mae", "mae", 4), ("val_r2", "R²", 3)):
            value = state.latest(name)
            if value is not None:
                metrics.append(f"{label} {format_number(value, decimals=decimals)}")
        gpu = state.latest("gpu/util_pct")  # NVML utilisation, sampled once a second on GPU runs
        if gpu is not None:
            metrics.append(f"GPU {gpu:.0f}%")
        return (status_label(state), state.step, state.max_steps, round(state.epoch, 2),
                format_duration(state.elapsed()), format_duration(state.eta()),
                f"{rate:,.0f} steps/s" if rate else "", "  ".join(metrics))

    def update_if_changed(self, now: float | None = None) -> bool:
        summary = self.summary()
        if summary == self._last_text:
            return False
        now = time.monotonic() if now is None else now
        same_status = self._last_text is not None and self._last_text[0] == summary[0]
        if same_status and now - self._last_refresh < self.min_interval:
            return False
        self._last_text = summary
        self._last_refresh = now
        self.refresh()
        return True

    def render_line(self, y: int) -> Strip:
        width = self.size.width
        key = (self._last_text, width, self.app.theme)
        if self._strips is None or self._strips[0] != key:
            self._strips = (key, self._build(width))
        strips = self._strips[1]
        return strips[y] if 0 <= y < len(strips) else Strip.blank(width, self.rich_style)

    def _build(self, width: int) -> list[Strip]:
        status, step, total, epoch, elapsed, eta, rate, metrics = self._last_text or self.summary()
        base = self.rich_style
        color = STATUS_COLOR.get(status, "white")
        fraction = min(step, total) / max(total, 1)
        badge = f" {status.upper()} ".ljust(13)
        right = f" step {step:,}/{total:,}  {fraction:.0%}"
        bar = max(10, width - len(badge) - len(right) - 1)
        filled = int(round(fraction * bar))
        top = [Segment(badge, base + _style(f"bold reverse {color}")), Segment(" ", base),
               Segment("━" * filled, base + _style(color)), Segment("━" * (bar - filled), base + _style("grey30")),
               Segment(right, base + _style("bold"))]
        dim, plain = base + _style("dim"), base
        # Under 100 columns the words shrink so the metrics (accuracy included) still fit on the line.
        narrow = width < NARROW_WIDTH
        gap = "  " if narrow else "   "
        if narrow:
            rate = rate.replace(" steps/s", "/s")
        details = [Segment("ep " if narrow else "epoch ", dim), Segment(f"{epoch:.2f}", plain),
                   Segment(gap if narrow else "   elapsed ", dim), Segment(elapsed, plain),
                   Segment(f"{gap}ETA ", dim), Segment(eta if status != "paused" else "paused", plain),
                   Segment(gap, plain), Segment(rate, base + _style("cyan")), Segment(gap, plain),
                   Segment(metrics, plain)]
        top, details = [s for s in top if s.text], [s for s in details if s.text]
        return [Strip(top).crop_extend(0, width, base), _ellipsis(Strip(details), width, base)]


@lru_cache(maxsize=64)
def _style(definition: str) -> Style:
    return Style.parse(definition)


def _ellipsis(strip: Strip, width: int, base: Style) -> Strip:
    """Crop to `width` cells, ending in an ellipsis when something was cut."""
    if strip.cell_length <= width:
        return strip.extend_cell_length(width, base)
    return Strip([*strip.crop(0, max(0, width - 1)), Segment("…", base)]).crop_extend(0, width, base)
