"""Exploding and vanishing gradients, from the per-step global norm and the per-layer norms of probes.

Exploding (any of):
- spike: a step's global gradient norm (before clipping) above SPIKE_FACTOR x the median of the previous
  up to RUNNING_WINDOW steps and above PEAK_FACTOR x the highest typical (per-flush median) norm seen so
  far, while the flushed window's own median stays below SHIFT_FACTOR x the running median (an isolated
  spike, not a change of level), and out of proportion with that step's loss: its norm per unit of loss
  at least LOSS_FACTOR x the running median of norm / loss. A hard batch late in a healthy run (a few
  misclassified samples among confidently right ones) raises loss and gradient together, 10-15x the
  tiny typical norm of a fitted model; a gradient amplified by a layer or by outlier inputs does not
  come with the loss. (Where the loss is not positive the ratio means nothing and the norm alone
  decides.) Judged only after warmup plus MIN_HISTORY steps: early training legitimately changes the
  gradient scale fast, and late in a run tiny norms make big ratios of little;
- growth: the median norm of the last GROWTH_WINDOW steps above GROWTH_FACTOR x the median of the first
  GROWTH_WINDOW steps after warmup;
- clipping active most steps: with train.grad_clip on, the norm exceeded the clip on CLIPPED_FRACTION
  of the last CLIP_WINDOW steps (info: the clip is doing a lot of work) and a median norm above
  CLIP_FACTOR x the clip makes it a warning;
- per layer, on two probes in a row: the earliest layers' gradient norms more than LAYER_RATIO x the
  last layers' (gradients growing as they flow back; the earliest such layer is named).
Vanishing, on two probes in a row (one alone can be an init artefact: LoRA's zero-initialised B gives
A exactly zero gradient at step 0): the earliest layers' gradient norms (median of the first third
of the layers, in definition order) below 1/LAYER_RATIO of the last third's, or a layer whose gradient
is ~0 (below ZERO_RELATIVE x the largest layer's). The earliest such layer is named.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from workbench.diagnostics.base import Detector, RunContext, compact, fmt

SPIKE_FACTOR = 10.0
PEAK_FACTOR = 2.0
SHIFT_FACTOR = 3.0
# Measured: hard batches of a healthy run <= 1.1x; a 300x custom-layer burst 100-240x, 2% outlier inputs 8-60x.
LOSS_FACTOR = 3.0
RUNNING_WINDOW = 500
MIN_HISTORY = 50
GROWTH_WINDOW = 100
GROWTH_FACTOR = 100.0
CLIP_WINDOW = 200
CLIPPED_FRACTION = 0.9
CLIP_FACTOR = 10.0
LAYER_RATIO = 1e3
ZERO_RELATIVE = 1e-10
MIN_LAYERS = 3


def _ordered_layers(grad_norms: dict[str, float]) -> list[tuple[str, float]]:
    """Per-layer norms in definition order (the probe keeps named_parameters order)."""
    return [(name, value) for name, value in grad_norms.items() if math.isfinite(value)]


def _thirds(layers: list[tuple[str, float]]) -> tuple[list[tuple[str, float]], list[tuple[str, float]]]:
    third = max(1, len(layers) // 3)
    return layers[:third], layers[-third:]


class ExplodingGradientsDetector(Detector):
    name = "exploding_gradients"

    def __init__(self):
        self.baseline: float | None = None
        self.peak_median = 0.0
        self.layers_before = False
        self.clip_reported_at = -10**9

    def after_flush(self, ctx: RunContext, added: int) -> None:
        history = ctx.history
        new = history.recent("grad_norm", added)
        finite_new = new[np.isfinite(new)]
        peak = self.peak_median
        new_median = float(np.median(finite_new)) if finite_new.size else None
        if new_median is not None:
            self.peak_median = max(self.peak_median, new_median)
        # A spike must reach PEAK_FACTOR x the highest typical level so far: when no new norm does, the
        # running median of the previous steps (the costly part, every flush) cannot matter.
        candidate = finite_new.size and float(finite_new.max()) >= PEAK_FACTOR * peak
        if candidate and len(history) - added >= MIN_HISTORY and ctx.settled(MIN_HISTORY):
            previous = history.recent("grad_norm", RUNNING_WINDOW + added)[:-added]
            previous = previous[np.isfinite(previous)]
            median = float(np.median(previous)) if previous.size >= MIN_HISTORY else 0.0
            # Isolated spikes only: a window whose typical norm also moved is a level shift (see growth).
            if median > 0 and new_median < SHIFT_FACTOR * median:
                ratios = new / median
                worst = int(np.nanargmax(np.where(np.isfinite(ratios), ratios, -np.inf)))
                if (np.isfinite(ratios[worst]) and ratios[worst] >= SPIKE_FACTOR
                        and new[worst] >= PEAK_FACTOR * peak):
                    self._spike(ctx, added, median, ratios, peak)
        self._growth(ctx)
        self._clipping(ctx)

    def _spike(self, ctx: RunContext, added: int, median: float, ratios: np.ndarray, peak: float) -> None:
        """Report the worst spike of the new steps that the loss of its own step does not explain."""
        history = ctx.history
        new_norms, new_loss = history.recent("grad_norm", added), history.recent("loss", added)
        previous_norms = history.recent("grad_norm", RUNNING_WINDOW + added)[:-added]
        previous_loss = history.recent("loss", RUNNING_WINDOW + added)[:-added]
        usual = previous_loss > 0
        per_loss = previous_norms[usual] / previous_loss[usual]
        per_loss = per_loss[np.isfinite(per_loss)]
        typical = float(np.median(per_loss)) if per_loss.size >= MIN_HISTORY else 0.0
        with np.errstate(divide="ignore", invalid="ignore"):
            out_of_proportion = np.where(new_loss > 0, new_norms / new_loss, np.inf) >= LOSS_FACTOR * typical
        spikes = np.isfinite(ratios) & (ratios >= SPIKE_FACTOR) & (new_norms >= PEAK_FACTOR * peak)
        if typical > 0:
            spikes &= out_of_proportion
        if not spikes.any():
            return
        worst = int(np.argmax(np.where(spikes, ratios, -np.inf)))
        step = history.steps[-added + worst]
        evidence = {"grad_norm": float(new_norms[worst]), "running_median": median, "ratio": float(ratios[worst]),
                    "spikes_in_window": int(spikes.sum()), "loss": float(new_loss[worst])}
        if typical > 0 and new_loss[worst] > 0:
            evidence["norm_per_loss_ratio"] = float(new_norms[worst] / new_loss[worst] / typical)
        ctx.report("exploding_gradients", step, f"gradient norm {fmt(float(new_norms[worst]))} at step {step:,} "
                   f"is {ratios[worst]:.0f}x its running median ({fmt(median)}), out of proportion with "
                   f"that step's loss ({fmt(float(new_loss[worst]))})", evidence)

    def _growth(self, ctx: RunContext) -> None:
        history = ctx.history
        warmup = ctx.warmup_steps()
        if self.baseline is None:
            if history.first_step is None:
                return
            start = history.first_step + warmup
            steps = np.asarray(history.steps)
            chosen = np.asarray(history.grad_norm)[(steps >= start) & (steps < start + GROWTH_WINDOW)]
            if steps.size and steps[-1] >= start + GROWTH_WINDOW:
                chosen = chosen[np.isfinite(chosen)]
                self.baseline = float(np.median(chosen)) if chosen.size else None
            return
        recent = history.recent("grad_norm", GROWTH_WINDOW)
        recent = recent[np.isfinite(recent)]
        if recent.size < GROWTH_WINDOW // 2 or not self.baseline:
            return
        median = float(np.median(recent))
        if median >= GROWTH_FACTOR * self.baseline:
            step = history.steps[-1]
            ctx.report("exploding_gradients", step, f"gradient norm grew {median / self.baseline:.0f}x: median "
                       f"{fmt(median)} over the last {GROWTH_WINDOW} steps vs {fmt(self.baseline)} early on", {
                           "recent_median": median, "early_median": self.baseline,
                           "ratio": median / self.baseline,
                       })

    def _clipping(self, ctx: RunContext) -> None:
        clip = ctx.preset.train.grad_clip
        history = ctx.history
        if clip <= 0 or len(history) < CLIP_WINDOW:
            return
        step = history.steps[-1]
        if step - self.clip_reported_at < CLIP_WINDOW:
            return
        norms = history.recent("grad_norm", CLIP_WINDOW)
        norms = norms[np.isfinite(norms)]
        if norms.size < CLIP_WINDOW // 2:
            return
        fraction = float(np.mean(norms > clip))
        if fraction < CLIPPED_FRACTION:
            return
        median = float(np.median(norms))
        self.clip_reported_at = step
        severity = "warning" if median >= CLIP_FACTOR * clip else "info"
        ctx.report("exploding_gradients", step, f"gradient clipping at {fmt(clip)} was active on "
                   f"{fraction:.0%} of the last {norms.size} steps (median norm {fmt(median)})", {
                       "clipped_fraction": fraction, "median_norm": median, "grad_clip": clip,
                   }, severity=severity)

    def probe_end(self, ctx: RunContext, step: int, probe: dict[str, Any]) -> None:
        layers = _ordered_layers(probe.get("grad_norms", {}))
        if len(layers) < MIN_LAYERS:
            return
        early, late = _thirds(layers)
        late_median = float(np.median([v for _, v in late]))
        early_median = float(np.median([v for _, v in early]))
        growing = late_median > 0 and early_median >= LAYER_RATIO * late_median
        persisting, self.layers_before = growing and self.layers_before, growing
        if not persisting:
            return
        name, value = next(((n, v) for n, v in layers if v >= LAYER_RATIO * late_median), early[0])
        ctx.report("exploding_gradients", step, f"gradients grow as they flow back: `{name}` has gradient norm "
                   f"{fmt(value)}, {value / late_median:.0f}x the last layers' ({fmt(late_median)})", {
                       "layer_grad_norm": value, "late_median": late_median, "early_median": early_median,
                       "grad_norms": compact(dict(layers)),
                   }, layer=name)


class VanishingGradientsDetector(Detector):
    name = "vanishing_gradients"

    def __init__(self):
        self.zero_before: set[str] = set()
        self.ratio_before = False

    def probe_end(self, ctx: RunContext, step: int, probe: dict[str, Any]) -> None:
        layers = _ordered_layers(probe.get("grad_norms", {}))
        if len(layers) < MIN_LAYERS:
            return
        largest = max(v for _, v in layers)
        if largest <= 0:
            return
        zero = {n for n, v in layers if v <= ZERO_RELATIVE * largest}
        persistent = [n for n, _ in layers if n in zero and n in self.zero_before]
        self.zero_before = zero
        early, late = _thirds(layers)
        late_median = float(np.median([v for _, v in late]))
        early_median = float(np.median([v for _, v in early]))
        evidence = {"early_median": early_median, "late_median": late_median, "grad_norms": compact(dict(layers))}
        vanishing = late_median > 0 and early_median * LAYER_RATIO < late_median
        persisting, self.ratio_before = vanishing and self.ratio_before, vanishing
        if persisting:
            name, value = next(((n, v) for n, v in layers if v * LAYER_RATIO < late_median), early[0])
            size = (f"a gradient norm of {fmt(value)}, {late_median / value:.2g}x smaller than" if value > 0
                    else "no gradient at all (norm 0), against")
            ctx.report("vanishing_gradients", step, f"`{name}` gets {size} the last layers' ({fmt(late_median)})",
                       {**evidence, "layer_grad_norm": value}, layer=name)
        elif persistent:
            name = persistent[0]
            ctx.report("vanishing_gradients", step, f"`{name}` has received a zero gradient on two probes in a "
                       f"row (largest layer gradient: {fmt(largest)})", {**evidence, "zero_layers": persistent},
                       layer=name)
