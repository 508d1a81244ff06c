"""What callbacks and detectors see of a run: its state, the objects being trained, and its controls.

Every callback hook gets a `RunView` as its first argument, whichever loop drives the run (the preset
`Trainer` or a user's own loop through `workbench.init`). It is a read-mostly window, not the loop:
the only ways to act on the run are `report_finding`, `log` and the control methods, which queue a
command the loop applies between steps.

`loop` is the object holding the training objects (model, optimizer, scheduler, ...); a user's own loop
leaves the preset-only ones (data, loss function) as None.
"""

from __future__ import annotations

from typing import Any


class RunView:
    """A narrow view of one run for callbacks: state + the trained objects + control."""

    def __init__(self, session: Any, loop: Any):
        # session: the RunSession (not imported: the session imports this module)
        self._session = session
        self._loop = loop

    # -- state -------------------------------------------------------------------------------------
    @property
    def run_id(self) -> str | None:
        return self._session.run_id

    @property
    def step(self) -> int:
        return self._session.step

    @property
    def status(self) -> str:
        return self._session.status

    @property
    def paused(self) -> bool:
        return self._session.paused

    @property
    def findings(self) -> dict[tuple[str, str], dict[str, Any]]:
        return self._session.findings

    @property
    def store(self):
        return self._session.store

    @property
    def world_size(self) -> int:
        return self._session.topology.world_size

    @property
    def rank(self) -> int:
        return self._session.topology.rank

    @property
    def preset(self):
        """The run's recipe (for a user's own loop: one built from what `watch` saw)."""
        return self._loop.preset

    # -- what is being trained (None where the loop has no such thing) -----------------------------
    @property
    def model(self):
        return self._loop.model

    @property
    def optimizer(self):
        return self._loop.optimizer

    @property
    def scheduler(self):
        return self._loop.scheduler

    @property
    def device(self):
        return self._loop.device

    @property
    def trainable(self) -> list:
        return self._loop.trainable

    @property
    def named_trainable(self) -> list:
        return self._loop.named_trainable

    @property
    def params_total(self) -> int:
        return self._loop.params_total

    @property
    def params_trainable(self) -> int:
        return self._loop.params_trainable

    @property
    def info(self):
        return getattr(self._loop, "info", None)

    @property
    def train_data(self):
        """The training Dataset (None for a user's own loop)."""
        return getattr(self._loop, "train_data", None)

    @property
    def val_data(self):
        return getattr(self._loop, "val_data", None)

    @property
    def loss_fn(self):
        return getattr(self._loop, "loss_fn", None)

    @property
    def autocast_dtype(self):
        return getattr(self._loop, "autocast_dtype", None)

    @property
    def loss_outside_model(self) -> bool:
        """True for a user's own loop: its loss is computed outside the model, so a replay that finds the
        model's outputs and gradients finite points at that code."""
        return bool(getattr(self._loop, "loss_outside_model", False))

    # -- acting on the run ----------------------------------------------------------------------------
    @property
    def control(self):
        """The run's ControlChannel (pause, resume, stop, checkpoint, set_lr, profile)."""
        return self._session.control

    def log(self, text: str, kind: str = "log", **data: Any) -> None:
        self._session.log(text, kind, **data)

    def report_finding(self, finding: dict[str, Any]) -> dict[str, Any]:
        return self._session.report_finding(finding)

    def pause(self) -> None:
        self._session.control.pause()

    def resume(self) -> None:
        self._session.control.resume()

    def stop(self, status: str = "stopped", reason: str | None = None) -> None:
        self._session.control.stop(status, reason)

    def checkpoint_now(self) -> None:
        self._session.control.checkpoint()

    def set_lr(self, lr: float) -> None:
        self._session.control.set_lr(lr)
