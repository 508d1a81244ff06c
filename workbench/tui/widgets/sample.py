"""The latest generated text of a language-model run (shown for LM presets only)."""

from __future__ import annotations

from rich.text import Text
from textual.containers import VerticalScroll
from textual.widgets import Static


class SamplePanel(VerticalScroll):
    """Scrollable box with the newest sample; its title says at which step it was generated."""

    DEFAULT_CSS = """
    SamplePanel {
        border: round $panel;
        border-title-color: $text;
        height: 10;
    }
    SamplePanel > Static { width: 1fr; }
    """

    def __init__(self, *, id: str | None = None):
        super().__init__(id=id)
        self.border_title = "sample"
        self._body = Static("waiting for the first evaluation…", classes="sample-text")

    def compose(self):
        yield self._body

    def show_sample(self, text: str, step: int | None) -> None:
        self.border_title = f"sample @ step {step:,}" if step is not None else "sample"
        self._body.update(Text(text))
