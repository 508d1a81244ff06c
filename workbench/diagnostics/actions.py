"""What a user can do about a divergence: roll back to the last healthy state and continue, safer.

On a non-finite loss or gradient the trainer saves a "last_good" checkpoint and stops as diverged: the
newest in-memory snapshot taken before the explosion began (`workbench.training.snapshots`), or, without
one, the weights from just before the bad step. The actions here continue that same run from its newest
non-best checkpoint with either the learning rate x 0.1 or gradient clipping at 1.0, and say which step
they return to. The changed setting is written into the run's stored config, so a later `workbench train
--resume RUN_ID` keeps it. Each action returns a Trainer that has not started: call `.run()` (headless,
`workbench rollback`) or `.start()` (the dashboard's `a`) on it.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from workbench.errors import ConfigError
from workbench.training.telemetry import Callback

LR_FACTOR = 0.1
CLIP_NORM = 1.0


@dataclass(frozen=True)
class DivergenceAction:
    """An action the findings panel offers on a divergence."""

    key: str
    label: str


# Short: the dialog's question already says where the run goes back to, and a label must fit its width.
ROLLBACK_LOWER_LR = DivergenceAction("rollback_lower_lr", f"Roll back, continue with LR x {LR_FACTOR:g}")
ROLLBACK_CLIP = DivergenceAction("rollback_clip", f"Roll back, continue with gradient clipping at {CLIP_NORM:g}")


class _AnnounceRollback(Callback):
    """Says, in the run's log, which step the run went back to and what changed."""

    def __init__(self, diverged_at: int, change: str):
        self.diverged_at = diverged_at
        self.change = change

    def on_setup(self, trainer) -> None:
        trainer.log(f"rolled back to step {trainer.step:,} (diverged at step {self.diverged_at:,}); "
                    f"continuing with {self.change}", kind="log")
DIVERGENCE_ACTIONS = (ROLLBACK_LOWER_LR, ROLLBACK_CLIP)


class _ScaleLearningRate(Callback):
    """Scales the LR once the resumed optimizer and scheduler state is loaded (on_setup runs after that)."""

    def __init__(self, factor: float):
        self.factor = factor

    def on_setup(self, trainer) -> None:
        from workbench.training.optim import scale_learning_rate

        old = trainer.optimizer.param_groups[0]["lr"]
        base = trainer.scheduler.base_lrs[0] if getattr(trainer.scheduler, "base_lrs", None) else old
        reference = old if old > 0 else base
        scale_learning_rate(trainer.optimizer, trainer.scheduler, reference * self.factor)
        trainer.log(f"learning rate {old:.3g} -> {trainer.optimizer.param_groups[0]['lr']:.3g} "
                    f"(x{self.factor:g}) from step {trainer.step:,}", kind="log")


def _rollback_run(store, run_id: str) -> dict:
    run = store.get_run(run_id)
    if run is None:
        raise ConfigError(f"run {run_id!r}: not found in {store.path}")
    if run["status"] == "running":
        raise ConfigError(f"run {run_id!r}: still running (pid {run['pid']}); stop it first")
    rollback_point(store, run_id)
    return run


def rollback_point(store, run_id: str) -> dict:
    """The checkpoint a rollback continues from (the newest non-best one): its `step`, `kind` and `path`."""
    usable = [c for c in store.checkpoints(run_id) if c["kind"] != "best" and Path(c["path"]).is_file()]
    if not usable:
        raise ConfigError(f"run {run_id!r}: no checkpoint to roll back to")
    return max(usable, key=lambda c: (c["step"], c.get("created_at") or 0))


def rollback_preset(run: dict, lr_factor: float | None = None, grad_clip: float | None = None):
    """The run's preset with the rollback's change applied (LR x factor, or clipping)."""
    from workbench.presets import preset_from_dict

    if lr_factor is not None and not (0 < lr_factor < 1e6):
        raise ConfigError("--lr-factor: must be a positive number (0.1 divides the learning rate by 10)")
    if grad_clip is not None and not (0 < grad_clip < float("inf")):
        raise ConfigError("--clip: must be a positive number (the gradient norm to clip at)")
    config = copy.deepcopy(run["config"])
    if lr_factor is not None:
        optim = config.setdefault("optim", {})
        optim["lr"] = float(optim.get("lr", 3e-4)) * lr_factor
        optim["group_lr"] = {k: float(v) * lr_factor for k, v in (optim.get("group_lr") or {}).items()}
    if grad_clip is not None:
        config.setdefault("train", {})["grad_clip"] = float(grad_clip)
    return preset_from_dict(config)


def rollback_trainer(store, run_id: str, lr_factor: float | None = None, grad_clip: float | None = None,
                     callbacks: Iterable[Callback] = (), diagnostics: bool = True):
    """A Trainer that resumes `run_id` from its newest non-best checkpoint with a lower LR and/or clipping."""
    from workbench.diagnostics import default_callbacks
    from workbench.training.trainer import Trainer

    run = _rollback_run(store, run_id)
    preset = rollback_preset(run, lr_factor, grad_clip)
    store.update_run(run_id, config=preset.model_dump(mode="json"))
    change = " and ".join(([f"LR x {lr_factor:g}"] if lr_factor is not None else [])
                          + ([f"gradient clipping at {grad_clip:g}"] if grad_clip is not None else [])) or "no change"
    extra: list[Callback] = [_AnnounceRollback(int(run["steps"] or 0), change)]
    extra += [_ScaleLearningRate(lr_factor)] if lr_factor is not None else []
    if diagnostics:
        extra += default_callbacks(preset)
    return Trainer(preset, store, callbacks=[*extra, *callbacks], resume_run_id=run_id)


def rollback_with_lower_lr(store, run_id: str, factor: float = LR_FACTOR, callbacks: Iterable[Callback] = ()):
    """Roll back to the last healthy state and continue with LR x `factor` (0.1)."""
    return rollback_trainer(store, run_id, lr_factor=factor, callbacks=callbacks)


def rollback_with_clipping(store, run_id: str, clip: float = CLIP_NORM, callbacks: Iterable[Callback] = ()):
    """Roll back to the last healthy state and continue with gradient clipping at `clip` (1.0)."""
    return rollback_trainer(store, run_id, grad_clip=clip, callbacks=callbacks)


def apply_action(key: str, store, run_id: str, callbacks: Iterable[Callback] = ()):
    """The Trainer for a DIVERGENCE_ACTIONS key (what the findings panel calls)."""
    if key == ROLLBACK_LOWER_LR.key:
        return rollback_with_lower_lr(store, run_id, callbacks=callbacks)
    if key == ROLLBACK_CLIP.key:
        return rollback_with_clipping(store, run_id, callbacks=callbacks)
    raise ConfigError(f"unknown divergence action {key!r} (known: "
                      f"{', '.join(action.key for action in DIVERGENCE_ACTIONS)})")
