"""The app's header: Textual's Header, with title updates that survive the header being torn down.

Textual's Header updates its title from watchers that run after the change that triggered them; when a
screen is replaced right after its title changed (a queued run refused at set-up, its dashboard replaced
by the next run's), the update found the header's children gone and raised NoMatches, which took the
app down. Here such an update is simply dropped: the header it was for is gone.
"""

from __future__ import annotations

from textual.css.query import NoMatches
from textual.dom import NoScreen
from textual.events import Mount
from textual.widgets import Header


class SafeHeader(Header):
    def _on_mount(self, event: Mount) -> None:
        # Replaces Header's own mount handler (its watchers would still raise); Widget's mount handler only
        # sets up scrollbars, which a header has none of.
        event.prevent_default()

        async def set_title() -> None:
            try:
                self.query_one("HeaderTitle").update(self.format_title())  # Header's own title widget
            except (NoScreen, NoMatches):
                return  # the header was torn down while this update waited: there is nothing to show it on

        self.watch(self.app, "title", set_title)
        self.watch(self.app, "sub_title", set_title)
        self.watch(self.screen, "title", set_title)
        self.watch(self.screen, "sub_title", set_title)
