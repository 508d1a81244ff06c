"""Queues and sweeps from the TUI: marked presets and a one-key value list train one after another on the
background trainer, the dashboard says which run of the set is live, a failed run doesn't stop the rest,
a bad sweep value is refused inline, and the compare view opens on exactly the runs of the set."""

from __future__ import annotations

import pytest

from support import pilot_wait_for as wait_for
from support.tui import QUICK, open_configure, write_user_preset
from workbench.store import RunStore
from workbench.tui.screens.compare import CompareScreen
from workbench.tui.screens.configure import ConfigureScreen
from workbench.tui.screens.dashboard import DashboardScreen
from workbench.tui.screens.modals import PromptScreen
from workbench.tui.screens.presets import PresetsScreen

# Generous: on a loaded 2-core machine the first run (torch import included) can take over a minute.
LONG = 300.0
SHORT = [*QUICK, "train.max_steps=30", "train.eval_every=10", "data.args.train_size=512", "data.args.val_size=256"]


async def mark(pilot, names: list[str]) -> PresetsScreen:
    screen = pilot.app.screen
    table = screen.query_one("DataTable")
    for name in names:
        table.move_cursor(row=[entry["name"] for entry in screen.catalog].index(name))
        await pilot.press("space")
    return screen


@pytest.mark.slow
async def test_marked_presets_train_one_after_another_and_open_the_compare_view(make_app, runs_dir):
    write_user_preset("q-wide", [*SHORT, "model.args.hidden=[32]"])
    write_user_preset("q-narrow", [*SHORT, "model.args.hidden=[8]"])
    app = make_app()
    async with app.run_test(size=(150, 45)) as pilot:
        await pilot.pause()
        screen = await mark(pilot, ["q-wide", "q-narrow"])
        assert screen.marked == ["q-wide", "q-narrow"]
        assert "2 marked" in str(screen.query_one("#presets-help").render())
        await pilot.press("u")
        await wait_for(pilot, lambda: isinstance(app.screen, DashboardScreen) and app.screen.sub_title,
                       timeout=LONG, what="the first dashboard")
        first = app.screen
        assert first.queued.label == "q-wide" and first.sub_title.startswith("run 1/2: q-wide")
        # the label is the preset's name: said once (the run id, once known, has the name in it too)
        assert "q-wide" not in first.sub_title.split(" · ")[1:]
        await wait_for(pilot, lambda: app.dashboard is not first and app.dashboard.sub_title, timeout=LONG,
                       what="the second run")
        assert app.dashboard.sub_title.startswith("run 2/2: q-narrow")
        assert first.session.state.ended  # one at a time: the second starts after the first ended
        await wait_for(pilot, lambda: isinstance(app.screen, CompareScreen) and app.screen.loads, timeout=LONG,
                       what="compare")
        compare = app.screen
        runs = RunStore(runs_dir).list_runs()
        assert [run["preset"] for run in reversed(runs)] == ["q-wide", "q-narrow"]
        assert compare.run_ids == [run["run_id"] for run in reversed(runs)]
        assert {row["status"] for row in compare.summary["runs"]} == {"completed"}
        assert "model.args.hidden" in compare.summary["differing_config"]
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, PresetsScreen), what="back to the presets")


@pytest.mark.slow
async def test_a_sweep_of_three_learning_rates_queues_three_runs_and_a_failed_run_does_not_stop_the_rest(
        make_app, runs_dir):
    write_user_preset("q-sweep", SHORT)
    app = make_app()
    async with app.run_test(size=(150, 45)) as pilot:
        await pilot.pause()
        form = await open_configure(pilot, "q-sweep")
        await pilot.press("ctrl+g")
        await wait_for(pilot, lambda: isinstance(app.screen, PromptScreen), what="the sweep prompt")
        # the middle value builds no data (a negative dataset size): that run fails, the third still runs
        await pilot.press(*"optim.lr=1e-3,3e-3,1e-2")
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, DashboardScreen) and app.screen.sub_title, timeout=LONG,
                       what="run 1")
        assert app.screen.sub_title.startswith("run 1/3: optim.lr=1e-3")
        await wait_for(pilot, lambda: isinstance(app.screen, CompareScreen) and app.screen.loads, timeout=LONG,
                       what="compare")
        compare = app.screen
        assert len(compare.run_ids) == 3
        lrs = compare.summary["differing_config"]["optim.lr"]
        assert [lrs[run_id] for run_id in compare.run_ids] == [1e-3, 3e-3, 1e-2]
        assert app.queue.done and [run.status for run in app.queue.runs] == ["completed"] * 3
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.screen is form, what="back to the form")

        # a queue whose second run fails: the third one still trains and both recorded runs are compared
        await pilot.press("ctrl+g")
        await wait_for(pilot, lambda: isinstance(app.screen, PromptScreen), what="the sweep prompt")
        await pilot.press(*"data.args.val_size=64,-5,32")
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, CompareScreen) and app.screen is not compare
                       and app.screen.loads, timeout=LONG, what="the second compare")
        statuses = [run.status for run in app.queue.runs]
        assert statuses[0] == "completed" and statuses[1] in ("failed", "invalid") and statuses[2] == "completed"
        recorded = [run.run_id for run in app.queue.runs if run.run_id]
        assert app.screen.run_ids == recorded and len(recorded) >= 2


@pytest.mark.slow
async def test_an_invalid_sweep_value_is_refused_inline_and_nothing_runs(make_app, runs_dir):
    write_user_preset("q-bad", SHORT)
    app = make_app()
    async with app.run_test(size=(150, 45)) as pilot:
        await pilot.pause()
        await open_configure(pilot, "q-bad")
        await pilot.press("ctrl+g")
        await wait_for(pilot, lambda: isinstance(app.screen, PromptScreen), what="the sweep prompt")
        prompt = app.screen
        await pilot.press(*"optim.lr=1e-3,-1,1e-2")
        error = str(prompt.query_one("#prompt-error").render())
        assert "optim.lr=-1" in error and "greater than 0" in error
        assert prompt.query_one("#ok").disabled
        await pilot.press("enter")  # refused: the prompt stays
        assert app.screen is prompt
        for _ in range(len("1e-3,-1,1e-2")):
            await pilot.press("backspace")
        await pilot.press(*"1e-3")  # a single value is not a sweep
        assert "at least two values" in str(prompt.query_one("#prompt-error").render())
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfigureScreen), what="back to the form")
        assert app.queue is None
        assert not (runs_dir / "workbench.db").exists() or not RunStore(runs_dir).list_runs()


@pytest.mark.slow
async def test_x_stops_one_queued_run_and_goes_on_k_cancels_the_rest_then_x_stops_the_last(make_app, runs_dir):
    from workbench.tui.screens.modals import ChoiceScreen, ConfirmScreen

    endless = [*SHORT, "train.max_steps=1000000", "train.eval_every=0"]
    for name in ("q-one", "q-two", "q-three"):
        write_user_preset(name, endless)
    app = make_app()
    async with app.run_test(size=(150, 45)) as pilot:
        await pilot.pause()
        await mark(pilot, ["q-one", "q-two", "q-three"])
        await pilot.press("u")
        await wait_for(pilot, lambda: isinstance(app.screen, DashboardScreen) and app.screen.session.state.step > 5,
                       timeout=LONG, what="run 1 training")
        first = app.screen
        await pilot.press("x")  # one run of a queue: stop it and go on, or drop the rest too
        await wait_for(pilot, lambda: isinstance(app.screen, ChoiceScreen), what="the stop choice")
        await pilot.press("1")  # "Stop it and go on with the next"
        await wait_for(pilot, lambda: app.dashboard is not first and app.dashboard.session.state.step > 5,
                       timeout=LONG, what="run 2 training")
        second = app.dashboard
        assert second.sub_title.startswith("run 2/3: q-two") and first.session.state.status == "stopped"
        await pilot.press("k")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="the cancel confirmation")
        await pilot.press("y")
        await wait_for(pilot, lambda: app.screen is second, what="back to the dashboard")
        assert app.queue.remaining == 0 and second.session.state.status == "running"  # this run goes on
        await pilot.press("x")  # nothing queued after it: the plain stop confirmation
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="the stop confirmation")
        await pilot.press("y")
        await wait_for(pilot, lambda: isinstance(app.screen, CompareScreen) and app.screen.loads, timeout=LONG,
                       what="compare on the two recorded runs")
        runs = RunStore(runs_dir).list_runs()
        assert sorted(run["preset"] for run in runs) == ["q-one", "q-two"]  # q-three never started
        assert {run["status"] for run in runs} == {"stopped"}
        assert sorted(app.screen.run_ids) == sorted(run["run_id"] for run in runs)
