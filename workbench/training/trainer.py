"""The preset trainer behind the TUI, the headless CLI, detached runs and torchrun: set-up -> loop -> finish.

It is one client of the run session (`training/session.py`), which owns the record, telemetry,
findings, control and the ending; the step pieces, evaluation and checkpoints are small modules it
calls. `Trainer.run()` does set-up, the loop and the wrap-up on the calling thread; `Trainer.start()`
runs it on a background thread. Other threads steer it only through the thread-safe control methods
(pause, resume, stop, checkpoint_now, set_lr, profile), which queue commands the loop picks up
between steps.

Per-step cost is kept to what a hand-written loop does plus reading two scalars: on CPU the loss and
gradient norm are read every step (cheap there, and it lets a non-finite step be caught before the
weights are touched); on CUDA they stay on the device and are read back once per flush (`training/cadence.py`).
"""

from __future__ import annotations

import math
import random
import sqlite3
import threading
import time
import traceback
from contextlib import nullcontext
from dataclasses import replace
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import torch
from torch import nn

from workbench.builders import build_data, build_model, check_preset, load_fitted, save_fitted
from workbench.config import Preset
from workbench.errors import ConfigError
from workbench.notices import notices_to
from workbench.store import RunStore
from workbench.training import distributed
from workbench.training.batches import BatchSource, split_batch, to_device
from workbench.training.cadence import PROBE_BUDGET, Cadence
from workbench.training.checkpoints import (CheckpointKeeper, load_checkpoint, restore_rng_state,
                                            resumable_checkpoints, rng_state)
from workbench.training.device import MemoryMeter, pick_device
from workbench.training.evaluate import BestTracker, evaluate
from workbench.training.flat_grads import FlatGrads
from workbench.training.heap import frozen_heap
from workbench.training.losses import build_loss
from workbench.training.optim import build_optimizer, build_scheduler, scale_learning_rate
from workbench.training.session import RunResult, RunSession, StopRun
from workbench.training.snapshots import SnapshotKeeper, weight_norm
from workbench.training.step import (autocast, count_parameters, forward_loss, grad_norm, probe_after_step,
                                     probe_before_step, train_rows)
from workbench.training.telemetry import Callback, Event, TelemetryBatch
from workbench.training.threads import ThreadChoice, choose_threads

CHECKPOINT_FORMAT = 1

__all__ = ["CHECKPOINT_FORMAT", "RunResult", "Trainer", "seed_everything"]


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False


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
        dashboard: bool = False,
    ):
        self.preset = preset
        self.dashboard = dashboard  # a live dashboard's UI thread shares this process (the thread rule)
        self.threads: ThreadChoice | None = None
        self.store = store
        self.resume_run_id = resume_run_id
        self._new_run_id = run_id  # a detached run's id is chosen by its launcher
        self.topology = distributed.topology_from_env()
        self.world_size = self.topology.world_size
        self.rank = self.topology.rank
        self.session = RunSession(store, callbacks, self.topology, poll_store_commands)
        self.session.run_id = resume_run_id
        self.view = self.session.attach(self)
        self.thread: threading.Thread | None = None
        self.best = BestTracker(preset.train.early_stop_min_delta)
        self.last_eval: dict[str, float] = {}
        self.last_train_loss: float | None = None
        self.params_total = 0
        self.params_trainable = 0
        self.trainable: list[nn.Parameter] = []
        self.named_trainable: list[tuple[str, nn.Parameter]] = []
        self.device: torch.device | None = None
        self.model: nn.Module | None = None  # the module being trained (unwrapped from compile)
        self.info = None
        self.train_data = None
        self.val_data = None
        self.optimizer = None
        self.scheduler = None
        self.loss_fn = None
        self.autocast_dtype = None
        self.checkpoints: CheckpointKeeper | None = None
        self._loop_seconds = 0.0
        self._samples_seen = 0
        self._loop_samples = 0
        self._loop_tokens = 0
        self._first_step = 0
        self._peak_memory: float | None = None
        self._flush_diverged = False
        self._elapsed_before = 0.0
        self._loop_started_at: float | None = None
        self._profiler = None
        self.gpu_monitor = None

    # -- the session's state, read through the trainer --------------------------------------------
    @property
    def callbacks(self) -> list[Callback]:
        return self.session.callbacks

    @property
    def run_id(self) -> str | None:
        return self.session.run_id

    @property
    def step(self) -> int:
        return self.session.step

    @step.setter
    def step(self, value: int) -> None:
        self.session.step = value

    @property
    def status(self) -> str:
        return self.session.status

    @property
    def paused(self) -> bool:
        return self.session.paused

    @property
    def findings(self) -> dict[tuple[str, str], dict[str, Any]]:
        return self.session.findings

    @property
    def result(self) -> RunResult | None:
        return self.session.result

    @property
    def best_val_loss(self) -> float | None:
        return self.best.best_val_loss

    # -- control, safe from any thread --------------------------------------------------------
    def pause(self) -> None:
        self.session.control.pause()

    def resume(self) -> None:
        self.session.control.resume()

    def stop(self, status: str = "stopped", reason: str | None = None) -> None:
        """Stop after the current step, saving a checkpoint first. status: stopped | interrupted."""
        self.session.control.stop(status, reason)

    def checkpoint_now(self) -> None:
        self.session.control.checkpoint()

    def profile(self, steps: int = 20) -> None:
        """Profile the next `steps` steps with torch.profiler; the report arrives as a "profile" event."""
        self.session.control.profile(steps)

    def set_lr(self, lr: float) -> None:
        self.session.control.set_lr(lr)

    def set_threads(self, threads: int) -> None:
        """torch's intra-op threads from the next step on (applied on the training thread, where they count)."""
        if not (isinstance(threads, int) and not isinstance(threads, bool) and 1 <= threads <= 1024):
            raise ValueError("threads must be an integer from 1 to 1024")
        self.session.control.send("set_threads", threads)

    def start(self) -> threading.Thread:
        """Run on a background thread; returns it. Poll `status`/`result`, or join the thread."""
        self.thread = threading.Thread(target=self.run, name="workbench-trainer", daemon=True)
        self.thread.start()
        return self.thread

    def wait_started(self, timeout: float | None = None) -> bool:
        """Block until set-up finished (the run is recorded, or failed to set up)."""
        return self.session.started.wait(timeout)

    # -- findings and events (what callbacks also reach through their view) ----------------------
    def report_finding(self, finding: dict[str, Any]) -> dict[str, Any]:
        return self.session.report_finding(finding)

    def log(self, text: str, kind: str = "log", **data: Any) -> None:
        self.session.log(text, kind, **data)

    # -- lifecycle ------------------------------------------------------------------------------
    def run(self) -> RunResult:
        """Set up, train, wrap up. Never raises: every ending is a RunResult."""
        try:
            try:
                self._setup()
            except ConfigError as error:
                self.session.status = "invalid"
                self.session.result = RunResult("invalid", None, 0, str(error), errors=error.problems)
                self.session.emit(Event("error", 0, str(error)))
                return self.session.result
            except Exception as error:  # an exception in user model/data code during set-up
                self.session.record_failed_setup(self.preset.name, self.preset.model_dump(mode="json"))
                return self._finish("failed", f"{type(error).__name__}: {error}", traceback.format_exc())
            finally:
                self.session.started.set()
            with frozen_heap():
                return self._train()
        except BaseException as error:  # last resort: the thread must never die silently
            return self._finish("failed", f"{type(error).__name__}: {error}", traceback.format_exc())

    def _setup(self) -> None:
        preset = self.preset
        config = preset.train
        check_preset(preset)
        distributed.init_process_group(self.topology)
        seed_everything(config.seed)
        self.device = pick_device(config.device)
        if config.precision == "fp16" and self.device.type != "cuda":
            raise ConfigError("train.precision: fp16 needs a CUDA device (use bf16 or fp32 on CPU)")
        with notices_to(lambda text: self.log(text, kind="log", setup=True)):  # slow builds say what they do
            # a resumed run sees its data through the statistics it learned on its first start
            fitted = load_fitted(self.store.run_dir(self.resume_run_id)) if self.resume_run_id else None
            data = build_data(preset, fitted=fitted)
            self.info = data.info
            model = build_model(preset, data.info)
        if not isinstance(model, nn.Module):
            raise ConfigError(f"model: builder returned {type(model).__name__}, not a torch.nn.Module")
        self.model = model.to(self.device)
        self.params_total, self.params_trainable = count_parameters(self.model)
        # Set here, on the thread that trains: torch's intra-op thread count is per thread under OpenMP.
        self.threads = choose_threads(config.threads, self.device.type, self.params_total, dashboard=self.dashboard)
        torch.set_num_threads(self.threads.threads)
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
        # On CPU the gradients live in one flat buffer once a backward has shown they all arrive (flat_grads.py)
        suits = FlatGrads.suits(self.trainable, self.device, self.topology.distributed, config.compile,
                                self.scaler is not None)
        self.flat_grads = FlatGrads(self.named_trainable) if suits else None
        self.train_source = BatchSource(
            data.train, config.batch_size, config.seed, collate=data.info.collate, num_workers=config.num_workers,
            rank=self.rank, world_size=self.world_size,
        )
        self.train_data = data.train
        self.val_data = data.val
        self.memory = MemoryMeter(self.device)
        from workbench.training.gpu_monitor import GpuMonitor

        self.gpu_monitor = GpuMonitor.start_for(self.device)
        kept: list[Path] = []
        if self.resume_run_id:
            kept = self._load_resume_state()
            self.session.reopen(self.resume_run_id)
        else:
            self.session.create(preset.name, preset.model_dump(mode="json"), run_id=self._new_run_id)
        if fitted is None and self.topology.is_main:
            save_fitted(self.store.run_dir(self.run_id), data.info)
        self.checkpoints = CheckpointKeeper(self.store, self.run_id, config.keep_checkpoints, kept)
        self.session.begin(params=self.params_total, device=str(self.device))
        # Known-good state in memory for a rollback (the start, then sane flush windows): see snapshots.py.
        self.snapshots = SnapshotKeeper()
        if self.topology.is_main:
            self.snapshots.take(self.step, self._snapshot_payload, self._weight_norm)
        if preset.model.trust_remote_code:
            self.session.report("remote_code_enabled",
                                "model.trust_remote_code = true: Python code shipped with the model weights was "
                                "allowed to run in this process", {"pretrained": preset.model.pretrained})
        self.log(
            f"{preset.name}: {self.params_total:,} parameters ({self.params_trainable:,} trainable) on "
            f"{self.device}", kind="setup", params=self.params_total, trainable=self.params_trainable,
            device=str(self.device),
        )
        self.log(self.threads.describe(), kind="log", threads=self.threads.threads, cores=self.threads.cores)

    def _load_resume_state(self) -> list[Path]:
        """Restore the newest usable checkpoint; returns the kept checkpoint files, oldest first."""
        usable = resumable_checkpoints(self.store, self.resume_run_id)
        if not usable:
            raise ConfigError(f"run {self.resume_run_id}: no checkpoint to resume from")
        state = load_checkpoint(usable[0], map_location=self.device)
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
        self.best.load_state_dict(state)
        self._samples_seen = int(state.get("samples_seen", 0))
        self._elapsed_before = float(state.get("elapsed", 0.0))
        return list(reversed(usable))

    def _finish(self, status: str, reason: str | None = None, trace: str | None = None) -> RunResult:
        self.session.status = status
        if self.gpu_monitor is not None:
            self.gpu_monitor.close()
        result = self.session.finish(status, reason, trace, self.stats())
        distributed.destroy_process_group()
        return result

    def stats(self) -> dict[str, Any]:
        """Throughput over the loop only, and the last known metrics."""
        seconds = self._loop_seconds
        steps_done = self.step - self._first_step
        return {
            "steps_per_second": steps_done / seconds if seconds > 0 else 0.0,
            "samples_per_second": self._loop_samples / seconds if seconds > 0 else 0.0,
            "tokens_per_second": self._loop_tokens / seconds if seconds > 0 and self._loop_tokens else None,
            "loop_seconds": seconds,
            "train_loss": self.last_train_loss,
            "best_val_loss": self.best_val_loss,
            "params": self.params_total,
            "trainable_params": self.params_trainable,
            "peak_memory_mb": self._peak_memory,
            **{key: value for key, value in self.last_eval.items()},
        }

    # -- the loop ---------------------------------------------------------------------------------
    def _train(self) -> RunResult:
        config = self.preset.train
        session = self.session
        control = session.control
        self._first_step = self.step
        self._loop_samples = 0
        self._loop_tokens = 0
        tokens_per_sample = self.info.tokens_per_sample or 0
        samples_per_step = config.batch_size * config.grad_accum * self.world_size
        host_sync = self.device.type != "cuda"
        accum = config.grad_accum
        clip = config.grad_clip
        # Flushes about FLUSH_HZ a second (or every log_every steps); probes every probe_every steps, within a
        # time budget at the default probe_every. Between flushes a step compares two integers.
        default_probes = config.probe_every == type(config).model_fields["probe_every"].default
        cadence = Cadence(config.log_every, config.probe_every, start=self.step,
                          probe_budget=PROBE_BUDGET if default_probes else None)
        self._cadence = cadence
        eval_every = config.eval_every
        checkpoint_every = config.checkpoint_every
        max_steps = config.max_steps
        params = self.trainable
        optimizer, scheduler, scaler, ema = self.optimizer, self.scheduler, self.scaler, self.ema
        forward, loss_fn, device, dtype = self.forward_model, self.loss_fn, self.device, self.autocast_dtype
        source = self.train_source
        flat = self.flat_grads
        # The window's per-step values go into slots allocated once (the cadence bounds a window).
        slots = cadence.max_window
        losses: list[Any] = [0.0] * slots
        norms: list[Any] = [0.0] * slots
        lrs: list[float] = [0.0] * slots
        filled = 0
        window_start = self.step
        self._window_time = time.perf_counter()
        self._peak_memory = None
        loop_started = self._loop_started_at = time.perf_counter()
        paused_seconds = 0.0
        status, reason, trace = "completed", None, None
        on_cpu = device.type == "cpu"
        self.model.train()  # once here; evaluation puts it back (a per-step call walks every module)
        # The DDP no_sync() context is needed only to accumulate over micro-batches under DDP.
        per_micro_sync = accum > 1 and distributed.wraps_ddp(forward)
        no_context = nullcontext()  # reusable, as is the autocast context: no per-step construction
        amp = autocast(device, dtype)
        # Without DDP accumulation or autocast the forward needs no context at all.
        plain_forward = not per_micro_sync and dtype is None
        commands_waiting = control.pending
        step = self.step  # the loop's own count; the session's copy is set after each step
        try:
            while step < max_steps:
                if commands_waiting():
                    paused_seconds += session.handle_commands(self._apply)
                    step = self.step
                probing = step >= cadence.next_probe
                if probing:
                    probe_started = time.perf_counter()
                    session.probe_start(step)
                    self.model.train()
                    if flat is not None:  # free the gradients: this backward shows whether they all still arrive
                        flat.release()
                batch = None
                loss_sum = None
                profiler = self._profiler
                for micro in range(accum):
                    if profiler is not None:
                        fetch_started = time.perf_counter()
                    batch = source.next() if on_cpu else to_device(source.next(), device, non_blocking=True)
                    if profiler is not None:
                        profiler.data_time(time.perf_counter() - fetch_started)
                    x, y = split_batch(batch)
                    if plain_forward:
                        loss, _ = forward_loss(forward, loss_fn, x, y)
                        (loss / accum if accum > 1 else loss).backward()
                    else:
                        # Under DDP only the last micro-step all-reduces the accumulated gradients (no_sync()).
                        with distributed.sync_gradients(forward, micro == accum - 1) if per_micro_sync else no_context:
                            with amp:
                                loss, _ = forward_loss(forward, loss_fn, x, y)
                            scaled = loss / accum if accum > 1 else loss
                            (scaler.scale(scaled) if scaler is not None else scaled).backward()
                    if accum > 1:
                        loss_sum = loss.detach() if loss_sum is None else loss_sum + loss.detach()
                if scaler is not None:
                    scaler.unscale_(optimizer)
                if flat is not None and not flat.holds_grads():
                    flat = self._adopt_flat_grads(flat, step)
                if flat is not None:
                    norm = flat.clip(clip) if clip > 0 else flat.norm()
                else:
                    norm = torch.nn.utils.clip_grad_norm_(params, clip, foreach=True) if clip > 0 else grad_norm(params)
                # (on the host path the loss is read at once, so it needs no detached copy)
                loss_value = loss_sum / accum if accum > 1 else loss if host_sync else loss.detach()
                if host_sync:  # (the flat buffer's norm is a float already)
                    loss_value = loss_value.item()
                    if flat is None:
                        norm = norm.item()
                losses[filled] = loss_value
                norms[filled] = norm
                lrs[filled] = optimizer.param_groups[0]["lr"]
                filled += 1
                if host_sync and ((not math.isfinite(loss_value) and not self.topology.distributed)
                                  or (scaler is None and not math.isfinite(norm))):
                    self._nonfinite(step, batch, "loss" if not math.isfinite(loss_value) else "grad", loss_value, norm)
                probe = probe_before_step(self.named_trainable) if probing else None
                if scaler is not None:
                    scaler.step(optimizer)
                    scaler.update()
                else:
                    optimizer.step()
                if flat is not None:
                    flat.zero()
                else:
                    optimizer.zero_grad(set_to_none=True)
                scheduler.step()
                if ema is not None:
                    ema.update_parameters(self.model)
                done = step + 1  # steps completed
                self.step = done
                self._samples_seen += samples_per_step
                if probing:
                    session.publish_probe(step, *probe_after_step(step, probe))
                    # The probe's own cost: the probing step less an ordinary one.
                    cost = time.perf_counter() - probe_started - (cadence.step_seconds or 0.0)
                    cadence.probed(step, cost)
                if profiler is not None and profiler.end_step():
                    self._profiler = None
                    self.log(profiler.report, kind="profile", rows=profiler.rows)
                if done >= cadence.next_flush or done == max_steps:
                    self._flush(window_start, losses[:filled], norms[:filled], lrs[:filled], samples_per_step,
                                tokens_per_sample)
                    window_start = done
                    filled = 0
                if (eval_every and done % eval_every == 0) or done == max_steps:
                    paused_seconds += self._timed(self._evaluate)
                if checkpoint_every and done % checkpoint_every == 0 and done < max_steps:
                    paused_seconds += self._timed(lambda: self._checkpoint_or_pause("periodic"))
                step = done
        except StopRun as stop:
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
        if filled and not self._flush_diverged:
            try:
                self._flush(window_start, losses[:filled], norms[:filled], lrs[:filled], samples_per_step,
                            tokens_per_sample)
            except Exception as error:  # the ending is recorded either way; say why the last rows are missing
                self.log(f"the last metrics could not be published: {type(error).__name__}: {error}", kind="error")
        if status == "completed" and session.writer is not None:
            try:
                session.settle_store(self._apply)
            except StopRun as stop:
                status, reason = stop.status, stop.reason
        if status == "completed":
            try:
                self.save_checkpoint("final")
            except Exception as error:
                status, reason, trace = "failed", f"final checkpoint failed: {error}", traceback.format_exc()
        return self._finish(status, reason, trace)

    def _elapsed(self) -> float:
        started = self._loop_started_at
        return self._elapsed_before + (time.perf_counter() - started if started is not None else 0.0)

    def _timed(self, work) -> float:
        started = time.perf_counter()
        work()
        return time.perf_counter() - started

    # -- pieces of the loop ------------------------------------------------------------------------
    def _apply(self, command: str, arg: Any) -> None:
        """The commands the session leaves to the loop (it handles pause and resume itself)."""
        if command == "checkpoint":
            self._checkpoint_or_pause("manual")
        elif command == "profile" and self._profiler is None:
            from workbench.training.profiling import StepProfiler

            self._profiler = StepProfiler(arg, self.device)
            self.log(f"profiling the next {arg} steps", kind="log")
        elif command == "set_threads":
            old = torch.get_num_threads()
            torch.set_num_threads(arg)
            self.threads = replace(self.threads, threads=arg, why="train.threads") if self.threads else None
            self.log(f"intra-op threads {old} -> {arg} at step {self.step}", kind="log", threads=arg)
        elif command == "set_lr":
            old = self.optimizer.param_groups[0]["lr"]
            scale_learning_rate(self.optimizer, self.scheduler, arg)
            self.log(f"learning rate {old:.3g} -> {arg:.3g} at step {self.step}", kind="log")
        elif command == "stop":
            status, reason = arg
            try:
                self.save_checkpoint("stop")
            except (OSError, sqlite3.Error) as error:  # the earlier checkpoints are intact
                self.log(f"stop checkpoint failed: {error}", kind="error")
            raise StopRun(status, reason or f"{status} on request at step {self.step}")

    def _adopt_flat_grads(self, flat: FlatGrads, step: int) -> FlatGrads | None:
        """Move freshly computed gradients into the flat buffer, or stop using it for good when a
        parameter got no gradient (a zero in the buffer would make the optimizer step it)."""
        missing = flat.adopt()
        if missing is None:
            return flat
        self.flat_grads = None
        self.log(f"{missing} got no gradient at step {step:,}: gradients are freed after each step from now "
                 "on (not kept in one buffer)", kind="log")
        return None

    def _flush(self, window_start, losses, norms, lrs, samples_per_step, tokens_per_sample) -> None:
        """Publish the metrics since the last flush (one host read-back on CUDA)."""
        if not losses:
            return
        session = self.session
        session.flush_start()
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
            session.control.exchange(self.topology)
        now = time.perf_counter()
        elapsed = now - self._window_time
        self._window_time = now
        n = len(losses)
        self._cadence.flushed(window_start + n, n, elapsed)
        rows = train_rows(window_start, losses, norms, lrs)
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
        order = self.train_source.order
        extra["epoch"] = order.epoch + order.position / order.size
        extra["time_s"] = self._elapsed()  # wall time since the run started (for x = time and time-to-target)
        extra["samples_seen"] = float(self._samples_seen)
        rows += [(step, name, value) for name, value in extra.items()]
        self.last_train_loss = sum(losses) / n
        series = (list(range(window_start, window_start + n)), losses, norms, [float(lr) for lr in lrs])
        session.publish(TelemetryBatch(step=step, elapsed=time.time(), rows=rows, epoch=extra["epoch"], series=series))
        if self.topology.is_main:  # the window is on the host already: judging it costs no sync
            self.snapshots.offer(window_start, losses, norms, self._snapshot_payload, self._weight_norm)
        if bad is not None:
            what = "loss" if not math.isfinite(losses[bad]) else "grad"
            self._nonfinite(window_start + bad, None, what, losses[bad], norms[bad])

    def _nonfinite(self, step: int, batch: Any, what: str, loss: float, norm: float) -> None:
        """Stop as diverged; diagnostics callbacks replay the batch to name the layer."""
        self.session.nonfinite(step, batch, what, loss, norm)
        self.optimizer.zero_grad(set_to_none=True)
        # The weights from before this step are often blown up already (finite but huge): the rollback
        # point is the newest snapshot from before the explosion began, else those weights.
        try:
            self._save_rollback_point(step)
        except Exception as error:  # the run still ends diverged; it just has no rollback point
            self.log(f"no rollback point saved: {type(error).__name__}: {error}", kind="error")
        raise StopRun("diverged", f"non-finite {what} at step {step}")

    def _checkpoint_or_pause(self, kind: str) -> None:
        """A checkpoint that cannot be written (disk full, permissions) pauses the run instead of ending it:
        the previous checkpoint is intact (atomic writes) and nothing in memory is lost."""
        try:
            if self.session.writer is not None:
                # Metrics up to this step reach the store first: a resume from this checkpoint after a
                # kill -9 must not find a gap between the last committed metrics and the checkpoint.
                self.session.writer.flush()
            self.save_checkpoint(kind)
        except (OSError, sqlite3.Error) as error:
            self.session.storage_trouble("checkpoint", error)

    def _out_of_memory(self, error: BaseException) -> None:
        self.session.report("out_of_memory", f"out of memory at step {self.step:,}",
                            {"batch_size": self.preset.train.batch_size, "error": str(error)[:300]})
        if self.device.type == "cuda":
            torch.cuda.empty_cache()

    def _evaluate(self) -> dict[str, float]:
        """Val loss and the task's metric on fixed val batches; the best checkpoint and early stopping."""
        config = self.preset.train
        model = self.ema.module if self.ema is not None else self.model
        forward = model if self.ema is not None else self.forward_model
        model.eval()
        try:
            metrics = evaluate(forward, self.loss_fn, self.val_data, self.device, self.preset.task,
                               config.batch_size, config.eval_batches, self.info.collate, self.autocast_dtype,
                               target_scale=self.info.extra.get("target_scale", 1.0))
        finally:
            model.train()
            self.model.train()
        if not metrics:
            return metrics
        step = self.step
        improved = self.best.update(metrics["val_loss"])
        metrics["best_val_loss"] = self.best_val_loss if self.best_val_loss is not None else metrics["val_loss"]
        self.last_eval = metrics
        self.session.publish_eval(step, metrics)
        if self.preset.task == "language_modeling":
            self._sample(step)
        if improved:
            self.save_checkpoint("best", val_loss=metrics["val_loss"])
        if config.early_stop_patience and self.best.evals_since_best >= config.early_stop_patience:
            self.save_checkpoint("stop")
            raise StopRun("completed",
                          f"early stopping: no val improvement in {self.best.evals_since_best} evaluations")
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

    def _snapshot_payload(self) -> dict[str, Any]:
        return self._checkpoint_payload("last_good")

    def _weight_norm(self) -> float:
        return weight_norm(self.trainable)

    def _save_rollback_point(self, diverged_at: int) -> None:
        """Write the rollback point as the `last_good` checkpoint and say which step it is."""
        growth = [f.get("step") for f in self.findings.values()
                  if f.get("code") in ("exploding_gradients", "lr_too_high") and f.get("step") is not None]
        seen = min(growth) if growth else None
        snapshot = self.snapshots.choose(diverged_at, growth_seen_at=seen, current_norm=self._weight_norm())
        if snapshot is None:  # the weights before the bad step are sane: they are the rollback point
            self.save_checkpoint("last_good")
            return
        # A resume takes the newest checkpoint: those written after the explosion began hold blown-up
        # weights, so they go; one written between the snapshot and that start is healthier still.
        start = min(self.snapshots.explosion_start(diverged_at), seen if seen is not None else diverged_at)
        for row in self.store.checkpoints(self.run_id):
            if row["kind"] == "best" or row["step"] <= snapshot.step:
                continue
            if row["step"] <= start and Path(row["path"]).is_file():
                self.log(f"rollback point: step {row['step']:,} (a checkpoint before the explosion); diverged at "
                         f"step {diverged_at:,}", kind="log")
                return
            Path(row["path"]).unlink(missing_ok=True)
            self.store.remove_checkpoint(self.run_id, row["path"])
            self.checkpoints.kept = [p for p in self.checkpoints.kept if str(p) != row["path"]]
        path = self.checkpoints.save(snapshot.payload, snapshot.step, "last_good", None)
        self.log(f"rollback point: step {snapshot.step:,}, the last healthy snapshot before the explosion "
                 f"(weight norm {snapshot.weight_norm:.4g}); diverged at step {diverged_at:,}: {path}",
                 kind="checkpoint", path=str(path), step=snapshot.step)

    def _checkpoint_payload(self, kind: str) -> dict[str, Any]:
        return {
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
            **self.best.state_dict(),
            "samples_seen": self._samples_seen,
            "elapsed": self._elapsed(),
        }

    def save_checkpoint(self, kind: str, val_loss: float | None = None) -> Path | None:
        """Atomically save everything an exact resume needs. kinds: periodic, manual, stop, final, best,
        last_good. The newest `keep_checkpoints` non-best checkpoints are kept. Rank 0 only."""
        if not self.topology.is_main:
            return None
        payload = self._checkpoint_payload(kind)
        path = self.checkpoints.save(payload, self.step, kind,
                                     val_loss if val_loss is not None else self.last_eval.get("val_loss"))
        self.log(f"checkpoint ({kind}) at step {self.step}: {path}", kind="checkpoint", path=str(path))
        return path
