"""How many intra-op threads torch gets: a rule that fits the machine, the model and a live dashboard.

torch splits each op over its intra-op threads, which meet at a barrier after every op; a thread that
has no core (the dashboard's UI thread or another process holds it) makes the others spin. Measured on
the project's 2-core machine (2026-12-01, other jobs running): a 17k-parameter MLP at 785 and 531 steps/s
on one thread against 27 and 43 on two; gpt-char (469k parameters) 2.5 against 0.26 steps/s; and on a
quiet machine the live dashboard's UI thread took the TUI / headless ratio of a default-settings preset
to 0.75-0.83 on two threads, 0.94 on one (issue #19). So:

- `train.threads` set: that, always.
- a small model (under SMALL_MODEL_PARAMS) on CPU: one thread; its ops are too small to gain from
  splitting, and every op would pay the barrier.
- otherwise every core but one for the dashboard when it is live in this process, else every core.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

SMALL_MODEL_PARAMS = 2_000_000


def usable_cores() -> int:
    """Cores this process may run on (its CPU affinity where the OS says, else the machine's count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


@dataclass(frozen=True)
class ThreadChoice:
    threads: int
    cores: int
    dashboard: bool
    why: str  # "train.threads" | "small model" | "cores"

    def describe(self) -> str:
        """The start-of-run log line, e.g. "2 cores: 1 intra-op thread, 1 for the dashboard"."""
        cores = f"{self.cores} core{'s' if self.cores != 1 else ''}"
        threads = f"{self.threads} intra-op thread{'s' if self.threads != 1 else ''}"
        if self.why == "train.threads":
            return f"{cores}: {threads} (train.threads)"
        spare = self.cores - self.threads
        text = f"{cores}: {threads}, {spare} for the dashboard" if self.dashboard and spare >= 1 else f"{cores}: {threads}"
        if self.why == "small model":
            text += " (a small model: its ops are too small to split)"
        return text


def choose_threads(requested: int, device_type: str, params: int, cores: int | None = None,
                   dashboard: bool = False) -> ThreadChoice:
    """The rule above. `requested` is train.threads (0 = choose)."""
    cores = cores or usable_cores()
    if requested > 0:
        return ThreadChoice(requested, cores, dashboard, "train.threads")
    if device_type == "cpu" and params < SMALL_MODEL_PARAMS:
        return ThreadChoice(1, cores, dashboard, "small model")
    return ThreadChoice(max(1, cores - (1 if dashboard else 0)), cores, dashboard, "cores")
