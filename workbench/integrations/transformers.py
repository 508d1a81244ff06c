"""The Hugging Face `Trainer` as a workbench run: `Trainer(..., callbacks=[WorkbenchCallback()])`.

The callback records the run (`TrainingArguments` and the model config as its config), watches the
model and optimizer (gradient telemetry, probes, NaN origin, pause and set-lr through the optimizer's
step hooks, the HF scheduler's shape kept), logs what `on_log` gets under workbench names, and turns the
run's stop and checkpoint requests into `TrainerControl` flags (HF saves the checkpoint, and the run lists
it: `workbench show`). `callback.run` is the `Run` (None until training begins). The run stores the config
as JSON (other values as text).
"""

from __future__ import annotations

from typing import Any

from transformers import TrainerCallback

from workbench.integrations.names import numeric

# The keys of the one on_log call HF makes at the end of `train()` (whole-run aggregates: train_loss is
# the mean over every step). They are kept under their own names so they never overwrite a step's loss.
_END_OF_TRAINING = "train_runtime"
# Why a run ends failed when `train()` never reached on_train_end (HF has no hook for an exception).
UNFINISHED = "trainer.train() did not finish: it raised (an exception caught outside it) before on_train_end"


def _unwrapped(optimizer: Any, scheduler: Any) -> tuple[Any, Any]:
    """The torch optimizer and scheduler inside accelerate's AcceleratedOptimizer/AcceleratedScheduler:
    the step hooks fire on the inner optimizer, and set-lr scales the inner scheduler's base rates."""
    import torch

    inner = getattr(optimizer, "optimizer", None)
    if isinstance(inner, torch.optim.Optimizer):
        optimizer = inner
    inner = getattr(scheduler, "scheduler", None)
    if isinstance(inner, torch.optim.lr_scheduler.LRScheduler):
        scheduler = inner
    return optimizer, scheduler


class WorkbenchCallback(TrainerCallback):
    """Record, watch and steer a Hugging Face `Trainer` run. `runs_dir` and `name` as `workbench.init`'s;
    the name defaults to `TrainingArguments.run_name`, then the model's class name."""

    def __init__(self, runs_dir: str | None = None, name: str | None = None):
        self.runs_dir = runs_dir
        self.name = name
        self.run = None
        self._watched = False
        self._clipped = False
        self._save_kind = "periodic"  # why HF's next save happens: its own schedule unless the run asked

    # -- set-up ---------------------------------------------------------------------------------------
    def on_train_begin(self, args, state, control, model=None, optimizer=None, lr_scheduler=None, **kwargs):
        import workbench

        config: dict[str, Any] = {"trainer": "transformers", "training_args": args.to_dict()}
        if args.max_steps > 0:
            config["max_steps"] = args.max_steps  # the run's length, for the dashboard's progress
        model_config = getattr(model, "config", None)
        if model_config is not None and hasattr(model_config, "to_dict"):
            config["model_config"] = model_config.to_dict()
        if model is not None:
            config["model_class"] = type(model).__name__
        name = self.name or args.run_name or (type(model).__name__ if model is not None else "transformers")
        if self.run is not None and self.run.status == "running":  # the last train() raised and was caught
            self.run.finish("failed", UNFINISHED)
        self._watched = False
        # Every rank joins the run: rank 0 records it, the others follow its stop and set-lr at the same step.
        self.run = workbench.init(name, config=config, runs_dir=self.runs_dir)
        # HF writes the checkpoints (resumable with resume_from_checkpoint). Under torchrun the run's own
        # (rank 0, no collective) stay: a checkpoint request reaches rank 0 alone, and HF's save is for all.
        self.run.saves_checkpoints = args.world_size > 1
        self.run.unfinished_ending = ("failed", UNFINISHED)  # until on_train_end
        self._clipped = args.max_grad_norm is not None and args.max_grad_norm > 0
        self._watch(model, optimizer, lr_scheduler)

    def _watch(self, model, optimizer, lr_scheduler) -> None:
        """Watch once the optimizer exists (HF creates it before on_train_begin, except in a few
        delayed-creation set-ups, where the first step's hook catches it)."""
        if self._watched or self.run is None or model is None or optimizer is None:
            return
        self.run.watch(model, *_unwrapped(optimizer, lr_scheduler))
        self._watched = True

    # -- each step ------------------------------------------------------------------------------------
    def on_step_begin(self, args, state, control, model=None, optimizer=None, lr_scheduler=None, **kwargs):
        if not self._watched:
            self._watch(model, optimizer, lr_scheduler)

    def on_step_end(self, args, state, control, **kwargs):
        run = self.run
        if run is None:
            return
        if run.should_stop and not control.should_training_stop:
            control.should_training_stop = True
            # Stop checkpoints first, like every workbench run (after a divergence: the last good weights,
            # the bad step was skipped).
            if not control.should_save and not run.saves_checkpoints:
                control.should_save = True
                self._save_kind = "stop"
        if run.take_checkpoint_request():
            control.should_save = True  # HF saves into output_dir right after this hook
            self._save_kind = "manual"

    def on_save(self, args, state, control, **kwargs):
        """HF saved `output_dir/checkpoint-N`: listed among the run's checkpoints (rank 0 records it)."""
        from pathlib import Path

        from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

        kind, self._save_kind = self._save_kind, "periodic"
        folder = Path(args.output_dir) / f"{PREFIX_CHECKPOINT_DIR}-{state.global_step}"
        if self.run is not None and folder.exists():
            self.run.add_checkpoint(folder, kind, step=state.global_step)

    # -- metrics --------------------------------------------------------------------------------------
    def on_log(self, args, state, control, logs=None, **kwargs):
        if self.run is None or not logs:
            return
        last_step = max(0, state.global_step - 1)  # the step just taken (0-based), as the watched rows
        if _END_OF_TRAINING in logs:
            self.run.log(numeric(logs, rename=False), step=last_step)
            return
        metrics = numeric(logs)
        if self._watched and self._clipped and "grad_norm" in metrics:
            # HF's norm is the one before clipping; the watched per-step norm is after it. One series
            # of each, never mixed (a mix reads as a spike at every logging step).
            metrics["grad_norm_unclipped"] = metrics.pop("grad_norm")
        self.run.log(metrics, step=last_step)

    # -- the ending -----------------------------------------------------------------------------------
    def on_train_end(self, args, state, control, **kwargs):
        if self.run is not None:
            self.run.finish()  # the run knows why it ended: completed, stopped on request, or diverged
