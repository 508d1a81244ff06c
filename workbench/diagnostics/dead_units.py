"""Dead units: ReLU outputs that are never positive over a probe window, per layer.

A ReLU unit whose input is negative for every sample passes no gradient, so the weights feeding it
stop learning for good (a too-high LR or a very negative bias init kills them). On probe steps only,
a forward hook on every nn.ReLU / nn.ReLU6 records which units were positive for at least one sample
(units: the channel dimension of conv maps, the last dimension otherwise), pooling consecutive probes
into a window. A layer is reported when at least DEAD_FRACTION of its units never fired over at least
MIN_SAMPLES rows (samples x positions), or at least CLEAR_FRACTION over QUICK_SAMPLES rows (a layer
that is almost entirely dead shows at once; a sparse but alive layer needs a larger window to tell
from a dead one). Hooks exist only between probe start and probe end.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from workbench.diagnostics.base import Detector, RunContext

# Flag a layer when at least DEAD_FRACTION of its units never fired over MIN_SAMPLES rows...
DEAD_FRACTION = 0.5
MIN_SAMPLES = 256
# ...or at least CLEAR_FRACTION over QUICK_SAMPLES rows.
CLEAR_FRACTION = 0.9
QUICK_SAMPLES = 64
RELU_FAMILY = (nn.ReLU, nn.ReLU6)
CHANNEL_FIRST = (nn.modules.conv._ConvNd, nn.modules.batchnorm._BatchNorm, nn.modules.pooling._MaxPoolNd,
                 nn.modules.pooling._AvgPoolNd)


def _feeding_layers(model: nn.Module) -> dict[str, tuple[str | None, nn.Module | None]]:
    """For each ReLU-family module, the nearest module before it (definition order) that has parameters."""
    result: dict[str, tuple[str | None, nn.Module | None]] = {}
    last: tuple[str | None, nn.Module | None] = (None, None)
    for name, module in model.named_modules():
        if isinstance(module, RELU_FAMILY):
            result[name] = last
        elif any(True for _ in module.parameters(recurse=False)):
            last = (name, module)
    return result


class _Window:
    """Units that fired at least once, pooled over the probes of one window."""

    def __init__(self):
        self.fired: torch.Tensor | None = None
        self.rows = 0


class DeadUnitsDetector(Detector):
    name = "dead_units"

    def __init__(self):
        self.handles: list[Any] = []
        self.windows: dict[tuple[str, int], _Window] = {}
        self.calls: dict[str, int] = {}
        self.feeding: dict[str, tuple[str | None, nn.Module | None]] = {}

    def setup(self, ctx: RunContext) -> None:
        self.feeding = _feeding_layers(ctx.trainer.model)

    def _hook(self, name: str, channel_first_1d: bool):
        def hook(module, args, output):
            if not isinstance(output, torch.Tensor) or output.dim() < 2 or output.numel() == 0:
                return
            call = self.calls.get(name, 0)
            self.calls[name] = call + 1
            with torch.no_grad():
                dim = 1 if output.dim() >= 4 or (output.dim() == 3 and channel_first_1d) else output.dim() - 1
                positive = output.detach().gt(0).movedim(dim, -1).reshape(-1, output.shape[dim])
                fired = positive.any(0)
            window = self.windows.setdefault((name, call), _Window())
            if window.fired is None or window.fired.shape != fired.shape:
                window.fired, window.rows = fired, 0
            else:
                window.fired |= fired
            window.rows += positive.shape[0]

        return hook

    def probe_start(self, ctx: RunContext, step: int) -> None:
        self.calls = {}
        for name, module in ctx.trainer.model.named_modules():
            if isinstance(module, RELU_FAMILY):
                feeder = self.feeding.get(name, (None, None))[1]
                self.handles.append(module.register_forward_hook(self._hook(name, isinstance(feeder, CHANNEL_FIRST))))

    def probe_end(self, ctx: RunContext, step: int, probe: dict[str, Any]) -> None:
        for handle in self.handles:
            handle.remove()
        self.handles = []
        for (name, call), window in list(self.windows.items()):
            if window.fired is None or window.rows < QUICK_SAMPLES:
                continue
            units = window.fired.numel()
            dead = int(units - int(window.fired.sum()))
            fraction = dead / units if units else 0.0
            if window.rows < MIN_SAMPLES and fraction < CLEAR_FRACTION:
                continue  # keep pooling probes until the window is large enough to judge
            del self.windows[(name, call)]
            if fraction < DEAD_FRACTION:
                continue
            feeder = self.feeding.get(name, (None, None))[0]
            where = f"`{name}`" + (f" (after `{feeder}`)" if feeder else "")
            ctx.report("dead_units", step, f"{fraction:.0%} of the units of {where} never activated over "
                       f"{window.rows:,} samples ({dead:,} of {units:,})", {
                           "dead_fraction": fraction, "dead_units": dead, "units": units,
                           "samples": window.rows, "feeding_layer": feeder, "call": call,
                       }, layer=name)

    def end(self, ctx: RunContext, status: str) -> None:
        for handle in self.handles:
            handle.remove()
        self.handles = []
