"""The dashboard's log pane: what the trainer said (set-up, checkpoints, LR changes, findings, errors)."""

from __future__ import annotations

from collections import deque

from rich.text import Text
from textual.widgets import RichLog

KIND_STYLE = {"error": "bold red", "finding": "yellow", "checkpoint": "cyan", "status": "bold",
              "setup": "green", "ui": "magenta", "sample": "dim"}


class LogPane(RichLog):
    """A bounded, auto-scrolling log of events, one line each, prefixed with the step."""

    DEFAULT_CSS = """
    LogPane {
        border: round $panel;
        border-title-color: $text;
        scrollbar-size-vertical: 1;
    }
    """

    def __init__(self, *, id: str | None = None, max_lines: int = 1000):
        super().__init__(id=id, max_lines=max_lines, wrap=True, markup=False, highlight=False, min_width=20)
        self.border_title = "log"
        self.entries: deque[tuple[int, str, str]] = deque(maxlen=max_lines)  # what was written, as data

    def add(self, step: int, kind: str, text: str) -> None:
        first_line = text.strip().splitlines()[0] if text.strip() else ""
        if kind == "checkpoint" and ": /" in first_line:  # the full path is in the store; the file name will do
            head, _, path = first_line.partition(": ")
            first_line = f"{head.split(' at step ')[0]} → {path.rsplit('/', 1)[-1]}"
        line = Text.assemble((f"{step:>7,} ", "dim"), (first_line, KIND_STYLE.get(kind, "")))
        self.entries.append((step, kind, first_line))
        self.write(line)
