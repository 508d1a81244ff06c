"""Overfitting and underfitting, judged at each evaluation from validation and training loss.

The training loss compared with each evaluation is the mean over the steps just before it (measured
with dropout and augmentation on, so a healthy model often has train >= val). Neither is judged while
the LR is still warming up.

Overfitting, after at least MIN_EVALS evaluations, either of:
- diverging: the best val loss is PATIENCE or more evaluations old; the training loss kept falling since
  then (by at least TRAIN_DROP, relative); and the val-train gap widened by at least GAP_GROWTH of the
  best val loss and is at least MIN_GAP of the current val loss;
- memorised: val improved by less than MIN_IMPROVEMENT over the last PATIENCE evaluations while the
  training loss sits far below it: the gap is at least WIDE_GAP of the val loss and at least
  GAP_OF_REFERENCE of the no-learning loss (so two tiny losses never count as a gap).

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


def recent_improvement(evals: list[EvalPoint]) -> float:
    """Relative improvement of the best val loss of the last PATIENCE evaluations over the best before."""
    before = min(e.val_loss for e in evals[:-PATIENCE])
    recent = min(e.val_loss for e in evals[-PATIENCE:])
    return (before - recent) / abs(before) if before else 0.0


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
        if (not scale or improvement >= MIN_IMPROVEMENT or gap < WIDE_GAP * abs(point.val_loss)
                or gap < GAP_OF_REFERENCE * scale):
            return
        ctx.report("overfitting", point.step, f"val loss {fmt(point.val_loss)} stopped improving ({improvement:+.1%} "
                   f"over the last {PATIENCE} evaluations) far above the training loss {fmt(point.train_loss)}: "
                   f"the model fits its training data much better than new data", {
                       "val_loss": point.val_loss, "train_loss": point.train_loss, "gap": gap,
                       "improvement": improvement, "scale": scale,
                   })

    def _diverging(self, ctx: RunContext, point: EvalPoint, evals: list[EvalPoint]) -> bool:
        best_index = min(range(len(evals)), key=lambda i: evals[i].val_loss)
        best = evals[best_index]
        since = len(evals) - 1 - best_index
        if since < PATIENCE:
            return False
        gap_now = point.val_loss - point.train_loss
        gap_best = best.val_loss - best.train_loss
        train_drop = (best.train_loss - point.train_loss) / abs(best.train_loss) if best.train_loss else 0.0
        if (train_drop < TRAIN_DROP or gap_now - gap_best < GAP_GROWTH * abs(best.val_loss)
                or gap_now < MIN_GAP * abs(point.val_loss)):
            return False
        rising = point.val_loss > best.val_loss
        ctx.report("overfitting", point.step, f"val loss {'rose' if rising else 'stalled'} from {fmt(best.val_loss)} "
                   f"(step {best.step:,}) to {fmt(point.val_loss)} while the training loss fell from "
                   f"{fmt(best.train_loss)} to {fmt(point.train_loss)}; the val-train gap grew from "
                   f"{fmt(gap_best)} to {fmt(gap_now)}", {
                       "val_loss": point.val_loss, "train_loss": point.train_loss, "best_val_loss": best.val_loss,
                       "best_step": best.step, "evals_since_best": since, "gap": gap_now, "gap_at_best": gap_best,
                   })
        return True


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
