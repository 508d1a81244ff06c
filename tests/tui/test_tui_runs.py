"""The runs screen: every stored run listed with its figures; filter, sort, open (attached), mark, compare."""

from __future__ import annotations

import pytest

from support.tui import train_runs
from support import pilot_wait_for as wait_for
from workbench.tui.app import WorkbenchApp
from workbench.tui.attached import AttachedSession
from workbench.tui.screens.compare import CompareScreen
from workbench.tui.screens.dashboard import DashboardScreen
from workbench.tui.screens.runs import RunsScreen, matches, parse_filter


@pytest.mark.slow
async def test_runs_screen_lists_filters_sorts_opens_and_compares(runs_dir):
    a, b = train_runs(runs_dir, lrs=(0.003, 0.5), steps=40)
    app = WorkbenchApp(runs_dir=runs_dir, count_params=False)
    async with app.run_test(size=(150, 45)) as pilot:
        await pilot.pause()
        await pilot.press("h")
        await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen) and app.screen.loads, what="runs")
        screen = app.screen
        assert {row["run_id"] for row in screen.shown} == {a, b}
        row = next(r for r in screen.rows if r["run_id"] == a)
        assert row["status"] == "completed" and row["steps"] == 40 and row["best_val"] is not None
        assert row["params"] and row["final_val"] is not None and set(row["findings"]) == {"critical", "warning", "info"}
        # sort by best val (o cycles columns; i reverses)
        screen.sort_key, screen.sort_reverse = "best_val", False
        screen._show_rows()
        vals = [r["best_val"] for r in screen.shown]
        assert vals == sorted(vals)
        # filter by free text: only one run's id
        screen.filter_text = a.rsplit("-", 1)[1]
        screen._show_rows()
        assert [r["run_id"] for r in screen.shown] == [a]
        screen.filter_text = "status:running"
        screen._show_rows()
        assert screen.shown == []
        screen.filter_text = ""
        screen._show_rows()
        # mark both and compare
        table = screen.query_one("#runs-table")
        table.move_cursor(row=0)
        await pilot.press("space")
        await pilot.press("space")
        assert len(screen.marked) == 2
        await pilot.press("c")
        await wait_for(pilot, lambda: isinstance(app.screen, CompareScreen) and app.screen.loads, what="compare")
        assert set(app.screen.run_ids) == {a, b}
        assert "optim.lr" in app.screen.summary["differing_config"]
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.screen is screen, what="back to runs")
        # enter opens an attached dashboard of the highlighted run
        table.move_cursor(row=0)
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, DashboardScreen), what="dashboard")
        assert isinstance(app.screen.session, AttachedSession)
        assert app.screen.session.run_id == screen.shown[0]["run_id"]
        await wait_for(pilot, lambda: app.screen.session.state.ended, what="final status")
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.screen is screen, what="back to runs")
        # resume is only for interrupted runs
        await pilot.press("u")
        assert app.screen is screen
        await pilot.press("q")


def test_filter_syntax():
    row = {"run_id": "20250101-120000-mlp-quadrants-abc123", "preset": "mlp-quadrants", "status": "interrupted",
           "reason": "process ended without finishing"}
    assert matches(row, parse_filter("status:inter preset:MLP abc"))
    assert not matches(row, parse_filter("status:running"))
    assert matches(row, parse_filter("without"))
    assert not matches(row, parse_filter("preset:gpt"))


async def test_an_interrupted_run_resumes_from_the_runs_screen(runs_dir):
    """Interrupted runs offer resume: `u` continues the same run from its checkpoint to the end."""
    from support import quick_preset
    from workbench.store import RunStore
    from workbench.training.trainer import Trainer
    from workbench.training.telemetry import Callback

    class StopAt(Callback):
        def on_batch(self, trainer, batch):
            if trainer.step >= 20:
                trainer.stop("interrupted", "simulated SSH drop")

    store = RunStore(runs_dir)
    preset = quick_preset(**{"train.max_steps": 60, "train.eval_every": 30, "train.log_every": 10,
                             "train.threads": 1})
    result = Trainer(preset, store, callbacks=[StopAt()]).run()
    assert result.status == "interrupted" and result.steps == 20
    app = WorkbenchApp(runs_dir=runs_dir, count_params=False)
    async with app.run_test(size=(150, 45)) as pilot:
        await pilot.pause()
        await pilot.press("h")
        await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen) and app.screen.loads, what="runs")
        assert app.screen.shown[0]["status"] == "interrupted"
        app.screen.query_one("#runs-table").move_cursor(row=0)
        await pilot.press("u")
        await wait_for(pilot, lambda: isinstance(app.screen, DashboardScreen), what="dashboard")
        dashboard = app.screen
        await wait_for(pilot, lambda: dashboard.session.trainer is not None
                       and dashboard.session.trainer.result is not None, timeout=120, what="resumed run ends")
        assert dashboard.session.trainer.result.status == "completed"
    run = store.get_run(result.run_id)
    assert run["status"] == "completed" and run["steps"] == 60
    assert [s for s, _ in store.metric_series(result.run_id, "loss")] == list(range(60))
    store.close()
