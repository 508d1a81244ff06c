"""Fixtures for the Pilot tests: no idle waits between keys, and apps whose runs are stopped afterwards."""

from __future__ import annotations

import pytest

from workbench.tui.app import WorkbenchApp


@pytest.fixture(autouse=True)
def quick_idle(monkeypatch):
    """Textual's test harness waits for the process to go idle after each key (up to 1 s, twice); the
    trainer thread keeps the process busy, so that wait would always run to its maximum. The tests
    synchronise on state with wait_for() instead.

    Textual has no public switch for this wait: this patches its private `wait_for_idle` (as imported by
    textual.app and textual.pilot), so it holds for the Textual that constraints.txt pins (the one the
    suite is run on); monkeypatch fails loudly if a Textual release renames it."""
    import asyncio

    import textual.app
    import textual.pilot

    async def brief(min_sleep: float = 0.0, max_sleep: float = 1.0) -> None:
        await asyncio.sleep(0.02)

    monkeypatch.setattr(textual.app, "wait_for_idle", brief)
    monkeypatch.setattr(textual.pilot, "wait_for_idle", brief)


@pytest.fixture
def make_app(runs_dir):
    """Build apps for a test; any run still going at the end is stopped and joined (no stray threads)."""
    apps = []

    def make(**kwargs) -> WorkbenchApp:
        kwargs.setdefault("runs_dir", runs_dir)
        kwargs.setdefault("count_params", False)
        app = WorkbenchApp(**kwargs)
        apps.append(app)
        return app

    yield make
    for app in apps:
        app.stop_runs(timeout=60)
