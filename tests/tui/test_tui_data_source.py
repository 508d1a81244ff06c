"""The form's Data tab: choose your own file, see what it holds before training, train on it."""

from __future__ import annotations

import pytest

from support import pilot_wait_for as wait_for
from support.datafiles import table_rows, write_csv
from support.tui import QUICK, open_configure, tab_to
from workbench.store import RunStore
from workbench.tui.screens.configure import ConfigureScreen
from workbench.tui.screens.dashboard import DashboardScreen
from workbench.tui.widgets.data_source import DataSourcePanel


async def choose_source(pilot, name: str) -> None:
    """Open the source list and move to `name` with the arrow keys, as a user would."""
    from textual.widgets import Select

    select = pilot.app.screen.query_one("#data-source", Select)
    select.focus()
    await pilot.press("enter")
    await pilot.pause()
    options = [value for _, value in select._options]
    moves = options.index(name) - options.index(select.value)
    for _ in range(abs(moves)):
        await pilot.press("down" if moves > 0 else "up")
    await pilot.press("enter")
    await wait_for(pilot, lambda: select.value == name, what=f"source {name}")


async def type_into(pilot, selector: str, text: str) -> None:
    pilot.app.screen.query_one(selector).focus()
    await pilot.pause()
    await pilot.press(*list(text))


@pytest.mark.slow
async def test_pick_a_file_see_the_summary_and_train_on_it(make_app, isolated, runs_dir):
    good = write_csv(isolated / "iris.csv", table_rows(300, kind="classes"))
    bad = write_csv(isolated / "one.csv", [{"a": i, "label": "cat"} for i in range(30)])
    app = make_app()
    async with app.run_test(size=(140, 48)) as pilot:
        await pilot.pause()
        form = await open_configure(pilot, "mlp-quadrants")
        await tab_to(pilot, form, "data")  # preset -> model -> data
        panel = await wait_for(pilot, lambda: next(iter(form.query(DataSourcePanel)), None), what="the data panel")
        await choose_source(pilot, "file")
        await type_into(pilot, "#data-path", str(bad))
        await wait_for(pilot, lambda: "cannot train" in panel.summary, what="the refusal")
        assert "a single class ('cat')" in panel.summary and panel.query_one("#data-use").disabled
        panel.query_one("#data-browse").focus()  # the good one is picked from the file tree
        await pilot.press("enter")
        tree = await wait_for(pilot, lambda: next(iter(app.screen.query("#browse-tree")), None), what="the file tree")
        for _ in range(10):
            node = tree.cursor_node
            if node is not None and node.data is not None and node.data.path.name == "iris.csv":
                break
            await pilot.press("down")
            await pilot.pause()
        await pilot.press("enter")
        await wait_for(pilot, lambda: panel.query_one("#data-path").value == str(good), what="the chosen path")
        await wait_for(pilot, lambda: "3 classes" in panel.summary, what="the summary")
        assert "300 rows" in panel.summary and "numeric x1, x2; categorical color; label species" in panel.summary
        assert "setosa (" in panel.summary
        panel.query_one("#data-use").focus()
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfigureScreen) and app.screen is not form,
                       what="the form on the new data")
        form = app.screen
        await wait_for(pilot, lambda: hasattr(form, "diffs"), what="the new form to validate")
        assert form.values["data.kind"] == "table"
        assert form.diffs["data.kind"] == ("quadrants", "table")
        for override in [*QUICK, "train.max_steps=200"]:
            key, _, value = override.partition("=")
            form.values[key] = int(value)
        form.validate()
        await pilot.press("ctrl+r")
        await wait_for(pilot, lambda: isinstance(app.screen, DashboardScreen), what="the dashboard")
        state = app.screen.session.state
        await wait_for(pilot, lambda: state.ended, timeout=180, what="the run to finish")
        assert state.status == "completed"
        run_id = app.screen.session.run_id
    run = RunStore(runs_dir).get_run(run_id)
    assert run["config"]["data"]["kind"] == "table" and run["config"]["data"]["args"]["path"] == str(good.resolve())


@pytest.mark.slow
async def test_tui_opened_with_data_shows_it_and_generated_puts_the_presets_data_back(make_app, isolated):
    """`workbench tui --preset mlp-tabular-binary --data churn.csv`: the form opens on the file's [data], the
    Data tab already says what it holds; choosing "generated" goes back to the preset's own data."""
    from workbench.cli import apply_data_flags, build_parser
    from workbench.presets import load_preset

    path = write_csv(isolated / "churn.csv", table_rows(200, kind="binary"))
    args = build_parser().parse_args(["tui", "--preset", "mlp-tabular-binary", "--data", str(path)])
    apply_data_flags(args, args.preset)
    base = load_preset("mlp-tabular-binary")
    app = make_app(preset=load_preset("mlp-tabular-binary", args.overrides), base=base)
    async with app.run_test(size=(140, 48)) as pilot:
        form = await wait_for(pilot, lambda: app.screen if isinstance(app.screen, ConfigureScreen) else None,
                              what="the form")
        assert form.values["data.kind"] == "table" and form.values["task"] == "binary"
        await tab_to(pilot, form, "data")
        panel = await wait_for(pilot, lambda: next(iter(form.query(DataSourcePanel)), None), what="the data panel")
        await wait_for(pilot, lambda: "2 classes" in panel.summary, what="the summary of the file")
        assert panel.query_one("#data-path").value == str(path.resolve())
        await choose_source(pilot, "generated")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfigureScreen) and app.screen is not form,
                       what="the form on the preset's data")
        await wait_for(pilot, lambda: hasattr(app.screen, "diffs"), what="the new form to validate")
        assert app.screen.values["data.kind"] == "tabular_binary" and app.screen.diffs == {}
