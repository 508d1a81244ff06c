"""Overfitting and underfitting, judged at each evaluation from validation and training loss.

The training loss compared with each evaluation is the mean over the steps just before it (at most a
short window, never reaching into the first half of the run so far; measured with dropout and
augmentation on, so a healthy model often has train >= val), with its standard error. The val loss
is trusted only to its noise (`val_noise`): the standard error the evaluation reports from its
batches (`val_loss_se`), or the spread of the recent evaluations, and never better than NOISE_FLOOR
of its value. A change counts only beyond Z times the noise. Neither is judged while the LR is still
warming up.

Overfitting, after at least MIN_EVALS evaluations, either of:
- diverging: the best val loss is PATIENCE or more evaluations old and the val loss rose above it by
  more than its noise; the training loss fell since then by at least TRAIN_DROP (relative) and by more
  than its own noise; and the val-train gap widened by at least GAP_GROWTH of the best val loss and is
  at least MIN_GAP of the current val loss;
- memorised: val improved by less than MIN_IMPROVEMENT over the last PATIENCE evaluations while the
  training loss sits far below it: the gap is at least WIDE_GAP of the val loss, beyond the noise of
  both, and at least GAP_OF_REFERENCE of the no-learning loss (so two tiny losses never count as a gap).
A val loss that stays flat within its noise for PATIENCE evaluations while the training loss keeps
falling (beyond its noise) is only an info: val stopped improving at step S, and stopping early there
would have saved at least SAVED_FRACTION of the run.

Underfitting: at least MIN_EVALS evaluations; train and val loss both at least HIGH_FRACTION of the
loss of a model that has learned nothing (ln C, the target variance), within CLOSE of each other
(relative), val improved by less than MIN_IMPROVEMENT over the last PATIENCE evaluations, and the
training loss is flat too (the mean of the last FLAT_WINDOW steps improved by less than
MIN_IMPROVEMENT on the FLAT_WINDOW before): the model has stopped learning while still far from
fitting the training data, rather than not having started yet. Not judged for pretrained
models, whose useful losses can sit anywhere relative to chance; only info for mostly frozen models
(adapters, prompts, a head on a frozen backbone), whose capacity is bounded by design.
"""

from __future__ import annotations

import math

import numpy as np

from workbench.diagnostics.base import Detector, EvalPoint, RunContext, fmt

MIN_EVALS = 3
PATIENCE = 2
TRAIN_DROP = 0.05
GAP_GROWTH = 0.1
MIN_GAP = 0.25
WIDE_GAP = 0.5
GAP_OF_REFERENCE = 0.1
HIGH_FRACTION = 0.6
CLOSE = 0.15
MIN_IMPROVEMENT = 0.02
FLAT_WINDOW = 100
# A change counts when it exceeds Z standard errors of the estimates compared.
Z = 2.0
# A val estimate is never trusted to better than this fraction of its value...
NOISE_FLOOR = 0.01
# ...and without a reported standard error, the spread of up to this many recent evaluations stands in.
SPREAD_EVALS = 5
# The "val stopped improving" info is given only when early stopping would have saved this much.
SAVED_FRACTION = 0.1


def recent_improvement(evals: list[EvalPoint]) -> float:
    """Relative improvement of the best val loss of the last PATIENCE evaluations over the best before."""
    before = min(e.val_loss for e in evals[:-PATIENCE])
    recent = min(e.val_loss for e in evals[-PATIENCE:])
    return (before - recent) / abs(before) if before else 0.0


def val_noise(evals: list[EvalPoint], point: EvalPoint) -> float:
    """How far the val loss can move by chance: the evaluation's standard error (`val_loss_se`, from the
    spread of its batches), else the spread of the recent evaluations; at least NOISE_FLOOR of it."""
    noise = NOISE_FLOOR * abs(point.val_loss)
    se = point.metrics.get("val_loss_se")
    if se is not None and math.isfinite(se):
        return max(noise, float(se))
    recent = [e.val_loss for e in evals[-SPREAD_EVALS:]]
    if len(recent) >= 3:
        noise = max(noise, float(np.std(recent, ddof=1)))
    return noise


def _train_noise(*points: EvalPoint) -> float:
    return math.sqrt(sum((p.train_loss_se or 0.0) ** 2 for p in points))


class OverfittingDetector(Detector):
    name = "overfitting"

    def after_eval(self, ctx: RunContext, point: EvalPoint) -> None:
        evals = [e for e in ctx.history.evals if e.train_loss is not None]
        if len(evals) < MIN_EVALS or point.train_loss is None or not ctx.settled():
            return
        if not self._diverging(ctx, point, evals):
            self._memorised(ctx, point, evals)

    def _memorised(self, ctx: RunContext, point: EvalPoint, evals: list[EvalPoint]) -> None:
        scale = ctx.reference.loss if ctx.reference is not None else ctx.history.start_loss
        gap = point.val_loss - point.train_loss
        improvement = recent_improvement(evals)
        noise = math.hypot(val_noise(evals, point), _train_noise(point))
        if (not scale or improvement >= MIN_IMPROVEMENT or gap < WIDE_GAP * abs(point.val_loss)
                or gap < GAP_OF_REFERENCE * scale or gap <= Z * noise):
            return
        ctx.report("overfitting", point.step, f"val loss {fmt(point.val_loss)} stopped improving ({improvement:+.1%} "
                   f"over the last {PATIENCE} evaluations) far above the training loss {fmt(point.train_loss)}: "
                   f"the model fits its training data much better than new data", {
                       "val_loss": point.val_loss, "train_loss": point.train_loss, "gap": gap,
                       "improvement": improvement, "scale": scale, "noise": noise,
                   })

    def _diverging(self, ctx: RunContext, point: EvalPoint, evals: list[EvalPoint]) -> bool:
        best_index = min(range(len(evals)), key=lambda i: evals[i].val_loss)
        best = evals[best_index]
        since = len(evals) - 1 - best_index
        if since < PATIENCE:
            return False
        noise = val_noise(evals, point)
        rise = point.val_loss - best.val_loss
        train_fall = best.train_loss - point.train_loss
        train_drop = train_fall / abs(best.train_loss) if best.train_loss else 0.0
        if train_drop < TRAIN_DROP or train_fall <= Z * _train_noise(best, point):
            return False  # the training loss has not really fallen since the best val
        if rise <= Z * noise:
            self._stopped_improving(ctx, point, evals, best, noise)
            return True
        gap_now = point.val_loss - point.train_loss
        gap_best = best.val_loss - best.train_loss
        if gap_now - gap_best < GAP_GROWTH * abs(best.val_loss) or gap_now < MIN_GAP * abs(point.val_loss):
            return False
        ctx.report("overfitting", point.step, f"val loss rose from {fmt(best.val_loss)} (step {best.step:,}) to "
                   f"{fmt(point.val_loss)} (noise {fmt(noise)}) while the training loss fell from "
                   f"{fmt(best.train_loss)} to {fmt(point.train_loss)}; the val-train gap grew from "
                   f"{fmt(gap_best)} to {fmt(gap_now)}", {
                       "val_loss": point.val_loss, "train_loss": point.train_loss, "best_val_loss": best.val_loss,
                       "best_step": best.step, "evals_since_best": since, "gap": gap_now, "gap_at_best": gap_best,
                       "val_noise": noise, "train_loss_at_best": best.train_loss,
                   })
        return True

    def _stopped_improving(self, ctx: RunContext, point: EvalPoint, evals: list[EvalPoint], best: EvalPoint,
                           noise: float) -> None:
        """Val flat within its noise while the training loss creeps down: worth knowing, not a fault."""
        settled = next(i for i, e in enumerate(evals) if e.val_loss - best.val_loss <= Z * noise)
        if len(evals) - 1 - settled < PATIENCE:
            return
        stop_step = evals[settled + PATIENCE].step  # where early stopping with this patience would stop
        max_steps = ctx.preset.train.max_steps
        saved = (max_steps - stop_step) / max_steps if max_steps else 0.0
        if saved < SAVED_FRACTION:
            return
        since = evals[settled]
        ctx.report("overfitting", point.step, f"val stopped improving at step {since.step:,} (val loss "
                   f"{fmt(since.val_loss)}, now {fmt(point.val_loss)}, within its noise {fmt(noise)}) while the "
                   f"training loss kept falling to {fmt(point.train_loss)}; early stopping would have saved "
                   f"{saved:.0%} of the run", {
                       "val_loss": point.val_loss, "train_loss": point.train_loss, "best_val_loss": best.val_loss,
                       "stopped_improving_at": since.step, "val_noise": noise, "saved_fraction": saved,
                   }, severity="info")


class UnderfittingDetector(Detector):
    name = "underfitting"

    def after_eval(self, ctx: RunContext, point: EvalPoint) -> None:
        if ctx.pretrained() or ctx.reference is None or point.train_loss is None or not ctx.settled():
            return
        evals = [e for e in ctx.history.evals if e.train_loss is not None]
        if len(evals) < MIN_EVALS:
            return
        reference = ctx.reference.loss
        train, val = point.train_loss, point.val_loss
        high = min(train, val) >= HIGH_FRACTION * reference
        close = abs(val - train) <= CLOSE * max(train, val)
        improvement = recent_improvement(evals)
        if not (high and close and improvement < MIN_IMPROVEMENT) or not ctx.train_loss_flat(FLAT_WINDOW,
                                                                                           MIN_IMPROVEMENT):
            return
        severity = "info" if ctx.mostly_frozen() else None
        ctx.report("underfitting", point.step, f"train loss {fmt(train)} and val loss {fmt(val)} are both high "
                   f"({min(train, val) / reference:.0%} of {fmt(reference)}, {ctx.reference.description}) and close, "
                   f"and val improved by {improvement:.1%} over the last {PATIENCE} evaluations", {
                       "train_loss": train, "val_loss": val, "reference": reference, "improvement": improvement,
                   }, severity=severity)
