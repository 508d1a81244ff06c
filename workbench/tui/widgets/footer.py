"""A footer that fits: the screen's keys in their own order, compact and then trimmed when narrow.

Textual's Footer shows every shown binding and lets the rest run off the edge (`e Smoothin` at 80
columns). This one measures its keys: when they do not fit it switches to the compact style, and then
drops the least important ones (`workbench.tui.keys.FOOTER_ORDER`) until they do; the help key stays,
so whatever was dropped is one key away.

Textual's Footer rebuilds its keys whenever the screen says its bindings may have changed (a focus
change, every `refresh_bindings()`); a rebuild restyles every key, ~20 ms of the UI thread that a
training thread in the same process waits for. On the dashboard (`skip_unchanged=True`) this one
rebuilds only when what it shows changed. Other screens keep Textual's rebuilds: the layout pass each
one brings is what settles a scrolled tab bar (the form's, at 80 columns) on its active tab.
"""

from __future__ import annotations

from textual.app import ComposeResult
from textual.widgets import Footer
from textual.widgets._footer import FooterKey

from workbench.tui.keys import FOOTER_ORDER

PALETTE_CELLS = 13  # "^p palette" docked right, with its border and padding


class KeyFooter(Footer):
    """Footer keys trimmed to the terminal's width, most important kept."""

    def __init__(self, skip_unchanged: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.skip_unchanged = skip_unchanged
        self.composed_width = -1
        self.composed_keys: tuple | None = None  # what the last compose showed (see bindings_changed)
        self.recomposes = 0  # rebuilds done (tests read it)
        self.dropped: list[str] = []  # actions left out at the last compose (tests read it)

    def shown_keys(self) -> tuple:
        """Every binding the screen offers now, with whether it is enabled and its tooltip."""
        bindings = self.screen.active_bindings.values()
        return tuple((binding, enabled, tooltip) for _, binding, enabled, tooltip in bindings)

    def bindings_changed(self, screen) -> None:
        if (self.skip_unchanged and self.composed_keys is not None and self.is_attached and screen is self.screen
                and self.composed_width == (self.size.width or self.app.size.width)
                and self.shown_keys() == self.composed_keys):
            return  # nothing it shows changed
        super().bindings_changed(screen)

    def compose(self) -> ComposeResult:
        widgets = list(super().compose())
        self.composed_keys = self.shown_keys() if self._bindings_ready else None
        self.recomposes += 1
        keys = [w for w in widgets if isinstance(w, FooterKey) and not w.has_class("-command-palette")]
        others = [w for w in widgets if w not in keys]
        width = self.size.width or self.app.size.width  # the Keys panel, when open, takes a side of it
        self.composed_width = width
        room = width - (PALETTE_CELLS if others else 0)

        def cells(key: FooterKey, compact: bool) -> int:
            text = len(key.key_display) + (len(key.description) + 1 if key.description else 0)
            return text + (1 if compact else 2)  # compact: a margin; else padding around the key

        compact = sum(cells(k, False) for k in keys) > room
        order = FOOTER_ORDER.get(getattr(self.screen, "KEYS", ""), [])
        rank = {action: index for index, action in enumerate(order)}
        kept = list(keys)
        # First out: keys that do nothing now (dimmed), then the least important; actions not in the order
        # list rank with the first ones.
        for key in sorted(keys, key=lambda k: (not k._disabled, -rank.get(k.action, -1))):
            if sum(cells(k, compact) for k in kept) <= room or key.action == "app.help" or len(kept) <= 1:
                continue
            kept.remove(key)
        self.dropped = [k.action for k in keys if k not in kept]
        self.set_reactive(Footer.compact, compact)
        self.set_class(compact, "-compact")
        for key in kept:
            key.compact = compact
        yield from kept
        yield from others

    def on_resize(self) -> None:
        if self.size.width != self.composed_width:
            self.call_after_refresh(self.recompose)
