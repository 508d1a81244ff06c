"""The dashboard's progress line: status, step/total bar, epoch, elapsed, ETA, speed and latest metrics."""

from __future__ import annotations

from rich.text import Text
from textual.widget import Widget

from workbench.tui.state import RunState

STATUS_COLOR = {
    "starting": "grey62", "running": "green3", "paused": "yellow", "completed": "green3",
    "stopped": "dodger_blue2", "diverged": "red1", "failed": "red1", "interrupted": "yellow", "invalid": "red1",
}


def format_duration(seconds: float | None) -> str:
    """0:07, 12:34, 1:02:03 (or '-' when unknown)."""
    if seconds is None:
        return "-"
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def status_label(state: RunState) -> str:
    if state.status == "running" and state.paused:
        return "paused"
    return state.status


class RunProgress(Widget):
    """Two lines: status and a step bar; then epoch, time, speed and the latest metrics."""

    DEFAULT_CSS = """
    RunProgress {
        height: 2;
        padding: 0 1;
    }
    """

    def __init__(self, state: RunState, *, id: str | None = None):
        super().__init__(id=id)
        self.state = state
        self._last_text: tuple | None = None

    def set_state(self, state: RunState) -> None:
        self.state = state
        self._last_text = None
        self.refresh()

    def summary(self) -> tuple:
        """What the widget shows, as plain values (refresh only when this changes)."""
        state = self.state
        rate = state.steps_per_second()
        metrics = []
        for name, label, fmt in (("loss", "loss", ".4f"), ("val_loss", "val", ".4f"),
                                 ("val_accuracy", "acc", ".3f"), ("val_perplexity", "ppl", ".2f"),
                                 ("val_mae", "mae", ".4f")):
            value = state.latest(name)
            if value is not None:
                metrics.append(f"{label} {value:{fmt}}")
        return (status_label(state), state.step, state.max_steps, round(state.epoch, 2),
                format_duration(state.elapsed()), format_duration(state.eta()),
                f"{rate:,.0f} steps/s" if rate else "", "  ".join(metrics))

    def update_if_changed(self) -> bool:
        summary = self.summary()
        if summary == self._last_text:
            return False
        self._last_text = summary
        self.refresh()
        return True

    def render(self):
        """Plain Text with a hand-drawn bar: this repaints at the drain rate, so it stays cheap."""
        status, step, total, epoch, elapsed, eta, rate, metrics = self._last_text or self.summary()
        color = STATUS_COLOR.get(status, "white")
        fraction = min(step, total) / max(total, 1)
        badge = f" {status.upper()} ".ljust(13)
        right = f" step {step:,}/{total:,}  {fraction:.0%}"
        width = max(10, self.size.width - len(badge) - len(right) - 1)
        filled = int(round(fraction * width))
        top = Text.assemble((badge, f"bold reverse {color}"), " ", ("━" * filled, color),
                            ("━" * (width - filled), "grey30"), (right, "bold"), no_wrap=True, overflow="crop")
        details = Text.assemble(
            ("epoch ", "dim"), f"{epoch:.2f}", ("   elapsed ", "dim"), elapsed, ("   ETA ", "dim"),
            eta if status != "paused" else "paused", "   ", (rate, "cyan"), "   ", metrics,
            no_wrap=True, overflow="ellipsis",
        )
        return Text("\n").join([top, details])
