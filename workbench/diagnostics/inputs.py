"""Unnormalised inputs: float features on large or wildly different scales fed straight into a Linear/Conv.

A linear or conv layer weighs every feature alike at init: a feature in the tens of thousands drowns
the others and makes the first steps' gradients huge, and features 100x apart in scale need 100x
different weights, which one learning rate cannot give them. Two looks, both bounded:
- at set-up, the scale of each feature over the first SAMPLE_ROWS training samples (the RMS of the
  feature: sqrt(mean^2 + std^2), so a large mean counts like a large spread);
- on the first probe, forward pre-hooks find the first module that runs: judged only when it is a
  Linear/Conv (or Bilinear) and gets the model's input itself (after Flatten/Identity at most), not a
  normalisation layer, an embedding or anything computed from it.
Reported (layer: that Linear/Conv) when the largest feature scale is at least LARGE_SCALE, or the
largest is above RATIO_FLOOR and at least RATIO times the smallest non-zero one. Features are the
columns of a Linear's input, the channels of a Conv's. Tables loaded with `--data` (data.kind = "table")
are never judged: that loader standardises every numeric column and one-hot encodes the rest.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from workbench.diagnostics.base import Detector, RunContext, fmt

SAMPLE_ROWS = 1024
LARGE_SCALE = 10.0
RATIO = 100.0
RATIO_FLOOR = 2.0
FEEDS = (nn.Linear, nn.Bilinear, nn.modules.conv._ConvNd)
SHAPE_ONLY = (nn.Flatten, nn.Unflatten, nn.Identity)
STANDARDISED_KINDS = ("table",)


def feature_scales(x: torch.Tensor, conv: bool) -> torch.Tensor:
    """Per-feature RMS: channels (dim 1) for a conv's input, else the columns of the rows flattened."""
    x = x.detach().float()
    rows = x.movedim(1, -1).reshape(-1, x.shape[1]) if conv else x.reshape(x.shape[0], -1)
    return rows.pow(2).mean(0).sqrt()


class UnnormalizedInputsDetector(Detector):
    name = "unnormalized_inputs"

    def __init__(self):
        self.sample: torch.Tensor | None = None
        self.handles: list[Any] = []
        self.model_input: torch.Tensor | None = None
        self.first: tuple[str, nn.Module, bool] | None = None  # (name, module, fed the model input)

    def setup(self, ctx: RunContext) -> None:
        if ctx.preset.data.kind in STANDARDISED_KINDS or ctx.model is None:
            return
        from workbench.training.batches import split_batch

        xs = []
        for batch in ctx.train_batches(SAMPLE_ROWS):
            x, _ = split_batch(batch)
            if not isinstance(x, torch.Tensor) or not x.is_floating_point() or x.dim() < 2:
                return  # token ids, dicts of them, several inputs: not this check
            xs.append(x.detach().cpu())
        self.sample = torch.cat(xs) if xs else None

    def probe_start(self, ctx: RunContext, step: int) -> None:
        if self.sample is None:
            return
        self.model_input, self.first = None, None
        self.handles.append(ctx.model.register_forward_pre_hook(self._input_hook))
        for name, module in ctx.model.named_modules():
            if name and next(module.children(), None) is None:
                self.handles.append(module.register_forward_pre_hook(self._first_hook(name)))

    def _input_hook(self, module, args):
        if self.model_input is None and args and isinstance(args[0], torch.Tensor):
            self.model_input = args[0]

    def _first_hook(self, name: str):
        def hook(module, args):
            if self.first is not None or isinstance(module, SHAPE_ONLY):
                return
            x = args[0] if args else None
            fed = (isinstance(x, torch.Tensor) and self.model_input is not None
                   and (x is self.model_input or (x.numel() == self.model_input.numel()
                                                  and torch.equal(x.reshape(-1), self.model_input.reshape(-1)))))
            self.first = (name, module, fed)

        return hook

    def probe_end(self, ctx: RunContext, step: int, probe: dict[str, Any]) -> None:
        for handle in self.handles:
            handle.remove()
        self.handles = []
        if self.sample is None or self.first is None:
            return
        sample, (name, module, fed) = self.sample, self.first
        self.sample, self.model_input, self.first = None, None, None  # judged once
        if not fed or not isinstance(module, FEEDS):
            return
        conv = isinstance(module, nn.modules.conv._ConvNd)
        scales = feature_scales(sample, conv)
        nonzero = scales[scales > 0]
        if nonzero.numel() == 0:
            return
        largest, smallest = float(nonzero.max()), float(nonzero.min())
        ratio = largest / smallest
        if largest < LARGE_SCALE and not (largest > RATIO_FLOOR and ratio >= RATIO):
            return
        what = "channel" if conv else "feature"
        big, small = int(scales.argmax()), int(torch.nonzero(scales == smallest)[0])
        means = (sample.movedim(1, -1).reshape(-1, sample.shape[1]) if conv else sample.reshape(len(sample), -1)).float()
        mean, std = means.mean(0), means.std(0)
        ctx.report("unnormalized_inputs", step, f"the inputs reach `{name}` ({type(module).__name__}) unnormalised: "
                   f"{what} {big} has scale {fmt(largest)} (mean {fmt(float(mean[big]))}, std {fmt(float(std[big]))}), "
                   f"{what} {small} {fmt(smallest)}, {ratio:.0f}x apart, over {len(sample):,} training samples", {
                       "largest_scale": largest, "smallest_scale": smallest, "ratio": ratio,
                       "largest_feature": big, "smallest_feature": small, "samples": len(sample),
                       "features": int(scales.numel()), "max_abs_mean": float(mean.abs().max()),
                       "max_std": float(std.max()),
                   }, layer=name)

    def end(self, ctx: RunContext, status: str) -> None:
        for handle in self.handles:
            handle.remove()
        self.handles = []
