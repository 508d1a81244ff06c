"""The progress line's repaint throttle."""

from __future__ import annotations

from workbench.tui.state import RunState
from workbench.tui.widgets.progress import RunProgress


class CountingProgress(RunProgress):
    def __init__(self, state: RunState, **kwargs):
        super().__init__(state, **kwargs)
        self.refreshes = 0

    def refresh(self, *args, **kwargs):
        self.refreshes += 1
        return self


def test_progress_repaints_at_most_every_interval_while_only_numbers_change():
    state = RunState("p", 1000)
    state.status = "running"
    progress = CountingProgress(state, min_interval=0.5)
    assert progress.update_if_changed(now=10.0)
    state.step = 10
    assert not progress.update_if_changed(now=10.2)  # a new step, but too soon
    assert progress.update_if_changed(now=10.6)
    assert progress._last_text[1] == 10
    assert not progress.update_if_changed(now=20.0)  # nothing changed: no repaint however long it's been
    assert progress.refreshes == 2


def test_progress_shows_a_status_change_at_once():
    state = RunState("p", 1000)
    state.status = "running"
    progress = CountingProgress(state, min_interval=0.5)
    progress.update_if_changed(now=10.0)
    state.paused = True
    assert progress.update_if_changed(now=10.01)
    assert progress._last_text[0] == "paused"
