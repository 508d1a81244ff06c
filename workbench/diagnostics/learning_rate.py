"""Learning rate too high or too low, from update-to-weight ratios on probes and the loss curve.

A healthy step changes each layer's weights by roughly 1e-3 of their norm. On every probe past the
warmup and MIN_STEP (Adam's first updates are unrepresentative) the median of the per-layer ratios |dW|/|W| is
projected to the schedule's peak LR (ratio x peak LR / LR at that step), so warmup and decay do not
count against the configured value. Layers that got (almost) no gradient are left out: they move only
by weight decay, which says nothing about the LR; so are layers that started at exactly zero (LoRA's
B matrices: any update is huge relative to a weight that was 0); with fewer than MIN_LAYERS trained
layers (a soft prompt, where large relative updates are the norm) the ratios are not judged.

Too high (any of): the projected median ratio above HIGH_RATIO on two probes in a row; or the
training loss climbing back above RISE_FACTOR x its scale (the loss at the start or the loss of a
model that has learned nothing, whichever is larger) over a BLOCK-step mean: the loss explodes.
Too low (any of): the projected median ratio below LOW_RATIO on two probes in a row; or below
SLOW_RATIO while the loss, after at least SLOW_STEPS steps, is still within SLOW_PROGRESS of where it
started (only info for pretrained or mostly frozen models, which may sit near their best from the start). Divergence to NaN/inf after the weights blew up is judged by the non-finite detector.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from workbench.diagnostics.base import Detector, RunContext, compact, fmt
from workbench.diagnostics.loss_curve import loss_scale

HIGH_RATIO = 0.1
LOW_RATIO = 1e-5
SLOW_RATIO = 3e-4
SLOW_STEPS = 300
SLOW_PROGRESS = 0.2
RISE_FACTOR = 1.5
BLOCK = 20
# Layers whose gradient is below this fraction of the largest layer's are left out of the median.
ZERO_GRAD = 1e-6
# A single trained layer (a soft prompt, say) says nothing general about the LR.
MIN_LAYERS = 2
# Ratios are judged from this step on (and after warmup): Adam's first updates are +-lr per element.
MIN_STEP = 50


def median_update_ratio(ratios: dict[str, float], grad_norms: dict[str, float] | None = None,
                        ) -> tuple[float | None, int]:
    """Median |dW|/|W| over the layers that got a gradient (a dead layer only moves by weight decay), and
    how many layers that median is over."""
    grads = grad_norms or {}
    largest = max((g for g in grads.values() if math.isfinite(g)), default=0.0)
    values = [v for layer, v in ratios.items() if math.isfinite(v) and v > 0
              and grads.get(layer, largest) > ZERO_GRAD * largest]
    return (float(np.median(values)) if values else None), len(values)


class LearningRateDetector(Detector):
    name = "learning_rate"

    def __init__(self):
        self.lr_at: dict[int, float] = {}
        self.zero_init: set[str] = set()
        self.high_streak = 0
        self.low_streak = 0
        self.rise_reported_at = -10**9

    def setup(self, ctx: RunContext) -> None:
        from workbench.training.step import layer_of

        # Layers that start at exactly zero (LoRA's B, zero-initialised heads) have no meaningful |dW|/|W|.
        nonzero: dict[str, bool] = {}
        for name, param in ctx.trainer.named_trainable:
            layer = layer_of(name)
            nonzero[layer] = nonzero.get(layer, False) or bool(param.detach().any())
        self.zero_init = {layer for layer, any_nonzero in nonzero.items() if not any_nonzero}

    def probe_start(self, ctx: RunContext, step: int) -> None:
        self.lr_at = {step: ctx.current_lr()}  # the LR this step's optimizer.step() will use

    def probe_end(self, ctx: RunContext, step: int, probe: dict[str, Any]) -> None:
        lr = self.lr_at.get(step, ctx.current_lr())
        ratios = {k: v for k, v in probe.get("update_ratios", {}).items() if k not in self.zero_init}
        median, layers = median_update_ratio(ratios, probe.get("grad_norms", {}))
        history = ctx.history
        first = history.first_step if history.first_step is not None else 0
        if median is None or layers < MIN_LAYERS or lr <= 0 or step < first + max(ctx.warmup_steps(), MIN_STEP):
            return
        base = ctx.base_lr()
        projected = median * base / lr
        evidence = {"median_update_ratio": median, "projected_ratio": projected, "lr": lr, "peak_lr": base,
                    "update_ratios": compact(ratios)}
        self.high_streak = self.high_streak + 1 if projected > HIGH_RATIO else 0
        self.low_streak = self.low_streak + 1 if projected < LOW_RATIO else 0
        if self.high_streak >= 2:
            decay = base * ctx.preset.optim.weight_decay
            note = (f"; weight decay alone shrinks them by LR x weight_decay = {decay:.0%} per step"
                    if decay >= 0.5 * projected else "")
            ctx.report("lr_too_high", step, f"each step changes the weights by {projected:.1%} of their norm at the "
                       f"peak LR {fmt(base)} (median over layers; ~0.1% is typical){note}", evidence)
        elif self.low_streak >= 2:
            ctx.report("lr_too_low", step, f"each step changes the weights by only {projected:.1e} of their norm at "
                       f"the peak LR {fmt(base)} (median over layers; ~1e-3 is typical)", evidence)
        elif projected < SLOW_RATIO:
            self._slow(ctx, step, projected, evidence)

    def _slow(self, ctx: RunContext, step: int, projected: float, evidence: dict[str, Any]) -> None:
        history = ctx.history
        start = history.start_loss
        if start is None or not history.steps or history.steps[-1] - (history.first_step or 0) < SLOW_STEPS:
            return
        current = history.recent_train_loss(50)
        if current is None or start <= 0 or (start - current) / start >= SLOW_PROGRESS:
            return
        ctx.report("lr_too_low", step, f"the loss moved only from {fmt(start)} to {fmt(current)} in "
                   f"{history.steps[-1] - (history.first_step or 0):,} steps, with updates of {projected:.1e} of the "
                   f"weights' norm per step at the peak LR {fmt(ctx.base_lr())} (~1e-3 is typical)",
                   {**evidence, "start_loss": start, "recent_loss": current},
                   severity="info" if ctx.mostly_frozen() or ctx.pretrained() else None)

    def after_flush(self, ctx: RunContext, added: int) -> None:
        history = ctx.history
        scale = loss_scale(ctx)
        if scale is None or scale <= 0 or len(history) < 2 * BLOCK:
            return
        step = history.steps[-1]
        if step - self.rise_reported_at < 10 * BLOCK:
            return
        recent = history.recent("loss", BLOCK)
        if not np.all(np.isfinite(recent)):
            return
        level = float(recent.mean())
        if level < RISE_FACTOR * scale:
            return
        self.rise_reported_at = step
        ctx.report("lr_too_high", step, f"the loss climbed to {fmt(level)} (mean of the last {BLOCK} steps), "
                   f"{fmt(level / scale)}x its starting scale {fmt(scale)}: it is exploding", {
                       "recent_loss": level, "scale": scale, "lr": ctx.current_lr(),
                   })
