"""The first screen: every preset (packaged and the user's ./presets) with task, model and size.

Space marks presets and u queues the marked ones: they train one after another with their defaults, and
the compare view opens on them when the set is done."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import Screen
from textual.widgets import DataTable, Static
from textual.worker import get_current_worker

from workbench.catalog import preset_catalog
from workbench.errors import ConfigError
from workbench.presets import DEFAULT_PRESET, load_preset
from workbench.tui.formatting import format_params
from workbench.tui.messages import ConfigurePreset, ShowRuns, StartQueue, StartRun
from workbench.tui.screens.help import HELP_BINDINGS
from workbench.tui.widgets.footer import KeyFooter
from workbench.tui.widgets.header import SafeHeader

PARAM_COUNT_TIMEOUT_S = 300
HELP = ("Pick a preset: [b]enter[/b] edits its hyperparameters, [b]s[/b] starts it with its defaults. Your own "
        "presets in ./presets are listed too.")


class PresetTable(DataTable):
    """The preset list; enter is the table's own key (so it follows cursor keys typed just before it)."""

    BINDINGS = [Binding("enter", "select_cursor", "Configure"),
                Binding("space", "screen.mark", "Mark ↓", tooltip="Mark for a queue and move down")]


class PresetsScreen(Screen):
    """Pick a preset: enter opens the form, s starts it with its defaults."""

    BINDINGS = [
        Binding("s", "start_defaults", "Start with defaults"),
        Binding("u", "queue_marked", "Queue marked"),
        Binding("h", "runs", "Runs"),
        Binding("r", "reload", "Reload list"),
        *HELP_BINDINGS,
        Binding("q", "app.quit", "Quit"),
    ]
    KEYS = "presets"  # its table in workbench.tui.keys (the help screen)

    def __init__(self, count_params: bool = True):
        super().__init__()
        self.count_params = count_params
        self.catalog: list[dict[str, Any]] = []
        self.marked: list[str] = []  # preset names in marking order: the queue's order
        self._counting = False
        self._count_process: subprocess.Popen | None = None

    def compose(self) -> ComposeResult:
        yield SafeHeader()
        with Vertical(id="presets-body"):
            yield Static(HELP, id="presets-help")
            yield PresetTable(id="preset-table", cursor_type="row", zebra_stripes=True)
            yield Static("", id="preset-detail")
        yield KeyFooter()

    def on_mount(self) -> None:
        self.title = "Workbench"
        self.sub_title = "presets"
        table = self.query_one(DataTable)
        table.add_column("name", key="name")
        table.add_column("task", key="task")
        table.add_column("model", key="model")
        table.add_column("params", key="params")
        table.add_column("from", key="origin")
        table.add_column("description", key="description")
        self.reload()
        table.focus()

    def on_screen_resume(self) -> None:
        self.reload()

    def reload(self) -> None:
        """Read the presets again (a preset saved from the form appears at once)."""
        first = not self.catalog
        self.catalog = preset_catalog(compute_missing=False)
        table = self.query_one(DataTable)
        current = table.cursor_row
        if first:  # open on the default preset, the one `workbench train` and `--start` use
            current = next((i for i, e in enumerate(self.catalog) if e["name"] == DEFAULT_PRESET), 0)
        table.clear()
        self.marked = [name for name in self.marked if any(e["name"] == name for e in self.catalog)]
        for entry in self.catalog:
            table.add_row(self._name_cell(entry), entry["task"], entry["model_kind"],
                          Text(format_params(entry.get("params")), justify="right"),
                          Text(entry["origin"], style="cyan" if entry["origin"] == "user" else "dim"),
                          _shorten(entry["description"], 70), key=entry["name"])
        if self.catalog:
            table.move_cursor(row=min(current, len(self.catalog) - 1))
            self._show_detail(table.cursor_row)
        missing = any(e.get("params") is None and e.get("valid", True) for e in self.catalog)
        # The app stops counting (stop_counting) whenever it starts a run; this screen is only shown again
        # once no run of this process is active, so a count started here never competes with one.
        if missing and self.count_params and not self._counting:
            self._counting = True
            self.count_missing_params()

    def _name_cell(self, entry: dict[str, Any]) -> Text:
        style = "bold" if entry.get("valid", True) else "bold red"
        if not self.marked:
            return Text(entry["name"], style=style)
        # Every row gets a mark-wide prefix while any is marked, so the names stay in one column.
        digits = len(str(len(self.marked)))
        if entry["name"] in self.marked:
            mark = f"{self.marked.index(entry['name']) + 1:>{digits}}● "
        else:
            mark = " " * (digits + 2)
        return Text.assemble((mark, "bold cyan"), (entry["name"], style))

    def _show_marks(self) -> None:
        table = self.query_one(DataTable)
        for entry in self.catalog:
            table.update_cell(entry["name"], "name", self._name_cell(entry))
        help_text = self.query_one("#presets-help", Static)
        if self.marked:
            help_text.update(f"{len(self.marked)} marked for a queue ({', '.join(self.marked)}): [b]u[/b] trains them "
                             "one after another, then compares them · [b]space[/b] unmarks")
        else:
            help_text.update(HELP)
        self.refresh_bindings()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "queue_marked":  # shown in the footer once something is marked
            return bool(self.marked)
        return True

    def action_mark(self) -> None:
        entry = self.selected_entry()
        if entry is None:
            return
        if entry["name"] in self.marked:
            self.marked.remove(entry["name"])
        else:
            self.marked.append(entry["name"])
        table = self.query_one(DataTable)
        if table.cursor_row + 1 < len(self.catalog):
            table.move_cursor(row=table.cursor_row + 1)
        self._show_marks()

    def action_queue_marked(self) -> None:
        """Queue the marked presets (with their defaults), in the order they were marked."""
        from workbench.sweep import SweepRun

        if not self.marked:
            self.notify("Mark presets with space first.", severity="warning")
            return
        runs = []
        for name in self.marked:
            entry = next(e for e in self.catalog if e["name"] == name)
            try:
                runs.append(SweepRun([], load_preset(entry["path"])))
            except ConfigError as error:
                self.notify("\n".join(error.problems), title=f"{name}: invalid preset, nothing queued", severity="error")
                return
        self.post_message(StartQueue(runs))
        self.marked = []  # asked for: a refusal is the app's to explain, and the runs are re-marked in a key
        self._show_marks()

    @work(thread=True, exclusive=True, group="param-count", exit_on_error=False)
    def count_missing_params(self) -> None:
        """Counting needs the models built (torch): do it in a subprocess, never in the UI process."""
        counts: dict[str, int | None] = {}
        try:
            self._count_process = subprocess.Popen([sys.executable, "-m", "workbench", "presets", "--json"],
                                                   stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
            out, _ = self._count_process.communicate(timeout=PARAM_COUNT_TIMEOUT_S)
            if self._count_process.returncode == 0:
                counts = {e["name"]: e.get("params") for e in json.loads(out)}
        except (OSError, ValueError, subprocess.TimeoutExpired):
            self.stop_counting()
        finally:
            self._counting = False
        if get_current_worker().is_cancelled:  # superseded (a newer count) or the screen is gone
            return
        try:
            self.app.call_from_thread(self._counts_arrived, counts)
        except RuntimeError:  # the app closed while counting
            pass

    def stop_counting(self) -> None:
        """A run is starting: the counting subprocess would compete with it for the CPU."""
        process = self._count_process
        if process is not None and process.poll() is None:
            process.kill()

    def _counts_arrived(self, counts: dict[str, int | None]) -> None:
        table = self.query_one(DataTable)
        for entry in self.catalog:
            if entry.get("params") is None and counts.get(entry["name"]) is not None:
                entry["params"] = counts[entry["name"]]
                table.update_cell(entry["name"], "params", Text(format_params(entry["params"]), justify="right"))

    def selected_entry(self) -> dict[str, Any] | None:
        table = self.query_one(DataTable)
        if not self.catalog or table.cursor_row is None or table.cursor_row >= len(self.catalog):
            return None
        return self.catalog[table.cursor_row]

    @on(DataTable.RowSelected, "#preset-table")
    def _selected(self) -> None:
        """Enter on a row (the table's own binding, so it follows any cursor keys typed before it)."""
        self.action_configure()

    @on(DataTable.RowHighlighted, "#preset-table")
    def _highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._show_detail(event.cursor_row)

    def _show_detail(self, row: int) -> None:
        if not (0 <= row < len(self.catalog)):
            return
        entry = self.catalog[row]
        text = Text()
        text.append(entry["name"], style="bold")
        text.append(f"  ({entry['origin']}: {entry['path']})\n", style="dim")
        text.append(entry["description"] or "")
        if entry.get("watch"):
            text.append("\nWatch: ", style="bold green")
            text.append(entry["watch"])
        self.query_one("#preset-detail", Static).update(text)

    def _load(self) -> Any:
        entry = self.selected_entry()
        if entry is None:
            return None
        try:
            return load_preset(entry["path"])
        except ConfigError as error:
            self.notify("\n".join(error.problems), title=f"{entry['name']}: invalid preset", severity="error")
            return None

    def action_configure(self) -> None:
        preset = self._load()
        if preset is not None:
            self.post_message(ConfigurePreset(preset))

    def action_start_defaults(self) -> None:
        preset = self._load()
        if preset is not None:
            self.post_message(StartRun(preset))

    def action_reload(self) -> None:
        self.reload()

    def action_runs(self) -> None:
        self.post_message(ShowRuns())


def _shorten(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"
