"""The TUI driven as a user drives it (Textual Pilot): pick, edit, start, pause, change LR, stop, quit."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from textual.command import CommandList, CommandPalette

from support import pilot_wait_for as wait_for
from support import run_cli
from support.tui import QUICK, open_configure, tab_to, write_user_preset
from workbench.presets import load_preset
from workbench.store import RunStore
from workbench.tui.app import WorkbenchApp
from workbench.tui.screens.configure import ConfigureScreen
from workbench.tui.screens.dashboard import DashboardScreen
from workbench.tui.screens.modals import ChoiceScreen, ConfirmScreen, PromptScreen, ReportScreen

async def clear_and_type(pilot, selector: str, text: str) -> None:
    """Focus an input (as tabbing to it would), clear it and type."""
    widget = pilot.app.screen.query_one(selector)
    widget.focus()
    await pilot.pause()
    widget.action_end()
    for _ in range(len(widget.value)):
        await pilot.press("backspace")
    await pilot.press(*list(text))


async def test_presets_list_includes_the_users_presets_and_enter_opens_the_form(make_app):
    write_user_preset("my-mlp", ["train.max_steps=50"])
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        screen = app.screen
        by_name = {entry["name"]: entry for entry in screen.catalog}
        assert by_name["my-mlp"]["origin"] == "user"
        assert by_name["mlp-quadrants"]["origin"] == "packaged"
        assert by_name["mlp-quadrants"]["model_kind"] == "mlp" and by_name["mlp-quadrants"]["task"] == "classification"
        form = await open_configure(pilot, "my-mlp")
        assert form.base.name == "my-mlp" and form.values["train.max_steps"] == 50
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.screen is screen, what="back to the presets")


async def test_invalid_values_are_flagged_inline_and_start_is_refused(make_app):
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        form = await open_configure(pilot, "mlp-quadrants")
        await tab_to(pilot, form, "optim")  # preset -> model -> data -> optimizer, as a user tabs through
        await wait_for(pilot, lambda: form.query("#f-optim--lr"), what="the optimizer section")  # mounted on show
        await clear_and_type(pilot, "#f-optim--lr", "-1")
        await pilot.pause()
        error = form.query_one("#err-f-optim--lr")
        assert "greater than 0" in str(error.render())
        assert form.query_one("#start").disabled
        assert "✗1" in str(form.query_one("TabbedContent").get_tab("section-optim").label)
        await pilot.press("ctrl+r")
        await pilot.pause()
        assert app.screen is form  # refused
        await clear_and_type(pilot, "#f-optim--lr", "0.01")
        await pilot.pause()
        assert form.result.errors == {}
        assert form.diffs == {"optim.lr": (0.003, 0.01)}
        assert "optim.lr" in str(form.query_one("#diff").render())
        assert not form.query_one("#start").disabled


@pytest.mark.slow
async def test_saved_preset_round_trips_through_workbench_train(make_app, isolated, runs_dir):
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        form = await open_configure(pilot, "mlp-quadrants")
        form.show_section("train")
        await pilot.pause()
        await clear_and_type(pilot, "#f-train--max_steps", "40")
        await clear_and_type(pilot, "#f-train--threads", "1")
        await clear_and_type(pilot, "#f-train--eval_every", "20")
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: isinstance(app.screen, PromptScreen), what="the name prompt")
        prompt = app.screen
        assert prompt.query_one("#prompt-input").value == "mlp-quadrants-custom"
        await clear_and_type(pilot, "#prompt-input", "bad name!")
        await pilot.pause()
        assert "should match pattern" in str(prompt.query_one("#prompt-error").render())
        await clear_and_type(pilot, "#prompt-input", "my-quick")
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.screen is form, what="the prompt to close")
        expected = form.result.preset
    path = isolated / "presets" / "my-quick.toml"
    assert path.is_file()
    saved = load_preset("my-quick")
    assert saved.model_dump() == expected.model_copy(update={"name": "my-quick"}).model_dump()
    done = run_cli("train", "my-quick", "--json", "--runs-dir", str(runs_dir), cwd=isolated)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["status"] == "completed" and summary["steps"] == 40 and summary["preset"] == "my-quick"


@pytest.mark.slow
async def test_start_pause_change_lr_checkpoint_and_stop(make_app, runs_dir):
    write_user_preset("long-mlp", ["train.max_steps=1000000", *QUICK])
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        await open_configure(pilot, "long-mlp")
        await pilot.press("ctrl+r")
        await wait_for(pilot, lambda: isinstance(app.screen, DashboardScreen), what="the dashboard")
        dash: DashboardScreen = app.screen
        state = dash.session.state
        await wait_for(pilot, lambda: state.status == "running" and "loss" in state.series, what="telemetry")
        loss = dash.chart("loss")
        await wait_for(pilot, lambda: loss.builds > 0 and loss.last_points > 0, what="points on the loss chart")

        await pilot.press("p")
        await wait_for(pilot, lambda: state.paused, what="pause")
        paused_at = dash.session.trainer.step
        await pilot.pause(0.5)  # not a wait for a condition: no step may happen in this window
        assert dash.session.trainer.step == paused_at
        assert dash.progress.summary()[0] == "paused"

        await pilot.press("r")
        await wait_for(pilot, lambda: isinstance(app.screen, PromptScreen), what="the LR prompt")
        await clear_and_type(pilot, "#prompt-input", "fast")
        await pilot.pause()
        assert "enter a number" in str(app.screen.query_one("#prompt-error").render())
        await pilot.press("enter")
        assert isinstance(app.screen, PromptScreen)  # refused
        await clear_and_type(pilot, "#prompt-input", "0")
        await pilot.pause()
        assert "greater than 0" in str(app.screen.query_one("#prompt-error").render())
        await clear_and_type(pilot, "#prompt-input", "0.0005")
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.screen is dash, what="the prompt to close")

        await pilot.press("p")
        await wait_for(pilot, lambda: not state.paused, what="resume")
        await wait_for(pilot, lambda: any("learning rate" in text and "0.0005" in text
                                          for _, _, text in dash.log_pane.entries), what="the LR change")
        await wait_for(pilot, lambda: dash.session.trainer.step > paused_at + 20, what="training to go on")
        await pilot.press("c")
        await wait_for(pilot, lambda: any(kind == "checkpoint" and "manual" in text
                                          for _, kind, text in dash.log_pane.entries), what="the checkpoint")

        await pilot.press("x")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="the stop confirmation")
        await pilot.press("y")
        await wait_for(pilot, lambda: state.ended, what="the run to stop")
        assert state.status == "stopped"
        run_id = dash.session.run_id
    store = RunStore(runs_dir)
    run = store.get_run(run_id)
    assert run["status"] == "stopped"
    kinds = {c["kind"] for c in store.checkpoints(run_id)}
    assert {"manual", "stop"} <= kinds


@pytest.mark.slow
async def test_quit_asks_first_while_a_run_is_active_then_stops_it_cleanly(make_app, runs_dir):
    preset = load_preset("mlp-quadrants", ["train.max_steps=1000000", *QUICK])
    app = make_app(preset=preset, start=True)
    async with app.run_test(size=(100, 30)) as pilot:
        dash = app.dashboard
        await wait_for(pilot, lambda: dash.session.state.status == "running", what="the run to start")
        await pilot.press("q")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="the quit confirmation")
        await pilot.press("n")
        await wait_for(pilot, lambda: app.screen is dash, what="the confirmation to close")
        assert dash.session.active
        await pilot.press("ctrl+q")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="the quit confirmation")
        await pilot.press("y")
        await wait_for(pilot, lambda: not app.is_running, what="the app to exit")
        run_id = dash.session.run_id
    assert dash.session.trainer.result.status == "stopped"
    store = RunStore(runs_dir)
    assert store.get_run(run_id)["status"] == "stopped"
    assert any(c["kind"] == "stop" for c in store.checkpoints(run_id))


FAULTY_MODEL = '''
import torch


class Faulty(torch.nn.Module):
    def __init__(self, mode, after):
        super().__init__()
        self.lin = torch.nn.Linear(2, 4)
        self.mode, self.after, self.calls = mode, after, 0

    def forward(self, x):
        self.calls += 1
        if self.calls > self.after and self.mode == "raise":
            raise RuntimeError("boom in forward")
        out = self.lin(x)
        return out * float("nan") if self.calls > self.after else out


def build(mode="raise", after=5):
    return Faulty(mode, after)
'''


def faulty_preset(tmp_path: Path, mode: str):
    path = tmp_path / "faulty.py"
    path.write_text(FAULTY_MODEL)
    return load_preset("mlp-quadrants", ['model.kind="custom"', f'model.target="{path}:build"',
                                         f'model.args={{mode = "{mode}", after = 30}}', "train.max_steps=5000",
                                         *QUICK])


@pytest.mark.slow
async def test_an_exception_in_training_shows_the_traceback_and_a_new_run_can_start(make_app, tmp_path, runs_dir):
    app = make_app(preset=faulty_preset(tmp_path, "raise"), start=True)
    async with app.run_test(size=(120, 40)) as pilot:
        dash = app.dashboard
        await wait_for(pilot, lambda: dash.session.state.ended, what="the run to fail")
        await pilot.pause()
        assert dash.session.state.status == "failed"
        assert dash.error.has_class("-visible")
        shown = str(dash.error.query_one("Static").render())
        assert "boom in forward" in shown and "Traceback" in shown
        first_run = dash.session.run_id
        assert RunStore(runs_dir).get_run(first_run)["status"] == "failed"
        await pilot.press("n")
        await wait_for(pilot, lambda: app.dashboard is not dash and app.screen is app.dashboard, what="a new run")
        await wait_for(pilot, lambda: app.dashboard.session.run_id not in (None, first_run), what="the second run")
        assert app.is_running


@pytest.mark.slow
async def test_a_nan_run_stops_as_diverged_and_the_charts_survive_it(make_app, tmp_path):
    app = make_app(preset=faulty_preset(tmp_path, "nan"), start=True)
    async with app.run_test(size=(120, 40)) as pilot:
        dash = app.dashboard
        await wait_for(pilot, lambda: dash.session.state.ended and dash.findings.findings, what="the run to diverge")
        state = dash.session.state
        assert state.status == "diverged"
        assert state.series["loss"].nonfinite >= 1 and len(state.series["loss"]) > 0
        loss = dash.chart("loss")
        await wait_for(pilot, lambda: not loss.dirty, what="the final redraw")
        assert "non-finite" in str(loss.border_subtitle)
        assert any(f["code"].startswith("nonfinite") for f in state.findings.values())
        assert dash.findings.findings and dash.findings.findings[0]["severity"] == "critical"
        builds = loss.builds
        await pilot.press("l")  # a log axis on a NaN-laden series must not crash either
        await wait_for(pilot, lambda: loss.builds > builds, what="the log-axis redraw")
        assert app.is_running

        run_id, lr, first = dash.session.run_id, dash.session.preset.optim.lr, dash.session.trainer
        await pilot.press("a")  # roll back to the last good checkpoint and continue with LR x 0.1
        await wait_for(pilot, lambda: isinstance(app.screen, ChoiceScreen), what="the divergence actions")
        assert "LR x 0.1" in str(app.screen.query_one("OptionList").get_option_at_index(0).prompt)
        await pilot.press("1")
        await wait_for(pilot, lambda: dash.session.trainer not in (None, first), what="the rollback trainer")
        assert dash.session.run_id == run_id
        assert dash.session.trainer.preset.optim.lr == pytest.approx(lr * 0.1)
        await wait_for(pilot, lambda: dash.session.state.ended, what="the resumed run to end")
        assert any("rolled back" in text for _, _, text in dash.log_pane.entries)
        assert dash.session.state.status == "diverged"  # this model turns to NaN again: honest ending
        # ... and said as loudly as the first time: a toast naming the step it had gone back to, the log.
        await wait_for(pilot, lambda: any(note.title.startswith("run diverged again after rolling back to step")
                                          for note in app._notifications), timeout=10, what="the second toast")
        assert any("diverged again" in text for _, _, text in dash.log_pane.entries)
        assert dash.progress._last_text[0] == "diverged"


@pytest.mark.slow
async def test_chart_controls_and_resizing_mid_run(make_app):
    preset = load_preset("mlp-quadrants", ["train.max_steps=1000000", *QUICK])
    app = make_app(preset=preset, start=True)
    async with app.run_test(size=(120, 40)) as pilot:
        dash = app.dashboard
        loss = dash.chart("loss")
        await wait_for(pilot, lambda: loss.builds > 0 and loss.last_points > 0, what="points on the loss chart")
        for key, check in (("l", lambda o: o.log_y), ("e", lambda o: o.smoothing == 0.6),
                           ("w", lambda o: o.x_axis == "time"), ("plus", lambda o: o.zoom == 0.5),
                           ("minus", lambda o: o.zoom == 1.0)):
            builds = loss.builds
            await pilot.press(key)
            await wait_for(pilot, lambda: loss.builds > builds, what=f"a redraw after {key}")
            assert check(dash.options), key
        await pilot.press("0")
        assert dash.options.zoom == 1.0 and not dash.options.log_y
        assert "smoothing EMA 0.6" in str(dash.query_one("#chart-options").render())

        await pilot.resize_terminal(80, 24)
        await wait_for(pilot, lambda: dash.has_class("-narrow"), what="the narrow layout")
        builds = loss.builds
        await wait_for(pilot, lambda: loss.builds > builds and loss.size.width < 60, what="a redraw at 80x24")
        assert not dash.chart("memory").display or not dash.chart("memory").is_on_screen
        await pilot.press("v")  # the second chart cycles
        await wait_for(pilot, lambda: dash.chart("grad").has_class("-shown"), what="the next chart")
        await pilot.resize_terminal(200, 60)
        await wait_for(pilot, lambda: dash.has_class("-wide"), what="the wide layout")
        memory = dash.chart("memory")
        await wait_for(pilot, lambda: memory.is_on_screen and memory.builds > 0, what="the memory chart")
        assert "process RSS" in str(memory.border_title)
        await pilot.press("z")
        await pilot.pause(0.2)
        assert dash.query_one("#charts").has_class("-maximized")
        assert dash.session.active


@pytest.mark.slow
async def test_the_command_palette_holds_the_screens_key_bindings(make_app):
    preset = load_preset("mlp-quadrants", ["train.max_steps=1000000", *QUICK])
    app = make_app(preset=preset, start=True)
    async with app.run_test(size=(120, 40)) as pilot:
        dash = app.dashboard
        await wait_for(pilot, lambda: dash.session.state.status == "running", what="the run to start")
        wanted = {"Pause/Resume", "Stop", "Checkpoint", "Set LR", "Log y", "Smoothing", "Steps/Time", "Zoom in",
                  "Zoom out", "Reset zoom", "Next chart", "Maximize chart"}
        await wait_for(pilot, lambda: wanted <= {command.title for command in app.get_system_commands(dash)},
                       what="the dashboard's keys as commands")
        await pilot.press("ctrl+p")
        await wait_for(pilot, lambda: isinstance(app.screen, CommandPalette), what="the palette")
        await pilot.press(*list("smoothing"))
        await wait_for(pilot, lambda: app.screen.query_one(CommandList).option_count > 0, what="a matching command")
        await pilot.press("enter")
        await wait_for(pilot, lambda: dash.options.smoothing == 0.6, what="the palette command to run")


def test_tui_import_path_keeps_torch_and_transformers_out():
    code = ("import sys, workbench.cli, workbench.tui.app; "
            "print(json.dumps(['torch' in sys.modules, 'transformers' in sys.modules]))")
    done = subprocess.run([sys.executable, "-c", "import json; " + code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == [False, False]


def test_bad_tui_arguments_are_usage_errors(capsys):
    from workbench.cli import main

    assert main(["tui", "--preset", "no-such-preset"]) == 2
    assert "no-such-preset" in capsys.readouterr().err
    assert main(["tui", "--fps", "0"]) == 2
    assert "--fps" in capsys.readouterr().err
    assert main(["tui", "--preset", "mlp-quadrants", "--set", "optim.lr=-1", "--start"]) == 2
    assert "optim.lr" in capsys.readouterr().err


@pytest.mark.slow
async def test_f_profiles_the_next_steps_and_shows_the_report(make_app, runs_dir):
    preset = load_preset("mlp-quadrants", ["train.max_steps=1000000", *QUICK])
    app = make_app(preset=preset, start=True)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, DashboardScreen), what="the dashboard")
        dash: DashboardScreen = app.screen
        state = dash.session.state
        await wait_for(pilot, lambda: state.status == "running" and state.step > 5, what="training")
        await pilot.press("f")
        await wait_for(pilot, lambda: isinstance(app.screen, ReportScreen), timeout=120, what="the profile report")
        report = app.screen.text
        assert "self" in report.lower() and "data" in report.lower()  # top operators; data wait vs compute
        assert state.profile_step is not None and state.profile_step >= dash.PROFILE_STEPS
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.screen is dash, what="the report to close")
        await pilot.press("p")
        await wait_for(pilot, lambda: state.paused, what="pause")
        await pilot.press("f")  # paused: shows the last report again instead of profiling
        await wait_for(pilot, lambda: isinstance(app.screen, ReportScreen), what="the report again")
        await pilot.press("escape")
        # recorded with the run (the metric writer commits every half second)
        store = RunStore(runs_dir)
        await wait_for(pilot, lambda: store.events(dash.session.run_id, kind="profile"),
                       what="the profile event in the store")
        store.close()


@pytest.mark.slow
@pytest.mark.parametrize("lr, choice", [(3.0, "1"), (3.0, "2"), (100.0, "2")])
async def test_one_a_rescues_a_run_that_diverges(make_app, lr, choice):
    """`workbench tui --preset mlp-quadrants --start --set optim.name=sgd --set optim.lr=LR --set
    train.grad_clip=0`: one `a` goes back to the snapshot from before the explosion and the run completes."""
    preset = load_preset("mlp-quadrants", ["optim.name=sgd", f"optim.lr={lr}", "train.grad_clip=0",
                                           "train.threads=1"])
    app = make_app(preset=preset, start=True)
    async with app.run_test(size=(140, 45)) as pilot:
        dash = app.dashboard
        await wait_for(pilot, lambda: dash.session.state.status == "diverged", timeout=120, what="the divergence")
        diverged_at, first = dash.session.state.step, dash.session.trainer
        await pilot.pause(0.3)
        await pilot.press("a")
        await wait_for(pilot, lambda: isinstance(app.screen, ChoiceScreen), what="the divergence actions")
        assert "(step 0, before the explosion)" in str(app.screen.title_text)
        options = app.screen.query_one("OptionList")
        await pilot.pause(0.2)
        room = options.content_region.width
        assert all(len(str(options.get_option_at_index(i).prompt)) <= room for i in range(options.option_count)), (
            room, [str(options.get_option_at_index(i).prompt) for i in range(options.option_count)])
        await pilot.press(choice)
        await wait_for(pilot, lambda: dash.session.trainer not in (None, first), what="the rollback trainer")
        await wait_for(pilot, lambda: dash.session.state.ended, timeout=300, what="the rolled-back run to end")
        state = dash.session.state
        assert state.status == "completed" and state.step == 1500, (state.status, state.reason)
        assert any("rolled back to step 0 (diverged at step" in text for _, _, text in dash.log_pane.entries), \
            [text for _, _, text in dash.log_pane.entries][-6:]
        assert diverged_at > 0
        assert min(state.series["loss"].steps) == 0 and state.latest("val_accuracy") > 0.9
