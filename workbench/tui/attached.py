"""A dashboard session over a run this process does not train: one in another process, or a finished one.

`AttachedSession` meets the `workbench.tui.session.Session` protocol, but reads the run through the store
(`StoreFollower`) and steers it through the store's control table (`StoreControl`), so `DashboardScreen`
shows it unchanged. Leaving the dashboard or quitting the app never stops an attached run: only an
explicit stop (x) does.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from workbench.config import Preset
from workbench.errors import ConfigError
from workbench.follow import StoreControl, StoreFollower
from workbench.presets import dashboard_preset
from workbench.store import RunStore
from workbench.tui.state import Changes, RunState


class AttachedSession:
    """Follow and steer a stored run; owns nothing of the run itself."""

    attached = True  # the dashboard and the app never stop such a run on leaving or quitting

    def __init__(self, store: RunStore, run_id: str, preset: Preset | None = None, owns_store: bool = False):
        run = store.get_run(run_id)
        if run is None:
            raise ConfigError(f"run {run_id!r}: not found in {store.path}")
        self.store = store
        self.owns_store = owns_store
        self.preset = preset or dashboard_preset(run)
        self.follower = StoreFollower(store, run_id)
        self.control = StoreControl(store, run_id)
        self.state = RunState(self.preset.name, self.preset.train.max_steps, self.preset.task,
                              self.preset.train.grad_clip, t0=run["started_at"])
        self.state.run_id = run_id
        self.trainer = None  # nothing to join on quit: the run belongs to another process (or has ended)
        self.pause_requested = False
        self._closed = False
        self._run_id = run_id
        self._status = run["status"]

    @classmethod
    def open(cls, runs_dir: Path | str | None, run_id: str) -> "AttachedSession":
        """A session with its own store connection (closed by `close`)."""
        from workbench.store import default_runs_dir

        store = RunStore(runs_dir or default_runs_dir(), create=False)
        try:
            return cls(store, run_id, owns_store=True)
        except Exception:
            store.close()
            raise

    # -- the Session protocol ------------------------------------------------------------------------
    @property
    def launched(self) -> bool:
        return True

    @property
    def active(self) -> bool:
        """True while the run's process is training it (as the store last said)."""
        return self._status == "running"

    @property
    def run_id(self) -> str:
        return self._run_id

    def launch(self, build: Callable[[Any, list], Any] | None = None) -> None:
        raise RuntimeError("an attached run is trained by another process")

    def prepare_relaunch(self) -> None:
        raise RuntimeError("an attached run is trained by another process")

    def poll(self) -> Changes:
        if self._closed:
            return Changes()
        batches, events = self.follower.drain()
        changes = self.state.ingest(batches, events)
        run = self.follower.run
        if run is not None:
            if run["status"] != self._status:
                self._status = run["status"]
                changes.status = True
            if run["steps"] > self.state.step:  # the run row's heartbeat can be ahead of the last flush
                self.state.advance(run["steps"])
                changes.progress = True
        return changes

    def close(self) -> None:
        """Called when the run has ended; a finished run can still be shown, so only a store we own closes
        when the screen is done with it (`release`)."""

    def release(self) -> None:
        """Stop reading (the dashboard was closed); the run itself is untouched."""
        if self._closed:
            return
        self._closed = True
        if self.owns_store:
            self.store.close()

    def toggle_pause(self) -> bool | None:
        if not self.active:
            return None
        self.pause_requested = not self.pause_requested
        sent = (self.control.pause if self.pause_requested else self.control.resume)()
        return self.pause_requested if sent else None

    def stop(self) -> bool:
        return self.active and self.control.stop()

    def checkpoint(self) -> bool:
        return self.active and self.control.checkpoint_now()

    def set_lr(self, lr: float) -> bool:
        return self.active and self.control.set_lr(lr)

    def profile(self, steps: int) -> bool:
        return False  # the profiler runs inside the training process; the control table has no such command

    def current_lr(self) -> float | None:
        value = self.state.latest("lr")
        return value if value is not None else self.preset.optim.lr

