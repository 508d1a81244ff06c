"""Loss functions by name; sequence outputs (B, T, C) are flattened for token-level losses."""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from workbench.config import TrainConfig


def build_loss(config: TrainConfig) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None:
    """None for loss = "model": the model computes its own loss from the labels."""
    if config.loss == "model":
        return None
    if config.loss == "cross_entropy":
        smoothing = config.label_smoothing

        def cross_entropy(output, target):
            if output.dim() > 2:  # (B, T, C) tokens against (B, T) targets
                output, target = output.reshape(-1, output.size(-1)), target.reshape(-1)
            return F.cross_entropy(output, target, label_smoothing=smoothing)

        return cross_entropy
    if config.loss == "nll":

        def nll(output, target):
            if output.dim() > 2:
                output, target = output.reshape(-1, output.size(-1)), target.reshape(-1)
            return F.nll_loss(output, target)

        return nll
    if config.loss == "bce_with_logits":

        def bce(output, target):
            return F.binary_cross_entropy_with_logits(output.reshape(target.shape), target.to(output.dtype))

        return bce
    if config.loss == "mse":
        return lambda output, target: F.mse_loss(output.reshape(target.shape), target.to(output.dtype))
    if config.loss == "l1":
        return lambda output, target: F.l1_loss(output.reshape(target.shape), target.to(output.dtype))
    raise ValueError(f"unknown loss {config.loss!r}")
