"""Loss on probabilities: the model's output is already a Softmax/Sigmoid when the loss applies one itself.

cross_entropy and nll expect logits / log-probabilities and bce_with_logits expects logits; fed
probabilities, the loss is squashed into a narrow range and its gradients shrink as the model grows
confident, so training crawls. On probe steps only, a forward hook on the model looks at its output
(the tensor the loss gets), and hooks on every nn.Softmax / nn.Sigmoid tell whether one of them
produced it. Reported when:
- cross_entropy / nll: every output is in [0, 1] and each row sums to 1 (within ROW_SUM_TOLERANCE):
  probabilities, whatever made them (a module, or softmax in the forward's code);
- bce_with_logits: the output was produced by an nn.Sigmoid, or every output is in [0, 1] (and not all
  equal) on NUMERIC_PROBES probes in a row (healthy logits leave [0, 1] at once).
`layer` is the Softmax/Sigmoid module that produced the output (None for softmax in functional code);
the evidence also names the model's last module. Judged until it fires, on the first probes only.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from workbench.diagnostics.base import Detector, RunContext

LOSSES = ("cross_entropy", "nll", "bce_with_logits")
PROBABILITY_MODULES = (nn.Softmax, nn.Sigmoid)
ROW_SUM_TOLERANCE = 1e-3
NUMERIC_PROBES = 3
# Probes looked at before giving up (the check is about how the model is wired: it shows at once).
MAX_PROBES = 5


class LossOnProbabilitiesDetector(Detector):
    name = "loss_on_probabilities"

    def __init__(self):
        self.handles: list[Any] = []
        self.active = False
        self.probes = 0
        self.in_unit_range = 0  # consecutive probes with every output in [0, 1]
        self.seen: dict[str, Any] | None = None
        self.producers: dict[int, str] = {}

    def setup(self, ctx: RunContext) -> None:
        self.active = ctx.preset.train.loss in LOSSES and ctx.model is not None

    def probe_start(self, ctx: RunContext, step: int) -> None:
        if not self.active:
            return
        self.seen, self.producers = None, {}
        model = ctx.model
        for name, module in model.named_modules():
            if name and isinstance(module, PROBABILITY_MODULES):
                self.handles.append(module.register_forward_hook(self._producer_hook(name)))
        self.handles.append(model.register_forward_hook(self._output_hook))

    def _producer_hook(self, name: str):
        def hook(module, args, output):
            if isinstance(output, torch.Tensor):
                self.producers[id(output)] = name

        return hook

    def _output_hook(self, module, args, output):
        if self.seen is not None:  # one look per probe (the first micro-batch)
            return
        logits = getattr(output, "logits", output)
        if not isinstance(logits, torch.Tensor) or not logits.is_floating_point() or logits.numel() == 0:
            self.seen = {}
            return
        with torch.no_grad():
            values = logits.detach().float()
            low, high = float(values.min()), float(values.max())
            row_error = float((values.sum(-1) - 1).abs().max()) if values.dim() >= 1 else float("inf")
        self.seen = {"min": low, "max": high, "row_sum_error": row_error, "classes": int(logits.shape[-1]),
                     "producer": self.producers.get(id(logits))}

    def probe_end(self, ctx: RunContext, step: int, probe: dict[str, Any]) -> None:
        self._remove()
        if not self.active or not self.seen:
            return
        self.probes += 1
        seen = self.seen
        loss = ctx.preset.train.loss
        unit = 0.0 <= seen["min"] and seen["max"] <= 1.0
        self.in_unit_range = self.in_unit_range + 1 if unit and seen["max"] > seen["min"] else 0
        producer = seen["producer"]
        if loss == "bce_with_logits":
            fired = unit and (producer is not None or self.in_unit_range >= NUMERIC_PROBES)
        else:
            fired = unit and seen["classes"] > 1 and seen["row_sum_error"] <= ROW_SUM_TOLERANCE
        if fired:
            self.active = False
            last = ctx.last_module()
            last_name = last[0] if last else None
            kind = "a Sigmoid" if loss == "bce_with_logits" else "a Softmax"
            made_by = f"`{producer}`" if producer else f"{kind.split()[1].lower()} in the model's forward code"
            ctx.report("loss_on_probabilities", step, f"{loss} gets the model's output as probabilities (all in "
                       f"[{seen['min']:.3g}, {seen['max']:.3g}]" + (", rows summing to 1" if loss != "bce_with_logits"
                                                                    else "") +
                       f", made by {made_by}) but applies {kind} itself: the loss is squashed and its gradients "
                       f"vanish", {
                           "loss": loss, "output_min": seen["min"], "output_max": seen["max"],
                           "row_sum_error": seen["row_sum_error"], "produced_by": producer,
                           "last_module": last_name, "last_module_type": type(last[1]).__name__ if last else None,
                       }, layer=producer)
        elif self.probes >= MAX_PROBES:
            self.active = False

    def _remove(self) -> None:
        for handle in self.handles:
            handle.remove()
        self.handles = []

    def end(self, ctx: RunContext, status: str) -> None:
        self._remove()
