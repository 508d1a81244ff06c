"""Chance level: the validation accuracy is no better than guessing, while the run goes on.

Chance is the better of 1/C (C classes) and the majority-class rate of the validation batches the
evaluation sees (read once at set-up; predicting the commonest class scores that much). An accuracy is
"at chance" when it is at most chance + Z standard errors of an accuracy measured on that many
samples (sqrt(p (1 - p) / n)). Judged for classification and binary tasks at each evaluation past the
LR warmup, as soon as two such evaluations exist: reported when both of the last two are at chance and
the training loss says the model is not merely early either:
- it is flat between them (fell by less than MIN_IMPROVEMENT, relative, or by no more than its noise):
  the model is stuck; or
- it is far below the loss of knowing nothing but the class frequencies (under LEARNED_FRACTION of
  their entropy, which is ln C for balanced classes): it learns the training set but none of it
  carries over (labels that do not match between the splits).
A healthy run that is still early (its loss falling, e.g. while it learns the class prior of
imbalanced data, when predicting the majority class is all it does yet) is left alone.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

from workbench.diagnostics.base import Detector, EvalPoint, RunContext, fmt

TASKS = ("classification", "binary")
Z = 2.0
MIN_IMPROVEMENT = 0.02
LEARNED_FRACTION = 0.5


def _labels(batches: list[Any]) -> list[int]:
    from workbench.training.batches import split_batch

    labels: list[int] = []
    for batch in batches:
        _, y = split_batch(batch)
        if y is None or not hasattr(y, "reshape"):
            return []
        values = y.reshape(-1)
        if values.is_floating_point():
            values = (values > 0.5).long()  # binary targets as 0/1 floats
        labels += [int(v) for v in values.tolist() if v != -100]
    return labels


class ChanceLevelDetector(Detector):
    name = "chance_level"

    def __init__(self):
        self.chance: float | None = None
        self.samples = 0
        self.majority = 0.0
        self.classes = 0
        self.prior_entropy = 0.0

    def setup(self, ctx: RunContext) -> None:
        if ctx.preset.task not in TASKS:
            return
        labels = _labels(ctx.val_batches())
        if not labels:
            return
        counts = Counter(labels)
        classes = 2 if ctx.preset.task == "binary" else (ctx.num_classes() or len(counts))
        self.majority = max(counts.values()) / len(labels)
        self.classes, self.samples = classes, len(labels)
        self.prior_entropy = -sum(c / len(labels) * math.log(c / len(labels)) for c in counts.values())
        self.chance = max(1.0 / classes, self.majority) if classes >= 2 else None

    def _at_chance(self, point: EvalPoint) -> bool:
        accuracy = point.metrics.get("val_accuracy")
        if accuracy is None or self.chance is None:
            return False
        p = self.chance
        return accuracy <= p + Z * math.sqrt(p * (1 - p) / self.samples)

    def after_eval(self, ctx: RunContext, point: EvalPoint) -> None:
        if self.chance is None or not ctx.settled():
            return
        start = (ctx.history.first_step or 0) + ctx.warmup_steps()
        evals = [e for e in ctx.history.evals if e.step >= start and e.train_loss is not None]
        if len(evals) < 2 or evals[-1] is not point:
            return
        before, now = evals[-2], evals[-1]
        if not (self._at_chance(before) and self._at_chance(now)):
            return
        fall = before.train_loss - now.train_loss
        noise = Z * math.hypot(before.train_loss_se or 0.0, now.train_loss_se or 0.0)
        flat = fall <= max(MIN_IMPROVEMENT * abs(before.train_loss), noise)
        learned = now.train_loss < LEARNED_FRACTION * self.prior_entropy
        if not (flat or learned):
            return
        accuracy = point.metrics["val_accuracy"]
        why = (f"the training loss stays at {fmt(now.train_loss)}" if flat and not learned else
               f"the training loss fell to {fmt(now.train_loss)}, far below {fmt(self.prior_entropy)} (what knowing "
               f"only the class frequencies gives), so what it learns does not carry over to the validation set")
        chance_from = "the majority class" if self.majority >= 1.0 / self.classes else f"1/{self.classes}"
        ctx.report("chance_level", point.step, f"val accuracy {accuracy:.1%} at step {point.step:,} (and "
                   f"{before.metrics['val_accuracy']:.1%} at step {before.step:,}) is within noise of chance, "
                   f"{self.chance:.1%} ({chance_from}, {self.samples:,} samples); {why}", {
                       "val_accuracy": accuracy, "previous_val_accuracy": before.metrics["val_accuracy"],
                       "chance": self.chance, "majority_rate": self.majority, "classes": self.classes,
                       "samples": self.samples, "train_loss": now.train_loss, "train_loss_before": before.train_loss,
                       "prior_entropy": self.prior_entropy, "flat": flat, "learned_train": learned,
                   })
