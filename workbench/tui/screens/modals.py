"""Small modal dialogs: a yes/no confirmation and a one-line prompt with validation."""

from __future__ import annotations

from typing import Any, Callable

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static

from workbench.tui.widgets.ordered_input import OrderedInput

# A validator takes the typed text and returns (value, None) or (None, why it is refused).
Validator = Callable[[str], tuple[Any, str | None]]


class ConfirmScreen(ModalScreen[bool]):
    """Ask a yes/no question; y/enter confirms, n/escape declines."""

    BINDINGS = [
        Binding("y", "answer(True)", "Yes"),
        Binding("n,escape", "answer(False)", "No"),
    ]

    def __init__(self, question: str, yes: str = "Yes", no: str = "No", *, detail: str = ""):
        super().__init__(classes="dialog-screen")
        self.question = question
        self.detail = detail
        self.yes, self.no = yes, no

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(self.question, classes="dialog-title")
            if self.detail:
                yield Static(self.detail, classes="dialog-detail")
            with Horizontal(classes="dialog-buttons"):
                yield Button(f"{self.yes} [y]", variant="error", id="yes")
                yield Button(f"{self.no} [n]", variant="primary", id="no")

    def on_mount(self) -> None:
        self.query_one("#no", Button).focus()

    def action_answer(self, answer: bool) -> None:
        self.dismiss(answer)

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")


class PromptScreen(ModalScreen[Any]):
    """Ask for one value; the validator's reason shows under the input and enter is refused until valid."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, title: str, value: str, validator: Validator, *, hint: str = ""):
        super().__init__(classes="dialog-screen")
        self.title_text = title
        self.initial = value
        self.validator = validator
        self.hint = hint

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(self.title_text, classes="dialog-title")
            if self.hint:
                yield Static(self.hint, classes="dialog-detail")
            yield OrderedInput(self.initial, id="prompt-input")
            yield Label("", id="prompt-error", classes="field-error")
            with Horizontal(classes="dialog-buttons"):
                yield Button("OK [enter]", variant="primary", id="ok")
                yield Button("Cancel [esc]", id="cancel")

    def on_mount(self) -> None:
        self.query_one(Input).focus()

    def _check(self) -> tuple[Any, str | None]:
        value, problem = self.validator(self.query_one(Input).value)
        error = self.query_one("#prompt-error", Label)
        error.update(problem or "")
        self.query_one("#ok", Button).disabled = problem is not None
        return value, problem

    @on(Input.Changed, "#prompt-input")
    def _changed(self) -> None:
        self._check()

    @on(Input.Submitted, "#prompt-input")
    @on(Button.Pressed, "#ok")
    def _submit(self) -> None:
        value, problem = self._check()
        if problem is None:
            self.dismiss(value)
        else:
            self.app.bell()

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)


class ChoiceScreen(ModalScreen[Any]):
    """Pick one of a few labelled choices (arrow keys and enter, or 1-9); escape cancels."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")] + [
        Binding(str(n), f"pick({n - 1})", show=False) for n in range(1, 10)]

    def __init__(self, title: str, choices: list[tuple[Any, str]], *, detail: str = ""):
        super().__init__(classes="dialog-screen")
        self.title_text = title
        self.choices = choices
        self.detail = detail

    def compose(self) -> ComposeResult:
        from textual.widgets import OptionList

        with Vertical(classes="dialog"):
            yield Label(self.title_text, classes="dialog-title")
            if self.detail:
                yield Static(self.detail, classes="dialog-detail")
            yield OptionList(*[f"{n}. {label}" for n, (_, label) in enumerate(self.choices, 1)], id="choices")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Cancel [esc]", id="cancel")

    def on_mount(self) -> None:
        from textual.widgets import OptionList

        self.query_one(OptionList).focus()

    def action_pick(self, index: int) -> None:
        if 0 <= index < len(self.choices):
            self.dismiss(self.choices[index][0])

    def on_option_list_option_selected(self, event) -> None:
        self.action_pick(event.option_index)

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)


class ReportScreen(ModalScreen[None]):
    """A long read-only text (the profiler's report), scrollable; escape or q closes it."""

    BINDINGS = [Binding("escape,q", "close", "Close")]

    def __init__(self, title: str, text: str):
        super().__init__(classes="dialog-screen")
        self.title_text = title
        self.text = text

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog report"):
            yield Label(self.title_text, classes="dialog-title")
            with VerticalScroll(classes="report-body"):
                yield Static(Text(self.text, no_wrap=True, overflow="crop"), classes="report-text")
            yield Label("escape closes", classes="dialog-detail")

    def action_close(self) -> None:
        self.dismiss(None)
