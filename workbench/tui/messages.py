"""App-wide messages: what screens ask the app to do (runs, and navigation that outlives a screen).

A screen posts one of these (`self.post_message(...)`); it bubbles to the app, which owns the active
run and the screen stack and decides (e.g. refuses a second run while one is active). Screens never
import each other or call the app's own methods: this module is their whole vocabulary.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from textual.message import Message
from textual.screen import Screen

from workbench.config import Preset

if TYPE_CHECKING:
    from workbench.sweep import SweepRun
    from workbench.tui.queue import RunQueue


@dataclass
class StartRun(Message):
    """Train this preset on a new dashboard (refused while another run is active).

    `replacing`: an ended run's dashboard that the new one takes the place of (`n`: new run)."""

    preset: Preset
    replacing: Screen | None = None


@dataclass
class StartDetachedRun(Message):
    """Train this preset in its own process (`workbench train --detach`) and attach a dashboard to it."""

    preset: Preset


@dataclass
class StartQueue(Message):
    """Train these runs one after another, then compare them (all are checked first: one refused, none run)."""

    runs: list[SweepRun]


@dataclass
class AttachRun(Message):
    """Show a stored run (another process's, or an ended one) on a dashboard; leaving never stops it."""

    run_id: str


@dataclass
class ResumeRun(Message):
    """Continue an interrupted run in this process from its newest checkpoint."""

    run_id: str


@dataclass
class ConfigurePreset(Message):
    """Open the form on this preset."""

    preset: Preset


@dataclass
class ShowRuns(Message):
    """Open the runs screen (every recorded run)."""


@dataclass
class CompareRuns(Message):
    """Open the compare view on these runs (the first is the baseline)."""

    run_ids: list[str]


@dataclass
class QueuedRunEnded(Message):
    """A queued run ended (completed, stopped, failed or diverged): the app starts the next or compares.

    `dashboard` is the ended run's screen: the next run's dashboard takes its place once it is shown."""

    dashboard: Screen
    queue: RunQueue
    run_id: str | None
    status: str
