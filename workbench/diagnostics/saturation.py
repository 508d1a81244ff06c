"""Saturated activations: tanh/sigmoid layers whose inputs sit in the flat tails, where no gradient passes.

tanh'(x) falls below 1% of its peak past |x| = 3, and sigmoid'(x) past |x| = 6 (sigmoid(x) is tanh(x/2)
rescaled): inputs out there pass almost no gradient back, so the layers before stop learning (too large
an init, no normalisation, an LR that blew the pre-activations up). On probe steps only, a forward hook
on every nn.Tanh / nn.Sigmoid measures, per unit (the channel of conv maps, the last dimension
otherwise), the fraction of samples whose input is in the tail. A unit is saturated when most of its
inputs (UNIT_FRACTION) are; a layer is reported when at least LAYER_FRACTION of its units are, on two
probes in a row, or CLEAR_FRACTION on one, with at least MIN_ROWS rows seen. `layer` is the
activation; the evidence names the module with weights feeding it. Hooks exist only during a probe.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from workbench.diagnostics.base import Detector, RunContext
from workbench.diagnostics.dead_units import CHANNEL_FIRST

TAILS = {nn.Tanh: 3.0, nn.Sigmoid: 6.0}
UNIT_FRACTION = 0.5
LAYER_FRACTION = 0.5
CLEAR_FRACTION = 0.9
MIN_ROWS = 32


def _feeding(model: nn.Module) -> dict[str, tuple[str | None, nn.Module | None]]:
    """For each tanh/sigmoid module, the nearest module before it (definition order) that has weights."""
    result: dict[str, tuple[str | None, nn.Module | None]] = {}
    last: tuple[str | None, nn.Module | None] = (None, None)
    for name, module in model.named_modules():
        if isinstance(module, tuple(TAILS)):
            result[name] = last
        elif any(True for _ in module.parameters(recurse=False)):
            last = (name, module)
    return result


class SaturatedActivationsDetector(Detector):
    name = "saturated_activations"

    def __init__(self):
        self.handles: list[Any] = []
        self.feeding: dict[str, tuple[str | None, nn.Module | None]] = {}
        self.seen: dict[str, tuple[float, int, int, float]] = {}  # name -> (fraction, units, rows, mean |x|)
        self.streak: dict[str, int] = {}

    def setup(self, ctx: RunContext) -> None:
        self.feeding = _feeding(ctx.model) if ctx.model is not None else {}

    def probe_start(self, ctx: RunContext, step: int) -> None:
        self.seen = {}
        for name, module in ctx.model.named_modules():
            tail = next((t for kind, t in TAILS.items() if isinstance(module, kind)), None)
            if tail is not None:
                feeder = self.feeding.get(name, (None, None))[1]
                self.handles.append(module.register_forward_hook(
                    self._hook(name, tail, isinstance(feeder, CHANNEL_FIRST))))

    def _hook(self, name: str, tail: float, channel_first_1d: bool):
        def hook(module, args, output):
            x = args[0] if args else None
            if name in self.seen or not isinstance(x, torch.Tensor) or x.dim() < 2 or x.numel() == 0:
                return
            with torch.no_grad():
                x = x.detach()
                dim = 1 if x.dim() >= 4 or (x.dim() == 3 and channel_first_1d) else x.dim() - 1
                size = x.abs().movedim(dim, -1).reshape(-1, x.shape[dim])
                in_tail = size.gt(tail).float().mean(0)  # per unit
                # one read-back for both numbers
                saturated, mean_abs = torch.stack([in_tail.ge(UNIT_FRACTION).float().mean(),
                                                   size.float().mean()]).tolist()
            self.seen[name] = (saturated, size.shape[1], size.shape[0], mean_abs)

        return hook

    def probe_end(self, ctx: RunContext, step: int, probe: dict[str, Any]) -> None:
        for handle in self.handles:
            handle.remove()
        self.handles = []
        for name, (fraction, units, rows, mean_abs) in self.seen.items():
            if rows < MIN_ROWS:
                continue
            self.streak[name] = self.streak.get(name, 0) + 1 if fraction >= LAYER_FRACTION else 0
            if fraction < CLEAR_FRACTION and self.streak[name] < 2:
                continue
            feeder = self.feeding.get(name, (None, None))[0]
            module = ctx.model.get_submodule(name)
            tail = next(t for kind, t in TAILS.items() if isinstance(module, kind))
            where = f"`{name}` ({type(module).__name__})" + (f" after `{feeder}`" if feeder else "")
            ctx.report("saturated_activations", step, f"{fraction:.0%} of the units of {where} get inputs beyond "
                       f"|x| = {tail:g} for most samples (mean |x| {mean_abs:.3g} over {rows:,} samples), where its "
                       f"slope is under 1% of its peak: almost no gradient passes", {
                           "saturated_fraction": fraction, "units": units, "samples": rows, "mean_abs_input": mean_abs,
                           "tail": tail, "feeding_layer": feeder,
                       }, layer=name)

    def end(self, ctx: RunContext, status: str) -> None:
        for handle in self.handles:
            handle.remove()
        self.handles = []
