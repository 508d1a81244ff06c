"""Helpers for the TUI tests: user presets, opening the form, recorded runs to look at."""

from __future__ import annotations

from pathlib import Path

from support import pilot_wait_for, quick_preset
from workbench.presets import load_preset
from workbench.store import RunStore

QUICK = ["train.threads=1", "train.log_every=10", "train.eval_every=100", "train.probe_every=0"]


def write_user_preset(name: str, extra: list[str]) -> Path:
    """Save mlp-quadrants with `extra` overrides as the user's own preset `name`."""
    from workbench.presets import save_preset

    preset = load_preset("mlp-quadrants", [f'name="{name}"', *extra])
    return save_preset(preset)


async def open_configure(pilot, name: str):
    """Move the presets list's cursor to `name` and press enter, as a user would; returns the form."""
    from workbench.tui.screens.configure import ConfigureScreen

    screen = pilot.app.screen
    names = [entry["name"] for entry in screen.catalog]
    moves = names.index(name) - screen.query_one("DataTable").cursor_row
    for _ in range(abs(moves)):
        await pilot.press("down" if moves > 0 else "up")
    await pilot.press("enter")
    await pilot_wait_for(pilot, lambda: form_ready(pilot.app.screen), what="the form")
    return pilot.app.screen


async def tab_to(pilot, form, section: str) -> None:
    """Press ctrl+t until the form shows `section`, as a user does: one press, a look at which tab is now
    showing, the next press (a fast second press can land while the first tab's fields still mount)."""
    from textual.widgets import TabbedContent

    tabs = form.query_one(TabbedContent)
    for _ in range(len(form.sections)):
        if tabs.active == f"section-{section}":
            return
        before = tabs.active
        await pilot.press("ctrl+t")
        await pilot_wait_for(pilot, lambda: tabs.active != before, timeout=30, what=f"ctrl+t to leave {before}")
    raise AssertionError(f"ctrl+t never showed {section} (at {tabs.active})")


def form_ready(screen) -> bool:
    """The form is shown and its first field has the focus: keys typed now reach it (ctrl+t included)."""
    from workbench.tui.screens.configure import ConfigureScreen

    return (isinstance(screen, ConfigureScreen) and screen.is_mounted and screen.focused is not None
            and screen.focused.has_class("field-control"))


def train_runs(runs_dir, lrs=(0.003, 0.03), steps=60):
    """Record one short mlp-quadrants run per learning rate; returns their ids."""
    from workbench.training.trainer import Trainer

    store = RunStore(runs_dir)
    ids = []
    for lr in lrs:
        preset = quick_preset(**{"train.max_steps": steps, "train.eval_every": 20, "train.log_every": 5,
                                 "train.threads": 1, "optim.lr": lr})
        ids.append(Trainer(preset, store).run().run_id)
    store.close()
    return ids
