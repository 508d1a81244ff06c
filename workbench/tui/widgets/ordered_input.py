"""An Input that applies a burst of keys in the order they were typed.

Textual inserts printable characters in `Input._on_key`, but runs bound keys (backspace, delete, end,
home, arrows) only after the key event has bubbled up to the app, one message queue per ancestor. When
a paste or a fast typist delivers several keys in one read, the characters that follow a backspace are
inserted before that backspace runs: End + six backspaces + `200` left `2` (Textualize/textual#6605).
Running the Input's own bindings right here keeps the order; priority bindings were already checked
by the app before the key reached the widget, so nothing else changes.
"""

from __future__ import annotations

from textual import events
from textual.widgets import Input


class OrderedInput(Input):
    """`Input` whose editing keys take effect in typing order, however fast they arrive."""

    async def _on_key(self, event: events.Key) -> None:
        if event.is_printable:
            return  # Input._on_key (next in the MRO) inserts it
        for binding in self._bindings.key_to_bindings.get(event.key, ()):
            if not binding.priority and await self.app.run_action(binding.action, self):
                event.stop()
                event.prevent_default()  # handled: neither Input nor the app runs it again
                return
