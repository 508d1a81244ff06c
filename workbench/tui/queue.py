"""A queue of runs started from the TUI (marked presets, or one preset swept over a key's values).

They train one after another on the background trainer, each on its own dashboard; a run that fails or
diverges is recorded and the next one starts; when the set is done the compare view opens on the runs
it recorded. This object only keeps the order and the outcomes (no Textual, no torch): the app moves
from one run to the next.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from workbench.config import Preset


@dataclass
class QueuedRun:
    """One entry: what to train, the label that tells it apart, and (once ended) its run id and status."""

    label: str
    preset: Preset
    run_id: str | None = None
    status: str | None = None


@dataclass
class RunQueue:
    """Runs to train one at a time, in order; `cancel()` drops the ones not started yet."""

    runs: list[QueuedRun]
    index: int = 0  # the run training now (or the next to start)
    cancelled: bool = False
    done: bool = False
    skipped: list[str] = field(default_factory=list)  # labels of runs that recorded nothing

    @property
    def current(self) -> QueuedRun:
        return self.runs[self.index]

    def position(self, run: QueuedRun | None = None) -> str:
        """'run 2/3: optim.lr=3e-4' for the dashboard."""
        run = run or self.current
        return f"run {self.runs.index(run) + 1}/{len(self.runs)}: {run.label}"

    @property
    def remaining(self) -> int:
        """Runs after the current one that have not started."""
        return 0 if self.cancelled or self.done else len(self.runs) - self.index - 1

    def finished(self, run_id: str | None, status: str) -> QueuedRun | None:
        """Record how the current run ended; returns the next run to start, or None when the set is done."""
        run = self.current
        run.run_id, run.status = run_id, status
        if run_id is None:
            self.skipped.append(run.label)
        if self.cancelled or self.index + 1 >= len(self.runs):
            self.done = True
            return None
        self.index += 1
        return self.current

    def cancel(self) -> int:
        """Drop the runs not started yet; returns how many were dropped."""
        dropped = self.remaining
        self.cancelled = True
        return dropped

    @property
    def run_ids(self) -> list[str]:
        """The recorded runs, in queue order (the first is the compare view's baseline)."""
        return [run.run_id for run in self.runs if run.run_id is not None]
