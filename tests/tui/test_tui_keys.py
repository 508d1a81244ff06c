"""Keys a user can find: ? / f1 list every key of the screen, the README says the same, footers fit."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from support import pilot_wait_for as wait_for
from support.tui import QUICK, open_configure, train_runs
from workbench.presets import load_preset
from workbench.tui.keys import KEY_NAMES, TABLES, row_keys
from workbench.tui.screens.compare import CompareScreen
from workbench.tui.screens.help import HelpScreen
from workbench.tui.screens.runs import RunsScreen
from workbench.tui.widgets.footer import KeyFooter

README = Path(__file__).resolve().parents[2] / "README.md"


def readme_tables() -> dict[str, list[tuple[str, str]]]:
    tables: dict[str, list[tuple[str, str]]] = {}
    lines = README.read_text(encoding="utf-8").splitlines()
    for index, line in enumerate(lines):
        found = re.match(r"<!-- keys: (\w+)", line)
        if found:
            rows = []
            for row in lines[index + 3:]:
                if not row.startswith("|"):
                    break
                keys, what = row.strip("|").split(" | ", 1)
                rows.append((keys.strip(), what.strip()))
            tables[found.group(1)] = rows
    return tables


def test_the_readme_tables_are_the_help_screens_tables():
    assert readme_tables() == TABLES


def footer_keys(screen) -> list[str]:
    return [key.key_display for key in screen.query_one(KeyFooter).query("FooterKey")  # Footer's own key widget
            if not key.has_class("-command-palette")]


def unlisted_bindings(screen) -> list[str]:
    """Bindings of the screen (and of the focused widget) that its help table does not name."""
    named = set().union(*(row_keys(row) for row in TABLES[screen.KEYS]))
    missing = []
    for key, active in screen.active_bindings.items():
        binding, node = active.binding, active.node
        # Workbench's own keys: the screen's and its widgets' (a DataTable's page keys are Textual's).
        own = {k for b in type(node).__dict__.get("BINDINGS", []) for k in b.key.split(",")} \
            if type(node).__module__.startswith("workbench") else set()
        if binding.system or not binding.description or key not in own and key != "ctrl+q":
            continue
        shown = KEY_NAMES.get(key, key)
        if shown not in named and not (key == "equals_sign" and "+" in named):  # = is + without shift
            missing.append(key)
    return missing


async def help_lists_every_key(pilot, key: str = "question_mark") -> None:
    screen = pilot.app.screen
    assert unlisted_bindings(screen) == [], screen.KEYS
    await pilot.press(key)
    await wait_for(pilot, lambda: isinstance(pilot.app.screen, HelpScreen), what=f"help on {screen.KEYS}")
    assert pilot.app.screen.rows == TABLES[screen.KEYS]
    await pilot.press("escape")
    await wait_for(pilot, lambda: pilot.app.screen is screen, what="help closed by escape")


async def test_question_mark_and_f1_list_every_key_of_each_screen(make_app, runs_dir):
    ids = train_runs(runs_dir, steps=30)
    app = make_app()
    async with app.run_test(size=(140, 45)) as pilot:
        await pilot.pause()
        presets = app.screen
        await help_lists_every_key(pilot)
        await help_lists_every_key(pilot, "f1")
        await open_configure(pilot, "mlp-quadrants")
        await help_lists_every_key(pilot, "f1")
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.screen is presets, what="the presets")
        await pilot.press("h")
        await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen) and app.screen.loads, what="the runs")
        await help_lists_every_key(pilot)
        app.push_screen(CompareScreen(ids, runs_dir))
        await wait_for(pilot, lambda: isinstance(app.screen, CompareScreen) and app.screen.loads, what="compare")
        await help_lists_every_key(pilot)


@pytest.mark.slow
async def test_dashboard_help_footer_and_the_palettes_keys_panel(make_app):
    preset = load_preset("mlp-quadrants", ["train.max_steps=1000000", *QUICK])
    app = make_app(preset=preset, start=True)
    async with app.run_test(size=(140, 45)) as pilot:
        dash = app.dashboard
        await wait_for(pilot, lambda: dash.session.state.status == "running", what="the run to start")
        await help_lists_every_key(pilot)
        keys = footer_keys(dash)
        assert {"p", "x", "f", "v", "z", "+/-", "0", "l", "e", "w", "?", "q"} <= set(keys), keys
        # The palette's Keys panel closes with escape, and escape then means the screen's own key again.
        app.action_show_help_panel()
        await wait_for(pilot, lambda: dash.query("HelpPanel"), what="the keys panel")
        await pilot.press("escape")
        await wait_for(pilot, lambda: not dash.query("HelpPanel"), what="the keys panel to close")
        assert app.screen is dash
        await pilot.resize_terminal(80, 24)
        await wait_for(pilot, lambda: dash.query_one(KeyFooter).composed_width == 80
                       and len(footer_keys(dash)) < len(keys), what="the footer trimmed at 80")
        narrow = footer_keys(dash)
        assert narrow[:3] == ["p", "x", "c"] and "?" in narrow and "q" in narrow, narrow
        footer = dash.query_one(KeyFooter)
        used = sum(key.size.width + key.styles.margin.right for key in footer.query("FooterKey"))
        assert used <= 80, (used, narrow)


async def test_footers_name_the_keys_that_matter_and_marks_keep_columns_aligned(make_app):
    app = make_app()
    async with app.run_test(size=(140, 45)) as pilot:
        await pilot.pause()
        presets = app.screen
        await wait_for(pilot, lambda: footer_keys(presets), what="the footer")
        assert {"⏎", "space", "s", "h", "?"} <= set(footer_keys(presets))  # ⏎: enter
        table = presets.query_one("DataTable")
        first_row = table.cursor_row
        await pilot.press("space")
        await pilot.pause()
        await wait_for(pilot, lambda: table.cursor_row == first_row + 1, what="space to move down")
        # queue marked: in the footer once something is marked (the footer recomposes after a refresh)
        await wait_for(pilot, lambda: "u" in footer_keys(presets), what="u in the footer")
        await pilot.press("space")
        await pilot.pause()
        names = [table.get_cell(entry["name"], "name").plain for entry in presets.catalog]
        starts = {len(name) - len(name.lstrip(" 0123456789●")) for name in names}
        assert len(starts) == 1, names  # marked or not, every name starts in the same column
        assert names[first_row].startswith("1● ") and names[first_row + 1].startswith("2● ")
        assert all(name.startswith("   ") for i, name in enumerate(names) if i not in (first_row, first_row + 1))
        form = await open_configure(pilot, "mlp-quadrants")
        await wait_for(pilot, lambda: footer_keys(form), what="the form's footer")
        assert {"^r", "^s", "^g", "f1"} <= set(footer_keys(form))


async def test_the_footer_rebuilds_only_when_its_keys_change(make_app):
    """Every refresh_bindings() (a finding, a status line) used to rebuild and restyle the footer's keys,
    ~20 ms of the UI thread that the training thread waited for; now only a change of keys does."""
    preset = load_preset("mlp-quadrants", ["train.max_steps=1000000", *QUICK])
    app = make_app(preset=preset, start=True)
    async with app.run_test(size=(140, 45)) as pilot:
        dash = app.dashboard
        footer = dash.query_one(KeyFooter)
        await wait_for(pilot, lambda: dash.session.state.status == "running" and footer.composed_keys is not None,
                       what="the run to start")
        dash.session.toggle_pause()  # nothing the run reports can change the keys meanwhile
        await wait_for(pilot, lambda: dash.session.state.paused, what="the pause")
        await pilot.pause()
        before = footer.recomposes
        for _ in range(3):
            dash.refresh_bindings()
            await pilot.pause()
        assert footer.recomposes == before and "p" in footer_keys(dash)
        dash.session.stop()
        await wait_for(pilot, lambda: dash.session.state.ended and "n" in footer_keys(dash),
                       what="the new-run key once the run ended")
        assert footer.recomposes > before
