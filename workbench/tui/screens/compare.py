"""The compare view: two or more runs' curves overlaid (one colour per run), the config keys that differ,
and a summary table (best/final metrics, time to a target val loss, throughput, memory, deltas against a
pinned baseline).

Series come downsampled from the store (about two points per chart column) on a worker thread, so even
million-step runs open at once; the charts draw all runs' lines in one pass (OverlayChart), so five
overlaid runs redraw about as fast as one; while any compared run is still training the view reloads every few
seconds. No torch here.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Container, Horizontal, Vertical, VerticalScroll
from textual.screen import Screen
from textual.widgets import DataTable, Static
from textual.worker import get_current_worker

from workbench.numbers import format_number
from workbench.tui.compare_data import CHARTS, X_AXES, RunCurves, load_curves, summarize
from workbench.tui.screens.modals import PromptScreen
from workbench.tui.state import RunState
from workbench.tui.form import toml_literal
from workbench.tui.widgets.charts import ChartOptions, Line, format_tick
from workbench.tui.widgets.overlay import OverlayChart
from workbench.tui.screens.help import HELP_BINDINGS
from workbench.tui.widgets.footer import KeyFooter
from workbench.tui.widgets.header import SafeHeader

RUN_COLORS = ((80, 160, 255), (255, 150, 60), (90, 210, 120), (190, 130, 255), (240, 80, 80), (230, 200, 70),
              (70, 210, 220), (255, 120, 200))
LIVE_REFRESH_S = 3.0
MIN_POINTS = 200


def run_color(index: int) -> tuple[int, int, int]:
    return RUN_COLORS[index % len(RUN_COLORS)]


def short_id(run_id: str) -> str:
    """The run id's random suffix (the preset has its own column and the legend shows the whole id)."""
    parts = run_id.split("-")
    return parts[-1] if len(parts) >= 4 and parts[0].isdigit() else run_id


# What the summary table shows, most important first: when the terminal is too narrow for every column,
# the last ones are left out (and the table says how many; `workbench compare --json` has them all).
METRIC_LABELS = {"val_loss": "val loss", "val_accuracy": "val acc", "val_perplexity": "val ppl",
                 "val_mae": "val mae", "val_r2": "val R²", "loss": "train loss"}
COLUMN_RANK = ["run", "best val loss", "status", "target", "steps", "last val loss", "Δ best val loss",
               "best val acc", "best val ppl", "best val mae", "steps/s", "last train loss", "preset",
               "last val acc", "last val ppl", "last val mae", "peak MiB", "samples/s", "best train loss"]


def fit_columns(columns: list[tuple[str, list[str]]], width: int) -> list[str]:
    """The columns (name, cell texts) that fit in `width` cells, dropping the least important first."""
    cells = {name: max([len(name), *map(len, texts)]) + 2 for name, texts in columns}  # + cell padding
    kept = [name for name, _ in columns]
    rank = {name: index for index, name in enumerate(COLUMN_RANK)}
    for name in sorted(kept, key=lambda n: -rank.get(n, len(rank))):
        if sum(cells[n] for n in kept) <= width or name == "run":
            break
        kept.remove(name)
    return kept


def curves_state(curves: list[RunCurves], x_axis: str) -> RunState:
    """One RunState holding every run's series as '<index>:<chart title>' (x in the step or time slot)."""
    state = RunState("compare", 0)
    for index, run in enumerate(curves):
        for title, points in run.series.items():
            series = state.series_for(f"{index}:{title}")
            for x, value in points:
                series.append(x, x, value)  # both slots: the chart reads the one the axis names
    return state


def overlay_lines(curves: list[RunCurves], title: str) -> list[Line]:
    # No label in the title: the colour says which run it is (the legend names them), so every run's
    # latest value fits, not only the first run's.
    return [Line(f"{index}:{title}", "", run_color(index), smooth=False,
                 fmt=".3g" if title == "learning rate" else ".4g")
            for index, run in enumerate(curves) if title in run.series]


class CompareScreen(Screen):
    """Overlay runs, list what differs, summarize; b pins the highlighted run as the baseline."""

    VERTICAL_BREAKPOINTS = [(0, "-short"), (32, "-tall")]

    DEFAULT_CSS = """
    #compare-legend { height: auto; padding: 0 1; }
    #compare-charts { layout: grid; grid-size: 3; height: 2fr; min-height: 12; }
    #compare-tables { height: 1fr; min-height: 6; }
    #compare-summary { height: auto; max-height: 12; }
    #compare-diff { height: auto; padding: 0 1; }
    #compare-hidden { height: auto; padding: 0 1; color: $text-muted; }
    OverlayChart.-empty { display: none; }
    /* Under 32 rows five charts get two rows of plot each: show the two the comparison is about. */
    CompareScreen.-short #compare-charts { grid-size: 2; min-height: 9; }
    CompareScreen.-short #cmp-2, CompareScreen.-short #cmp-3, CompareScreen.-short #cmp-4 { display: none; }
    """

    BINDINGS = [
        Binding("w", "x_axis", "X: steps/samples/time"),
        Binding("l", "log_y", "Log y"),
        Binding("b", "pin_baseline", "Pin baseline"),
        Binding("t", "target", "Target val loss"),
        Binding("r", "reload", "Reload"),
        *HELP_BINDINGS,
        Binding("escape", "back", "Back"),
        Binding("q", "app.quit", "Quit"),
    ]
    KEYS = "compare"  # its table in workbench.tui.keys (the help screen)

    def __init__(self, run_ids: list[str], runs_dir: Path | None = None, baseline: str | None = None,
                 target: float | None = None):
        super().__init__()
        self.run_ids = list(run_ids)
        self.runs_dir = runs_dir
        self.baseline = baseline or (self.run_ids[0] if self.run_ids else None)
        self.target = target
        self.x_axis = "step"
        self.options = ChartOptions()
        self.state = RunState("compare", 0)
        self.curves: list[RunCurves] = []
        self.summary: dict[str, Any] = {"runs": [], "differing_config": {}, "baseline": None, "best_run": None}
        self.loads = 0  # completed loads (tests wait on it)
        self.charts = [OverlayChart(title, [], self.state, self.options, id=f"cmp-{i}")
                       for i, (title, _) in enumerate(CHARTS)]

    def compose(self) -> ComposeResult:
        yield SafeHeader()
        with Vertical(id="compare-body"):
            yield Static("", id="compare-legend")
            with Container(id="compare-charts"):
                yield from self.charts
            with VerticalScroll(id="compare-tables"):
                yield DataTable(id="compare-summary", cursor_type="row", zebra_stripes=True)
                yield Static("", id="compare-hidden")
                yield Static("", id="compare-diff")
        yield KeyFooter()

    def on_mount(self) -> None:
        self.title = "Workbench"
        self.sub_title = f"compare {len(self.run_ids)} runs"
        self.query_one("#compare-summary", DataTable).focus()
        self.reload()
        self.set_interval(LIVE_REFRESH_S, self._refresh_live)

    # -- loading ------------------------------------------------------------------------------------
    def _points(self) -> int:
        width = max((chart.size.width for chart in self.charts), default=0)
        return max(MIN_POINTS, width * 2)

    def reload(self) -> None:
        self._load(self._points(), self.x_axis, self.baseline, self.target)

    @work(thread=True, exclusive=True, group="compare-load", exit_on_error=False)
    def _load(self, points: int, x_axis: str, baseline: str | None, target: float | None) -> None:
        """Read the series and tables on a worker thread, with its own store connection."""
        from workbench.store import RunStore, default_runs_dir

        store = RunStore(self.runs_dir or default_runs_dir(), create=False)
        try:
            curves = [load_curves(store, run_id, points, x_axis) for run_id in self.run_ids]
            summary = summarize(store, self.run_ids, baseline, target)
        finally:
            store.close()
        if not get_current_worker().is_cancelled:  # a newer load (new axis, baseline, target) superseded this one
            self.app.call_from_thread(self._loaded, curves, summary, x_axis)

    def _loaded(self, curves: list[RunCurves], summary: dict[str, Any], x_axis: str) -> None:
        self.curves, self.summary = curves, summary
        self.baseline = summary["baseline"]
        self.state = curves_state(curves, x_axis)
        self.options.x_axis = "time" if x_axis == "time" else "step"
        self.options.changed()
        for chart, (title, _) in zip(self.charts, CHARTS):
            chart.lines = overlay_lines(curves, title)
            chart.set_state(self.state)
            chart.set_class(not chart.lines, "-empty")
            chart.redraw()
        self._show_legend()
        self._show_summary()
        self._show_diff()
        self.loads += 1

    def _refresh_live(self) -> None:
        if any(row["status"] == "running" for row in self.summary["runs"]):
            self.reload()

    # -- tables -------------------------------------------------------------------------------------
    def _show_legend(self) -> None:
        text = Text()
        axis = {"step": "steps", "samples": "samples seen", "time": "wall time"}[self.x_axis]
        for index, run in enumerate(self.curves):
            color = run_color(index)
            row = next((r for r in self.summary["runs"] if r["run_id"] == run.run_id), None)
            text.append("━━ ", style=f"rgb({color[0]},{color[1]},{color[2]})")
            text.append(run.run_id, style="bold" if run.run_id == self.baseline else "")
            if row is not None:
                text.append(f" {row['status']}", style="dim")
            if run.run_id == self.baseline:
                text.append(" (baseline)", style="cyan")
            if run.run_id == self.summary.get("best_run"):
                text.append(" ★ best val loss", style="green")
            text.append("   ")
        text.append(f"\nx: {axis}  ·  y: {'log' if self.options.log_y else 'linear'}", style="dim")
        self.query_one("#compare-legend", Static).update(text)

    def _show_summary(self) -> None:
        table = self.query_one("#compare-summary", DataTable)
        cursor = table.cursor_row
        rows = self.summary["runs"]
        names = [name for name in METRIC_LABELS if any(name in row["metrics"] for row in rows)]
        columns: dict[str, list[Any]] = {"run": [], "preset": [], "status": [], "steps": []}
        for name in names:
            columns[f"best {METRIC_LABELS[name]}"], columns[f"last {METRIC_LABELS[name]}"] = [], []
        for column in ("Δ best val loss", "steps/s", "samples/s", "peak MiB"):
            columns[column] = []
        target_column = f"val loss ≤ {format_number(self.target)}" if self.target is not None else None
        if target_column:
            columns[target_column] = []
        for index, row in enumerate(rows):
            color = run_color(next((i for i, c in enumerate(self.curves) if c.run_id == row["run_id"]), index))
            label = Text("● ", style=f"rgb({color[0]},{color[1]},{color[2]})")
            label.append(short_id(row["run_id"]) + (" (b)" if row["run_id"] == self.baseline else ""))
            columns["run"].append(label)
            columns["preset"].append(row["preset"])
            columns["status"].append(row["status"])
            columns["steps"].append(f"{row['steps']:,}")
            for name in names:
                values = row["metrics"].get(name)
                columns[f"best {METRIC_LABELS[name]}"].append(_num(values and values["best"]))
                columns[f"last {METRIC_LABELS[name]}"].append(_num(values and values["final"]))
            delta = row["delta_vs_baseline"].get("val_loss")
            columns["Δ best val loss"].append(Text("-" if delta is None else ("+" if delta > 0 else "")
                                                   + format_number(delta),
                                                   style="" if not delta else ("green" if delta < 0 else "red")))
            columns["steps/s"].append(_num(row["steps_per_second"], ".1f"))
            columns["samples/s"].append(_num(row["samples_per_second"], ",.0f"))
            columns["peak MiB"].append(_num(row["peak_memory_mb"], ",.0f"))
            if target_column:
                target = row.get("target") or {}
                seconds = target.get("seconds")
                columns[target_column].append(
                    "not reached" if target.get("step") is None else f"step {target['step']:,}"
                    + (f" ({format_tick(seconds, 'time')})" if seconds is not None else ""))
        width = table.size.width or self.app.size.width
        texts = [(name, [cell.plain if isinstance(cell, Text) else str(cell) for cell in cells])
                 for name, cells in columns.items()]
        shown = fit_columns([(n if n != target_column else "target", t) for n, t in texts], width - 2)
        shown = [target_column if n == "target" else n for n in shown]
        self.hidden_columns = [name for name in columns if name not in shown]
        # Rebuilt with explicit widths: auto-sized columns kept the narrow widths of an earlier, smaller
        # table (after t the run, preset and status columns shrank to `● m  mlp-qu  comple`).
        table.clear(columns=True)
        for name, cells in texts:
            if name in shown:
                table.add_column(name, key=name, width=max([len(name), *map(len, cells)]))
        for index, row in enumerate(rows):
            table.add_row(*[columns[name][index] for name in columns if name in shown], key=row["run_id"])
        if rows:
            table.move_cursor(row=min(cursor, len(rows) - 1))
        note = self.query_one("#compare-hidden", Static)
        note.update(f"{len(self.hidden_columns)} more column(s) at a wider terminal "
                    "(all in `workbench compare --json`)" if self.hidden_columns else "")
        note.display = bool(self.hidden_columns)

    def _show_diff(self) -> None:
        differing = self.summary["differing_config"]
        text = Text()
        if not differing:
            text.append("The compared runs have the same config.", style="dim")
        else:
            text.append("Config keys that differ\n", style="bold")
            ids = [c.run_id for c in self.curves]
            width = max(len(key) for key in differing)
            for key, values in differing.items():
                text.append(f"  {key.ljust(width)}  ")
                for index, run_id in enumerate(ids):
                    color = run_color(index)
                    text.append(f"{_short(values.get(run_id))}", style=f"rgb({color[0]},{color[1]},{color[2]})")
                    text.append("   ")
                text.append("\n")
        self.query_one("#compare-diff", Static).update(text)

    # -- actions ------------------------------------------------------------------------------------
    def action_x_axis(self) -> None:
        axes = list(X_AXES)
        self.x_axis = axes[(axes.index(self.x_axis) + 1) % len(axes)]
        self.reload()

    def action_log_y(self) -> None:
        self.options.log_y = not self.options.log_y
        self.options.changed()
        for chart in self.charts:
            chart.redraw()
        self._show_legend()

    def action_pin_baseline(self) -> None:
        table = self.query_one("#compare-summary", DataTable)
        rows = self.summary["runs"]
        if not rows or table.cursor_row is None or table.cursor_row >= len(rows):
            return
        self.baseline = rows[table.cursor_row]["run_id"]
        self.notify(f"baseline: {self.baseline}")
        self.reload()

    def action_target(self) -> None:
        def validate(text: str) -> tuple[float | str | None, str | None]:
            if not text.strip():
                return "", None  # empty: no target
            try:
                value = float(text)
            except ValueError:
                return None, "enter a number, e.g. 0.5 (empty: none)"
            return (value, None) if math.isfinite(value) else (None, "must be a finite number")

        def chosen(value: float | str | None) -> None:
            if value is None:  # cancelled
                return
            self.target = None if value == "" else float(value)
            self.reload()

        self.app.push_screen(PromptScreen("Target val loss", "" if self.target is None else f"{self.target:g}",
                                          validate, hint="Steps and time each run took to reach it."), chosen)

    def action_reload(self) -> None:
        self.reload()

    def action_back(self) -> None:
        self.app.pop_screen()

    @on(DataTable.RowSelected, "#compare-summary")
    def _row_selected(self) -> None:
        self.action_pin_baseline()

    def snapshot(self) -> dict[str, Any]:
        return {"charts": {chart.title: [line.label for line in chart.lines] for chart in self.charts},
                "points": {chart.title: chart.last_points for chart in self.charts}}


def _num(value: Any, fmt: str = ".4g") -> str:
    if value is None:
        return "-"
    if fmt == ".1f":
        return format_number(value, decimals=1)
    return format_number(value, decimals=0) if fmt == ",.0f" else format_number(value)


def _short(value: Any) -> str:
    """A config value as TOML would write it (a key one run leaves unset reads "not set", not None)."""
    if value is None:
        return "not set"
    text = format_number(value) if isinstance(value, float) else toml_literal(value)
    return text if len(text) <= 24 else text[:23] + "…"
