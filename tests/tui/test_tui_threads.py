"""The thread rule with the dashboard live (one core left to it, said in the log at start), and the
cpu_contention finding's fix applied from the dashboard with t."""

from __future__ import annotations

from support import pilot_wait_for as wait_for
from support import quick_preset
from workbench.training.threads import usable_cores
from workbench.tui.screens.dashboard import DashboardScreen


def _logged(dash, text: str) -> bool:
    return any(text in line for _, _, line in dash.session.state.log)


async def test_a_live_dashboard_keeps_a_core_and_the_log_says_so(make_app):
    preset = quick_preset(**{"train.max_steps": 1_000_000, "train.eval_every": 0, "train.probe_every": 0})
    app = make_app(preset=preset, start=True)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, DashboardScreen), what="the dashboard")
        dash = app.screen
        cores = usable_cores()
        expected = f"{cores} cores: 1 intra-op thread, {cores - 1} for the dashboard" if cores > 1 else "1 core: 1"
        await wait_for(pilot, lambda: _logged(dash, expected), what="the thread line in the log")
        assert dash.session.trainer.threads.threads == 1 and dash.session.trainer.dashboard


async def test_t_applies_the_cpu_contention_fix_to_the_running_run(make_app):
    preset = quick_preset(**{"train.max_steps": 1_000_000, "train.eval_every": 0, "train.probe_every": 0,
                             "train.threads": 2})
    app = make_app(preset=preset, start=True)
    async with app.run_test(size=(160, 40)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, DashboardScreen), what="the dashboard")
        dash = app.screen
        await wait_for(pilot, lambda: dash.session.state.status == "running", what="the run")
        trainer = dash.session.trainer
        assert dash.check_action("fewer_threads", ()) is None  # nothing to fix yet: not offered
        # What the detector reports when other processes hold a core (its rule is tested on its own).
        trainer.report_finding({"code": "cpu_contention", "severity": "warning", "step": trainer.step, "layer": None,
                                "message": "other processes kept 1.0 of 2 cores busy for 5 s while torch runs 2 "
                                           "intra-op threads",
                                "evidence": {"other_cores": 1.0, "cores": 2, "threads": 2, "suggested_threads": 1}})
        await wait_for(pilot, lambda: dash.check_action("fewer_threads", ()) is True, what="the t key offered")
        await pilot.press("t")
        await wait_for(pilot, lambda: _logged(dash, "intra-op threads 2 -> 1"), what="the change in the log")
        assert trainer.threads.threads == 1
        await wait_for(pilot, lambda: dash.check_action("fewer_threads", ()) is None, what="the key withdrawn")
