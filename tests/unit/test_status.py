"""Run statuses come from one list (workbench.status): the store, the CLI's exit codes and the TUI agree."""

from __future__ import annotations

import pytest

from workbench.cli import STATUS_EXIT
from workbench.status import ENDED, RECORDED_ENDINGS, STATUSES
from workbench.tui.screens.runs import STATUS_STYLES
from workbench.tui.state import RunState
from workbench.tui.widgets.progress import STATUS_COLOR


def test_every_ending_has_an_exit_code_and_every_status_a_colour():
    assert set(STATUS_EXIT) == set(ENDED)
    assert set(STATUSES) <= set(STATUS_COLOR)
    assert {"running", *RECORDED_ENDINGS} <= set(STATUS_STYLES)


@pytest.mark.parametrize("status", STATUSES)
def test_the_dashboard_and_the_store_agree_on_what_has_ended(store, status):
    state = RunState("p", 10, "classification", 0.0)
    state.status = status
    assert state.ended == (status in ENDED)
    run_id = store.create_run("p", {"name": "p"})
    if status in RECORDED_ENDINGS:
        store.finish_run(run_id, status, 3)
        assert store.get_run(run_id)["status"] == status
    else:  # "invalid" is never stored; starting/running are not endings
        with pytest.raises(ValueError, match="not how a stored run can end"):
            store.finish_run(run_id, status, 3)
