"""The Data tab's source rows: generated data, or your own file, folder or `datasets` id.

On a path that exists (or a hub id, when Enter is pressed) a thread worker runs the same
`describe_source` as `--data` and the panel shows what it found before anything trains: rows, columns
and their roles, classes and their counts, image size; what cannot train is refused with the reason.
"Use this data" posts `DataSourcePanel.Chosen`, which the form turns into ordinary [data] keys.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Iterable

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import Button, DirectoryTree, Input, Label, Select, Static

from workbench.data.source import SOURCES, DataChoice
from workbench.data.tables import TABLE_SUFFIXES, TEXT_SUFFIXES
from workbench.paths import user_path
from workbench.tui.widgets.ordered_input import OrderedInput

# Data kinds a --data choice produces, and the source each came from.
OWN_KINDS = {"table": "file", "images": "file", "hf": "file", "text_file": "file", "image_folder": "folder"}
PATH_ARG = {"image_folder": "root"}
PLACEHOLDERS = {"file": "a .csv/.tsv/.parquet/.json/.jsonl or .txt file", "folder": "a folder of class folders, or of .txt files",
                "hub": "a datasets id, e.g. user/name (Enter to look it up)"}


def source_of(preset) -> tuple[str, str, str]:
    """(source, path, label) the panel starts from for a preset."""
    kind, args = preset.data.kind, preset.data.args
    if kind not in OWN_KINDS:
        return "generated", "", ""
    path = str(args.get(PATH_ARG.get(kind, "path"), ""))
    source = OWN_KINDS[kind]
    if source == "file" and path and Path(path).is_dir():
        source = "folder"
    elif source == "file" and path and not Path(path).exists() and "/" in path and not path.startswith("/"):
        source = "hub"
    return source, path, str(args.get("label") or args.get("label_field") or "")


class DataFileTree(DirectoryTree):
    """Folders, and the files --data can read (tables and text), hidden entries left out."""

    def filter_paths(self, paths: Iterable[Path]) -> Iterable[Path]:
        readable = set(TABLE_SUFFIXES) | TEXT_SUFFIXES
        return [p for p in paths if not p.name.startswith(".") and (p.is_dir() or p.suffix.lower() in readable)]


class BrowseScreen(ModalScreen[str | None]):
    """Browse for a file (enter on it) or a folder (the highlighted one, with the button); escape cancels."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]
    DEFAULT_CSS = """
    BrowseScreen #browse { width: 90; height: auto; }
    BrowseScreen #browse-tree { height: 20; }
    """

    def __init__(self, source: str, start: Path) -> None:
        super().__init__(classes="dialog-screen")
        self.source, self.start = source, start

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog", id="browse"):
            yield Label(f"Choose a {self.source}", classes="dialog-title")
            yield DataFileTree(str(self.start), id="browse-tree")
            with Horizontal(classes="dialog-buttons"):
                if self.source == "folder":
                    yield Button("Use the highlighted folder", variant="primary", id="browse-choose")
                yield Button("Cancel", id="browse-cancel")

    def on_mount(self) -> None:
        self.query_one(DirectoryTree).focus()

    @on(DirectoryTree.FileSelected)
    def _file(self, event: DirectoryTree.FileSelected) -> None:
        if self.source == "file":
            self.dismiss(str(event.path))

    @on(Button.Pressed, "#browse-choose")
    def _folder(self) -> None:
        node = self.query_one(DirectoryTree).cursor_node
        path = node.data.path if node is not None and node.data is not None else self.start
        self.dismiss(str(path if Path(path).is_dir() else Path(path).parent))

    @on(Button.Pressed, "#browse-cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)


class DataSourcePanel(Vertical):
    """Pick where the data comes from and see what it holds before training."""

    DEFAULT_CSS = """
    DataSourcePanel { height: auto; border-bottom: solid $panel; padding-bottom: 1; }
    DataSourcePanel .data-row { height: auto; margin-top: 1; }
    DataSourcePanel .data-label { width: 22; padding: 0 1 0 0; text-align: right; color: $text-muted; }
    DataSourcePanel .data-control { width: 1fr; max-width: 60; }
    DataSourcePanel.-generated .data-path-row { display: none; }
    DataSourcePanel.-hub #data-browse { display: none; }
    DataSourcePanel #data-summary { height: auto; padding: 1 0 0 22; }
    DataSourcePanel #data-use { margin: 1 0 0 22; }
    DataSourcePanel #data-browse { margin: 0 0 0 1; }
    """

    class Chosen(Message):
        """Train on `choice` (None: back to the preset's own generated data)."""

        def __init__(self, choice: DataChoice | None) -> None:
            super().__init__()
            self.choice = choice

    class Inspected(Message):
        """The worker's answer for `path`: a choice, or the reason it cannot train."""

        def __init__(self, key: tuple[str, str, str], choice: DataChoice | None, problem: str | None) -> None:
            super().__init__()
            self.key, self.choice, self.problem = key, choice, problem

    def __init__(self, preset, current: Callable[[], Any], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.source, self.path, self.label = source_of(preset)
        self.current = current  # the form's preset now (for the loss and what carries over)
        self.choice: DataChoice | None = None
        self._asked: tuple[str, str, str] | None = None
        self.summary = ""

    def compose(self) -> ComposeResult:
        with Horizontal(classes="data-row"):
            yield Label("data source", classes="data-label")
            yield Select([(s, s) for s in SOURCES], value=self.source, allow_blank=False, id="data-source",
                         classes="data-control", compact=True)
        with Horizontal(classes="data-row data-path-row"):
            yield Label("path", classes="data-label")
            yield OrderedInput(self.path, id="data-path", classes="data-control", compact=True,
                               placeholder=PLACEHOLDERS.get(self.source, ""))
            yield Button("browse…", id="data-browse", compact=True)
        with Horizontal(classes="data-row data-path-row"):
            yield Label("label column", classes="data-label")
            yield OrderedInput(self.label, id="data-label", classes="data-control", compact=True,
                               placeholder="default: label, then target, then the last column")
        yield Static("", id="data-summary", classes="data-path-row")
        yield Button("Use this data", id="data-use", disabled=True, classes="data-path-row")

    def on_mount(self) -> None:
        self.set_class(self.source == "generated", "-generated")
        self.set_class(self.source == "hub", "-hub")
        if self.source != "generated" and self.path:
            self._inspect(force=True)

    # -- input ------------------------------------------------------------------------------------
    @on(Select.Changed, "#data-source")
    def _source_changed(self, event: Select.Changed) -> None:
        event.stop()
        previous, self.source = self.source, str(event.value)
        self.set_class(self.source == "generated", "-generated")
        self.set_class(self.source == "hub", "-hub")
        self.query_one("#data-path", Input).placeholder = PLACEHOLDERS.get(self.source, "")
        if self.source == "generated" and previous != "generated":
            self.post_message(self.Chosen(None))
        else:
            self._inspect()

    @on(Input.Changed, "#data-path")
    @on(Input.Changed, "#data-label")
    def _typed(self, event: Input.Changed) -> None:
        event.stop()
        self.path = self.query_one("#data-path", Input).value.strip()
        self.label = self.query_one("#data-label", Input).value.strip()
        self._inspect()

    @on(Input.Submitted, "#data-path")
    @on(Input.Submitted, "#data-label")
    def _submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self._inspect(force=True)

    @on(Button.Pressed, "#data-browse")
    def _browse(self, event: Button.Pressed) -> None:
        event.stop()
        if self.source not in ("file", "folder"):
            self.notify("browse finds files and folders; type a datasets id", severity="warning")
            return
        here = user_path(self.path) if self.path else Path.cwd()
        start = here if here.is_dir() else here.parent if here.parent.is_dir() else Path.cwd()

        def chosen(path: str | None) -> None:
            if path:
                self.query_one("#data-path", Input).value = path  # Input.Changed inspects it

        self.app.push_screen(BrowseScreen(self.source, start), chosen)

    @on(Button.Pressed, "#data-use")
    def _use(self, event: Button.Pressed) -> None:
        event.stop()
        if self.choice is not None:
            self.post_message(self.Chosen(self.choice))

    # -- looking at the data ------------------------------------------------------------------------
    def _inspect(self, force: bool = False) -> None:
        """Look at the path (a hub id only on Enter: that may reach for the network)."""
        self.choice = None
        self.query_one("#data-use", Button).disabled = True
        key = (self.source, self.path, self.label)
        if self.source == "generated" or not self.path:
            self._show(Text("type a path to see what it holds", style="dim"))
            return
        local = user_path(self.path)
        if self.source == "file" and not local.is_file() or self.source == "folder" and not local.is_dir():
            self._show(Text(f"✗ {self.path}: no such {self.source}", style="red"))
            return
        if self.source == "hub" and not force:
            self._show(Text("press Enter to look up this datasets id", style="dim"))
            return
        self._asked = key
        self._show(Text("reading…", style="dim"))
        self._describe(key, self.current())

    @work(thread=True, exclusive=True, group="data-source", exit_on_error=False)
    def _describe(self, key: tuple[str, str, str], preset) -> None:
        from workbench.data.source import describe_source
        from workbench.errors import ConfigError

        try:
            choice = describe_source(key[1], key[2] or None, preset)
        except ConfigError as error:
            self.post_message(self.Inspected(key, None, "; ".join(error.problems)))
            return
        except Exception as error:  # an unexpected reader failure is still a reason, not a crash
            self.post_message(self.Inspected(key, None, f"{type(error).__name__}: {error}"))
            return
        self.post_message(self.Inspected(key, choice, None))

    @on(Inspected)
    def _inspected(self, message: Inspected) -> None:
        message.stop()
        if message.key != (self.source, self.path, self.label):
            return  # the user typed on since
        if message.choice is None:
            self._show(Text(f"✗ cannot train on this: {message.problem}", style="red"))
            return
        self.choice = message.choice
        text = Text()
        for index, line in enumerate(message.choice.summary_lines()):
            text.append(("" if index == 0 else "\n") + line, style="bold" if index == 0 else "")
        self._show(text)
        self.query_one("#data-use", Button).disabled = False

    def _show(self, text: Text) -> None:
        self.summary = text.plain  # what the panel says now (tests read it)
        self.query_one("#data-summary", Static).update(text)
