"""When the loop flushes and probes: by wall time, whatever a step costs.

A flush (the device read-back, rows to the store, the detectors, the UI buffer) costs about a
millisecond (more with the detectors on a loaded machine); a fixed step interval made that 2% of a 2 ms
step's run at 25 steps and a dashboard that updated every minute at 3 s a step. So flushes aim at FLUSH_HZ a second: at each flush the loop
measures the seconds per step since the last one and sets the step of the next flush, and the per-step
check is one integer comparison (no clock read, no allocation). The first flush comes after the first
step, so the dashboard shows a run at once. `train.log_every = N` (N > 0) flushes every N steps
instead.

Probes (per-layer gradient norms, update ratios, activations) run at most every `train.probe_every`
steps and, at the default `train.probe_every`, within PROBE_BUDGET of the wall time: a probe
that cost c seconds is followed by the next no sooner than c / PROBE_BUDGET seconds later, counted in
steps at the measured step time.
"""

from __future__ import annotations

import math

FLUSH_HZ = 5.0  # the dashboard draws 4 times a second: faster flushes would only cost
MAX_WINDOW = 4096  # steps between flushes at most, whatever the rate (bounds the read-back buffer)
PROBE_BUDGET = 0.02


class Cadence:
    """The steps at which the loop flushes and probes next."""

    def __init__(self, log_every: int = 0, probe_every: int = 0, start: int = 0, flush_hz: float = FLUSH_HZ,
                 probe_budget: float | None = PROBE_BUDGET, max_window: int = MAX_WINDOW):
        self.log_every = log_every
        self.probe_every = probe_every
        self.interval = 1.0 / flush_hz
        self.probe_budget = probe_budget
        self.max_window = max(1, max_window if log_every <= 0 else max(max_window, log_every))
        self.step_seconds: float | None = None  # measured at the last flush
        self.next_flush = self._multiple_after(start) if log_every > 0 else start + 1
        self.next_probe = start if probe_every > 0 else math.inf  # the first step is probed, as before

    def flushed(self, step: int, steps: int, seconds: float) -> None:
        """A flush after `step` steps covered the last `steps` steps in `seconds` of wall time."""
        if steps > 0 and seconds > 0:
            self.step_seconds = seconds / steps
        if self.log_every > 0:
            self.next_flush = self._multiple_after(step)
            return
        window = 1 if self.step_seconds is None else round(self.interval / self.step_seconds)
        self.next_flush = step + min(self.max_window, max(1, window))

    def _multiple_after(self, step: int) -> int:
        """The next multiple of log_every (a resumed run keeps flushing at the same steps)."""
        return (step // self.log_every + 1) * self.log_every

    def probed(self, step: int, cost: float) -> None:
        """A probe at `step` took `cost` seconds: the next waits probe_every steps, and longer if the
        probe would otherwise take more than its budget of the wall time (None: no budget)."""
        if self.probe_every <= 0:
            return
        wait = self.probe_every
        if self.probe_budget and self.step_seconds and cost > 0:
            wait = max(wait, math.ceil(cost / self.probe_budget / self.step_seconds))
        self.next_probe = step + wait
