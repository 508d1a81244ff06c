"""Snapshot tests (pytest-textual-snapshot) of every screen at fixed sizes, fed fixed data: no live training.

Regenerate after an intended change with `pytest tests/test_tui_snapshots.py --snapshot-update` and look
at the SVGs in the report before committing them.
"""

from __future__ import annotations

import math

import pytest
from textual.widgets import Input

from support import pilot_wait_for
from workbench.presets import load_preset
from workbench.training.telemetry import Event, TelemetryBatch
from workbench.tui.app import WorkbenchApp
from workbench.tui.screens import presets as presets_screen
from workbench.tui.screens.configure import ConfigureScreen
from workbench.tui.screens.dashboard import DashboardScreen
from workbench.tui.screens.help import HelpScreen
from workbench.tui.session import RunSession

T0 = 1_700_000_000.0
CATALOG = [
    {"name": "cnn-shapes", "description": "SmallCNN (Conv-BN-ReLU blocks) on procedurally drawn shapes",
     "task": "classification", "model_kind": "cnn", "params": 151_972, "watch": "val accuracy passes 0.9",
     "origin": "packaged", "path": "/opt/workbench/presets/cnn-shapes.toml", "valid": True},
    {"name": "gpt-char", "description": "A small GPT on characters of the Python standard library's docs",
     "task": "language_modeling", "model_kind": "gpt", "params": 812_544, "watch": "samples turn into words",
     "origin": "packaged", "path": "/opt/workbench/presets/gpt-char.toml", "valid": True},
    {"name": "mlp-quadrants", "description": "MLP on the 4-class quadrant problem: the smallest end-to-end "
     "classifier, trains in seconds", "task": "classification", "model_kind": "mlp", "params": 17_412,
     "watch": "loss falls from ln(4) = 1.39 within a few hundred steps; val accuracy passes 0.95",
     "origin": "packaged", "path": "/opt/workbench/presets/mlp-quadrants.toml", "valid": True},
    {"name": "my-mlp", "description": "mlp-quadrants with a wider first layer", "task": "classification",
     "model_kind": "mlp", "params": None, "watch": "", "origin": "user", "path": "/home/me/presets/my-mlp.toml",
     "valid": True},
]


@pytest.fixture(autouse=True)
def fixed_catalog(monkeypatch):
    monkeypatch.setattr(presets_screen, "preset_catalog", lambda compute_missing=False: [dict(e) for e in CATALOG])


def still_inputs(pilot) -> None:
    """No blinking cursors in a snapshot."""
    for screen in pilot.app.screen_stack:
        for widget in screen.query(Input):
            widget.cursor_blink = False


def recorded_session(steps: int = 1500, status: str = "completed", trace: str | None = None) -> RunSession:
    """A session whose state holds a whole deterministic run, as if drained from a trainer."""
    preset = load_preset("mlp-quadrants")
    session = RunSession(preset)
    session._launched.set()  # no trainer will come: the run is over
    state = session.state
    state.t0 = T0
    state.started_monotonic = 0.0
    batches = []
    for start in range(0, steps, 25):
        rows = []
        for step in range(start, min(start + 25, steps)):
            loss = 1.386 * math.exp(-step / 180) + 0.04 + 0.03 * math.sin(step * 0.7) ** 2
            if step == 900:
                loss = 0.9  # a spike the min/max buckets must keep
            lr = 3e-3 * min(1.0, (step + 1) / 50) * (0.5 + 0.5 * math.cos(math.pi * step / steps))
            rows += [(step, "loss", loss), (step, "grad_norm", 0.4 + 0.3 * math.cos(step * 0.31) ** 2),
                     (step, "lr", lr)]
        last = min(start + 25, steps) - 1
        rows += [(last, "steps_per_s", 1400 + 60 * math.sin(start)), (last, "samples_per_s", 89_600.0),
                 (last, "mem/rss_mb", 700 + last * 0.01), (last, "epoch", (last + 1) * 64 / 8192)]
        batches.append(TelemetryBatch(step=last, elapsed=T0 + last / 1400, rows=rows, epoch=(last + 1) * 64 / 8192))
        if (last + 1) % 250 == 0:
            val = 1.386 * math.exp(-(last + 1) / 170) + 0.035
            batches.append(TelemetryBatch(step=last + 1, elapsed=T0 + last / 1400,
                                          rows=[(last + 1, "val_loss", val), (last + 1, "val_accuracy", 0.99 - val / 3)]))
    events = [
        Event("setup", 0, "mlp-quadrants: 17,412 parameters (17,412 trainable) on cpu",
              {"params": 17_412, "trainable": 17_412, "device": "cpu"}),
        Event("checkpoint", 800, "checkpoint (manual) at step 800: /runs/x/checkpoints/step-000000800.pt", {}),
        Event("finding", 1250, "val loss rose from 0.0269 (step 750) to 0.0325 while the training loss fell",
              {"code": "overfitting", "severity": "warning", "step": 1250, "last_step": 1250, "count": 1,
               "layer": None, "message": "val loss rose from 0.0269 (step 750) to 0.0325 while the training loss fell",
               "remedy": "add dropout or weight decay, or stop early (train.early_stop_patience)",
               "evidence": {"val_loss": 0.03251521, "train_loss": 0.02773289}}),
        Event("finding", 40, "layer net.4 has 31% dead ReLU units",
              {"code": "dead_units", "severity": "info", "step": 40, "last_step": 400, "count": 3,
               "layer": "net.4", "message": "layer net.4 has 31% dead ReLU units", "remedy": "lower the LR",
               "evidence": {"dead_fraction": 0.3125}}),
    ]
    for i, batch in enumerate(batches):  # rate points at a steady 1,400 steps/s of fake wall time
        state.ingest([batch], [], now=batch.step / 1400)
    state.ingest([], events, now=steps / 1400)
    state.run_id = "20261122-070128-mlp-quadrants-63746d"
    state.finish(status, "boom in forward" if trace else None, trace, step=steps)
    state.ended_monotonic = 83.0
    return session


def dashboard_app(session: RunSession) -> WorkbenchApp:
    app = WorkbenchApp(count_params=False)

    async def show(pilot):
        pilot.app.push_screen(DashboardScreen(session.preset, session=session, autostart=False))
        await pilot_wait_for(pilot, lambda: isinstance(pilot.app.screen, DashboardScreen)
                             and pilot.app.screen.charts[0].size.width > 0, what="the dashboard laid out")
        pilot.app.screen.tick()
        await pilot.pause()

    app.show_dashboard = show
    return app


class TestScreens:
    def test_presets(self, snap_compare):
        assert snap_compare(WorkbenchApp(count_params=False), terminal_size=(120, 30))

    def test_configure_with_an_invalid_value(self, snap_compare):
        preset = load_preset("mlp-quadrants")

        async def edit(pilot):
            pilot.app.push_screen(ConfigureScreen(preset))
            await pilot.pause()
            pilot.app.screen.show_section("optim")
            await pilot.pause()
            lr = pilot.app.screen.control("optim.lr")
            lr.value = "-1"
            wd = pilot.app.screen.control("optim.weight_decay")
            wd.value = "0.05"
            wd.focus()
            still_inputs(pilot)
            await pilot.pause()

        assert snap_compare(WorkbenchApp(count_params=False), terminal_size=(120, 36), run_before=edit)

    def test_dashboard_wide(self, snap_compare):
        app = dashboard_app(recorded_session())
        assert snap_compare(app, terminal_size=(120, 40), run_before=app.show_dashboard)

    def test_dashboard_at_80x24(self, snap_compare):
        app = dashboard_app(recorded_session())
        assert snap_compare(app, terminal_size=(80, 24), run_before=app.show_dashboard)

    def test_dashboard_failed_run_with_smoothing_and_log_scale(self, snap_compare):
        trace = ('Traceback (most recent call last):\n  File "faulty.py", line 12, in forward\n'
                 '    raise RuntimeError("boom in forward")\nRuntimeError: boom in forward')
        app = dashboard_app(recorded_session(steps=600, status="failed", trace=trace))
        assert snap_compare(app, terminal_size=(120, 40), run_before=app.show_dashboard, press=["e", "e", "e", "l"])

    def test_learning_rate_prompt_refuses_a_bad_value(self, snap_compare):
        from workbench.tui.screens.dashboard import validate_lr
        from workbench.tui.screens.modals import PromptScreen

        app = dashboard_app(recorded_session())

        async def prompt(pilot):
            await app.show_dashboard(pilot)
            pilot.app.push_screen(PromptScreen("Learning rate", "0.003", validate_lr,
                                               hint="Applies from the next step; the schedule continues from it."))
            await pilot.pause()
            pilot.app.screen.query_one(Input).value = "1e9"
            still_inputs(pilot)
            await pilot.pause()

        assert snap_compare(app, terminal_size=(100, 30), run_before=prompt)


class TestSizes:
    """What each screen shows at 80x24 and 140x45 (issue 18): at 80x24 the progress line keeps its metrics
    with shorter words, the title keeps the run id, the footer keeps the important keys and help."""

    def test_dashboard_140x45(self, snap_compare):
        app = dashboard_app(recorded_session())
        assert snap_compare(app, terminal_size=(140, 45), run_before=app.show_dashboard)

    def test_presets_80x24(self, snap_compare):
        assert snap_compare(WorkbenchApp(count_params=False), terminal_size=(80, 24))

    def test_configure_80x24(self, snap_compare):
        preset = load_preset("mlp-quadrants")

        async def edit(pilot):
            pilot.app.push_screen(ConfigureScreen(preset))
            await pilot.pause()
            pilot.app.screen.show_section("train")
            await pilot.pause()
            still_inputs(pilot)
            await pilot.pause()

        assert snap_compare(WorkbenchApp(count_params=False), terminal_size=(80, 24), run_before=edit)

    def test_dashboard_help_80x24(self, snap_compare):
        app = dashboard_app(recorded_session())

        async def help_screen(pilot):
            await app.show_dashboard(pilot)
            await pilot.press("question_mark")
            await pilot_wait_for(pilot, lambda: isinstance(pilot.app.screen, HelpScreen), what="the help screen")
            await pilot.pause()

        assert snap_compare(app, terminal_size=(80, 24), run_before=help_screen)
