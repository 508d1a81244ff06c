"""The one training engine behind the TUI, the headless CLI, detached runs and torchrun.

`Trainer.run()` does set-up, the loop and the wrap-up on the calling thread; `Trainer.start()` runs it
on a background thread. Other threads steer it only through the thread-safe control methods (pause,
resume, stop, checkpoint_now, set_lr), which queue commands the loop picks up between steps.

Per-step cost is kept to what a hand-written loop does plus reading two scalars: on CPU the loss and
gradient norm are read every step (cheap there, and it lets a non-finite step be caught before the
weights are touched); on CUDA they stay on the device and are read back once per `log_every` steps.
"""

from __future__ import annotations

import math
import queue
import random
import sqlite3
import threading
import time
import traceback
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import torch
from torch import nn

from workbench.builders import build_data, build_model, check_preset
from workbench.config import Preset
from workbench.errors import ConfigError
from workbench.notices import notices_to
from workbench.store import RunStore, StoreWriter
from workbench.training.batches import BatchSource, batch_size_of, eval_batches, split_batch, to_device
from workbench.training.checkpoint import atomic_save, load_checkpoint, restore_rng_state, rng_state
from workbench.training import distributed
from workbench.training.device import MemoryMeter, pick_device
from workbench.training.losses import build_loss
from workbench.training.optim import build_optimizer, build_scheduler, scale_learning_rate
from workbench.training.telemetry import Callback, Event, TelemetryBatch

CHECKPOINT_FORMAT = 1
STORE_POLL_INTERVAL_S = 1.0
HEARTBEAT_INTERVAL_S = 2.0


@dataclass
class RunResult:
    """How a run ended. `status` is a final store status, or "invalid" when nothing was recorded."""

    status: str
    run_id: str | None
    steps: int
    reason: str | None = None
    traceback: str | None = None
    errors: list[str] = field(default_factory=list)


class _Stop(Exception):
    """Raised inside the loop to end it with a given status."""

    def __init__(self, status: str, reason: str | None = None):
        super().__init__(reason or status)
        self.status = status
        self.reason = reason


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False


def count_parameters(model: nn.Module) -> tuple[int, int]:
    """(total, trainable) parameter counts."""
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return total, trainable


def grad_norm(params: list[nn.Parameter]) -> torch.Tensor:
    """Global L2 norm of the gradients in one fused call (no per-parameter Python loop)."""
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return torch.zeros(())
    return torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)))


def layer_of(parameter_name: str) -> str:
    """The dotted module name owning a parameter ("encoder.0.weight" -> "encoder.0")."""
    return parameter_name.rpartition(".")[0] or parameter_name


class Trainer:
    """Train one preset, recording into a RunStore and publishing telemetry to callbacks."""

    def __init__(
        self,
        preset: Preset,
        store: RunStore,
        callbacks: Iterable[Callback] = (),
        resume_run_id: str | None = None,
        poll_store_commands: bool = True,
        run_id: str | None = None,
    ):
        self.preset = preset
        self.store = store
        self.callbacks: list[Callback] = list(callbacks)
        self.resume_run_id = resume_run_id
        self.poll_store_commands = poll_store_commands
        self.run_id: str | None = resume_run_id
        self._new_run_id = run_id  # a detached run's id is chosen by its launcher
        self.status = "pending"
        self.step = 0
        self.paused = False
        self.thread: threading.Thread | None = None
        self.result: RunResult | None = None
        self.findings: dict[tuple[str, str], dict[str, Any]] = {}
        self.best_val_loss: float | None = None
        self.last_eval: dict[str, float] = {}
        self.last_train_loss: float | None = None
        self.params_total = 0
        self.params_trainable = 0
        self.device: torch.device | None = None
        self.model: nn.Module | None = None  # the module being trained (unwrapped from compile)
        self.info = None
        self.optimizer = None
        self.scheduler = None
        self.topology = distributed.topology_from_env()
        self.world_size = self.topology.world_size
        self.rank = self.topology.rank
        # Under torchrun, stop/set_lr are applied by every rank at the same step: rank 0 collects them
        # and broadcasts them at the next flush.
        self._replicated: list[tuple[str, Any]] = []
        self._commands: queue.SimpleQueue = queue.SimpleQueue()
        self._writer: StoreWriter | None = None
        self._evals_since_best = 0
        self._loop_seconds = 0.0
        self._samples_seen = 0
        self._tokens_seen = 0
        self._checkpoints: list[Path] = []
        self._started = threading.Event()
        self._loop_samples = 0
        self._loop_tokens = 0
        self._first_step = 0
        self._peak_memory: float | None = None
        self._flush_diverged = False
        self._elapsed_before = 0.0
        self._profiler = None
        self.gpu_monitor = None

    # -- control, safe from any thread --------------------------------------------------------
    def pause(self) -> None:
        self._commands.put(("pause", None))

    def resume(self) -> None:
        self._commands.put(("resume", None))

    def stop(self, status: str = "stopped", reason: str | None = None) -> None:
        """Stop after the current step, saving a checkpoint first. status: stopped | interrupted."""
        self._command("stop", (status, reason))

    def checkpoint_now(self) -> None:
        self._commands.put(("checkpoint", None))

    def profile(self, steps: int = 20) -> None:
        """Profile the next `steps` steps with torch.profiler; the report arrives as a "profile" event."""
        if not (isinstance(steps, int) and 1 <= steps <= 10_000):
            raise ValueError("profile steps must be an integer from 1 to 10000")
        self._commands.put(("profile", steps))

    def set_lr(self, lr: float) -> None:
        if not (isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0):
            raise ValueError("learning rate must be a positive finite number")
        self._command("set_lr", float(lr))

    def _command(self, command: str, arg: Any) -> None:
        """Commands every rank must apply together go through rank 0's broadcast under torchrun."""
        if not self.topology.distributed:
            self._commands.put((command, arg))
        elif self.topology.is_main:
            self._replicated.append((command, arg))
        # other ranks ignore local requests (torchrun signals every rank; rank 0 speaks for all)

    def start(self) -> threading.Thread:
        """Run on a background thread; returns it. Poll `status`/`result`, or join the thread."""
        self.thread = threading.Thread(target=self.run, name="workbench-trainer", daemon=True)
        self.thread.start()
        return self.thread

    def wait_started(self, timeout: float | None = None) -> bool:
        """Block until set-up finished (the run is recorded, or failed to set up)."""
        return self._started.wait(timeout)

    # -- findings and events --------------------------------------------------------------------
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
        if self._writer is not None:
            self._writer.finding(entry)
        self._emit(Event("finding", entry["last_step"], entry["message"], entry))
        return entry

    def log(self, text: str, kind: str = "log", **data: Any) -> None:
        self._emit(Event(kind, self.step, text, data))
        if self._writer is not None and kind in ("log", "sample", "error", "checkpoint", "status", "profile"):
            self._writer.event(self.step, kind, text)

    def _emit(self, event: Event) -> None:
        for callback in self.callbacks:
            callback.on_event(self, event)

    # -- lifecycle ------------------------------------------------------------------------------
    def run(self) -> RunResult:
        """Set up, train, wrap up. Never raises: every ending is a RunResult."""
        try:
            try:
                self._setup()
            except ConfigError as error:
                self.status = "invalid"
                self.result = RunResult("invalid", None, 0, str(error), errors=error.problems)
                self._emit(Event("error", 0, str(error)))
                return self.result
            except Exception as error:  # an exception in user model/data code during set-up
                if self.run_id is None:
                    self.run_id = self.store.create_run(self.preset.name, self.preset.model_dump(mode="json"))
                return self._finish("failed", f"{type(error).__name__}: {error}", traceback.format_exc())
            finally:
                self._started.set()
            return self._train()
        except BaseException as error:  # last resort: the thread must never die silently
            return self._finish("failed", f"{type(error).__name__}: {error}", traceback.format_exc())

    def _setup(self) -> None:
        preset = self.preset
        config = preset.train
        check_preset(preset)
        if config.threads:
            torch.set_num_threads(config.threads)
        distributed.init_process_group(self.topology)
        seed_everything(config.seed)
        self.device = pick_device(config.device)
        if config.precision == "fp16" and self.device.type != "cuda":
            raise ConfigError("train.precision: fp16 needs a CUDA device (use bf16 or fp32 on CPU)")
        with notices_to(lambda text: self.log(text, kind="log", setup=True)):  # slow builds say what they do
            data = build_data(preset)
            self.info = data.info
            model = build_model(preset, data.info)
        if not isinstance(model, nn.Module):
            raise ConfigError(f"model: builder returned {type(model).__name__}, not a torch.nn.Module")
        self.model = model.to(self.device)
        if preset.model.trust_remote_code:
            self._remote_code_warning = True
        self.params_total, self.params_trainable = count_parameters(self.model)
        self.trainable = [p for p in self.model.parameters() if p.requires_grad]
        self.named_trainable = [(n, p) for n, p in self.model.named_parameters() if p.requires_grad]
        self.optimizer = build_optimizer(self.model, preset.optim)
        self.scheduler = build_scheduler(self.optimizer, preset.schedule, config.max_steps)
        self.loss_fn = build_loss(config)
        self.scaler = torch.amp.GradScaler("cuda") if config.precision == "fp16" else None
        self.autocast_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(config.precision)
        self.ema = None
        if config.ema_decay > 0:
            from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

            self.ema = AveragedModel(self.model, multi_avg_fn=get_ema_multi_avg_fn(config.ema_decay))
        self.forward_model = self.model
        if self.topology.distributed:
            from torch.nn.parallel import DistributedDataParallel

            device_ids = [self.device.index] if self.device.type == "cuda" else None
            self.forward_model = DistributedDataParallel(self.model, device_ids=device_ids)
        if config.compile:
            self.forward_model = torch.compile(self.forward_model)
        self.train_source = BatchSource(
            data.train, config.batch_size, config.seed, collate=data.info.collate, num_workers=config.num_workers,
            rank=self.rank, world_size=self.world_size,
        )
        self.val_data = data.val
        self.memory = MemoryMeter(self.device)
        from workbench.training.gpu_monitor import GpuMonitor

        self.gpu_monitor = GpuMonitor.start_for(self.device)
        if self.resume_run_id:
            self._load_resume_state()
            if self.topology.is_main:
                self.store.reopen_run(self.resume_run_id)
        elif self.topology.is_main:
            self.run_id = self.store.create_run(
                preset.name, preset.model_dump(mode="json"), world_size=self.world_size, run_id=self._new_run_id
            )
        self.run_id = distributed.broadcast_object(self.run_id, self.topology)
        if self.topology.is_main:  # rank 0 alone writes telemetry, findings and checkpoints
            self.store.update_run(self.run_id, params=self.params_total, device=str(self.device), steps=self.step,
                                  world_size=self.world_size)
            self._writer = StoreWriter(self.store, self.run_id)
        self.status = "running"
        for callback in self.callbacks:
            callback.on_setup(self)
        if getattr(self, "_remote_code_warning", False):
            self.report_finding({
                "code": "remote_code_enabled", "severity": "warning", "step": self.step, "layer": None,
                "message": "model.trust_remote_code = true: Python code shipped with the model weights was allowed "
                           "to run in this process",
                "remedy": "only enable it for model sources you trust; turn it off unless the model needs it",
                "evidence": {"pretrained": preset.model.pretrained},
            })
        self.log(
            f"{preset.name}: {self.params_total:,} parameters ({self.params_trainable:,} trainable) on "
            f"{self.device}", kind="setup", params=self.params_total, trainable=self.params_trainable,
            device=str(self.device),
        )

    def _load_resume_state(self) -> None:
        checkpoints = [c for c in self.store.checkpoints(self.resume_run_id) if c["kind"] != "best"]
        usable = [c for c in checkpoints if Path(c["path"]).is_file()]
        if not usable:
            raise ConfigError(f"run {self.resume_run_id}: no checkpoint to resume from")
        path = Path(usable[0]["path"])
        state = load_checkpoint(path, map_location=self.device)
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        if self.scaler is not None and state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        if self.ema is not None and state.get("ema"):
            self.ema.load_state_dict(state["ema"])
        self.train_source.load_state_dict(state["data"])
        restore_rng_state(state["rng"])
        self.step = int(state["step"])
        self.best_val_loss = state.get("best_val_loss")
        self._evals_since_best = int(state.get("evals_since_best", 0))
        self._samples_seen = int(state.get("samples_seen", 0))
        self._elapsed_before = float(state.get("elapsed", 0.0))
        self._checkpoints = [Path(c["path"]) for c in reversed(usable) if c["kind"] != "best"]

    def _finish(self, status: str, reason: str | None = None, trace: str | None = None) -> RunResult:
        self.status = status
        if self.gpu_monitor is not None:
            self.gpu_monitor.close()
        stats = self.stats()
        if self._writer is not None:
            self._writer.close()
        if self.run_id is not None and self.topology.is_main:
            try:
                self.store.finish_run(self.run_id, status, self.step, reason, trace, stats)
            except Exception as error:  # the store itself failing must not hide the run's ending
                reason = f"{reason or status}; recording the ending failed: {error}"
        for callback in self.callbacks:
            try:
                callback.on_end(self, status)
            except Exception:
                pass
        self._emit(Event("status", self.step, status, {"reason": reason, "traceback": trace}))
        self.result = RunResult(status, self.run_id, self.step, reason, trace)
        self._started.set()
        distributed.destroy_process_group()
        return self.result

    def stats(self) -> dict[str, Any]:
        """Throughput over the loop only, and the last known metrics."""
        seconds = self._loop_seconds
        steps_done = self.step - getattr(self, "_first_step", 0)
        return {
            "steps_per_second": steps_done / seconds if seconds > 0 else 0.0,
            "samples_per_second": self._loop_samples / seconds if seconds > 0 else 0.0,
            "tokens_per_second": self._loop_tokens / seconds if seconds > 0 and self._loop_tokens else None,
            "loop_seconds": seconds,
            "train_loss": self.last_train_loss,
            "best_val_loss": self.best_val_loss,
            "params": self.params_total,
            "trainable_params": self.params_trainable,
            "peak_memory_mb": getattr(self, "_peak_memory", None),
            **{key: value for key, value in self.last_eval.items()},
        }

    # -- the loop ---------------------------------------------------------------------------------
    def _forward_loss(self, x: Any, y: Any) -> tuple[torch.Tensor, Any]:
        """Loss and model output for one batch."""
        if self.loss_fn is None:  # the model computes its own loss (Hugging Face style)
            output = self.forward_model(**x, labels=y) if isinstance(x, dict) else self.forward_model(x, labels=y)
            loss = output["loss"] if isinstance(output, dict) or hasattr(output, "keys") else output[0]
            return loss, output
        output = self.forward_model(**x) if isinstance(x, dict) else self.forward_model(x)
        logits = getattr(output, "logits", output)
        return self.loss_fn(logits, y), logits

    def _autocast(self):
        if self.autocast_dtype is None:
            return nullcontext()
        return torch.autocast(self.device.type, dtype=self.autocast_dtype)

    def _train(self) -> RunResult:
        config = self.preset.train
        self._first_step = self.step
        self._loop_samples = 0
        self._loop_tokens = 0
        tokens_per_sample = self.info.tokens_per_sample or 0
        samples_per_step = config.batch_size * config.grad_accum * self.world_size
        host_sync = self.device.type != "cuda"
        accum = config.grad_accum
        clip = config.grad_clip
        log_every = config.log_every
        probe_every = config.probe_every
        eval_every = config.eval_every
        checkpoint_every = config.checkpoint_every
        max_steps = config.max_steps
        params = self.trainable
        optimizer, scheduler, scaler, ema = self.optimizer, self.scheduler, self.scaler, self.ema
        source = self.train_source
        losses: list[Any] = []
        norms: list[Any] = []
        lrs: list[float] = []
        window_start = self.step
        self._window_time = time.perf_counter()
        self._last_poll = self._last_heartbeat = time.monotonic()
        self._peak_memory = None
        loop_started = self._loop_started_at = time.perf_counter()
        paused_seconds = 0.0
        status, reason, trace = "completed", None, None
        on_cpu = self.device.type == "cpu"
        self.model.train()  # once here; evaluation puts it back (a per-step call walks every module)
        try:
            while self.step < max_steps:
                if not self._commands.empty():
                    paused_seconds += self._handle_commands()
                step = self.step
                probing = probe_every and step % probe_every == 0
                if probing:
                    for callback in self.callbacks:
                        callback.on_probe_start(self, step)
                    self.model.train()
                batch = None
                loss_sum = None
                profiler = self._profiler
                for _ in range(accum):
                    if profiler is not None:
                        fetch_started = time.perf_counter()
                    batch = source.next() if on_cpu else to_device(source.next(), self.device, non_blocking=True)
                    if profiler is not None:
                        profiler.data_time(time.perf_counter() - fetch_started)
                    x, y = split_batch(batch)
                    with self._autocast():
                        loss, _ = self._forward_loss(x, y)
                    scaled = loss / accum if accum > 1 else loss
                    (scaler.scale(scaled) if scaler is not None else scaled).backward()
                    loss_sum = loss.detach() if loss_sum is None else loss_sum + loss.detach()
                if scaler is not None:
                    scaler.unscale_(optimizer)
                norm = torch.nn.utils.clip_grad_norm_(params, clip, foreach=True) if clip > 0 else grad_norm(params)
                loss_value = loss_sum / accum if accum > 1 else loss_sum
                if host_sync:
                    loss_value, norm = loss_value.item(), norm.item()
                losses.append(loss_value)
                norms.append(norm)
                lrs.append(optimizer.param_groups[0]["lr"])
                if host_sync and ((not math.isfinite(loss_value) and not self.topology.distributed)
                                  or (scaler is None and not math.isfinite(norm))):
                    self._nonfinite(step, batch, "loss" if not math.isfinite(loss_value) else "grad", loss_value, norm)
                probe = self._probe_before_step() if probing else None
                if scaler is not None:
                    scaler.step(optimizer)
                    scaler.update()
                else:
                    optimizer.step()
                optimizer.zero_grad(set_to_none=True)
                scheduler.step()
                if ema is not None:
                    ema.update_parameters(self.model)
                self.step = step + 1
                self._samples_seen += samples_per_step
                if probing:
                    self._probe_after_step(step, probe)
                if profiler is not None and profiler.end_step():
                    self._profiler = None
                    self.log(profiler.report, kind="profile", rows=profiler.rows)
                if self.step % log_every == 0 or self.step == max_steps:
                    self._flush(window_start, losses, norms, lrs, samples_per_step, tokens_per_sample)
                    window_start = self.step
                    losses, norms, lrs = [], [], []
                if (eval_every and self.step % eval_every == 0) or self.step == max_steps:
                    paused_seconds += self._timed(self._evaluate)
                if checkpoint_every and self.step % checkpoint_every == 0 and self.step < max_steps:
                    paused_seconds += self._timed(lambda: self._checkpoint_or_pause("periodic"))
        except _Stop as stop:
            status, reason = stop.status, stop.reason
        except torch.OutOfMemoryError as error:
            status, reason, trace = "failed", f"out of memory: {error}".strip(), traceback.format_exc()
            self._out_of_memory(error)
        except Exception as error:  # an exception in user code: recorded, never raised
            status, reason, trace = "failed", f"{type(error).__name__}: {error}", traceback.format_exc()
        finally:
            self._loop_seconds = max(0.0, time.perf_counter() - loop_started - paused_seconds)
            steps_done = self.step - self._first_step
            self._loop_samples = steps_done * samples_per_step
            self._loop_tokens = self._loop_samples * tokens_per_sample
            source.close()
        if losses and not self._flush_diverged:
            try:
                self._flush(window_start, losses, norms, lrs, samples_per_step, tokens_per_sample)
            except Exception:
                pass
        if status == "completed" and self._writer is not None:
            try:
                self._settle_store()
            except _Stop as stop:
                status, reason = stop.status, stop.reason
        if status == "completed":
            try:
                self.save_checkpoint("final")
            except Exception as error:
                status, reason, trace = "failed", f"final checkpoint failed: {error}", traceback.format_exc()
        return self._finish(status, reason, trace)

    def _elapsed(self) -> float:
        started = getattr(self, "_loop_started_at", None)
        return self._elapsed_before + (time.perf_counter() - started if started is not None else 0.0)

    def _timed(self, work) -> float:
        started = time.perf_counter()
        work()
        return time.perf_counter() - started

    # -- pieces of the loop ------------------------------------------------------------------------
    def _settle_store(self) -> None:
        """A run completes only once its last metrics are in the store: if the disk is full at the end,
        pause with the disk_full finding (as mid-run) until a resume finds room; a stop ends it there."""
        while True:
            try:
                self._writer.flush()
                return
            except sqlite3.Error as error:
                if not self.paused:
                    self._storage_trouble("store", error)
                self._handle_commands()  # blocks while paused; a resume retries the writes first

    def _handle_commands(self) -> float:
        """Apply queued commands; blocks while paused. Returns seconds spent paused."""
        paused_for = 0.0
        while True:
            try:
                command, arg = self._commands.get_nowait() if not self.paused else self._commands.get(timeout=0.25)
            except queue.Empty:
                if not self.paused:
                    return paused_for
                paused_for += 0.25
                self._heartbeat()
                if self.poll_store_commands:
                    self._poll_store()
                continue
            if command == "pause" and not self.paused:
                self.paused = True
                self.log(f"paused at step {self.step}", kind="status", paused=True)
            elif command == "resume" and self.paused:
                if self._writer is not None and self._writer.error is not None:
                    try:  # retry the pending writes now; stay paused if the store is still unwritable
                        self._writer.flush()
                    except Exception as error:
                        self.log(f"still cannot write the run store: {error}", kind="error")
                        continue
                self.paused = False
                self.log(f"resumed at step {self.step}", kind="status", paused=False)
            elif command == "checkpoint":
                self._checkpoint_or_pause("manual")
            elif command == "profile" and self._profiler is None:
                from workbench.training.profiling import StepProfiler

                self._profiler = StepProfiler(arg, self.device)
                self.log(f"profiling the next {arg} steps", kind="log")
            elif command == "set_lr":
                old = self.optimizer.param_groups[0]["lr"]
                scale_learning_rate(self.optimizer, self.scheduler, arg)
                self.log(f"learning rate {old:.3g} -> {arg:.3g} at step {self.step}", kind="log")
            elif command == "stop":
                status, reason = arg
                self.paused = False
                try:
                    self.save_checkpoint("stop")
                except (OSError, sqlite3.Error) as error:  # the earlier checkpoints are intact
                    self.log(f"stop checkpoint failed: {error}", kind="error")
                raise _Stop(status, reason or f"{status} on request at step {self.step}")

    def _heartbeat(self) -> None:
        now = time.monotonic()
        if self._writer is not None and now - self._last_heartbeat >= HEARTBEAT_INTERVAL_S:
            self._last_heartbeat = now
            self._writer.heartbeat(self.step)

    def _poll_store(self) -> None:
        """Commands sent from another process (`workbench stop`, an attached TUI) via the store."""
        now = time.monotonic()
        if now - self._last_poll < STORE_POLL_INTERVAL_S or not self.topology.is_main:
            return
        self._last_poll = now
        try:
            commands = self.store.take_commands(self.run_id)
        except sqlite3.Error:  # a busy or full store: try again next time
            return
        for command, arg in commands:
            if command == "set_lr":
                try:
                    self.set_lr(float(arg))
                except (TypeError, ValueError):
                    self.log(f"ignored set_lr with bad value {arg!r}")
            elif command == "stop":
                self.stop()
            elif command in ("pause", "resume", "checkpoint"):
                self._commands.put((command, None))

    def _flush(self, window_start, losses, norms, lrs, samples_per_step, tokens_per_sample) -> None:
        """Publish the metrics since the last flush (one host read-back on CUDA)."""
        if not losses:
            return
        for callback in self.callbacks:
            callback.on_flush_start(self)
        bad = None
        if not isinstance(losses[0], float):  # device scalars: one transfer for the whole window
            stacked = torch.stack([torch.stack(losses), torch.stack(norms).to(losses[0].device)]).float().cpu()
            losses, norms = stacked[0].tolist(), stacked[1].tolist()
            bad = next((i for i, (lv, nv) in enumerate(zip(losses, norms)) if not math.isfinite(lv)
                        or (self.scaler is None and not math.isfinite(nv))), None)
            if bad is not None:  # publish up to the bad step, then stop as diverged below
                losses, norms, lrs = losses[: bad + 1], norms[: bad + 1], lrs[: bad + 1]
                self._flush_diverged = True
        if self.topology.distributed:
            losses = distributed.mean_across_ranks(losses, self.device, self.topology)
            for command in distributed.broadcast_object(self._replicated, self.topology):
                self._commands.put(command)
            self._replicated = []
        now = time.perf_counter()
        elapsed = now - self._window_time
        self._window_time = now
        n = len(losses)
        rows = self._record_rows(window_start, losses, norms, lrs)
        step = window_start + n - 1
        extra = {"steps_per_s": n / elapsed if elapsed > 0 else 0.0,
                 "samples_per_s": n * samples_per_step / elapsed if elapsed > 0 else 0.0}
        if tokens_per_sample:
            extra["tokens_per_s"] = extra["samples_per_s"] * tokens_per_sample
        extra.update(self.memory.read())
        if self.gpu_monitor is not None:
            extra.update(self.gpu_monitor.latest())
        peak = max(v for k, v in extra.items() if k.startswith("mem/") and k != "mem/cuda_reserved_mb")
        self._peak_memory = max(self._peak_memory or 0.0, peak)
        for group in self.optimizer.param_groups[1:]:
            extra[f"lr/{group.get('name', 'group')}"] = float(group["lr"])
        extra["epoch"] = self.train_source.order.epoch + self.train_source.order.position / self.train_source.order.size
        extra["time_s"] = self._elapsed()  # wall time since the run started (for x = time and time-to-target)
        extra["samples_seen"] = float(self._samples_seen)
        rows += [(step, name, value) for name, value in extra.items()]
        self.last_train_loss = sum(losses) / n
        batch = TelemetryBatch(step=step, elapsed=time.time(), rows=rows, epoch=extra["epoch"])
        if self._writer is not None:
            self._writer.metrics(rows)
            self._writer.heartbeat(self.step)
            self._last_heartbeat = time.monotonic()
            if self._writer.error is not None and not self.paused:
                self._storage_trouble("store", self._writer.error)
        for callback in self.callbacks:
            callback.on_batch(self, batch)
        if self.poll_store_commands:
            self._poll_store()
        if bad is not None:
            what = "loss" if not math.isfinite(losses[bad]) else "grad"
            self._nonfinite(window_start + bad, None, what, losses[bad], norms[bad])

    def _record_rows(self, start, losses, norms, lrs) -> list[tuple[int, str, float]]:
        rows: list[tuple[int, str, float]] = []
        for offset, (loss, norm, lr) in enumerate(zip(losses, norms, lrs)):
            step = start + offset
            rows.append((step, "loss", loss))
            rows.append((step, "grad_norm", norm))
            rows.append((step, "lr", float(lr)))
        return rows

    def _nonfinite(self, step: int, batch: Any, what: str, loss: float, norm: float) -> None:
        """Stop as diverged; diagnostics callbacks replay the batch to name the layer."""
        before = len(self.findings)
        for callback in self.callbacks:
            try:
                callback.on_nonfinite(self, step, batch, what)
            except Exception as error:
                self.log(f"diagnostics replay failed: {error}", kind="error")
        if not any(code.startswith("nonfinite") for code, _ in list(self.findings)[before:]):
            self.report_finding({
                "code": "nonfinite_loss" if what == "loss" else "nonfinite_grad",
                "severity": "critical",
                "step": step,
                "layer": None,
                "message": f"non-finite {what} at step {step:,} (loss={loss}, grad norm={norm})",
                "remedy": "lower the learning rate, enable gradient clipping (train.grad_clip = 1.0), "
                          "check the data for NaN/inf",
                "evidence": {"loss": loss, "grad_norm": norm},
            })
        self.optimizer.zero_grad(set_to_none=True)
        # The weights are still the last good ones on CPU (checked before optimizer.step()).
        try:
            self.save_checkpoint("last_good")
        except Exception:
            pass
        raise _Stop("diverged", f"non-finite {what} at step {step}")

    def _checkpoint_or_pause(self, kind: str) -> None:
        """A checkpoint that cannot be written (disk full, permissions) pauses the run instead of ending it:
        the previous checkpoint is intact (atomic writes) and nothing in memory is lost."""
        try:
            if self._writer is not None:
                # Metrics up to this step reach the store first: a resume from this checkpoint after a
                # kill -9 must not find a gap between the last committed metrics and the checkpoint.
                self._writer.flush()
            self.save_checkpoint(kind)
        except (OSError, sqlite3.Error) as error:
            self._storage_trouble("checkpoint", error)

    def _storage_trouble(self, what: str, error: BaseException) -> None:
        full = "full" in str(error).lower() or getattr(error, "errno", None) == 28  # ENOSPC
        self.report_finding({
            "code": "disk_full" if full else "storage_error",
            "severity": "critical",
            "step": self.step,
            "layer": None,
            "message": f"cannot write the {what} at step {self.step:,}: {error}; the run is paused, nothing is lost",
            "remedy": "free disk space (or fix the runs dir permissions), then resume the run "
                      "(TUI: resume key; shell: workbench control RUN_ID resume)",
            "evidence": {"error": str(error)[:300], "what": what},
        })
        self._commands.put(("pause", None))

    def _out_of_memory(self, error: BaseException) -> None:
        self.report_finding({
            "code": "out_of_memory",
            "severity": "critical",
            "step": self.step,
            "layer": None,
            "message": f"out of memory at step {self.step:,}",
            "remedy": "lower train.batch_size (keep the effective batch with train.grad_accum), use "
                      "train.precision = bf16/fp16, or enable activation checkpointing",
            "evidence": {"batch_size": self.preset.train.batch_size, "error": str(error)[:300]},
        })
        if self.device.type == "cuda":
            torch.cuda.empty_cache()

    def _probe_before_step(self) -> dict[str, Any]:
        """Per-layer gradient norms, and a copy of the weights to measure this step's update."""
        names = [name for name, p in self.named_trainable if p.grad is not None]
        grads = [p.grad for _, p in self.named_trainable if p.grad is not None]
        weights = [p for _, p in self.named_trainable if p.grad is not None]
        with torch.no_grad():
            grad_norms = torch.stack(torch._foreach_norm(grads)).float().cpu().tolist() if grads else []
            before = [w.detach().clone() for w in weights]
        return {"names": names, "grad_norms": grad_norms, "before": before, "weights": weights}

    def _probe_after_step(self, step: int, probe: dict[str, Any]) -> None:
        with torch.no_grad():
            if probe["weights"]:
                deltas = torch._foreach_sub(probe["weights"], probe["before"])
                update = torch.stack(torch._foreach_norm(deltas)).float().cpu().tolist()
                weight = torch.stack(torch._foreach_norm(probe["weights"])).float().cpu().tolist()
            else:
                update, weight = [], []
        per_param_grad = dict(zip(probe["names"], probe["grad_norms"]))
        layer_grad: dict[str, float] = {}
        layer_update: dict[str, float] = {}
        layer_weight: dict[str, float] = {}
        for name, g, u, w in zip(probe["names"], probe["grad_norms"], update, weight):
            layer = layer_of(name)
            layer_grad[layer] = math.sqrt(layer_grad.get(layer, 0.0) ** 2 + g * g)
            layer_update[layer] = math.sqrt(layer_update.get(layer, 0.0) ** 2 + u * u)
            layer_weight[layer] = math.sqrt(layer_weight.get(layer, 0.0) ** 2 + w * w)
        ratios = {layer: layer_update[layer] / layer_weight[layer] if layer_weight[layer] > 0 else 0.0
                  for layer in layer_update}
        rows = [(step, f"grad_norm/{layer}", value) for layer, value in layer_grad.items()]
        rows += [(step, f"update_ratio/{layer}", value) for layer, value in ratios.items()]
        if self._writer is not None:
            self._writer.metrics(rows)
        result = {"grad_norms": layer_grad, "update_ratios": ratios, "param_grad_norms": per_param_grad}
        for callback in self.callbacks:
            callback.on_probe_end(self, step, result)

    @torch.no_grad()
    def _evaluate(self) -> dict[str, float]:
        """Val loss and the task's metric (accuracy, perplexity or MAE) on fixed val batches."""
        config = self.preset.train
        model = self.ema.module if self.ema is not None else self.model
        forward = model if self.ema is not None else self.forward_model
        model.eval()
        task = self.preset.task
        total_loss, total_n, correct, counted, abs_err, err_n = 0.0, 0, 0, 0, 0.0, 0
        for batch in eval_batches(self.val_data, config.batch_size, config.eval_batches, self.info.collate):
            batch = to_device(batch, self.device)
            x, y = split_batch(batch)
            with self._autocast():
                if self.loss_fn is None:
                    output = forward(**x, labels=y) if isinstance(x, dict) else forward(x, labels=y)
                    loss = output["loss"] if hasattr(output, "keys") else output[0]
                    logits = output["logits"] if hasattr(output, "keys") and "logits" in output else None
                else:
                    output = forward(**x) if isinstance(x, dict) else forward(x)
                    logits = getattr(output, "logits", output)
                    loss = self.loss_fn(logits, y)
            n = batch_size_of(x)
            total_loss += float(loss) * n
            total_n += n
            if logits is None or y is None:
                continue
            logits = logits.float()
            if task in ("classification", "seq2seq") or (task == "language_modeling" and self.loss_fn is not None):
                predicted = logits.argmax(dim=-1)
                mask = y != -100
                correct += int((predicted[mask] == y[mask]).sum())
                counted += int(mask.sum())
            elif task == "binary":
                predicted = logits.reshape(y.shape) > 0
                correct += int((predicted == (y > 0.5)).sum())
                counted += y.numel()
            elif task in ("regression", "forecasting"):
                abs_err += float((logits.reshape(y.shape) - y).abs().sum())
                err_n += y.numel()
        if not total_n:
            model.train()
            self.model.train()
            return {}
        metrics = {"val_loss": total_loss / total_n}
        if counted:
            metrics["val_accuracy"] = correct / counted
        if err_n:
            metrics["val_mae"] = abs_err / err_n
        if task in ("language_modeling", "seq2seq"):
            metrics["val_perplexity"] = math.exp(min(metrics["val_loss"], 50.0))
        step = self.step
        improved = math.isfinite(metrics["val_loss"]) and (
            self.best_val_loss is None or metrics["val_loss"] < self.best_val_loss
        )
        meaningful = improved and (
            self.best_val_loss is None or self.best_val_loss - metrics["val_loss"] > config.early_stop_min_delta
        )
        if improved:
            self.best_val_loss = metrics["val_loss"]
        self._evals_since_best = 0 if meaningful else self._evals_since_best + 1
        metrics["best_val_loss"] = self.best_val_loss if self.best_val_loss is not None else metrics["val_loss"]
        self.last_eval = metrics
        rows = [(step, name, value) for name, value in metrics.items()]
        if self._writer is not None:
            self._writer.metrics(rows)
        for callback in self.callbacks:
            callback.on_batch(self, TelemetryBatch(step=step, elapsed=time.time(), rows=rows))
            callback.on_eval(self, step, metrics)
        model.train()
        self.model.train()
        if task == "language_modeling":
            self._sample(step)
        if improved:
            self.save_checkpoint("best", val_loss=metrics["val_loss"])
        if config.early_stop_patience and self._evals_since_best >= config.early_stop_patience:
            self.save_checkpoint("stop")
            raise _Stop("completed", f"early stopping: no val improvement in {self._evals_since_best} evaluations")
        return metrics

    def _sample(self, step: int) -> None:
        from workbench.models.sampling import generate_sample

        try:
            text = generate_sample(self.ema.module if self.ema is not None else self.model, self.info,
                                   seed=self.preset.train.seed + step)
        except Exception as error:  # a sample is a nicety; never fail the run for it
            self.log(f"sampling failed: {type(error).__name__}: {error}", kind="error")
            return
        if text:
            self.log(text, kind="sample")

    # -- checkpoints -------------------------------------------------------------------------------
    def checkpoint_dir(self) -> Path:
        return self.store.run_dir(self.run_id) / "checkpoints"

    def save_checkpoint(self, kind: str, val_loss: float | None = None) -> Path | None:
        """Atomically save everything an exact resume needs. kinds: periodic, manual, stop, final, best,
        last_good. The newest `keep_checkpoints` non-best checkpoints are kept. Rank 0 only."""
        if not self.topology.is_main:
            return None
        payload = {
            "format": CHECKPOINT_FORMAT,
            "kind": kind,
            "step": self.step,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler is not None else None,
            "ema": self.ema.state_dict() if self.ema is not None else None,
            "rng": rng_state(),
            "data": self.train_source.state_dict(),
            "best_val_loss": self.best_val_loss,
            "evals_since_best": self._evals_since_best,
            "samples_seen": self._samples_seen,
            "elapsed": self._elapsed(),
        }
        folder = self.checkpoint_dir()
        path = folder / ("best.pt" if kind == "best" else f"step-{self.step:09d}.pt")
        atomic_save(payload, path)
        self.store.add_checkpoint(self.run_id, self.step, str(path), kind,
                                  val_loss if val_loss is not None else self.last_eval.get("val_loss"))
        if kind != "best":
            if path in self._checkpoints:
                self._checkpoints.remove(path)
            self._checkpoints.append(path)
            while len(self._checkpoints) > self.preset.train.keep_checkpoints:
                old = self._checkpoints.pop(0)
                old.unlink(missing_ok=True)
                self.store.remove_checkpoint(self.run_id, str(old))
        self.log(f"checkpoint ({kind}) at step {self.step}: {path}", kind="checkpoint", path=str(path))
        return path
