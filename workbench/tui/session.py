"""What a dashboard shows and steers (`Session`), and the run this process trains (`RunSession`).

`Session` is the protocol both kinds of run meet: `RunSession` (the trainer on its own thread, its
buffer, and the run's state) and `workbench.tui.attached.AttachedSession` (a run another process trains,
or an ended one, read through the store). The dashboard only uses this protocol.

The UI thread only constructs this object, drains the buffer (`poll`) and queues control commands.
`launch()` imports torch and builds the `Trainer`; call it from a thread worker so the first frame never
waits for torch, and so no torch work ever happens on the UI thread (a second OpenMP pool there made
training several times slower). The trainer records into the same run store as the headless CLI.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any, Callable, Protocol, runtime_checkable

from workbench.config import Preset
from workbench.training.telemetry import TelemetryBuffer
from workbench.tui.state import Changes, RunState


@runtime_checkable
class Session(Protocol):
    """One run on a dashboard: its state, a poll that drains what is new, and the run's controls.

    The controls return whether the request was sent (False when the run is not active)."""

    preset: Preset
    state: RunState
    attached: bool  # True: another process's run (or an ended one): leaving or quitting never stops it

    @property
    def launched(self) -> bool: ...

    @property
    def active(self) -> bool: ...

    @property
    def run_id(self) -> str | None: ...

    def launch(self, build: Callable[[Any, list], Any] | None = None) -> None:
        """Start the run (blocking: from a worker thread); an attached session refuses."""

    def prepare_relaunch(self) -> None:
        """Reset for continuing the same ended run with a new trainer (a rollback)."""

    def poll(self) -> Changes:
        """Fold what the run produced since the last poll into `state`; say what changed."""

    def close(self) -> None:
        """The run has ended: release what only a live run needs."""

    def release(self) -> None:
        """The dashboard is closed: stop reading."""

    def toggle_pause(self) -> bool | None: ...

    def stop(self) -> bool: ...

    def checkpoint(self) -> bool: ...

    def set_lr(self, lr: float) -> bool: ...

    def profile(self, steps: int) -> bool: ...

    def current_lr(self) -> float | None: ...


class RunSession:
    """Owns one run: launch it, poll its telemetry, steer it, and know when it has ended."""

    attached = False

    def __init__(self, preset: Preset, runs_dir: Path | None = None, resume_run_id: str | None = None):
        self.preset = preset
        self.runs_dir = runs_dir
        self.resume_run_id = resume_run_id  # continue this stored run from its newest checkpoint
        self.buffer = TelemetryBuffer()
        self.state = RunState(preset.name, preset.train.max_steps, preset.task, preset.train.grad_clip)
        self.trainer: Any = None
        self.store: Any = None
        self._launched = threading.Event()
        self._closed = False
        self.pause_requested = False

    # -- lifecycle ----------------------------------------------------------------------------------
    def launch(self, build: Callable[[Any, list], Any] | None = None) -> None:
        """Build the trainer and start its thread. Blocking (imports torch): call from a worker thread.

        `build(store, callbacks)` makes the Trainer (default: a new run of the preset with the
        diagnostics); the session's telemetry buffer is always among the callbacks."""
        try:
            from workbench.store import RunStore, default_runs_dir

            self.store = RunStore(self.runs_dir or default_runs_dir())
            if build is None:
                from workbench.diagnostics import default_callbacks
                from workbench.training.trainer import Trainer

                self.trainer = Trainer(self.preset, self.store, callbacks=[*default_callbacks(self.preset), self.buffer],
                                       resume_run_id=self.resume_run_id)
            else:
                self.trainer = build(self.store, [self.buffer])
            self.preset = self.trainer.preset
            self.trainer.dashboard = True  # its UI thread shares the cores: the trainer's thread rule counts it
            self.trainer.start()
        finally:
            self._launched.set()

    def prepare_relaunch(self, step: int | None = None) -> None:
        """Reset for continuing the same run with a new trainer (a rollback to `step`); the chart history
        before that step stays."""
        if self.active:
            raise RuntimeError("the run is still active")
        self.trainer = None
        self.store = None
        self._closed = False
        self.pause_requested = False
        self._launched.clear()
        self.state.restart(step)

    @property
    def launched(self) -> bool:
        return self.trainer is not None

    @property
    def active(self) -> bool:
        """True from the moment the run is asked to start until its trainer thread has finished."""
        if self.trainer is None:
            return not self._launched.is_set()
        return self.trainer.result is None

    @property
    def run_id(self) -> str | None:
        return self.trainer.run_id if self.trainer is not None else None

    def poll(self) -> Changes:
        """Drain what the trainer published since the last poll into the run state."""
        batches, events = self.buffer.drain()
        changes = self.state.ingest(batches, events)
        trainer = self.trainer
        if trainer is not None:
            if self.state.run_id is None and trainer.run_id is not None:
                self.state.run_id = trainer.run_id
                changes.status = True
            result = trainer.result
            if result is not None and not self.state.ended:  # set-up refused, or the final event was dropped
                self.state.finish(result.status, result.reason, result.traceback, result.steps, result.errors)
                changes.status = True
        return changes

    def close(self) -> None:
        """Release the store once the run has ended."""
        if self._closed or self.active:
            return
        self._closed = True
        if self.store is not None:
            self.store.close()

    def release(self) -> None:
        """Nothing to do: the store closes when the run ends (`close`), and leaving never outlives the run."""

    # -- control (thread-safe: the trainer picks commands up between steps) -------------------------
    def toggle_pause(self) -> bool | None:
        """Pause or resume; returns the state asked for (True = paused), or None if there is no run."""
        if self.trainer is None or not self.active:
            return None
        # Follow what was last asked, not the confirmed state, so two quick presses don't cancel out.
        self.pause_requested = not self.pause_requested
        (self.trainer.pause if self.pause_requested else self.trainer.resume)()
        return self.pause_requested

    def stop(self) -> bool:
        if self.trainer is None or not self.active:
            return False
        self.trainer.stop()
        return True

    def interrupt(self, reason: str, timeout: float) -> bool:
        """Stop the run as `interrupted` (it checkpoints first) and wait up to `timeout` s for it to end.

        Safe from any thread (a signal's). A run still being set up is stopped once it is built. True when
        the run ended in time, or there was none."""
        deadline = time.monotonic() + timeout
        if not self._launched.wait(timeout):
            return False
        trainer = self.trainer
        if trainer is None or trainer.result is not None:
            return True
        trainer.stop("interrupted", f"{reason} at step {trainer.step}")
        if trainer.thread is not None:
            trainer.thread.join(max(0.0, deadline - time.monotonic()))
        return trainer.result is not None

    def checkpoint(self) -> bool:
        if self.trainer is None or not self.active:
            return False
        self.trainer.checkpoint_now()
        return True

    def set_lr(self, lr: float) -> bool:
        if self.trainer is None or not self.active:
            return False
        self.trainer.set_lr(lr)
        return True

    def profile(self, steps: int) -> bool:
        """Profile the next `steps` steps with torch.profiler (on the trainer thread)."""
        if self.trainer is None or not self.active:
            return False
        self.trainer.profile(steps)
        return True

    def set_threads(self, threads: int) -> bool:
        """torch's intra-op threads for the rest of the run (the cpu_contention fix)."""
        if self.trainer is None or not self.active:
            return False
        self.trainer.set_threads(threads)
        return True

    def current_lr(self) -> float | None:
        value = self.state.latest("lr")
        return value if value is not None else self.preset.optim.lr
