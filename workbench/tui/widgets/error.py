"""Where a failed run explains itself: the reason, the problems, and the full traceback."""

from __future__ import annotations

from rich.text import Text
from textual.containers import VerticalScroll
from textual.widgets import Static


class ErrorPanel(VerticalScroll):
    """Hidden until a run fails (or is refused at set-up); then shows why, scrollable."""

    DEFAULT_CSS = """
    ErrorPanel {
        display: none;
        border: heavy $error;
        border-title-color: $error;
        background: $error 10%;
        height: 40%;
        padding: 0 1;
    }
    ErrorPanel.-visible { display: block; }
    """

    def __init__(self, *, id: str | None = None):
        super().__init__(id=id)
        self.border_title = "error"
        self._body = Static("")
        self.can_focus = True

    def compose(self):
        yield self._body

    def show_error(self, status: str, reason: str | None, trace: str | None, problems: list[str] | None = None,
                   hint: str = "") -> None:
        self.border_title = f"run {status}"
        text = Text()
        text.append(reason or status, style="bold")
        for problem in problems or []:
            if problem != reason:
                text.append(f"\n  • {problem}")
        if trace:
            text.append("\n\n")
            text.append(trace.rstrip(), style="dim")
        if hint:
            text.append(f"\n\n{hint}", style="italic")
        self._body.update(text)
        self.add_class("-visible")

    def hide(self) -> None:
        self.remove_class("-visible")
