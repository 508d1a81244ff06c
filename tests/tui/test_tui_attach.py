"""`workbench attach` and the attached dashboard: follow a run in another process, steer it, leave it running."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from support import run_cli
from support import pilot_wait_for as wait_for
from support import wait_for as wait_until
from workbench.store import RunStore
from workbench.tui.app import WorkbenchApp
from workbench.tui.attached import AttachedSession
from workbench.tui.screens.dashboard import DashboardScreen
from workbench.tui.screens.presets import PresetsScreen


@pytest.fixture
def detached_run(runs_dir):
    """A run training in another process (`workbench train --detach`), stopped at the end of the test."""
    launcher = subprocess.run(
        [sys.executable, "-m", "workbench", "train", "mlp-quadrants", "--detach", "--runs-dir", str(runs_dir),
         "--set", "train.max_steps=1000000", "--set", "train.eval_every=200", "--set", "train.threads=1",
         "--set", "train.log_every=10"],
        capture_output=True, text=True, timeout=300)
    assert launcher.returncode == 0, launcher.stderr
    run_id = launcher.stdout.strip()
    store = RunStore(runs_dir)
    wait_until(lambda: (store.get_run(run_id) or {}).get("steps", 0) > 0)
    yield store, run_id
    if store.get_run(run_id)["status"] == "running":
        store.send_command(run_id, "stop")
        wait_until(lambda: store.get_run(run_id)["status"] != "running", timeout=60)
    store.close()


@pytest.mark.slow
async def test_attach_follows_another_process_and_leaving_keeps_it_running(detached_run, runs_dir):
    store, run_id = detached_run
    app = WorkbenchApp(runs_dir=runs_dir, attach=run_id, count_params=False, fps=10)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, DashboardScreen), what="the dashboard")
        dash = app.screen
        assert isinstance(dash.session, AttachedSession)
        await wait_for(pilot, lambda: dash.session.state.step > 0 and "loss" in dash.session.state.series,
                       what="history")
        first = dash.session.state.step
        await wait_for(pilot, lambda: dash.session.state.step > first + 20, what="steps advancing")
        assert dash.session.state.run_id == run_id and dash.session.active
        # pause goes through the store's control table to the other process
        await pilot.press("p")
        await wait_for(pilot, lambda: dash.session.state.paused, timeout=30, what="paused")
        await pilot.press("p")
        await wait_for(pilot, lambda: not dash.session.state.paused, timeout=30, what="resumed")
        # escape leaves without asking, and the run goes on
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, PresetsScreen), what="back to presets")
        await wait_for(pilot, lambda: dash.session._closed, what="the closed dashboard to stop reading")
        # quitting while attached asks nothing and stops nothing
        app.attach_run(run_id)
        await wait_for(pilot, lambda: isinstance(app.screen, DashboardScreen), what="the dashboard again")
        assert not app.has_active_run()
        await pilot.press("q")
        await pilot.pause()
    steps = store.get_run(run_id)["steps"]
    wait_until(lambda: store.get_run(run_id)["steps"] > steps, timeout=60)
    assert store.get_run(run_id)["status"] == "running"


async def test_attached_finished_run_shows_its_history_and_final_status(runs_dir):
    from support import quick_preset
    from workbench.training.trainer import Trainer

    writer = RunStore(runs_dir)
    trainer = Trainer(quick_preset(**{"train.max_steps": 60, "train.eval_every": 30, "train.log_every": 5,
                                      "train.threads": 1}), writer)
    result = trainer.run()
    writer.close()
    app = WorkbenchApp(runs_dir=runs_dir, attach=result.run_id, count_params=False)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, DashboardScreen), what="the dashboard")
        dash = app.screen
        await wait_for(pilot, lambda: dash.session.state.ended, what="final status")
        state = dash.session.state
        assert state.status == "completed" and state.step == 60
        assert len(state.series["loss"]) > 5 and len(state.series["val_loss"]) >= 2
        assert not dash.session.active and not dash.check_action("stop", ())
        await pilot.press("q")


def test_attach_cli_refuses_unknown_runs(runs_dir):
    RunStore(runs_dir).close()
    done = run_cli("attach", "no-such-run", "--runs-dir", str(runs_dir), timeout=120)
    assert done.returncode == 2 and "no-such-run" in done.stderr and "not found" in done.stderr
    done = run_cli("attach", "x", "--runs-dir", str(runs_dir / "nowhere"), timeout=120)
    assert done.returncode == 2 and "--runs-dir" in done.stderr


@pytest.mark.slow
async def test_run_detached_switch_trains_in_another_process_and_attaches(runs_dir):
    """The form's "run detached" switch: Start launches `workbench train --detach`, the dashboard attaches,
    and leaving the app leaves the run going."""
    import os

    from support.tui import open_configure, write_user_preset
    from textual.widgets import Switch

    from workbench.follow import StoreControl
    from workbench.store import RunStore
    from workbench.tui.app import WorkbenchApp
    from workbench.tui.attached import AttachedSession
    from workbench.tui.screens.dashboard import DashboardScreen

    write_user_preset("long-mlp", ["train.max_steps=1000000", "train.eval_every=0", "train.threads=1"])
    app = WorkbenchApp(runs_dir=runs_dir, count_params=False)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        form = await open_configure(pilot, "long-mlp")
        form.query_one("#run-detached", Switch).value = True
        await pilot.pause()
        await pilot.press("ctrl+r")
        await wait_for(pilot, lambda: isinstance(app.screen, DashboardScreen), timeout=180, what="attached dashboard")
        session = app.screen.session
        assert isinstance(session, AttachedSession)
        run_id = session.run_id
        await pilot.press("q")
    store = RunStore(runs_dir)
    run = store.get_run(run_id)
    assert run["status"] == "running" and run["pid"] != os.getpid()
    assert StoreControl(store, run_id).stop()
    deadline = time.time() + 60
    while store.get_run(run_id)["status"] == "running" and time.time() < deadline:
        time.sleep(0.2)
    assert store.get_run(run_id)["status"] == "stopped"
    store.close()


@pytest.mark.slow
async def test_the_attached_view_shows_epoch_and_eta_while_the_run_trains(detached_run, runs_dir):
    store, run_id = detached_run
    app = WorkbenchApp(runs_dir=runs_dir, attach=run_id, count_params=False, fps=10)
    async with app.run_test(size=(140, 45)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, DashboardScreen), what="the dashboard")
        dash = app.screen
        state = dash.session.state
        await wait_for(pilot, lambda: state.step > 0 and state.eta() is not None, timeout=60, what="an ETA")
        await wait_for(pilot, lambda: dash.progress._last_text[5] != "-" and dash.progress._last_text[3] > 0,
                       timeout=30, what="the progress line's epoch and ETA")
        status, step, total, epoch, elapsed, eta, rate, metrics = dash.progress._last_text
        assert status == "running" and epoch > 0 and eta != "-" and "steps/s" in rate
        assert epoch == pytest.approx(step * 64 / 8192, rel=0.2)  # batch 64 over 8,192 samples


@pytest.mark.slow
async def test_attach_shows_a_run_of_your_own_loop(runs_dir):
    """A run made with `workbench.init` in another process is an ordinary run: attach follows it live,
    charts it, pauses it through the store, and shows how it ended."""
    from support.own_loop import start_loop
    from workbench.follow import StoreControl

    process, run_id = start_loop(runs_dir)
    store = RunStore(runs_dir)
    try:
        wait_until(lambda: store.last_metric(run_id, "loss") is not None, timeout=60)
        app = WorkbenchApp(runs_dir=runs_dir, attach=run_id, count_params=False, fps=10)
        async with app.run_test(size=(120, 40)) as pilot:
            await wait_for(pilot, lambda: isinstance(app.screen, DashboardScreen), what="the dashboard")
            dash = app.screen
            assert isinstance(dash.session, AttachedSession) and dash.session.preset.name == "own-loop"
            await wait_for(pilot, lambda: "loss" in dash.session.state.series and "grad_norm" in dash.session.state.series,
                           what="charted history")
            first = dash.session.state.step
            await wait_for(pilot, lambda: dash.session.state.step > first + 20, what="steps advancing")
            await pilot.press("p")
            await wait_for(pilot, lambda: dash.session.state.paused, timeout=30, what="paused")
            await pilot.press("p")
            await wait_for(pilot, lambda: not dash.session.state.paused, timeout=30, what="resumed")
            assert StoreControl(store, run_id).stop()
            await wait_for(pilot, lambda: dash.session.state.ended, timeout=60, what="the ending")
            assert dash.session.state.status == "stopped"
            await pilot.press("q")
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(30)
        store.close()
