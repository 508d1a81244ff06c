"""What a run publishes, and the callback protocol every consumer implements.

The run session calls callbacks on the loop's thread at flush points (every `log_every` steps), never
per step, whichever loop drives the run. Each hook gets a `RunView` (training/view.py: the run's state,
the objects being trained and its controls), not the loop itself. Consumers: the diagnostics engine,
the CLI progress bar and the TUI's `TelemetryBuffer` (a bounded buffer the UI drains at its own pace,
so the loop never waits on it).
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from workbench.training.view import RunView


@dataclass
class TelemetryBatch:
    """Metrics since the last flush: `rows` are (step, name, value); `step` is the newest step."""

    step: int
    elapsed: float
    rows: list[tuple[int, str, float]]
    epoch: float = 0.0
    # The same steps' loss, grad_norm and lr as columns (steps ascending, each with a loss), where the
    # loop has them so: the diagnostics' history takes them without re-reading every row.
    series: tuple[list[int], list[float], list[float], list[float]] | None = None


# Every kind of Event, what its `text` is and what its `data` carries:
#   log         a line for the log pane (session, diagnostics, rollback)   data: setup=True for slow-build notices
#   sample      the LM sample generated at an evaluation                      -
#   status      "paused/resumed at step N" or the final status                paused (pause/resume); reason,
#                                                                             traceback (the final status)
#   checkpoint  "checkpoint (KIND) at step N: PATH"                           path
#   finding     the finding's message                                         the whole finding entry (code,
#                                                                             severity, layer, step, last_step,
#                                                                             count, message, remedy, evidence)
#   error       non-fatal trouble (sampling, a store write, a replay, a       traceback where there is one
#               detector switched off)
#   setup       "NAME: N parameters (M trainable) on DEVICE", end of set-up   params, trainable, device
#   profile     the torch.profiler report                                     rows
# The store keeps the kinds in training/session.py's STORED_EVENTS; the TUI's RunState and follow.py read them.
EventKind = Literal["log", "sample", "status", "checkpoint", "finding", "error", "setup", "profile"]


@dataclass
class Event:
    """Something other than a number: a log line, an LM sample, a status change, a finding (kinds above)."""

    kind: EventKind
    step: int
    text: str
    data: dict[str, Any] = field(default_factory=dict)


class Callback:
    """No-op hooks; subclasses override what they need. All run on the loop's thread."""

    def on_setup(self, run: "RunView") -> None: ...

    def on_flush_start(self, run: "RunView") -> None:
        """Just before metrics are read back and published (the only planned host sync on CUDA)."""

    def on_batch(self, run: "RunView", batch: TelemetryBatch) -> None: ...

    def on_event(self, run: "RunView", event: Event) -> None: ...

    def on_eval(self, run: "RunView", step: int, metrics: dict[str, float]) -> None: ...

    def on_probe_start(self, run: "RunView", step: int) -> None:
        """Before the forward pass of a probe step (register temporary hooks here)."""

    def on_probe_end(self, run: "RunView", step: int, probe: dict[str, Any]) -> None:
        """After the optimizer step of a probe step: per-layer grad norms and update ratios."""

    def on_nonfinite(self, run: "RunView", step: int, batch: Any, what: str) -> None:
        """A non-finite loss or gradient at `step`; `batch` is the offending batch, weights still good."""

    def on_end(self, run: "RunView", status: str) -> None: ...


class TelemetryBuffer(Callback):
    """A bounded, thread-safe buffer the UI drains; old batches drop first if the UI falls behind."""

    def __init__(self, max_batches: int = 10_000, max_events: int = 2_000):
        self._batches: deque[TelemetryBatch] = deque(maxlen=max_batches)
        self._events: deque[Event] = deque(maxlen=max_events)
        self._lock = threading.Lock()

    def on_batch(self, run, batch):
        with self._lock:
            self._batches.append(batch)

    def on_event(self, run, event):
        with self._lock:
            self._events.append(event)

    def drain(self) -> tuple[list[TelemetryBatch], list[Event]]:
        with self._lock:
            batches, events = list(self._batches), list(self._events)
            self._batches.clear()
            self._events.clear()
        return batches, events
