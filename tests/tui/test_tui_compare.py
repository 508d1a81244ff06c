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
        assert a.split("-", 2)[2] in str(loss_chart.border_title)
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
