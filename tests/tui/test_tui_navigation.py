"""How screens reach the app: requests as messages (workbench.tui.messages), one session protocol for live
and attached runs, the presets list opening on the default preset, and reads superseded by newer ones."""

from __future__ import annotations

import threading

import pytest

from support import pilot_wait_for as wait_for
from support.tui import QUICK, form_ready, train_runs, write_user_preset
from workbench.presets import DEFAULT_PRESET, load_preset
from workbench.tui import messages
from workbench.tui.attached import AttachedSession
from workbench.tui.screens.compare import CompareScreen
from workbench.tui.screens.dashboard import DashboardScreen
from workbench.tui.screens.presets import PresetsScreen
from workbench.tui.screens.runs import RunsScreen
from workbench.tui.session import RunSession, Session
from workbench.store import RunStore


async def test_the_presets_list_opens_on_the_default_preset(make_app):
    app = make_app()
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.pause()
        screen = app.screen
        assert screen.catalog[0]["name"] != DEFAULT_PRESET  # not simply the first row
        assert screen.selected_entry()["name"] == DEFAULT_PRESET
        assert DEFAULT_PRESET in str(screen.query_one("#preset-detail").render())


@pytest.mark.slow
async def test_screens_ask_the_app_through_messages(make_app, runs_dir):
    write_user_preset("nav-quick", [*QUICK, "train.max_steps=20"])
    a, b = train_runs(runs_dir, steps=20)
    app = make_app()
    seen: list = []
    async with app.run_test(size=(150, 45), message_hook=seen.append) as pilot:
        await pilot.pause()

        def requests(kind):  # the hook sees a message at each node it bubbles through: once each
            return list({id(m): m for m in seen if isinstance(m, kind)}.values())

        await pilot.press("enter")  # the form on the highlighted preset
        await wait_for(pilot, lambda: form_ready(app.screen), what="the form")
        assert [m.preset.name for m in requests(messages.ConfigurePreset)] == [DEFAULT_PRESET]
        await pilot.press("escape")
        await pilot.press("h")
        await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen) and app.screen.loads, what="the runs")
        assert len(requests(messages.ShowRuns)) == 1
        runs = app.screen
        runs.query_one("#runs-table").move_cursor(row=0)
        await pilot.press("space", "space", "c")
        await wait_for(pilot, lambda: isinstance(app.screen, CompareScreen), what="compare")
        assert [sorted(m.run_ids) for m in requests(messages.CompareRuns)] == [sorted([a, b])]
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.screen is runs, what="back to the runs")
        highlighted = runs.current_run_id()
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, DashboardScreen), what="an attached dashboard")
        assert [m.run_id for m in requests(messages.AttachRun)] == [highlighted]
        assert app.screen.session.attached and isinstance(app.screen.session, Session)
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.screen is runs, what="back to the runs")
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, PresetsScreen), what="the presets")
        presets = app.screen
        presets.query_one("DataTable").move_cursor(row=[e["name"] for e in presets.catalog].index("nav-quick"))
        await pilot.press("s")
        await wait_for(pilot, lambda: app.dashboard is not None and app.dashboard.session.state.ended, timeout=180,
                       what="the run to end")
        assert [m.preset.name for m in requests(messages.StartRun)] == ["nav-quick"]
        dashboard = app.dashboard
        await pilot.press("n")  # a new run of the same preset takes the ended dashboard's place
        await wait_for(pilot, lambda: app.dashboard is not dashboard, what="the new run")
        restart = requests(messages.StartRun)[-1]
        assert restart.replacing is dashboard and dashboard not in app.screen_stack
        await wait_for(pilot, lambda: app.dashboard.session.state.ended, timeout=180, what="the second run")
    assert len(RunStore(runs_dir).list_runs()) == 4


def test_live_and_attached_runs_meet_one_session_protocol(runs_dir):
    (run_id,) = train_runs(runs_dir, lrs=(0.01,), steps=10)
    attached = AttachedSession.open(runs_dir, run_id)
    live = RunSession(load_preset("mlp-quadrants"), runs_dir)
    try:
        assert isinstance(attached, Session) and isinstance(live, Session)
        assert attached.attached and not live.attached
        assert not attached.profile(5) and not live.profile(5)  # neither has a trainer here to profile
    finally:
        attached.release()


async def test_a_superseded_runs_read_never_lands(make_app, runs_dir, monkeypatch):
    """Two reads in flight: the older one finishing last must not overwrite the newer rows."""
    from workbench.tui import compare_data

    train_runs(runs_dir, lrs=(0.01,), steps=10)
    real = compare_data.runs_table
    release = threading.Event()
    calls = []

    def runs_table(store):
        calls.append(len(calls))
        if len(calls) == 1:  # the first read is slow and stale: it saw no runs
            release.wait(30)
            return []
        return real(store)

    monkeypatch.setattr(compare_data, "runs_table", runs_table)
    app = make_app()
    async with app.run_test(size=(150, 45)) as pilot:
        await pilot.pause()
        screen = RunsScreen(runs_dir, refresh_s=600)
        app.push_screen(screen)
        await wait_for(pilot, lambda: calls, what="the first read")
        screen.refresh_runs()  # supersedes it
        await wait_for(pilot, lambda: screen.loads, what="the second read")
        assert len(screen.rows) == 1
        release.set()
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert len(calls) >= 2 and screen.loads == len(calls) - 1  # every read landed but the superseded one
        assert len(screen.rows) == 1
