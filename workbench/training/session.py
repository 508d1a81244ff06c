"""The run session: everything a recorded run needs, whichever loop drives it.

One implementation serves the preset `Trainer` and a user's own loop (`workbench.init`): the store
record and its writer thread, telemetry publication to callbacks (the diagnostics engine among them),
findings, the control channel (local commands, the store's control table, the torchrun broadcast),
heartbeats, pause, and the final status. The loop owns the step and the training objects; it calls the
session at flush points, evaluations, probes and between steps, never inside the step itself.

Callbacks receive a `RunView` of the run (state + control), never the loop object itself.
"""

from __future__ import annotations

import sqlite3
import threading
import time
import traceback
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from workbench.diagnostics.remedies import finding as make_finding
from workbench.store import RunStore, StoreWriter
from workbench.training.control import ControlChannel
from workbench.training.telemetry import Callback, Event, TelemetryBatch
from workbench.training.view import RunView

HEARTBEAT_INTERVAL_S = 2.0
# Event kinds that also go into the store's event log (the others are for live consumers only).
STORED_EVENTS = ("log", "sample", "error", "checkpoint", "status", "profile")


@dataclass
class RunResult:
    """How a run ended. `status` is a final store status, or "invalid" when nothing was recorded."""

    status: str
    run_id: str | None
    steps: int
    reason: str | None = None
    traceback: str | None = None
    errors: list[str] = field(default_factory=list)


class StopRun(Exception):
    """Raised inside a loop to end it with a given status (stop on request, divergence, early stop)."""

    def __init__(self, status: str, reason: str | None = None):
        super().__init__(reason or status)
        self.status = status
        self.reason = reason


class RunSession:
    """One run's record, telemetry, findings, control and ending. Rank 0 alone writes the store."""

    def __init__(self, store: RunStore, callbacks: Iterable[Callback] = (), topology=None,
                 poll_store_commands: bool = True):
        if topology is None:
            from workbench.training.distributed import Topology

            topology = Topology()
        self.store = store
        self.callbacks: list[Callback] = list(callbacks)
        self.topology = topology
        self.poll_store_commands = poll_store_commands
        self.control = ControlChannel(topology.distributed, topology.is_main)
        self.view: RunView | None = None  # set by the loop (`attach`)
        self.run_id: str | None = None
        self.step = 0
        self.status = "pending"
        self.paused = False
        self.findings: dict[tuple[str, str], dict[str, Any]] = {}
        self.writer: StoreWriter | None = None
        self.result: RunResult | None = None
        self.started = threading.Event()  # set once set-up is over (recorded, or failed to set up)
        self._last_heartbeat = time.monotonic()

    def attach(self, loop: Any) -> RunView:
        """Bind the loop whose training objects callbacks may see; returns the view they get."""
        self.view = RunView(self, loop)
        return self.view

    # -- the record ----------------------------------------------------------------------------------
    def create(self, name: str, config: dict[str, Any], run_id: str | None = None) -> str:
        """Record a new run (rank 0) and agree on its id across ranks."""
        from workbench.training import distributed

        if self.topology.is_main:
            self.run_id = self.store.create_run(name, config, world_size=self.topology.world_size, run_id=run_id)
        self.run_id = distributed.broadcast_object(self.run_id, self.topology)
        return self.run_id

    def reopen(self, run_id: str) -> None:
        from workbench.training import distributed

        self.run_id = run_id
        if self.topology.is_main:
            self.store.reopen_run(run_id)
        self.run_id = distributed.broadcast_object(self.run_id, self.topology)

    def record_failed_setup(self, name: str, config: dict[str, Any]) -> None:
        """An exception during set-up still leaves a (failed) run in the store."""
        if self.run_id is None:
            self.run_id = self.store.create_run(name, config)

    def begin(self, **fields: Any) -> None:
        """Set-up is over: store the run's facts, start the writer thread, tell the callbacks."""
        if self.topology.is_main:  # rank 0 alone writes telemetry, findings and checkpoints
            self.store.update_run(self.run_id, steps=self.step, world_size=self.topology.world_size, **fields)
            self.writer = StoreWriter(self.store, self.run_id)
        self.status = "running"
        self._last_heartbeat = time.monotonic()
        for callback in self.callbacks:
            callback.on_setup(self.view)

    # -- publication -----------------------------------------------------------------------------------
    def emit(self, event: Event) -> None:
        for callback in self.callbacks:
            callback.on_event(self.view, event)

    def log(self, text: str, kind: str = "log", **data: Any) -> None:
        self.emit(Event(kind, self.step, text, data))
        if self.writer is not None and kind in STORED_EVENTS:
            self.writer.event(self.step, kind, text)

    def report_finding(self, finding: dict[str, Any]) -> dict[str, Any]:
        """Record a finding; a repeat of the same (code, layer) updates one entry instead of adding one."""
        key = (finding["code"], finding.get("layer") or "")
        previous = self.findings.get(key)
        entry = {
            "code": finding["code"],
            "severity": finding.get("severity", "warning"),
            "step": previous["step"] if previous else finding.get("step", self.step),
            "last_step": finding.get("step", self.step),
            "count": (previous["count"] + 1) if previous else 1,
            "layer": finding.get("layer"),
            "message": finding.get("message", ""),
            "remedy": finding.get("remedy", ""),
            "evidence": finding.get("evidence", {}),
        }
        self.findings[key] = entry
        if self.writer is not None:
            self.writer.finding(entry)
        self.emit(Event("finding", entry["last_step"], entry["message"], entry))
        return entry

    def report(self, code: str, message: str, evidence: dict[str, Any] | None = None, layer: str | None = None,
               step: int | None = None) -> dict[str, Any]:
        """A finding whose remedy and severity come from the remedies table."""
        return self.report_finding(make_finding(code, self.step if step is None else step, message, evidence, layer))

    def flush_start(self) -> None:
        for callback in self.callbacks:
            callback.on_flush_start(self.view)

    def publish(self, batch: TelemetryBatch) -> None:
        """One flush of train telemetry: the store, a heartbeat, the callbacks, then the store's commands."""
        if self.writer is not None:
            self.writer.metrics(batch.rows)
            self.writer.heartbeat(self.step)
            self._last_heartbeat = time.monotonic()
            if self.writer.error is not None and not self.paused:
                self.storage_trouble("store", self.writer.error)
        for callback in self.callbacks:
            callback.on_batch(self.view, batch)
        self.poll_store()

    def publish_eval(self, step: int, metrics: dict[str, float]) -> None:
        rows = [(step, name, value) for name, value in metrics.items()]
        if self.writer is not None:
            self.writer.metrics(rows)
        for callback in self.callbacks:
            callback.on_batch(self.view, TelemetryBatch(step=step, elapsed=time.time(), rows=rows))
            callback.on_eval(self.view, step, metrics)

    def probe_start(self, step: int) -> None:
        for callback in self.callbacks:
            callback.on_probe_start(self.view, step)

    def publish_probe(self, step: int, rows: list[tuple[int, str, float]], result: dict[str, Any]) -> None:
        if self.writer is not None:
            self.writer.metrics(rows)
        for callback in self.callbacks:
            callback.on_probe_end(self.view, step, result)

    def nonfinite(self, step: int, batch: Any, what: str, loss: float, norm: float) -> None:
        """Let the diagnostics name the layer (replaying `batch` where there is one); if none of them
        reports a non-finite finding, report the step itself."""
        before = len(self.findings)
        for callback in self.callbacks:
            try:
                callback.on_nonfinite(self.view, step, batch, what)
            except Exception as error:
                self.log(f"diagnostics replay failed: {error}", kind="error")
        if not any(code.startswith("nonfinite") for code, _ in list(self.findings)[before:]):
            self.report("nonfinite_loss" if what == "loss" else "nonfinite_grad",
                        f"non-finite {what} at step {step:,} (loss={loss}, grad norm={norm})",
                        {"loss": loss, "grad_norm": norm}, step=step)

    # -- control -----------------------------------------------------------------------------------------
    def heartbeat(self) -> None:
        now = time.monotonic()
        if self.writer is not None and now - self._last_heartbeat >= HEARTBEAT_INTERVAL_S:
            self._last_heartbeat = now
            self.writer.heartbeat(self.step)

    def poll_store(self) -> None:
        if self.poll_store_commands:
            self.control.poll_store(self.store, self.run_id, self.log)

    def handle_commands(self, apply: Callable[[str, Any], None]) -> float:
        """Apply queued commands between steps; blocks while paused. pause/resume are handled here, the
        rest by the loop's `apply(command, arg)` (which may raise StopRun). Returns seconds spent paused."""
        paused_for = 0.0
        while True:
            item = self.control.get(timeout=0.25 if self.paused else None)
            if item is None:
                if not self.paused:
                    return paused_for
                paused_for += 0.25
                self.heartbeat()
                self.poll_store()
                continue
            command, arg = item
            if command == "pause" and not self.paused:
                self.paused = True
                self.log(f"paused at step {self.step}", kind="status", paused=True)
            elif command == "resume" and self.paused:
                if self.writer is not None and self.writer.error is not None:
                    try:  # retry the pending writes now; stay paused if the store is still unwritable
                        self.writer.flush()
                    except Exception as error:
                        self.log(f"still cannot write the run store: {error}", kind="error")
                        continue
                self.paused = False
                self.log(f"resumed at step {self.step}", kind="status", paused=False)
            elif command == "stop":
                self.paused = False
                apply(command, arg)
            elif command not in ("pause", "resume"):
                apply(command, arg)

    def settle_store(self, apply: Callable[[str, Any], None]) -> None:
        """A run completes only once its last metrics are in the store: if the disk is full at the end,
        pause with the disk_full finding (as mid-run) until a resume finds room; a stop ends it there."""
        while True:
            try:
                self.writer.flush()
                return
            except sqlite3.Error as error:
                if not self.paused:
                    self.storage_trouble("store", error)
                self.handle_commands(apply)  # blocks while paused; a resume retries the writes first

    def storage_trouble(self, what: str, error: BaseException) -> None:
        """The store or a checkpoint cannot be written: pause (nothing in memory is lost) and say why."""
        full = "full" in str(error).lower() or getattr(error, "errno", None) == 28  # ENOSPC
        self.report("disk_full" if full else "storage_error",
                    f"cannot write the {what} at step {self.step:,}: {error}; the run is paused, nothing is lost",
                    {"error": str(error)[:300], "what": what})
        self.control.pause()

    # -- the ending ------------------------------------------------------------------------------------
    def finish(self, status: str, reason: str | None = None, trace: str | None = None,
               stats: dict[str, Any] | None = None) -> RunResult:
        """Close the writer, record the final status, tell the callbacks. Idempotent."""
        if self.result is not None:
            return self.result
        self.status = status
        if self.writer is not None:
            self.writer.close()
        if self.run_id is not None and self.topology.is_main:
            try:
                self.store.finish_run(self.run_id, status, self.step, reason, trace, stats or {})
            except Exception as error:  # the store itself failing must not hide the run's ending
                reason = f"{reason or status}; recording the ending failed: {error}"
        for callback in self.callbacks:
            try:
                callback.on_end(self.view, status)
            except Exception as error:  # one consumer failing must not hide the ending from the others
                self.emit(Event("error", self.step, f"{type(callback).__name__} failed at the run's end: "
                                f"{type(error).__name__}: {error}", {"traceback": traceback.format_exc()}))
        self.emit(Event("status", self.step, status, {"reason": reason, "traceback": trace}))
        self.result = RunResult(status, self.run_id, self.step, reason, trace)
        self.started.set()
        return self.result
