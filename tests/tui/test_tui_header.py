"""A title change just before its screen goes away must not take the app down (it did with Textual's Header)."""

from __future__ import annotations

import pytest
from textual.app import App
from textual.screen import Screen
from textual.widgets import Header, Label

from workbench.tui.widgets.header import SafeHeader


class Titled(Screen):
    def __init__(self, header_class):
        super().__init__()
        self.header_class = header_class

    def compose(self):
        yield self.header_class()
        yield Label("body")


class Replacing(App):
    """Changes the screen's title and replaces the screen in the same callback, as a queue does."""

    def __init__(self, header_class):
        super().__init__()
        self.header_class = header_class

    def on_mount(self) -> None:
        self.push_screen(Titled(self.header_class))

    async def replace_now(self) -> None:
        screen = self.screen
        await screen.query_one(self.header_class).remove_children()  # screen teardown: children go first
        screen.sub_title = "run 2/3: optim.lr=3e-4"  # a title change lands in between
        await self.switch_screen(Titled(self.header_class))


async def test_safe_header_drops_an_update_for_a_torn_down_header():
    app = Replacing(SafeHeader)
    async with app.run_test() as pilot:
        await pilot.pause()
        await app.replace_now()
        await pilot.pause()
        await pilot.pause()
        assert isinstance(app.screen, Titled)
        app.screen.sub_title = "still updates"
        await pilot.pause()
        assert "still updates" in str(app.screen.query_one("HeaderTitle").render())


async def test_textuals_header_raised_there():
    """The failure SafeHeader exists for; if Textual fixes it, SafeHeader can go."""
    app = Replacing(Header)
    with pytest.raises(Exception, match="HeaderTitle"):
        async with app.run_test() as pilot:
            await pilot.pause()
            await app.replace_now()
            await pilot.pause()
            await pilot.pause()
