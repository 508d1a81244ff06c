"""Evaluation on fixed validation batches: val loss and the task's metric, and the best-so-far tracking
that drives the "best" checkpoint and early stopping."""

from __future__ import annotations

import math
from typing import Any

import torch

from workbench.training.batches import batch_size_of, eval_batches, split_batch, to_device
from workbench.training.step import autocast


def standard_error(batch_losses: list[tuple[float, int]]) -> float | None:
    """Standard error of the val loss (the size-weighted mean of the batches' losses) from the spread of those
    losses: how far it could move by chance alone, so diagnostics can tell a real change from noise. None
    for fewer than two batches or a non-finite loss."""
    count = len(batch_losses)
    total = sum(n for _, n in batch_losses)
    if count < 2 or not total or not all(math.isfinite(loss) for loss, _ in batch_losses):
        return None
    mean = sum(loss * n for loss, n in batch_losses) / total
    spread = sum((n * (loss - mean)) ** 2 for loss, n in batch_losses)
    return math.sqrt(spread * count / (count - 1)) / total


@torch.no_grad()
def evaluate(forward, loss_fn, val_data, device: torch.device, task: str, batch_size: int, batches: int,
             collate=None, autocast_dtype=None, target_scale: float = 1.0) -> dict[str, float]:
    """Val loss and accuracy / perplexity / MAE (and R² for regression) as the task has them; {} when there
    is no val data. `target_scale` turns an MAE on a standardised target back into the label's units.
    The caller puts the model in eval mode (and back)."""
    total_loss, total_n, correct, counted, abs_err, err_n = 0.0, 0, 0, 0, 0.0, 0
    batch_losses: list[tuple[float, int]] = []
    sq_err, y_sum, y_sq = 0.0, 0.0, 0.0
    for batch in eval_batches(val_data, batch_size, batches, collate):
        batch = to_device(batch, device)
        x, y = split_batch(batch)
        with autocast(device, autocast_dtype):
            if loss_fn is None:
                output = forward(**x, labels=y) if isinstance(x, dict) else forward(x, labels=y)
                loss = output["loss"] if hasattr(output, "keys") else output[0]
                logits = output["logits"] if hasattr(output, "keys") and "logits" in output else None
            else:
                output = forward(**x) if isinstance(x, dict) else forward(x)
                logits = getattr(output, "logits", output)
                loss = loss_fn(logits, y)
        n = batch_size_of(x)
        batch_losses.append((float(loss), n))
        total_loss += batch_losses[-1][0] * n
        total_n += n
        if logits is None or y is None:
            continue
        logits = logits.float()
        if task in ("classification", "seq2seq") or (task == "language_modeling" and loss_fn is not None):
            predicted = logits.argmax(dim=-1)
            mask = y != -100
            correct += int((predicted[mask] == y[mask]).sum())
            counted += int(mask.sum())
        elif task == "binary":
            predicted = logits.reshape(y.shape) > 0
            correct += int((predicted == (y > 0.5)).sum())
            counted += y.numel()
        elif task in ("regression", "forecasting"):
            error = logits.reshape(y.shape) - y
            abs_err += float(error.abs().sum())
            err_n += y.numel()
            if task == "regression":
                y = y.float()
                sq_err += float(error.pow(2).sum())
                y_sum, y_sq = y_sum + float(y.sum()), y_sq + float(y.pow(2).sum())
    if not total_n:
        return {}
    metrics = {"val_loss": total_loss / total_n}
    se = standard_error(batch_losses)
    if se is not None:
        metrics["val_loss_se"] = se
    if counted:
        metrics["val_accuracy"] = correct / counted
    if err_n:
        metrics["val_mae"] = abs_err / err_n * target_scale
        variance = y_sq / err_n - (y_sum / err_n) ** 2
        if task == "regression" and variance > 1e-12:  # R² = 1 - SSE / SST over the evaluated batches
            metrics["val_r2"] = 1 - (sq_err / err_n) / variance
    if task in ("language_modeling", "seq2seq"):
        metrics["val_perplexity"] = math.exp(min(metrics["val_loss"], 50.0))
    return metrics


class BestTracker:
    """The best val loss so far and how many evaluations since a meaningful improvement."""

    def __init__(self, min_delta: float = 0.0):
        self.min_delta = min_delta
        self.best_val_loss: float | None = None
        self.evals_since_best = 0

    def update(self, val_loss: float) -> bool:
        """Count one evaluation; True when it is a new best (the "best" checkpoint is saved then)."""
        improved = math.isfinite(val_loss) and (self.best_val_loss is None or val_loss < self.best_val_loss)
        meaningful = improved and (self.best_val_loss is None or self.best_val_loss - val_loss > self.min_delta)
        if improved:
            self.best_val_loss = val_loss
        self.evals_since_best = 0 if meaningful else self.evals_since_best + 1
        return improved

    def state_dict(self) -> dict[str, Any]:
        return {"best_val_loss": self.best_val_loss, "evals_since_best": self.evals_since_best}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best_val_loss = state.get("best_val_loss")
        self.evals_since_best = int(state.get("evals_since_best", 0))
