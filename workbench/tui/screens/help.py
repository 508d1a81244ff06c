"""The help screen (? or f1): every key of the screen it was opened from, from `workbench.tui.keys`."""

from __future__ import annotations

from rich.table import Table
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Label, Static

from workbench.tui.keys import KeyRow

# Every screen's help keys (the form binds only f1: ? is a character in its text fields).
HELP_BINDINGS = [Binding("question_mark", "app.help", "Help"), Binding("f1", "app.help", "Help", show=False)]
FORM_HELP_BINDINGS = [Binding("f1", "app.help", "Help")]


class HelpScreen(ModalScreen[None]):
    """A scrollable table of keys and what they do; escape, q, ? or f1 closes it."""

    BINDINGS = [Binding("escape,q,question_mark,f1", "close", "Close")]

    def __init__(self, title: str, rows: list[KeyRow]):
        super().__init__(classes="dialog-screen")
        self.title_text = title
        self.rows = rows

    def compose(self) -> ComposeResult:
        table = Table.grid(padding=(0, 2))
        table.add_column(style="bold cyan", no_wrap=True)
        table.add_column(ratio=1)
        for keys, what in self.rows:
            table.add_row(keys, what)
        with Vertical(classes="dialog help"):
            yield Label(self.title_text, classes="dialog-title")
            with VerticalScroll(classes="help-body"):
                yield Static(table, id="help-table")
            yield Label("escape closes · ↑ ↓ scroll", classes="dialog-detail")

    def action_close(self) -> None:
        self.dismiss(None)
