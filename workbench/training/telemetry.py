"""What the trainer publishes, and the callback protocol every consumer implements.

The trainer calls callbacks on its own thread at flush points (every `log_every` steps), never per
step. Consumers: the store writer, the diagnostics engine, the CLI progress bar and the TUI's
`TelemetryBuffer` (a bounded buffer the UI drains at its own pace, so the trainer never waits on it).
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from workbench.training.engine import Trainer


@dataclass
class TelemetryBatch:
    """Metrics since the last flush: `rows` are (step, name, value); `step` is the newest step."""

    step: int
    elapsed: float
    rows: list[tuple[int, str, float]]
    epoch: float = 0.0


@dataclass
class Event:
    """Something other than a number: a log line, an LM sample, a status change, a finding."""

    kind: str  # "log" | "sample" | "status" | "checkpoint" | "finding" | "error" | "setup"
    step: int
    text: str
    data: dict[str, Any] = field(default_factory=dict)


class Callback:
    """No-op hooks; subclasses override what they need. All run on the trainer thread."""

    def on_setup(self, trainer: "Trainer") -> None: ...

    def on_flush_start(self, trainer: "Trainer") -> None:
        """Just before metrics are read back and published (the only planned host sync on CUDA)."""

    def on_batch(self, trainer: "Trainer", batch: TelemetryBatch) -> None: ...

    def on_event(self, trainer: "Trainer", event: Event) -> None: ...

    def on_eval(self, trainer: "Trainer", step: int, metrics: dict[str, float]) -> None: ...

    def on_probe_start(self, trainer: "Trainer", step: int) -> None:
        """Before the forward pass of a probe step (register temporary hooks here)."""

    def on_probe_end(self, trainer: "Trainer", step: int, probe: dict[str, Any]) -> None:
        """After the optimizer step of a probe step: per-layer grad norms and update ratios."""

    def on_nonfinite(self, trainer: "Trainer", step: int, batch: Any, what: str) -> None:
        """A non-finite loss or gradient at `step`; `batch` is the offending batch, weights still good."""

    def on_end(self, trainer: "Trainer", status: str) -> None: ...


class TelemetryBuffer(Callback):
    """A bounded, thread-safe buffer the UI drains; old batches drop first if the UI falls behind."""

    def __init__(self, max_batches: int = 10_000, max_events: int = 2_000):
        self._batches: deque[TelemetryBatch] = deque(maxlen=max_batches)
        self._events: deque[Event] = deque(maxlen=max_events)
        self._lock = threading.Lock()

    def on_batch(self, trainer, batch):
        with self._lock:
            self._batches.append(batch)

    def on_event(self, trainer, event):
        with self._lock:
            self._events.append(event)

    def drain(self) -> tuple[list[TelemetryBatch], list[Event]]:
        with self._lock:
            batches, events = list(self._batches), list(self._events)
            self._batches.clear()
            self._events.clear()
        return batches, events
