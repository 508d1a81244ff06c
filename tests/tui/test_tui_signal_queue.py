"""A signal while the TUI trains a queue: the live run checkpoints and ends `interrupted`, the queued runs
never start, and the app exits with 130, all without the UI doing anything (the terminal may be gone)."""

from __future__ import annotations

import signal
import threading

import pytest

from support import pilot_wait_for as wait_for
from support.tui import QUICK, write_user_preset
from workbench.store import RunStore
from workbench.tui.screens.dashboard import DashboardScreen
from workbench.tui.signals import EXIT_INTERRUPTED, SignalGuard

LONG = 300.0


@pytest.mark.slow
async def test_sighup_saves_the_live_run_and_drops_the_queue(make_app, runs_dir):
    write_user_preset("q-long", [*QUICK, "train.max_steps=1000000", "train.checkpoint_every=0"])
    write_user_preset("q-next", [*QUICK, "train.max_steps=30"])
    app = make_app()
    exits: list[int] = []
    async with app.run_test(size=(150, 45)) as pilot:
        await pilot.pause()
        screen = app.screen
        table = screen.query_one("DataTable")
        for name in ("q-long", "q-next"):
            table.move_cursor(row=[entry["name"] for entry in screen.catalog].index(name))
            await pilot.press("space")
        await pilot.press("u")
        await wait_for(pilot, lambda: isinstance(app.screen, DashboardScreen) and app.dashboard.session.launched
                       and app.dashboard.session.trainer.step > 50, timeout=LONG, what="the first run to train")
        session = app.dashboard.session
        guard = SignalGuard(app, stop_within=60, grace=30, exit_process=exits.append)
        guard._on_signal(signal.SIGHUP, None)  # what the interpreter calls on the main thread
        assert guard.received == "SIGHUP" and threading.current_thread() is threading.main_thread()
        await wait_for(pilot, guard.saved.is_set, timeout=90, what="the run to be saved")
        await wait_for(pilot, lambda: not app.is_running, timeout=30, what="the app to exit")
        guard.app_exited.set()
    assert app.return_code == EXIT_INTERRUPTED and exits == []  # exited on its own: no forced exit
    store = RunStore(runs_dir)
    (run,) = store.list_runs()  # q-next never started
    assert run["preset"] == "q-long" and run["status"] == "interrupted"
    assert run["reason"].startswith("SIGHUP received at step")
    assert [c["step"] for c in store.checkpoints(run["run_id"]) if c["kind"] == "stop"] == [run["steps"]]
    assert session.trainer.result.status == "interrupted" and app.queue.cancelled


def test_a_stuck_ui_cannot_hold_the_process():
    """The app never answers (its drawing hangs on a dead terminal): the process exits after the grace."""
    class StuckApp:
        def interrupt_runs(self, reason, timeout):
            self.reason = reason

        def call_from_thread(self, callback, *args):
            threading.Event().wait()  # never returns, like a UI loop blocked on a write

        def exit(self, *args):
            raise AssertionError("not reached")

    app = StuckApp()
    exited = threading.Event()
    codes: list[int] = []
    guard = SignalGuard(app, stop_within=5, grace=0.2, exit_process=lambda code: (codes.append(code), exited.set()))
    guard._on_signal(signal.SIGTERM, None)
    assert exited.wait(10) and codes == [EXIT_INTERRUPTED] and app.reason == "SIGTERM received"
    guard._on_signal(signal.SIGTERM, None)  # a second signal changes nothing
    assert codes == [EXIT_INTERRUPTED]
