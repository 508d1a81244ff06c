"""Keys that arrive in one burst (a paste, a fast typist, tmux send-keys) all land, in order."""

from __future__ import annotations

import pytest
from textual import events

from support import pilot_wait_for as wait_for
from support.tui import open_configure
from workbench.tui.screens.modals import PromptScreen

_CHARACTERS = {"backspace": "\x7f", "end": None, "home": None, "left": None, "delete": None}


def burst(app, keys: list[str]) -> None:
    """Post every key at once, as the terminal driver does for one read: no waiting in between."""
    for key in keys:
        app.post_message(events.Key(key, _CHARACTERS.get(key, key)))


async def typed_into(pilot, widget, keys: list[str]) -> str:
    burst(pilot.app, keys)
    for _ in range(10):  # the burst and the bubbling of every key settle
        await pilot.pause()
    return widget.value


@pytest.mark.slow
async def test_a_burst_of_edits_in_a_form_field_ends_with_the_typed_value(make_app):
    app = make_app()
    async with app.run_test(size=(140, 45)) as pilot:
        await pilot.pause()
        form = await open_configure(pilot, "mlp-quadrants")
        form.show_section("train")
        await pilot.pause()
        steps = form.control("train.max_steps")
        steps.focus()
        await pilot.pause()
        # The sequences: End + six backspaces + 200; then 12345, End, five backspaces, 100.
        assert await typed_into(pilot, steps, ["end", *["backspace"] * 6, "2", "0", "0"]) == "200"
        assert form.values["train.max_steps"] == 200
        assert await typed_into(pilot, steps, ["end", *["backspace"] * 3, *"12345", "end", *["backspace"] * 5,
                                               *"100"]) == "100"
        assert await typed_into(pilot, steps, ["home", "delete", *"25", "end", "backspace", "0"]) == "2500"
        assert form.values["train.max_steps"] == 2500 and form.result.errors == {}


async def test_a_burst_in_the_prompt_dialog_ends_with_the_typed_value(make_app):
    app = make_app()
    async with app.run_test(size=(140, 45)) as pilot:
        await pilot.pause()
        await open_configure(pilot, "mlp-quadrants")
        await pilot.press("ctrl+g")  # the sweep prompt
        await wait_for(pilot, lambda: isinstance(app.screen, PromptScreen), what="the sweep prompt")
        prompt = app.screen.query_one("#prompt-input")
        await typed_into(pilot, prompt, list("optim.lr=1e-4,3e-3x"))
        assert await typed_into(pilot, prompt, ["backspace", *",1e-2"]) == "optim.lr=1e-4,3e-3,1e-2"
