"""Your own training loop, recorded, diagnosed and steered like a preset run: `workbench.init` -> `Run`.

    run = workbench.init("my-exp", config={"lr": 3e-3})
    run.watch(model, optimizer)                  # optional: gradients, probes, NaN origin, live control
    for step, (x, y) in enumerate(loader):
        loss = loss_fn(model(x), y)
        optimizer.zero_grad(); loss.backward(); optimizer.step()
        run.log({"loss": loss}, step=step)
        if run.should_stop:
            break
    run.finish()

A `Run` is the second client of the run session (`training/session.py`) beside the preset trainer:
the same store record and writer, diagnostics engine, control channel, heartbeats and final status.

- `log` never blocks and never syncs: tensors are kept as they are and read back together at a flush,
  every FLUSH_INTERVAL_S seconds (a flush costs about a millisecond: its cost per step stays small at any
  step rate) or MAX_PENDING logged values; under torchrun every DISTRIBUTED_LOG_EVERY log calls, so
  every rank flushes at the same step.
- `watch` hooks the optimizer's step: before it, pending commands are applied (pause blocks here,
  set-lr changes the groups), the global gradient norm is taken (one fused call; on a small float32
  CPU model one flat dot product, cheaper there) and checked on CPU, so a non-finite gradient is caught
  while the weights are still good: the step is skipped (its
  gradients dropped), the diagnostics replay the last forward to name the layer, `should_stop`
  becomes true and the run ends `diverged`. Probe steps (every PROBE_EVERY) measure per-layer gradient
  norms and update ratios and carry the dead-unit hooks, as in the preset trainer; their second half
  needs the updated weights, so a post-hook is on for them alone (and the step before, which puts the
  dead-unit hooks on for the probe's forward). The rest of a step's work is in the one pre-hook: a
  post-hook on every step was about 60 more Python bytecodes a step (a small MLP's step is ~7,000).
- The last training forward's inputs (the replay's batch) are kept by `forward_inputs`, not a forward
  hook (see there why).
- Under torchrun every rank calls `init` and gets the same run; rank 0 alone writes. stop and set-lr
  are broadcast at a flush and take effect on every rank at the same step.
"""

from __future__ import annotations

import atexit
import math
from math import isfinite
import signal
import sys
import threading
import time
import traceback
from collections.abc import Mapping
from itertools import repeat
from operator import is_, itemgetter
from pathlib import Path
from typing import Any

import torch
from torch import nn

from workbench.status import RECORDED_ENDINGS
from workbench.store import RunStore, default_runs_dir
from workbench.training import clip_watch, distributed
from workbench.training.checkpoints import CheckpointKeeper
from workbench.training.forward_inputs import KeptInputs, keep_training_inputs, keep_with_hook
from workbench.training.session import RunSession
from workbench.training.step import (FLAT_NORM_MAX, count_parameters, grad_norm, host_grad_norm,
                                     probe_after_step, probe_before_step)
from workbench.training.telemetry import TelemetryBatch

FLUSH_INTERVAL_S = 0.5
MAX_PENDING = 2000
DISTRIBUTED_LOG_EVERY = 50
TRAIN_LOSS_STEPS = 50  # the summary's train_loss: the mean of the last this many logged losses
PROBE_EVERY = 200
KEEP_CHECKPOINTS = 3
CHECKPOINT_FORMAT = 1
# Detectors that read what only `watch` provides (gradients, probes, the model); a run that is not
# watched gets the others, which read the logged curves.
NEEDS_WATCH = ("nonfinite", "exploding_gradients", "vanishing_gradients", "dead_units", "learning_rate",
               "cpu_contention", "saturated_activations", "loss_on_probabilities")
_SIGNALS = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name))


def init(name: str, config: Mapping[str, Any] | None = None, runs_dir: str | Path | None = None) -> "Run":
    """Start a recorded run of your own loop. `runs_dir` defaults like the CLI's (./runs, WORKBENCH_RUNS_DIR)."""
    return Run(name, config, runs_dir)


CONFIG_DEPTH = 100


def _json_config(value: Any, where: str = "config", depth: int = 0) -> Any:
    """The config as the store keeps it (JSON): string keys, finite numbers, and anything JSON cannot hold
    (paths, dtypes, objects, NaN/inf) kept as its text; nesting past CONFIG_DEPTH levels is refused."""
    if depth > CONFIG_DEPTH:
        raise ValueError(f"workbench.init: {where}: nested more than {CONFIG_DEPTH} levels deep")
    if isinstance(value, Mapping):
        return {key if isinstance(key, str) else str(key): _json_config(item, f"{where}.{key}", depth + 1)
                for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_config(item, f"{where}[{index}]", depth + 1) for index, item in enumerate(value)]
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # "nan", "inf": JSON has no such numbers
    if value is None or isinstance(value, (str, int, float)):
        return value
    return str(value)


def _as_float(number: int | float) -> float:
    """A logged number as the store keeps it; an integer too large for a float is infinite."""
    try:
        return float(number)
    except OverflowError:
        return math.inf if number > 0 else -math.inf


def _outputs_sum(output: Any, target: Any = None) -> torch.Tensor:
    """What the NaN replay backpropagates for a user's loop (its loss is outside the model): the sum of
    the model's floating outputs, so each module's backward is exercised with finite upstream gradients."""
    from workbench.diagnostics.nonfinite import _tensors

    tensors = [t.float().sum() for t in _tensors(output)]
    return torch.stack(tensors).sum() if tensors else torch.zeros(())


class Run:
    """One recorded run of your own training loop. Make it with `workbench.init`."""

    def __init__(self, name: str, config: Mapping[str, Any] | None = None, runs_dir: str | Path | None = None):
        if not isinstance(name, str) or not name.strip() or len(name) > 100:
            raise ValueError("workbench.init: name: must be a non-empty string of at most 100 characters")
        if config is not None and not isinstance(config, Mapping):
            raise TypeError(f"workbench.init: config: must be a dict, got {type(config).__name__}")
        from workbench.presets import loop_preset

        self.name = name.strip()
        self.config: dict[str, Any] = _json_config(dict(config or {}))
        self.store = RunStore(runs_dir if runs_dir is not None else default_runs_dir())
        self.topology = distributed.topology_from_env()
        self._distributed = self.topology.distributed
        self.preset = loop_preset(self.name, self.config)
        from workbench.diagnostics.engine import DiagnosticsEngine

        self.diagnostics = DiagnosticsEngine()
        self.session = RunSession(self.store, [self.diagnostics], self.topology)
        self.session.attach(self)
        self._no_commands = self.session.control.idle
        if self.topology.is_main:
            self.session.run_id = self.store.create_run(self.name, self.config, world_size=self.topology.world_size)
        self._id_shared = not self.topology.distributed
        # What `watch` fills in (the view's training objects); None / empty for a run that is not watched.
        self.model: nn.Module | None = None
        self.optimizer: torch.optim.Optimizer | None = None
        self.scheduler = None
        self.device: torch.device | None = None
        self.trainable: list[nn.Parameter] = []
        self.named_trainable: list[tuple[str, nn.Parameter]] = []
        self.params_total = 0
        self.params_trainable = 0
        self.loss_fn = None  # set by watch: what the NaN replay backpropagates
        self.loss_outside_model = True  # tells the NaN replay the real loss is computed outside the model
        self.saves_checkpoints = True  # an integration whose framework saves them sets this to False
        # How the run ends if the process exits before anything finished it: an integration whose framework
        # has an end hook sets ("failed", why) until that hook comes, so a train() that raised and was
        # caught does not read as completed.
        self.unfinished_ending: tuple[str, str] | None = None
        self._hooks: list[Any] = []
        self._inputs: KeptInputs | None = None  # the last training forward's inputs, for the NaN replay
        self._after_probe: Any = None  # the post-hook's handle while it is on
        self._host_sync = True
        self._flat_norm = False  # the global norm by one flat dot product (small float32 CPU models)
        self._probe: dict[str, Any] | None = None
        self._next_probe = 0
        self._memory = None
        self._checkpoints: CheckpointKeeper | None = None
        self._checkpoint_requested = False
        # Telemetry since the last flush: logged (step, name, value) and the hooks' (step, norm, lr).
        self._logged: list[tuple[int, str, Any]] = []
        self._stepped: list[tuple[int, Any, float]] = []
        self._device_values = False  # a GPU tensor was logged since the last flush
        self._said_unaligned_losses = False
        self._logs_since_flush = 0
        self._log_calls = 0  # counted on log's slow path: a watched run's first call, every call of one not watched
        self._log_slow_path = True
        self._last_logged_step = -1
        self._optimizer_steps = 0
        self._checked = False  # this optimizer step's gradients were checked
        # The norm the loop's own clip_grad_norm_ returned, and the step it clipped before.
        self._clipped_step = -1
        self._clipped_norm: torch.Tensor | None = None
        self._trainable_ids: set[int] = set()
        self._metric_names: set[str] = set()  # names `log` has accepted (checked once each)
        self._next_flush = time.monotonic() + FLUSH_INTERVAL_S
        self._window_started = time.perf_counter()
        self._window_first = 0  # the step count where the throughput window began
        self._steps_logged = 0  # distinct steps logged (a run that is not watched counts its steps so)
        self._loop_started: float | None = None
        self._paused_seconds = 0.0
        self._samples_per_step = 0
        self._best_val_loss: float | None = None
        self._last_eval: dict[str, float] = {}
        self._last_train_loss: float | None = None
        self._peak_memory: float | None = None
        self._stop: tuple[str, str | None] | None = None
        self._begun = False
        self._finished = False
        self._lock = threading.RLock()  # finish() may come from a signal handler or atexit
        self._previous_handlers: dict[int, Any] = {}
        self._previous_excepthook = None
        self._install_handlers()
        atexit.register(self._at_exit)

    # -- what the user reads -------------------------------------------------------------------------
    @property
    def id(self) -> str | None:
        """The run id (under torchrun, ranks other than 0 learn it at `watch` or the first flush)."""
        return self.session.run_id

    @property
    def run_id(self) -> str | None:
        return self.id

    @property
    def step(self) -> int:
        return self.session.step

    @property
    def status(self) -> str:
        return self.session.status

    @property
    def should_stop(self) -> bool:
        """True once a stop was asked for (`workbench stop`, the dashboard, a signal) or the run diverged."""
        return self._stop is not None

    @property
    def checkpoint_requested(self) -> bool:
        """A checkpoint was asked for and not yet taken (see `saves_checkpoints`)."""
        return self._checkpoint_requested

    def take_checkpoint_request(self) -> bool:
        """True once per checkpoint request: for integrations whose framework saves the checkpoint."""
        requested, self._checkpoint_requested = self._checkpoint_requested, False
        return requested

    def __enter__(self) -> "Run":
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc_type is None:
            self.finish()
        elif issubclass(exc_type, KeyboardInterrupt):
            self.finish("interrupted", "interrupted (Ctrl+C)")
        else:
            self._fail(exc_type, exc, tb)
        return False

    def __repr__(self) -> str:
        return f"<workbench Run {self.session.run_id} {self.session.status}>"

    # -- watch -----------------------------------------------------------------------------------------
    def watch(self, model: nn.Module, optimizer: torch.optim.Optimizer, scheduler=None) -> "Run":
        """Gradient telemetry, probes, NaN origin and live control for this model and optimizer. Call it
        once, best before the loop. A scheduler passed here keeps its shape on set-lr and goes into
        checkpoints."""
        if not isinstance(model, nn.Module):
            raise TypeError(f"run.watch: model: must be a torch.nn.Module, got {type(model).__name__}")
        if not isinstance(optimizer, torch.optim.Optimizer):
            raise TypeError(f"run.watch: optimizer: must be a torch.optim.Optimizer, got {type(optimizer).__name__}")
        if self.model is not None:
            raise RuntimeError("run.watch: this run already watches a model")
        from workbench.presets import loop_preset

        self.model, self.optimizer, self.scheduler = model, optimizer, scheduler
        first = next(iter(model.parameters()), None)
        self.device = first.device if first is not None else torch.device("cpu")
        self._host_sync = self.device.type != "cuda"
        self.params_total, self.params_trainable = count_parameters(model)
        self.named_trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
        self.trainable = [p for _, p in self.named_trainable]
        self._flat_norm = (self._host_sync and self.params_trainable <= FLAT_NORM_MAX
                           and all(p.dtype == torch.float32 for p in self.trainable))
        group = optimizer.param_groups[0]
        self.preset = loop_preset(self.name, self.config, group.get("lr"), group.get("weight_decay"))
        self.loss_fn = _outputs_sum
        # One pre-hook does the step's work; a post-hook goes on only around probe steps (_check_gradients).
        self._hooks.append(optimizer.register_step_pre_hook(self._before_step))
        self._inputs = keep_training_inputs(model)
        self._hooks.append(self._inputs)
        self._trainable_ids = {id(p) for p in self.trainable}
        self._hooks.append(clip_watch.listen(self))  # the loop's own clip_grad_norm_ gives the step's norm
        self._window_first = self._optimizer_steps  # the throughput counts optimizer steps from here
        self._log_slow_path = True
        if self._begun:  # watched after the first log: the diagnostics that need watch join now
            self._watched_late()
        else:
            self._begin()
        self._next_probe = self._optimizer_steps  # the first watched step is probed
        self.session.probe_start(self._next_probe)
        return self

    def _watched_late(self) -> None:
        from workbench.diagnostics.engine import default_detectors

        if self.diagnostics.ctx is not None:
            self.diagnostics.ctx.preset = self.preset
        present = {d.name for d in self.diagnostics.detectors}
        self.diagnostics.add_detectors(d for d in default_detectors() if d.name not in present)
        if self.session.writer is not None:
            self.store.update_run(self.session.run_id, params=self.params_total, device=str(self.device))
        self._share_id()

    def _before_step(self, optimizer, args, kwargs):
        """torch's step hook: `args` is (the optimizer, *what step() was given)."""
        if not self._no_commands():
            self.apply_control()
        if len(self._stepped) >= MAX_PENDING or (self._log_calls == 0 and self._flush_due()):
            self._flush()  # a loop that does not log: what the hooks saw, on log's cadence
        if len(args) == 1 and not kwargs:  # optimizer.step(): the gradients are there
            self._check_gradients(optimizer)
            return None
        closure = kwargs.get("closure") if kwargs else None
        if closure is None and len(args) > 1 and callable(args[1]):
            closure = args[1]
        if closure is None:
            self._check_gradients(optimizer)
            return None

        # The backward runs inside step() (Lightning's automatic optimization, LBFGS): the gradients exist
        # only once the closure has run, so the check wraps it (a pre-hook may return new args/kwargs).
        # Once per step: LBFGS calls its closure many times.
        self._checked = False

        def closure_then_check():
            loss = closure()
            if not self._checked:
                self._checked = True
                self._check_gradients(optimizer)
            return loss

        if kwargs and "closure" in kwargs:
            return args, {**kwargs, "closure": closure_then_check}
        return (args[0], closure_then_check, *args[2:]), kwargs

    def _check_gradients(self, optimizer) -> None:
        """The step counted, its global norm (checked on CPU: a non-finite one diverges the run and drops
        the step's gradients), its LR, and a probe's first half."""
        step = self._optimizer_steps
        self._optimizer_steps = step + 1  # (what a log after the step defaults to, less one)
        session = self.session
        if session.step <= step:
            session.step = step + 1
        if self._loop_started is None:
            self._loop_started = time.perf_counter()
        probing = False
        if step + 1 >= self._next_probe:  # a probe step, or the one before it: their ends need a post-hook
            probing = step == self._next_probe
            if self._after_probe is None:
                self._after_probe = optimizer.register_step_post_hook(self._after_step)
        elif self._after_probe is not None:
            self._after_probe.remove()  # (not from inside the post-hook: torch is iterating over them there)
            self._after_probe = None
        if self._stop is not None and self._stop[0] == "diverged":
            self._drop_gradients()  # after a divergence the weights stay the last good ones
            return
        if not self._host_sync:  # CUDA: the tensor, read back at the flush (no per-step sync)
            norm = self._clipped_norm if self._clipped_step == step else grad_norm(self.trainable)
        else:  # CPU: read back now, so a non-finite gradient is caught before the step
            if self._clipped_step == step:  # the loop clipped these gradients: its norm, pre-clip
                norm = self._clipped_norm.item()
            else:
                norm = host_grad_norm(self.trainable, self._flat_norm)
            if not isfinite(norm):
                self._stepped.append((step, norm, optimizer.param_groups[0]["lr"]))
                with torch.enable_grad():
                    self._diverge(step, "grad", math.nan, norm, self._replay_batch())
                self._drop_gradients()
                return
        self._stepped.append((step, norm, optimizer.param_groups[0]["lr"]))
        if probing:
            self._probe = probe_before_step(self.named_trainable)

    def clipped(self, parameters: list[torch.Tensor], total_norm: torch.Tensor) -> None:
        """clip_watch: the loop called clip_grad_norm_; on the watched parameters, its norm is this step's."""
        trainable = self.trainable
        # Usually model.parameters() with every one trainable, in the watched order: compared by identity,
        # with no list or set built per step.
        if len(parameters) == len(trainable) and all(map(is_, parameters, trainable)):
            self._clipped_step, self._clipped_norm = self._optimizer_steps, total_norm
            return
        given = [p for p in parameters if p.requires_grad]
        if len(given) == len(trainable) and {id(p) for p in given} == self._trainable_ids:
            self._clipped_step, self._clipped_norm = self._optimizer_steps, total_norm

    def _after_step(self, optimizer, args, kwargs) -> None:
        """The post-hook of a probe step and of the one before it (after the update, before the next forward)."""
        step = self._optimizer_steps - 1
        if step + 1 >= self._next_probe:
            self._probe_turn(step)

    def _flush_due(self) -> bool:
        if self._distributed:  # every rank at the same step
            return len(self._stepped) >= DISTRIBUTED_LOG_EVERY
        return time.monotonic() >= self._next_flush

    def _probe_turn(self, step: int) -> None:
        """After the probe step (or a skipped one): its second half, and the next at a multiple of
        PROBE_EVERY; before it: the dead-unit hooks go on for its forward only."""
        session = self.session
        if step >= self._next_probe:
            self._next_probe = (step // PROBE_EVERY + 1) * PROBE_EVERY
            if self._probe is not None:
                probe, self._probe = self._probe, None
                session.publish_probe(step, *probe_after_step(step, probe))
        if step + 1 == self._next_probe:
            session.probe_start(step + 1)

    def _drop_gradients(self) -> None:
        for p in self.trainable:
            p.grad = None  # optimizers skip parameters without a gradient: this step changes nothing

    def _replay_batch(self) -> Any:
        """The last forward's inputs as the (x, y) batch the NaN replay takes, where it can replay them."""
        if self._inputs is None or self._inputs.last is None:
            return None
        args, kwargs = self._inputs.last
        if kwargs and not args:
            return (dict(kwargs), None)
        if len(args) == 1 and not kwargs:
            return (args[0], None)
        return None

    # -- log -----------------------------------------------------------------------------------------------
    def log(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        """Record metrics at `step` (default: the optimizer step just taken, or a count of log calls for a
        run that is not watched). Values: numbers or one-element tensors (a GPU tensor is kept there until
        the next flush). Names starting with val_ are evaluation metrics (val_loss, val_accuracy, ...)."""
        if self._finished:
            return  # after finish (an integration's last callback, say): nothing more is recorded
        if type(metrics) is not dict and not isinstance(metrics, Mapping):  # (the ABC check is the slow one)
            raise TypeError(f"run.log: metrics: must be a dict, got {type(metrics).__name__}")
        if step is None:
            step = max(0, self._optimizer_steps - 1) if self.model is not None else self._log_calls
        elif type(step) is not int or not 0 <= step < 2**63:
            if isinstance(step, bool) or not isinstance(step, int) or not 0 <= step < 2**63:
                raise ValueError(f"run.log: step: must be a non-negative integer below 2**63, got {step!r}")
        kept = self._logged
        mark = len(kept)
        names_ok = self._metric_names
        try:
            for name, value in metrics.items():
                if name not in names_ok:
                    if not isinstance(name, str) or not name.strip():
                        raise ValueError(f"run.log: metric name {name!r}: must be a non-empty string")
                    names_ok.add(name)
                if isinstance(value, torch.Tensor):
                    # On the host a value is read at once (nothing to batch up: the preset trainer reads its
                    # loss the same way); on a GPU it stays there until the flush's one transfer.
                    if value.is_cpu:
                        try:  # item() refuses a tensor of more than one element; float() a complex number
                            kept.append((step, name, float(value.item())))
                        except (RuntimeError, TypeError, ValueError) as error:
                            raise _bad_tensor(name, value, error) from None
                    elif value.numel() != 1 or value.is_complex():
                        raise _bad_tensor(name, value)
                    else:
                        kept.append((step, name, value.detach()))
                        self._device_values = True
                    continue
                number = value.item() if hasattr(value, "item") and getattr(value, "size", 1) == 1 else value  # numpy
                if isinstance(number, bool) or not isinstance(number, (int, float)):
                    raise ValueError(f"run.log: {name!r}: expected a number or a one-element tensor, "
                                     f"got {type(value).__name__}")
                kept.append((step, name, _as_float(number)))
        except BaseException:
            del kept[mark:]  # a refused call records none of its metrics
            raise
        session = self.session
        if step >= session.step:
            session.step = step + 1
        if self._log_slow_path:
            self._log_bookkeeping(step)
        elif len(kept) >= MAX_PENDING or time.monotonic() >= self._next_flush:
            self._flush()

    def _log_bookkeeping(self, step: int) -> None:
        """log's rarer half: the first call, a run that is not watched, torchrun's flush cadence."""
        self._log_calls += 1
        if self._loop_started is None:  # (set only once the run has begun)
            if not self._begun:
                self._begin()
            self._loop_started = time.perf_counter()
        # A watched run on one process needs none of this after its first call (watch sets it again).
        self._log_slow_path = self.model is None or self._distributed
        if self.model is None:
            if step > self._last_logged_step:
                self._steps_logged += 1
                self._last_logged_step = step
            if not self._no_commands():
                self.apply_control()
        if self._distributed:
            self._logs_since_flush += 1
            if self._logs_since_flush >= DISTRIBUTED_LOG_EVERY:  # every rank at the same step
                self._flush()
        elif len(self._logged) >= MAX_PENDING or time.monotonic() >= self._next_flush:
            self._flush()

    # -- control ---------------------------------------------------------------------------------------------
    def apply_control(self) -> None:
        """Apply pending commands now: pause blocks until resume, set-lr changes the watched optimizer,
        checkpoint saves (or flags, see `saves_checkpoints`), stop sets `should_stop`. Called at every
        optimizer step of a watched run and every `log` of one that is not; integrations may call it."""
        if self.session.control.pending() and not self._finished:
            paused = self.session.handle_commands(self._apply)
            self._paused_seconds += paused

    def _apply(self, command: str, arg: Any) -> None:
        if command == "set_lr":
            if self.optimizer is None:
                self.session.log(f"set-lr ignored: the run does not watch an optimizer (run.watch)", kind="log")
                return
            from workbench.training.optim import scale_learning_rate

            old = self.optimizer.param_groups[0]["lr"]
            scale_learning_rate(self.optimizer, self.scheduler, arg)
            self.session.log(f"learning rate {old:.3g} -> {arg:.3g} at step {self.session.step}", kind="log")
        elif command == "checkpoint":
            self._checkpoint_requested = True
            if self.saves_checkpoints and self.model is not None:
                self._checkpoint_or_pause("manual")
                self._checkpoint_requested = False
        elif command == "stop":
            status, reason = arg
            if self._stop is None:
                if self.saves_checkpoints and self.model is not None:
                    try:
                        self.checkpoint("stop")
                    except OSError as error:
                        self.session.log(f"stop checkpoint failed: {error}", kind="error")
                self._stop = (status, reason or f"{status} on request at step {self.session.step}")
        elif command == "profile":
            self.session.log("profiling is only available for preset runs", kind="log")

    def _checkpoint_or_pause(self, kind: str) -> None:
        import sqlite3

        try:
            if self.session.writer is not None:
                self.session.writer.flush()
            self.checkpoint(kind)
        except (OSError, sqlite3.Error) as error:
            self.session.storage_trouble("checkpoint", error)

    def checkpoint(self, kind: str = "manual") -> Path | None:
        """Save the watched model, optimizer and scheduler state into the run's checkpoint folder now
        (rank 0 only; returns the path)."""
        if self.model is None:
            raise RuntimeError("run.checkpoint: watch a model first (run.watch)")
        if not self.topology.is_main:
            return None
        if self._checkpoints is None:
            self._checkpoints = CheckpointKeeper(self.store, self.session.run_id, KEEP_CHECKPOINTS)
        step = self.session.step
        payload = {
            "format": CHECKPOINT_FORMAT, "kind": kind, "step": step,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
        }
        path = self._checkpoints.save(payload, step, kind, self._last_eval.get("val_loss"))
        self.session.log(f"checkpoint ({kind}) at step {step}: {path}", kind="checkpoint", path=str(path))
        return path

    def add_checkpoint(self, path: str | Path, kind: str = "manual", step: int | None = None) -> None:
        """Record a checkpoint your framework saved itself (a file or a folder: HF's `checkpoint-N`), so
        `workbench show` lists it beside the run's own. Entries whose file or folder is gone (a framework
        keeping only its newest) are dropped. Rank 0 only; nothing is copied or loaded."""
        if not self.topology.is_main or self.session.writer is None:
            return
        path = Path(path)
        step = self.session.step if step is None else step
        run_id = self.session.run_id
        for saved in self.store.checkpoints(run_id):
            if not Path(saved["path"]).exists():
                self.store.remove_checkpoint(run_id, saved["path"])
        self.store.add_checkpoint(run_id, step, str(path), kind, self._last_eval.get("val_loss"))
        self.session.log(f"checkpoint ({kind}) at step {step}: {path}", kind="checkpoint", path=str(path))

    # -- flush ---------------------------------------------------------------------------------------------
    def _flush(self, collective: bool = True) -> None:
        """Read back what was logged since the last flush (one transfer per device) and publish it.
        Under torchrun every rank flushes at the same step, where the collectives happen (not at the
        final flush, which one rank may reach alone: a signal, an exception)."""
        logged, self._logged = self._logged, []
        newest_logged = max(map(itemgetter(0), logged), default=-1)
        stepped, self._stepped = self._stepped, []
        self._logs_since_flush = 0
        self._next_flush = time.monotonic() + FLUSH_INTERVAL_S
        if not self._begun:
            self._begin(collective)
        session = self.session
        if self._device_values:  # only GPU tensors wait for the read-back (CPU ones were read at log)
            logged = self._read_back(logged)
            self._device_values = False
        if collective and self.topology.distributed and torch.distributed.is_initialized():
            self._share_id()
            session.control.exchange(self.topology)
            logged = self._mean_loss_across_ranks(logged)
        if self._inputs is not None and not self._inputs.in_place():
            keep_with_hook(self._inputs)  # module.compile() took the slot since watch
        if not logged and not stepped:
            return
        session.flush_start()
        if not self._host_sync:
            stepped = self._read_back_norms(stepped)
        # The hooks' readings first: a value the loop logs under the same name and step replaces them
        # (log the pre-clip norm as grad_norm when you clip before optimizer.step()).
        stepped_steps = [step for step, _, _ in stepped]
        norm_at = dict(zip(stepped_steps, map(itemgetter(1), stepped)))
        lr_at = dict(zip(stepped_steps, map(float, map(itemgetter(2), stepped))))
        evals: dict[int, dict[str, float]] = {}
        losses: list[tuple[int, float]] = []
        other: dict[tuple[int, str], float] = {}
        for step, name, value in logged:
            if name == "loss":
                losses.append((step, value))
            elif name.startswith("val_"):
                evals.setdefault(step, {})[name] = value
            elif name == "grad_norm":
                norm_at[step] = value
            elif name == "lr":
                lr_at[step] = value
            else:
                other[(step, name)] = value
        loss_at = dict(losses)  # (a step logged twice keeps its last value, here and in the rows)
        rows = [*zip(loss_at, repeat("loss"), loss_at.values()), *zip(norm_at, repeat("grad_norm"), norm_at.values()),
                *zip(lr_at, repeat("lr"), lr_at.values())]
        rows += [(step, name, value) for (step, name), value in other.items()]
        newest = max(newest_logged, stepped_steps[-1] if stepped else -1)
        if newest < 0:
            newest = max(session.step - 1, 0)
        rows += [(newest, name, value) for name, value in self._extras().items()]
        recent = [value for _, value in losses[-TRAIN_LOSS_STEPS:] if math.isfinite(value)]
        if recent:
            self._last_train_loss = sum(recent) / len(recent)
        steps = sorted(loss_at)
        series = (steps, list(map(loss_at.__getitem__, steps)), list(map(norm_at.get, steps, repeat(math.nan))),
                  list(map(lr_at.get, steps, repeat(math.nan))))
        session.publish(TelemetryBatch(step=newest, elapsed=time.time(), rows=rows, series=series))
        for step in sorted(evals):
            metrics = evals[step]
            val_loss = metrics.get("val_loss")
            if val_loss is not None and math.isfinite(val_loss):
                if self._best_val_loss is None or val_loss < self._best_val_loss:
                    self._best_val_loss = val_loss
                metrics["best_val_loss"] = self._best_val_loss
            self._last_eval.update(metrics)
            session.publish_eval(step, metrics)
        if self._stop is None:
            # (all(map(isfinite, ...)) first: the usual window has nothing to find, checked at C speed)
            bad_loss = (None if all(map(isfinite, map(itemgetter(1), losses)))
                        else min(step for step, value in losses if not isfinite(value)))
            # The hooks' norms only: a non-finite norm the loop logs itself (a GradScaler's skipped step) is not one.
            bad_norm = (None if all(map(isfinite, map(itemgetter(1), stepped)))
                        else min(step for step, norm, _ in stepped if not isfinite(norm)))
            if bad_loss is not None or bad_norm is not None:  # on CUDA, or a loss that broke without the grads
                what, step = (("loss", bad_loss) if bad_norm is None or (bad_loss is not None and bad_loss <= bad_norm)
                              else ("grad", bad_norm))
                self._diverge(step, what, loss_at.get(step, math.nan), norm_at.get(step, math.nan), None)

    def _mean_loss_across_ranks(self, logged: list[tuple[int, str, Any]]) -> list[tuple[int, str, Any]]:
        """Under torchrun the loss recorded is the mean over the ranks, as the preset trainer records it
        (a collective at a flush, which every rank reaches at the same log call). Where the ranks logged
        different numbers of losses in the window, rank 0's are kept, and that is said once."""
        at = [index for index, (_, name, _) in enumerate(logged) if name == "loss"]
        mean = distributed.mean_across_ranks_if_aligned([logged[index][2] for index in at], self.topology)
        if mean is None:
            if not self._said_unaligned_losses:
                self._said_unaligned_losses = True
                self.session.log("the ranks logged different numbers of losses in a window: the loss recorded "
                                 "there is rank 0's, not the mean over the ranks", kind="log")
            return logged
        logged = list(logged)
        for index, value in zip(at, mean):
            step, name, _ = logged[index]
            logged[index] = (step, name, value)
        return logged

    @staticmethod
    def _read_back(logged: list[tuple[int, str, Any]]) -> list[tuple[int, str, float]]:
        tensors = [value for _, _, value in logged if isinstance(value, torch.Tensor)]
        if not tensors:
            return logged
        read = iter(_to_floats(tensors))
        return [(step, name, next(read) if isinstance(value, torch.Tensor) else value) for step, name, value in logged]

    @staticmethod
    def _read_back_norms(stepped: list[tuple[int, Any, float]]) -> list[tuple[int, float, float]]:
        tensors = [norm for _, norm, _ in stepped if isinstance(norm, torch.Tensor)]
        if not tensors:
            return stepped
        read = iter(_to_floats(tensors))
        return [(step, next(read) if isinstance(norm, torch.Tensor) else norm, lr) for step, norm, lr in stepped]

    def _extras(self) -> dict[str, float]:
        """Throughput, memory, the other groups' LRs and wall time, at the newest step of a flush."""
        now = time.perf_counter()
        elapsed = now - self._window_started
        counted = self._optimizer_steps if self.model is not None else self._steps_logged
        steps, self._window_first, self._window_started = counted - self._window_first, counted, now
        extra: dict[str, float] = {"steps_per_s": steps / elapsed if elapsed > 0 else 0.0}
        batch = self._batch_size()
        if batch:
            extra["samples_per_s"] = extra["steps_per_s"] * batch
        if self.device is not None:
            if self._memory is None:
                from workbench.training.device import MemoryMeter

                self._memory = MemoryMeter(self.device)
            memory = self._memory.read()
            extra.update(memory)
            peak = max((v for k, v in memory.items() if k != "mem/cuda_reserved_mb"), default=None)
            if peak is not None:
                self._peak_memory = max(self._peak_memory or 0.0, peak)
        if self.optimizer is not None:
            for group in self.optimizer.param_groups[1:]:
                extra[f"lr/{group.get('name', 'group')}"] = float(group["lr"])
        if self._loop_started is not None:
            extra["time_s"] = now - self._loop_started
        return extra

    def _batch_size(self) -> int:
        if self._inputs is None or self._inputs.last is None:
            return 0
        from workbench.training.batches import batch_size_of

        args, kwargs = self._inputs.last
        try:
            return int(batch_size_of(args[0] if args else next(iter(kwargs.values()))))
        except Exception:
            return 0

    # -- divergence, endings ---------------------------------------------------------------------------
    def _diverge(self, step: int, what: str, loss: float, norm: float, batch: Any) -> None:
        """A non-finite loss or gradient: name the layer, keep the last good weights, stop as diverged."""
        if self._stop is not None and self._stop[0] == "diverged":
            return
        if not self._begun:
            self._begin()
        self.session.nonfinite(step, batch, what, loss, norm)
        self._stop = ("diverged", f"non-finite {what} at step {step}")
        if self.model is not None and self.saves_checkpoints:
            try:
                self.checkpoint("last_good")  # checked before optimizer.step(): still the good weights (CPU)
            except Exception as error:  # the run still ends diverged; say why it has no last_good checkpoint
                self.session.log(f"last_good checkpoint failed: {type(error).__name__}: {error}", kind="error")

    def _begin(self, collective: bool = True) -> None:
        """Set-up is over: the writer starts and the diagnostics set up (with what `watch` gave them)."""
        if self._begun:
            return
        self._begun = True
        if self.model is None:
            self.diagnostics.detectors = [d for d in self.diagnostics.detectors if d.name not in NEEDS_WATCH]
        if collective:
            self._share_id()
        fields: dict[str, Any] = {}
        if self.model is not None:
            fields = {"params": self.params_total, "device": str(self.device)}
        self.session.begin(**fields)

    def _share_id(self) -> None:
        """Under torchrun every rank learns rank 0's run id at the first collective point."""
        if self._id_shared or not torch.distributed.is_available() or not torch.distributed.is_initialized():
            return
        self._id_shared = True
        self.session.run_id = distributed.broadcast_object(self.session.run_id, self.topology)

    def stats(self) -> dict[str, Any]:
        seconds = 0.0
        if self._loop_started is not None:
            seconds = max(0.0, time.perf_counter() - self._loop_started - self._paused_seconds)
        steps = self._optimizer_steps or self.session.step
        batch = self._batch_size()
        return {
            "steps_per_second": steps / seconds if seconds > 0 else 0.0,
            "samples_per_second": steps * batch / seconds if seconds > 0 and batch else 0.0,
            "loop_seconds": seconds,
            "train_loss": self._last_train_loss,
            "best_val_loss": self._best_val_loss,
            "params": self.params_total,
            "trainable_params": self.params_trainable,
            "peak_memory_mb": self._peak_memory,
            **self._last_eval,
        }

    def finish(self, status: str | None = None, reason: str | None = None) -> str:
        """End the run: the final flush, the final status (default: completed, or stopped / diverged /
        interrupted as the run went), hooks removed. Returns the status. Calling it again does nothing."""
        if status is not None and status not in RECORDED_ENDINGS:
            raise ValueError(f"run.finish: status: must be one of {', '.join(RECORDED_ENDINGS)}, got {status!r}")
        return self._end(status, reason, None)

    def _end(self, status: str | None, reason: str | None, trace: str | None) -> str:
        with self._lock:
            if self._finished:
                return self.session.status
            self._finished = True
            try:
                self._flush(collective=False)
            except Exception as error:
                self.session.log(f"final flush failed: {type(error).__name__}: {error}", kind="error")
            if status is None:
                status, reason = self._stop if self._stop is not None else ("completed", reason)
            elif reason is None and self._stop is not None and self._stop[0] == status:
                reason = self._stop[1]
            for hook in self._hooks:
                hook.remove()
            self._hooks = []
            if self._after_probe is not None:
                self._after_probe.remove()
                self._after_probe = None
            self._restore_handlers()
            atexit.unregister(self._at_exit)
            if not self._begun:
                self._begin(collective=False)
            self.session.finish(status, reason, trace, self.stats())
            return status

    def _fail(self, exc_type, exc, tb) -> None:
        trace = "".join(traceback.format_exception(exc_type, exc, tb))
        self._end("failed", f"{exc_type.__name__}: {exc}", trace)

    # -- process endings: signals, an uncaught exception, interpreter exit -----------------------------
    def _install_handlers(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return  # signal handlers can only be set from the main thread
        for sig in _SIGNALS:
            if signal.getsignal(sig) == signal.SIG_IGN:
                continue  # ignored on purpose (nohup ignores SIGHUP): the process goes on, so does the run
            try:
                self._previous_handlers[sig] = signal.signal(sig, self._on_signal)
            except (ValueError, OSError):
                pass  # a signal this platform will not let us handle: the run goes on without that handler
        self._previous_excepthook = sys.excepthook
        sys.excepthook = self._on_uncaught

    def _restore_handlers(self) -> None:
        if threading.current_thread() is threading.main_thread():
            for sig, handler in self._previous_handlers.items():
                if signal.getsignal(sig) == self._on_signal:
                    signal.signal(sig, handler)
        if self._previous_excepthook is not None and sys.excepthook == self._on_uncaught:
            sys.excepthook = self._previous_excepthook

    def _on_signal(self, signum, frame) -> None:
        name = signal.Signals(signum).name
        previous = self._previous_handlers.get(signum, signal.SIG_DFL)
        try:
            self._end("interrupted", f"{name} received at step {self.session.step}", None)
        finally:
            if callable(previous):
                previous(signum, frame)
            elif previous == signal.SIG_DFL:  # the default action: end the process as the signal would
                signal.signal(signum, signal.SIG_DFL)
                signal.raise_signal(signum)

    def _on_uncaught(self, exc_type, exc, tb) -> None:
        try:
            if issubclass(exc_type, KeyboardInterrupt):
                self._end("interrupted", "interrupted (Ctrl+C)", None)
            else:
                self._fail(exc_type, exc, tb)
        finally:
            (self._previous_excepthook or sys.__excepthook__)(exc_type, exc, tb)

    def _at_exit(self) -> None:
        status, reason = self.unfinished_ending if self.unfinished_ending and self._stop is None else (None, None)
        self._end(status, reason, None)


def _bad_tensor(name: str, value: torch.Tensor, error: BaseException | None = None) -> ValueError:
    """Why `run.log` refuses a tensor."""
    if value.numel() != 1:
        return ValueError(f"run.log: {name!r}: a tensor with {value.numel()} elements (log one number)")
    if value.is_complex():
        return ValueError(f"run.log: {name!r}: a complex tensor (log a real number)")
    return ValueError(f"run.log: {name!r}: cannot be read as a number ({error})")


def _to_floats(tensors: list[torch.Tensor]) -> list[float]:
    """One host transfer per device for a list of one-element tensors, in order."""
    by_device: dict[torch.device, list[int]] = {}
    for index, tensor in enumerate(tensors):
        by_device.setdefault(tensor.device, []).append(index)
    out = [math.nan] * len(tensors)
    for indices in by_device.values():
        group = [tensors[i] for i in indices]
        try:  # the usual case, 0-dim losses: one stack, no per-tensor ops
            stacked = torch.stack(group)
        except RuntimeError:  # mixed shapes ((), (1,), (1, 1)): flatten each first
            stacked = torch.stack([t.reshape(()) for t in group])
        values = stacked.reshape(-1).float().cpu().tolist()
        for i, value in zip(indices, values):
            out[i] = value
    return out
