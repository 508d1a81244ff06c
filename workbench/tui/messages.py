"""App-wide messages: screens ask the app to do things that outlive them."""

from __future__ import annotations

from dataclasses import dataclass

from textual.message import Message

from workbench.config import Preset


@dataclass
class StartRun(Message):
    """Start training this preset on a new dashboard (refused while another run is active)."""

    preset: Preset
