"""The compare view: two real runs overlaid (one line per run on every chart), differing config, summary
with deltas against a pinned baseline and time to a target; the data path stays bounded on long runs."""

from __future__ import annotations

import time

import pytest

from support import quick_preset
from support import pilot_wait_for as wait_for
from support.tui import train_runs
from workbench.store import RunStore
from workbench.tui.app import WorkbenchApp
from workbench.tui.compare_data import load_curves, summarize
from workbench.tui.screens.compare import CompareScreen


@pytest.fixture
def two_runs(runs_dir):
    return train_runs(runs_dir)


async def test_compare_overlays_runs_lists_differences_and_pins_a_baseline(two_runs, runs_dir):
    a, b = two_runs
    app = WorkbenchApp(runs_dir=runs_dir, count_params=False)
    async with app.run_test(size=(150, 50)) as pilot:
        screen = CompareScreen([a, b], runs_dir)
        app.push_screen(screen)
        await wait_for(pilot, lambda: screen.loads >= 1, what="the first load")
        await pilot.pause()
        lines = screen.snapshot()["charts"]
        for title in ("loss", "val loss", "learning rate", "grad norm"):
            assert len(lines[title]) == 2, (title, lines)
        assert {chart.lines[0].color for chart in screen.charts if chart.lines} != {
            chart.lines[1].color for chart in screen.charts if len(chart.lines) > 1}
        loss_chart = screen.charts[0]
        await wait_for(pilot, lambda: loss_chart.builds > 0, what="a drawn chart")
        assert loss_chart.last_points > 0
        # Every run's latest value is in the title, marked by its colour; the legend names the runs.
        assert str(loss_chart.border_title).count("━") == 2
        assert a in str(screen.query_one("#compare-legend").render())
        assert screen.summary["differing_config"] == {"optim.lr": {a: 0.003, b: 0.03}}
        assert "optim.lr" in str(screen.query_one("#compare-diff").render())
        assert screen.baseline == a
        rows = {row["run_id"]: row for row in screen.summary["runs"]}
        assert rows[a]["delta_vs_baseline"]["val_loss"] == 0
        expected = rows[b]["metrics"]["val_loss"]["best"] - rows[a]["metrics"]["val_loss"]["best"]
        assert rows[b]["delta_vs_baseline"]["val_loss"] == pytest.approx(expected)
        # pin the second run as the baseline: deltas flip
        await pilot.press("down")
        await pilot.press("b")
        await wait_for(pilot, lambda: screen.summary["baseline"] == b, what="the new baseline")
        rows = {row["run_id"]: row for row in screen.summary["runs"]}
        assert rows[a]["delta_vs_baseline"]["val_loss"] == pytest.approx(-expected)
        # x by wall time, then by samples seen
        loads = screen.loads
        await pilot.press("w")
        await wait_for(pilot, lambda: screen.loads > loads, what="reload on samples axis")
        xs = [x for x, _ in screen.curves[0].series["loss"]]
        assert xs == sorted(xs) and xs[-1] >= 60 * quick_preset().train.batch_size * 0.9
        await pilot.press("escape")


async def test_target_val_loss_reports_steps_to_reach_it(two_runs, runs_dir):
    a, b = two_runs
    store = RunStore(runs_dir)
    loose = max(store.min_metric(a, "val_loss"), store.min_metric(b, "val_loss")) + 1.0
    summary = summarize(store, [a, b], target=loose)
    for row in summary["runs"]:
        first_val = store.metric_series(row["run_id"], "val_loss")[0][0]
        assert row["target"]["step"] == first_val and row["target"]["seconds"] is not None
    summary = summarize(store, [a, b], target=-1.0)
    assert all(row["target"]["step"] is None for row in summary["runs"])
    store.close()


def test_curves_are_bounded_on_long_runs(store):
    run_id = store.create_run("long", {"name": "long"})
    rows = [(step, "loss", 1.0 / (1 + step)) for step in range(50_000)]
    rows += [(step, "samples_seen", float(step * 32)) for step in range(0, 50_000, 10)]
    store.add_metrics(run_id, rows)
    started = time.perf_counter()
    curves = load_curves(store, run_id, 400, "samples")
    assert time.perf_counter() - started < 2.0
    points = curves.series["loss"]
    assert 2 <= len(points) <= 402
    assert points[0][0] < 0.01 * 50_000 * 32 and points[-1][0] == pytest.approx(49_999 * 32, rel=0.01)
    assert min(v for _, v in points) == pytest.approx(1.0 / 50_000)  # the bucket minimum survives


async def test_the_compare_view_fits_at_140_and_80_columns_and_a_target_keeps_column_widths(two_runs, runs_dir):
    from textual.widgets import DataTable

    from workbench.tui.screens.modals import PromptScreen

    a, b = two_runs
    app = WorkbenchApp(runs_dir=runs_dir, count_params=False)
    async with app.run_test(size=(140, 45)) as pilot:
        screen = CompareScreen([a, b], runs_dir)
        app.push_screen(screen)
        await wait_for(pilot, lambda: screen.loads >= 1, what="the first load")
        await pilot.pause()
        table = screen.query_one("#compare-summary", DataTable)

        def table_width() -> int:
            return sum(column.get_render_width(table) for column in table.columns.values())

        assert table_width() <= 140
        labels = [str(column.label) for column in table.columns.values()]
        assert {"run", "status", "best val loss", "Δ best val loss", "steps/s"} <= set(labels), labels
        assert sum(chart.display and chart.is_on_screen for chart in screen.charts) == 5
        widths = {key.value: column.width for key, column in table.columns.items()}
        await pilot.press("t")
        await wait_for(pilot, lambda: isinstance(app.screen, PromptScreen), what="the target prompt")
        await pilot.press(*"0.5", "enter")
        await wait_for(pilot, lambda: screen.target == 0.5 and screen.loads >= 2, what="the target")
        await pilot.pause()
        columns = {key.value: column for key, column in table.columns.items()}
        assert "val loss ≤ 0.5" in columns and table_width() <= 140
        for key in ("run", "status", "steps"):
            assert columns[key].width == widths[key], key  # not shrunk by the rebuild
        diff = str(screen.query_one("#compare-diff").render())
        assert "None" not in diff and "name" not in diff.split("\n", 1)[-1]
        await pilot.resize_terminal(80, 24)
        await wait_for(pilot, lambda: screen.has_class("-short"), what="the short layout")
        screen.reload()
        await wait_for(pilot, lambda: screen.loads >= 3, what="a reload at 80 columns")
        await pilot.pause()
        assert table_width() <= 80 and screen.hidden_columns
        shown = [chart.title for chart in screen.charts if chart.is_on_screen and chart.region.height]
        assert shown == ["loss", "val loss"], shown
        assert min(chart.region.height for chart in screen.charts[:2]) >= 7
