"""The pieces of one training step every loop shares: the loss of a batch, the global gradient norm,
and the probe that measures per-layer gradient norms and update ratios around an optimizer step.

The probe is split in two because it straddles `optimizer.step()`: `probe_before_step` reads the
gradients and copies the weights, `probe_after_step` measures what the step changed. The preset
trainer calls them around its own step; a watched user loop calls them from the optimizer's step hooks.
"""

from __future__ import annotations

import math
from contextlib import nullcontext
from typing import Any

import torch
from torch import nn


def grad_norm(params: list[nn.Parameter]) -> torch.Tensor:
    """Global L2 norm of the gradients in one fused call (no per-parameter Python loop)."""
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return torch.zeros(())
    return torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)))


FLAT_NORM_MAX = 1 << 20  # elements: up to this a flat copy of the gradients is cheaper than a kernel per tensor


def host_grad_norm(params: list[nn.Parameter], flat: bool = False) -> float:
    """The global L2 gradient norm as a float, for loops that check it on the host before the step. With
    `flat` (small float32 CPU models, where per-op overhead dominates: the fused form runs one norm
    kernel per parameter there) one copy into a flat vector and one dot product, half the time; an
    overflow to inf there is re-checked with the fused form, so only a really non-finite gradient reads
    as one."""
    if flat:
        grads = [p.grad for p in params if p.grad is not None]
        if not grads:
            return 0.0
        try:
            vector = torch._C._nn.flatten_dense_tensors(grads)
            norm = math.sqrt(torch.dot(vector, vector).item())
        except RuntimeError:  # sparse or mixed gradients: the general form below
            norm = math.inf
        if norm != math.inf:
            return norm
    return grad_norm(params).item()


def layer_of(parameter_name: str) -> str:
    """The dotted module name owning a parameter ("encoder.0.weight" -> "encoder.0")."""
    return parameter_name.rpartition(".")[0] or parameter_name


def count_parameters(model: nn.Module) -> tuple[int, int]:
    """(total, trainable) parameter counts."""
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return total, trainable


def autocast(device: torch.device, dtype: torch.dtype | None):
    """Mixed precision where asked for; a no-op context otherwise."""
    if dtype is None:
        return nullcontext()
    return torch.autocast(device.type, dtype=dtype)


def forward_loss(forward: nn.Module, loss_fn, x: Any, y: Any) -> tuple[torch.Tensor, Any]:
    """Loss and model output for one batch; with no loss function the model computes its own loss
    (Hugging Face style: called with labels=, returning a loss first or under "loss")."""
    if loss_fn is None:
        output = forward(**x, labels=y) if isinstance(x, dict) else forward(x, labels=y)
        loss = output["loss"] if isinstance(output, dict) or hasattr(output, "keys") else output[0]
        return loss, output
    output = forward(**x) if isinstance(x, dict) else forward(x)
    logits = getattr(output, "logits", output)
    return loss_fn(logits, y), logits


def probe_before_step(named_trainable: list[tuple[str, nn.Parameter]]) -> dict[str, Any]:
    """Per-parameter gradient norms, and a copy of the weights to measure this step's update."""
    names = [name for name, p in named_trainable if p.grad is not None]
    grads = [p.grad for _, p in named_trainable if p.grad is not None]
    weights = [p for _, p in named_trainable if p.grad is not None]
    with torch.no_grad():
        grad_norms = torch.stack(torch._foreach_norm(grads)).float().cpu().tolist() if grads else []
        before = [w.detach().clone() for w in weights]
    return {"names": names, "grad_norms": grad_norms, "before": before, "weights": weights}


def probe_after_step(step: int, probe: dict[str, Any]) -> tuple[list[tuple[int, str, float]], dict[str, Any]]:
    """Per-layer gradient norms and update ratios (|update| / |weight|): the metric rows and the result
    callbacks get (`grad_norms`, `update_ratios`, `param_grad_norms`)."""
    with torch.no_grad():
        if probe["weights"]:
            deltas = torch._foreach_sub(probe["weights"], probe["before"])
            update = torch.stack(torch._foreach_norm(deltas)).float().cpu().tolist()
            weight = torch.stack(torch._foreach_norm(probe["weights"])).float().cpu().tolist()
        else:
            update, weight = [], []
    per_param_grad = dict(zip(probe["names"], probe["grad_norms"]))
    layer_grad: dict[str, float] = {}
    layer_update: dict[str, float] = {}
    layer_weight: dict[str, float] = {}
    for name, g, u, w in zip(probe["names"], probe["grad_norms"], update, weight):
        layer = layer_of(name)
        layer_grad[layer] = math.sqrt(layer_grad.get(layer, 0.0) ** 2 + g * g)
        layer_update[layer] = math.sqrt(layer_update.get(layer, 0.0) ** 2 + u * u)
        layer_weight[layer] = math.sqrt(layer_weight.get(layer, 0.0) ** 2 + w * w)
    ratios = {layer: layer_update[layer] / layer_weight[layer] if layer_weight[layer] > 0 else 0.0
              for layer in layer_update}
    rows = [(step, f"grad_norm/{layer}", value) for layer, value in layer_grad.items()]
    rows += [(step, f"update_ratio/{layer}", value) for layer, value in ratios.items()]
    return rows, {"grad_norms": layer_grad, "update_ratios": ratios, "param_grad_norms": per_param_grad}


def train_rows(start: int, losses: list[float], norms: list[float], lrs: list[float]) -> list[tuple[int, str, float]]:
    """The per-step rows of one flush window: loss, grad_norm and lr of each step."""
    rows: list[tuple[int, str, float]] = []
    for offset, (loss, norm, lr) in enumerate(zip(losses, norms, lrs)):
        step = start + offset
        rows.append((step, "loss", loss))
        rows.append((step, "grad_norm", norm))
        rows.append((step, "lr", float(lr)))
    return rows
