"""The shape of the training-loss curve: plateaus and oscillation.

Both compare the loss with its scale: the loss of a model that has learned nothing (ln C for C classes,
the target variance for MSE) or the loss over the first steps, whichever is larger (for pretrained
models, the first steps' loss: they start far below chance).

Plateau: the mean loss over the last WINDOW steps improved by less than MIN_IMPROVEMENT (relative) on
the WINDOW steps before, and rose by less than MAX_RISE (a rising loss is not flat: see lr_too_high), while the loss is still at least HIGH_FRACTION of its scale, and the LR
schedule has not already decayed below LR_DECAYED of its peak (a flat tail there is expected). It is a
warning when the loss never really left its starting level (within STUCK_FRACTION), info otherwise,
and always info for pretrained or mostly frozen models (adapters, prompts: the frozen part bounds how
far the loss can fall).

Oscillation: over the last WINDOW steps, cut into BLOCK-step means, the total rise from block to block,
minus what batch-to-batch noise alone would give, is at least OSCILLATION_FRACTION of the scale, with
at least MIN_RISES real rises (each above RISE_FRACTION of the scale) and falls in between: the loss
swings instead of falling. Either is reported at most once per window.
"""

from __future__ import annotations

import math

import numpy as np

from workbench.diagnostics.base import Detector, RunContext, fmt
from workbench.numbers import format_ratio

WINDOW = 200
MIN_IMPROVEMENT = 0.01
MAX_RISE = 0.05
HIGH_FRACTION = 0.5
STUCK_FRACTION = 0.9
LR_DECAYED = 0.1
BLOCK = 20
OSCILLATION_FRACTION = 0.15
RISE_FRACTION = 0.03
MIN_RISES = 2


def loss_scale(ctx: RunContext) -> float | None:
    """What the loss is compared with: the larger of the no-learning reference and the starting loss."""
    start = ctx.history.start_loss
    reference = ctx.reference.loss if ctx.reference is not None else None
    if ctx.pretrained() or reference is None:
        return start
    if start is None:
        return reference
    return max(start, reference)


class PlateauDetector(Detector):
    name = "loss_plateau"

    def __init__(self, window: int = WINDOW):
        self.window = window
        self.reported_at = -10**9

    def after_flush(self, ctx: RunContext, added: int) -> None:
        history = ctx.history
        if len(history) < 2 * self.window or history.steps[-1] - self.reported_at < self.window:
            return
        scale = loss_scale(ctx)
        if not scale or scale <= 0:
            return
        losses = history.recent("loss", 2 * self.window)
        if not np.all(np.isfinite(losses)):
            return
        previous, current = float(losses[: self.window].mean()), float(losses[self.window:].mean())
        improvement = (previous - current) / abs(previous) if previous else 0.0
        if not (-MAX_RISE < improvement < MIN_IMPROVEMENT) or current < HIGH_FRACTION * scale:
            return
        base, lr = ctx.base_lr(), ctx.current_lr()
        if base > 0 and lr < LR_DECAYED * base:
            return
        start = history.start_loss if history.start_loss is not None else scale
        stuck = current >= STUCK_FRACTION * min(start, scale)
        step = history.steps[-1]
        self.reported_at = step
        severity = "warning" if stuck and not (ctx.pretrained() or ctx.mostly_frozen()) else "info"
        what = "has not moved from where it started" if stuck else "stopped improving"
        ctx.report("loss_plateau", step, f"the loss {what}: mean {fmt(current)} over the last {self.window} steps "
                   f"vs {fmt(previous)} before ({improvement:+.1%}); it started at {fmt(start)}", {
                       "recent_mean": current, "previous_mean": previous, "improvement": improvement,
                       "start_loss": start, "scale": scale, "window": self.window, "lr": lr,
                   }, severity=severity)


class OscillationDetector(Detector):
    name = "loss_oscillation"

    def __init__(self, window: int = WINDOW, block: int = BLOCK):
        self.window = window
        self.block = block
        self.reported_at = -10**9

    def after_flush(self, ctx: RunContext, added: int) -> None:
        history = ctx.history
        if len(history) < self.window or history.steps[-1] - self.reported_at < self.window:
            return
        scale = loss_scale(ctx)
        if not scale or scale <= 0:
            return
        losses = history.recent("loss", self.window)
        if not np.all(np.isfinite(losses)):
            return
        blocks = losses.reshape(-1, self.block)
        means = blocks.mean(axis=1)
        noise_sd = math.sqrt(float(blocks.var(axis=1, ddof=1).mean()))
        diffs = np.diff(means)
        # Expected total rise of block means from sampling noise alone (half-normal mean of each diff).
        noise_rise = (len(diffs)) * math.sqrt(2.0) * noise_sd / math.sqrt(self.block) / math.sqrt(2 * math.pi)
        rise = float(np.clip(diffs, 0, None).sum())
        fall = float(-np.clip(diffs, None, 0).sum())
        excess = (rise - noise_rise) / scale
        rises = int(np.sum(diffs > RISE_FRACTION * scale))
        if excess < OSCILLATION_FRACTION or rises < MIN_RISES or fall < 0.5 * rise:
            return
        step = history.steps[-1]
        self.reported_at = step
        ctx.report("loss_oscillation", step, f"the loss swings instead of falling: over the last {self.window} "
                   f"steps it rose {rises} times, by {fmt(rise)} in total ({format_ratio(excess)} of its scale "
                   f"{fmt(scale)} beyond batch noise), between {fmt(float(means.min()))} and "
                   f"{fmt(float(means.max()))}", {
                       "total_rise": rise, "total_fall": fall, "noise_rise": noise_rise, "excess": excess,
                       "rises": rises, "block_means": [float(m) for m in means], "scale": scale,
                   })
