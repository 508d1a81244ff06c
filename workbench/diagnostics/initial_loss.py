"""Bad initial loss: the step-0 loss compared with what a model that knows nothing should score.

Rule: for a C-way cross-entropy (classification, language modelling, seq2seq; C classes or vocabulary
size) an untrained model predicts close to uniform, so the step-0 loss should be near ln(C); binary
cross-entropy near ln(2). A step-0 loss above ln(C) + max(1, 0.5 ln(C)) means the outputs start
confidently wrong (an output layer initialised too large, unnormalised inputs, probabilities fed to a
loss that expects logits). For MSE/L1 the reference is the loss of always predicting the mean (the
target variance) or the median (mean absolute deviation), measured on the first validation batches;
a step-0 loss above 4x that reference means the outputs start far off the target scale.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from workbench.diagnostics.base import Detector, Reference, RunContext, fmt

# Cross-entropy: flag a step-0 loss above ln(C) + max(CE_MARGIN, CE_RELATIVE * ln(C)).
CE_MARGIN = 1.0
CE_RELATIVE = 0.5
# MSE/L1: flag a step-0 loss above this multiple of the predict-the-mean loss.
REGRESSION_FACTOR = 4.0
# Validation batches read once at set-up to measure the target scale for MSE/L1.
REFERENCE_BATCHES = 4


def _classes(preset, info, model) -> int | None:
    """How many outcomes the output chooses from (classes, or the vocabulary for token tasks)."""
    config = getattr(model, "config", None)
    if preset.task in ("language_modeling", "seq2seq"):
        return info.vocab_size or getattr(config, "vocab_size", None)
    if preset.task == "binary":
        return 2
    if preset.task == "classification":
        return info.num_classes or getattr(config, "num_labels", None)
    return None


def _target_tensor(batch: Any) -> torch.Tensor | None:
    from workbench.training.batches import split_batch

    try:
        _, y = split_batch(batch)
    except TypeError:
        return None
    return y if isinstance(y, torch.Tensor) and y.is_floating_point() else None


def reference_loss(preset, info, model=None, val_data=None) -> Reference | None:
    """The loss of a model that has learned nothing, or None when there is no meaningful one."""
    loss = preset.train.loss
    if loss in ("cross_entropy", "nll", "model") or (loss == "bce_with_logits" and preset.task == "binary"):
        classes = _classes(preset, info, model)
        if loss == "bce_with_logits":
            classes = 2
        if classes and classes >= 2:
            return Reference(math.log(classes), f"ln({classes})")
        return None
    if loss in ("mse", "l1") and val_data is not None:
        from workbench.training.batches import eval_batches

        targets = []
        for batch in eval_batches(val_data, preset.train.batch_size, REFERENCE_BATCHES, info.collate):
            y = _target_tensor(batch)
            if y is None:
                return None
            targets.append(y.detach().float().reshape(-1).cpu())
        if not targets:
            return None
        y = torch.cat(targets)
        if loss == "mse":
            value = float(((y - y.mean()) ** 2).mean())
            description = "the variance of the targets"
        else:
            value = float((y - y.median()).abs().mean())
            description = "the mean absolute deviation of the targets"
        return Reference(value, description) if value > 0 and math.isfinite(value) else None
    return None


def initial_loss_threshold(preset, reference: Reference) -> float:
    if preset.train.loss in ("mse", "l1"):
        return REGRESSION_FACTOR * reference.loss
    return reference.loss + max(CE_MARGIN, CE_RELATIVE * reference.loss)


def judge_initial_loss(preset, reference: Reference | None, loss: float) -> str | None:
    """A message when the initial loss is too high for an untrained model, else None."""
    if reference is None or not math.isfinite(loss):
        return None
    threshold = initial_loss_threshold(preset, reference)
    if loss <= threshold:
        return None
    return (f"initial loss {fmt(loss)} is far above {fmt(reference.loss)} ({reference.description}), what a "
            f"model that has learned nothing should score: the outputs start confidently wrong")


class InitialLossDetector(Detector):
    """Judges the loss of step 0 once, on the first flush of a fresh run."""

    name = "initial_loss"

    def __init__(self):
        self.done = False

    def after_flush(self, ctx: RunContext, added: int) -> None:
        if self.done:
            return
        self.done = True
        history = ctx.history
        if history.first_step != 0 or history.first_loss is None or ctx.reference is None:
            return
        message = judge_initial_loss(ctx.preset, ctx.reference, history.first_loss)
        if message:
            ctx.report("bad_initial_loss", 0, message, {
                "initial_loss": history.first_loss,
                "expected": ctx.reference.loss,
                "expected_from": ctx.reference.description,
                "threshold": initial_loss_threshold(ctx.preset, ctx.reference),
            })
