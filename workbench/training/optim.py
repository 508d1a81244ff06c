"""Optimizers and learning-rate schedules built from the preset (torch's own implementations)."""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.optim import lr_scheduler

from workbench.config import OptimConfig, ScheduleConfig
from workbench.errors import ConfigError


def param_groups(model: nn.Module, config: OptimConfig) -> list[dict]:
    """Trainable parameters, split by `group_lr` module-name prefixes (longest prefix wins)."""
    prefixes = sorted(config.group_lr, key=len, reverse=True)
    groups: dict[str, list[nn.Parameter]] = {prefix: [] for prefix in prefixes}
    rest: list[nn.Parameter] = []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        match = next((p for p in prefixes if name == p or name.startswith(p + ".")), None)
        (groups[match] if match else rest).append(param)
    empty = [prefix for prefix, params in groups.items() if not params]
    if empty:
        raise ConfigError([f"optim.group_lr.{p}: no trainable parameters under this module name" for p in empty])
    result = [{"params": rest, "lr": config.lr, "name": "default"}] if rest else []
    result += [{"params": groups[p], "lr": config.group_lr[p], "name": p} for p in prefixes]
    if not result:
        raise ConfigError("model: has no trainable parameters")
    return result


class MuonWithAdamW(torch.optim.Optimizer):
    """Muon for 2-D weight matrices, AdamW for everything else (biases, norms, embeddings).

    Muon orthogonalises matrix updates and is only defined for 2-D parameters, so practical use pairs
    it with AdamW. One Optimizer so schedulers, checkpoints and live LR changes treat it as one.
    """

    def __init__(self, groups: list[dict], config: OptimConfig):
        matrix_groups, other_groups = [], []
        for group in groups:
            matrices = [p for p in group["params"] if p.ndim == 2]
            others = [p for p in group["params"] if p.ndim != 2]
            if matrices:
                matrix_groups.append({**group, "params": matrices, "kind": "muon"})
            if others:
                other_groups.append({**group, "params": others, "kind": "adamw"})
        super().__init__(matrix_groups + other_groups, {"lr": config.lr})
        self.muon = torch.optim.Muon(
            [g for g in self.param_groups if g["kind"] == "muon"], lr=config.lr,
            weight_decay=config.weight_decay, momentum=config.momentum or 0.95,
        ) if matrix_groups else None
        self.adamw = torch.optim.AdamW(
            [g for g in self.param_groups if g["kind"] == "adamw"], lr=config.lr, betas=config.betas,
            eps=config.eps, weight_decay=config.weight_decay,
        ) if other_groups else None

    @torch.no_grad()
    def step(self, closure=None):
        for inner in (self.muon, self.adamw):
            if inner is not None:
                inner.step()

    def zero_grad(self, set_to_none: bool = True):
        for inner in (self.muon, self.adamw):
            if inner is not None:
                inner.zero_grad(set_to_none=set_to_none)

    def state_dict(self):
        return {name: inner.state_dict() for name, inner in (("muon", self.muon), ("adamw", self.adamw)) if inner}

    def load_state_dict(self, state_dict):
        for name, inner in (("muon", self.muon), ("adamw", self.adamw)):
            if inner is not None and name in state_dict:
                inner.load_state_dict(state_dict[name])


def fused_kwargs(parameters) -> dict[str, bool]:
    """{"fused": True} when every trainable parameter is a floating-point CUDA tensor: the fused kernels
    take a GradScaler's found-inf flag on the device, where the unfused step reads it back (a host sync
    every fp16 step), and they are faster besides. Elsewhere torch's defaults."""
    trainable = [p for p in parameters if p.requires_grad]
    if trainable and all(p.is_cuda and p.is_floating_point() for p in trainable):
        return {"fused": True}
    return {}


def build_optimizer(model: nn.Module, config: OptimConfig) -> torch.optim.Optimizer:
    groups = param_groups(model, config)
    fused = fused_kwargs(model.parameters())
    if config.name == "sgd":
        return torch.optim.SGD(groups, lr=config.lr, momentum=config.momentum, nesterov=config.nesterov and
                               config.momentum > 0, weight_decay=config.weight_decay, **fused)
    if config.name == "adam":
        return torch.optim.Adam(groups, lr=config.lr, betas=config.betas, eps=config.eps,
                                weight_decay=config.weight_decay, **fused)
    if config.name == "adamw":
        return torch.optim.AdamW(groups, lr=config.lr, betas=config.betas, eps=config.eps,
                                 weight_decay=config.weight_decay, **fused)
    if config.name == "rmsprop":
        return torch.optim.RMSprop(groups, lr=config.lr, momentum=config.momentum, eps=config.eps,
                                   weight_decay=config.weight_decay)
    if config.name == "muon":
        if not hasattr(torch.optim, "Muon"):
            raise ConfigError(f"optim.name: muon needs torch.optim.Muon (torch {torch.__version__} lacks it)")
        return MuonWithAdamW(groups, config)
    raise ConfigError(f"optim.name: unknown optimizer {config.name!r}")


def build_scheduler(optimizer: torch.optim.Optimizer, config: ScheduleConfig, max_steps: int):
    """One scheduler stepped once per optimizer step."""
    warmup = min(config.warmup_steps, max_steps - 1) if max_steps > 1 else 0

    def warmup_phase():
        return lr_scheduler.LinearLR(optimizer, start_factor=1.0 / (warmup + 1), end_factor=1.0, total_iters=warmup)

    def with_warmup(main):
        if warmup == 0:
            return main
        return lr_scheduler.SequentialLR(optimizer, [warmup_phase(), main], milestones=[warmup])

    base_lrs = [group["lr"] for group in optimizer.param_groups]
    if config.name == "constant":
        return warmup_phase() if warmup else lr_scheduler.ConstantLR(optimizer, factor=1.0, total_iters=0)
    if config.name == "step":
        return lr_scheduler.StepLR(optimizer, step_size=config.step_size, gamma=config.gamma)
    if config.name == "cosine":
        return lr_scheduler.CosineAnnealingLR(optimizer, T_max=max_steps, eta_min=base_lrs[0] * config.min_lr_ratio)
    if config.name == "warmup_cosine":
        cosine = lr_scheduler.CosineAnnealingLR(
            optimizer, T_max=max(1, max_steps - warmup), eta_min=base_lrs[0] * config.min_lr_ratio
        )
        return with_warmup(cosine)
    if config.name == "linear":
        decay = lr_scheduler.LinearLR(
            optimizer, start_factor=1.0, end_factor=config.min_lr_ratio, total_iters=max(1, max_steps - warmup)
        )
        return with_warmup(decay)
    if config.name == "onecycle":
        pct_start = config.pct_start
        if math.isclose(pct_start * max_steps, 1.0):
            # torch ends the warm phase at step pct_start * total - 1: exactly 0 divides by zero (5 steps at 0.2).
            pct_start = 2.0 / max_steps if max_steps > 2 else 0.5 / max_steps
        return lr_scheduler.OneCycleLR(optimizer, max_lr=base_lrs, total_steps=max_steps, pct_start=pct_start)
    raise ConfigError(f"schedule.name: unknown schedule {config.name!r}")


def scale_learning_rate(optimizer: torch.optim.Optimizer, scheduler, new_lr: float) -> float:
    """Set the first group's LR to `new_lr` now and for the rest of the schedule, keeping group ratios.

    Scales every quantity a torch scheduler derives LRs from (current lr, base_lrs, eta_min,
    OneCycle's initial/max/min lr), so the schedule continues from the new level.
    """
    current = optimizer.param_groups[0]["lr"]
    ratio = new_lr / current if current > 0 else 1.0
    for group in optimizer.param_groups:
        group["lr"] = group["lr"] * ratio if current > 0 else new_lr
        for key in ("initial_lr", "max_lr", "min_lr"):
            if key in group:
                group[key] *= ratio
    schedulers = [scheduler] + list(getattr(scheduler, "_schedulers", []))
    for sched in schedulers:
        if hasattr(sched, "base_lrs"):
            sched.base_lrs = [lr * ratio for lr in sched.base_lrs]
        if hasattr(sched, "eta_min"):
            sched.eta_min *= ratio
        if hasattr(sched, "_last_lr"):
            sched._last_lr = [group["lr"] for group in optimizer.param_groups]
    return ratio
