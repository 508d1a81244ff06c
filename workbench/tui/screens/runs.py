"""The runs screen: every run in the store (this session's, earlier ones, ones training in other processes).

Columns: preset, status, steps, best and final val loss, wall time, params, peak memory, findings by
severity. o sorts by the next column (i reverses), / filters (`status:running preset:mlp free text`),
enter opens the run's dashboard (attached: a live run keeps updating, leaving never stops it), u resumes
an interrupted run here, space marks runs and c compares the marked ones. The list is re-read every few
seconds on a worker thread (list_runs plus two indexed look-ups per run and one findings query).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import Screen
from textual.widgets import DataTable, Static
from textual.worker import get_current_worker

from workbench.tui.formatting import format_duration, format_params
from workbench.tui.messages import AttachRun, CompareRuns, ResumeRun
from workbench.tui.screens.modals import PromptScreen
from workbench.tui.screens.help import HELP_BINDINGS
from workbench.tui.widgets.footer import KeyFooter
from workbench.tui.widgets.header import SafeHeader

REFRESH_S = 3.0
STATUS_STYLES = {"running": "bold green", "completed": "cyan", "interrupted": "yellow", "stopped": "",
                 "diverged": "bold red", "failed": "red", "invalid": "red"}
# (column key, header, sort key)
COLUMNS: list[tuple[str, str]] = [
    ("mark", " "), ("run_id", "run"), ("preset", "preset"), ("status", "status"), ("steps", "steps"),
    ("best_val", "best val"), ("final_val", "final val"), ("wall_seconds", "wall"), ("params", "params"),
    ("peak_memory_mb", "peak MiB"), ("findings", "findings c/w/i"),
]
SORTABLE = [key for key, _ in COLUMNS if key != "mark"]
# Left out first when the terminal is narrow (the run id names the preset; `workbench runs --json` has all).
NARROW_DROP_ORDER = ["params", "peak_memory_mb", "wall_seconds", "final_val", "preset", "findings"]


def parse_filter(text: str) -> dict[str, list[str]]:
    """`status:running preset:mlp words` -> {"status": [...], "preset": [...], "text": [...]}."""
    out: dict[str, list[str]] = {"status": [], "preset": [], "text": []}
    for word in text.lower().split():
        key, _, value = word.partition(":")
        if value and key in ("status", "preset"):
            out[key].append(value)
        else:
            out["text"].append(word)
    return out


def matches(row: dict[str, Any], wanted: dict[str, list[str]]) -> bool:
    if wanted["status"] and not any(row["status"].startswith(s) for s in wanted["status"]):
        return False
    if wanted["preset"] and not any(p in row["preset"].lower() for p in wanted["preset"]):
        return False
    haystack = f"{row['run_id']} {row['preset']} {row['status']} {row.get('reason') or ''}".lower()
    return all(word in haystack for word in wanted["text"])


def sort_value(row: dict[str, Any], key: str) -> Any:
    value = row.get(key)
    if key == "findings":
        value = (value["critical"], value["warning"], value["info"])
    return (value is None, value if value is not None else 0)


class RunsTable(DataTable):
    """Enter is the table's own key, so it acts on the row the cursor is on."""

    BINDINGS = [Binding("enter", "select_cursor", "Open"),
                Binding("space", "screen.mark", "Mark ↓", tooltip="Mark for comparison and move down")]


class RunsScreen(Screen):
    """Browse, filter and sort the recorded runs; open, resume or compare them."""

    BINDINGS = [
        Binding("c", "compare", "Compare marked"),
        Binding("u", "resume", "Resume"),
        Binding("o", "sort", "Sort"),
        Binding("i", "reverse", "Reverse", show=False),
        Binding("slash", "filter", "Filter"),
        Binding("r", "refresh", "Refresh", show=False),
        *HELP_BINDINGS,
        Binding("escape", "back", "Back"),
        Binding("q", "app.quit", "Quit"),
    ]
    KEYS = "runs"  # its table in workbench.tui.keys (the help screen)

    DEFAULT_CSS = """
    #runs-help { height: auto; padding: 0 1; color: $text-muted; }
    #runs-table { height: 1fr; }
    #runs-status { height: auto; padding: 0 1; }
    """

    def __init__(self, runs_dir: Path | None = None, refresh_s: float = REFRESH_S):
        super().__init__()
        self.runs_dir = runs_dir
        self.refresh_s = refresh_s
        self.rows: list[dict[str, Any]] = []
        self.shown: list[dict[str, Any]] = []
        self.marked: list[str] = []  # in marking order: the first is the compare view's baseline
        self.sort_key = "started_at"
        self.sort_reverse = True
        self.filter_text = ""
        self.loads = 0

    def compose(self) -> ComposeResult:
        yield SafeHeader()
        with Vertical(id="runs-body"):
            yield Static("[b]enter[/b] opens a run's dashboard · [b]space[/b] marks · [b]c[/b] compares the marked "
                         "runs · [b]u[/b] resumes an interrupted run · [b]o[/b] sorts · [b]/[/b] filters "
                         "(status:running preset:mlp text)", id="runs-help")
            yield RunsTable(id="runs-table", cursor_type="row", zebra_stripes=True)
            yield Static("", id="runs-status")
        yield KeyFooter()

    def on_mount(self) -> None:
        self.title = "Workbench"
        self.sub_title = "runs"
        table = self.query_one(DataTable)
        self.columns = self._columns_for(self.app.size.width)
        for key, header in COLUMNS:
            if key in self.columns:
                table.add_column(header, key=key)
        table.focus()
        self.refresh_runs()
        self.set_interval(self.refresh_s, self.refresh_runs)

    def on_screen_resume(self) -> None:
        self.refresh_runs()

    # -- data ---------------------------------------------------------------------------------------
    def refresh_runs(self) -> None:
        self._read()

    @work(thread=True, exclusive=True, group="runs-read", exit_on_error=False)
    def _read(self) -> None:
        from workbench.store import RunStore, default_runs_dir
        from workbench.tui.compare_data import runs_table

        runs_dir = Path(self.runs_dir or default_runs_dir())
        if not runs_dir.is_dir():
            rows: list[dict[str, Any]] = []
        else:
            store = RunStore(runs_dir, create=False)
            try:
                rows = runs_table(store)
            finally:
                store.close()
        if not get_current_worker().is_cancelled:  # a newer read superseded this one: its rows win
            self.app.call_from_thread(self._arrived, rows)

    def _arrived(self, rows: list[dict[str, Any]]) -> None:
        self.rows = rows
        self.loads += 1
        self._show_rows()

    def _show_rows(self) -> None:
        table = self.query_one(DataTable)
        current = self.current_run_id()
        wanted = parse_filter(self.filter_text)
        shown = [row for row in self.rows if matches(row, wanted)]
        shown.sort(key=lambda row: sort_value(row, self.sort_key), reverse=self.sort_reverse)
        self.shown = shown
        columns = self._columns_for(self.size.width or self.app.size.width)
        if columns != self.columns:  # the terminal was resized across a column's width
            self.columns = columns
            table.clear(columns=True)
            for key, header in COLUMNS:
                if key in columns:
                    table.add_column(header, key=key)
        table.clear()
        for row in shown:
            f = row["findings"]
            findings = Text()
            findings.append(str(f["critical"]), style="bold red" if f["critical"] else "dim")
            findings.append("/")
            findings.append(str(f["warning"]), style="yellow" if f["warning"] else "dim")
            findings.append(f"/{f['info']}", style="dim")
            mark = "●" if row["run_id"] in self.marked else ""
            cells = dict(zip([key for key, _ in COLUMNS], [
                Text(mark, style="bold cyan"), row["run_id"], row["preset"],
                Text(row["status"], style=STATUS_STYLES.get(row["status"], "")),
                Text(f"{row['steps']:,}", justify="right"), _val(row["best_val"]), _val(row["final_val"]),
                Text(format_duration(row["wall_seconds"]), justify="right"),
                Text(format_params(row["params"]) if row["params"] else "-", justify="right"),
                Text(f"{row['peak_memory_mb']:,.0f}" if row["peak_memory_mb"] else "-", justify="right"),
                findings]))
            table.add_row(*[cells[key] for key in self.columns], key=row["run_id"])
        ids = [row["run_id"] for row in shown]
        if current in ids:
            table.move_cursor(row=ids.index(current))
        order = "↓" if self.sort_reverse else "↑"
        sort_name = dict(COLUMNS).get(self.sort_key, "started")
        self.query_one("#runs-status", Static).update(
            f"{len(shown)} of {len(self.rows)} runs · sorted by {sort_name} {order}"
            + (f" · filter: {self.filter_text}" if self.filter_text else "")
            + (f" · {len(self.marked)} marked" if self.marked else ""))

    def current_run_id(self) -> str | None:
        table = self.query_one(DataTable)
        if not self.shown or table.cursor_row is None or not (0 <= table.cursor_row < len(self.shown)):
            return None
        return self.shown[table.cursor_row]["run_id"]

    def current_row(self) -> dict[str, Any] | None:
        run_id = self.current_run_id()
        return next((row for row in self.shown if row["run_id"] == run_id), None)

    # -- actions ------------------------------------------------------------------------------------
    @on(DataTable.RowSelected, "#runs-table")
    def _open(self) -> None:
        run_id = self.current_run_id()
        if run_id is not None:
            self.post_message(AttachRun(run_id))

    def _columns_for(self, width: int) -> list[str]:
        """The columns that fit `width` (cells sized as the widest run id and values need)."""
        widths = {"mark": 1, "run_id": max([len(r["run_id"]) for r in getattr(self, "rows", [])] or [36]),
                  "preset": 14, "status": 11, "steps": 7, "best_val": 9, "final_val": 9, "wall_seconds": 7,
                  "params": 7, "peak_memory_mb": 8, "findings": 14}
        kept = [key for key, _ in COLUMNS]
        for key in NARROW_DROP_ORDER:
            if sum(widths[k] + 2 for k in kept) <= width - 2:
                break
            kept.remove(key)
        return kept

    def on_resize(self) -> None:
        if self.rows and self._columns_for(self.size.width) != self.columns:
            self._show_rows()

    @on(DataTable.HeaderSelected, "#runs-table")
    def _header(self, event: DataTable.HeaderSelected) -> None:
        key = event.column_key.value
        if key in SORTABLE:
            self.sort_reverse = not self.sort_reverse if key == self.sort_key else key not in ("run_id", "preset")
            self.sort_key = key
            self._show_rows()

    def action_mark(self) -> None:
        run_id = self.current_run_id()
        if run_id is None:
            return
        if run_id in self.marked:
            self.marked.remove(run_id)
        else:
            self.marked.append(run_id)
        table = self.query_one(DataTable)
        if table.cursor_row is not None and table.cursor_row + 1 < len(self.shown):
            table.move_cursor(row=table.cursor_row + 1)
        self._show_rows()

    def action_compare(self) -> None:
        ids = [run_id for run_id in self.marked if any(row["run_id"] == run_id for row in self.rows)]
        if len(ids) < 2:
            self.notify("Mark two or more runs (space) to compare them.", severity="warning")
            return
        self.post_message(CompareRuns(ids))

    def action_resume(self) -> None:
        row = self.current_row()
        if row is None:
            return
        if row["status"] != "interrupted":
            self.notify(f"{row['run_id']} is {row['status']}: only interrupted runs resume.", severity="warning")
            return
        self.post_message(ResumeRun(row["run_id"]))

    def action_sort(self) -> None:
        index = SORTABLE.index(self.sort_key) + 1 if self.sort_key in SORTABLE else 0
        self.sort_key = SORTABLE[index % len(SORTABLE)]
        self.sort_reverse = self.sort_key not in ("run_id", "preset")
        self._show_rows()

    def action_reverse(self) -> None:
        self.sort_reverse = not self.sort_reverse
        self._show_rows()

    def action_filter(self) -> None:
        def chosen(value: str | None) -> None:
            if value is not None:
                self.filter_text = value.strip()
                self._show_rows()

        self.app.push_screen(PromptScreen("Filter runs", self.filter_text, lambda text: (text, None),
                                          hint="status:running  preset:mlp  or any words (empty: all runs)"),
                             chosen)

    def action_refresh(self) -> None:
        self.refresh_runs()

    def action_back(self) -> None:
        self.app.pop_screen()


def _val(value: float | None) -> Text:
    return Text("-" if value is None else f"{value:.4g}", justify="right")
