"""The learning-rate finder: an exponential LR sweep on a fresh copy of the preset's model (fastai style).

`find_lr(preset)` builds the model, data, optimizer and loss with the same builders as the Trainer,
then trains for up to `steps` steps while the LR grows exponentially from `start_lr` to `end_lr`
(every param group keeps its ratio to the first). The loss is smoothed with a bias-corrected
exponential moving average; the sweep stops early when the smoothed loss exceeds `diverge_factor` x
its best, or goes NaN/inf. The suggestion is the LR at the steepest descent of the smoothed loss
against log10(LR), ignoring the first SKIP_START fraction of the sweep and everything after the
minimum. Nothing is recorded; the preset is not changed. It is a plain function so the TUI can run it
on the trainer's thread (`progress` sees each step, `should_stop` can cancel it).
"""

from __future__ import annotations

import math
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

import numpy as np
import torch

START_LR = 1e-7
END_LR = 10.0
STEPS = 100
DIVERGE_FACTOR = 4.0
SMOOTHING = 0.9
SKIP_START = 0.1
MIN_POINTS = 10


@dataclass
class LRFinderResult:
    """The sweep: LR, raw and smoothed loss per step, and the suggested LR (None if the curve never fell)."""

    lrs: list[float] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)
    smoothed: list[float] = field(default_factory=list)
    suggested_lr: float | None = None
    min_loss_lr: float | None = None
    stopped_early: bool = False
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def suggest_lr(lrs: list[float], smoothed: list[float]) -> tuple[float | None, float | None]:
    """(steepest-descent LR, LR at the minimum smoothed loss) from a sweep."""
    if len(lrs) < MIN_POINTS:
        return None, None
    values = np.asarray(smoothed, dtype=np.float64)
    logs = np.log10(np.asarray(lrs, dtype=np.float64))
    finite = np.isfinite(values)
    if finite.sum() < MIN_POINTS:
        return None, None
    lowest = int(np.nanargmin(np.where(finite, values, np.nan)))
    start = int(len(values) * SKIP_START)
    if lowest - start < 3:
        return None, float(lrs[lowest])
    slopes = np.gradient(values[start: lowest + 1], logs[start: lowest + 1])
    steepest = start + int(np.argmin(slopes))
    if slopes[steepest - start] >= 0:
        return None, float(lrs[lowest])
    return float(lrs[steepest]), float(lrs[lowest])


def find_lr(preset, start_lr: float = START_LR, end_lr: float = END_LR, steps: int = STEPS,
            diverge_factor: float = DIVERGE_FACTOR, smoothing: float = SMOOTHING,
            progress: Callable[[int, float, float], None] | None = None,
            should_stop: Callable[[], bool] | None = None) -> LRFinderResult:
    """Sweep the LR exponentially on a fresh model built from `preset`; returns the curve and a suggestion."""
    from workbench.builders import build_data, build_model, check_preset
    from workbench.errors import ConfigError
    from workbench.training.batches import BatchSource, split_batch, to_device
    from workbench.training.device import pick_device
    from workbench.training.trainer import seed_everything
    from workbench.training.losses import build_loss
    from workbench.training.optim import build_optimizer

    if not (0 < start_lr < end_lr) or steps < MIN_POINTS:
        raise ConfigError(f"lr finder: need 0 < start_lr < end_lr and at least {MIN_POINTS} steps")
    check_preset(preset)
    config = preset.train
    if config.threads:
        torch.set_num_threads(config.threads)
    seed_everything(config.seed)
    device = pick_device(config.device)
    data = build_data(preset)
    model = build_model(preset, data.info).to(device).train()
    optimizer = build_optimizer(model, preset.optim)
    ratios = [group["lr"] / optimizer.param_groups[0]["lr"] for group in optimizer.param_groups]
    loss_fn = build_loss(config)
    source = BatchSource(data.train, config.batch_size, config.seed, collate=data.info.collate)
    params = [p for p in model.parameters() if p.requires_grad]
    if config.precision == "fp16" and device.type != "cuda":
        raise ConfigError("train.precision: fp16 needs a CUDA device (use bf16 or fp32 on CPU)")
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(config.precision)
    scaler = torch.amp.GradScaler("cuda") if config.precision == "fp16" else None
    result = LRFinderResult()
    growth = (end_lr / start_lr) ** (1.0 / (steps - 1))
    average, best = 0.0, math.inf
    try:
        for index in range(steps):
            if should_stop is not None and should_stop():
                result.stopped_early, result.reason = True, "cancelled"
                break
            lr = start_lr * growth ** index
            for group, ratio in zip(optimizer.param_groups, ratios):
                group["lr"] = lr * ratio
            x, y = split_batch(to_device(source.next(), device))
            with torch.autocast(device.type, dtype=dtype) if dtype is not None else nullcontext():
                if loss_fn is None:
                    output = model(**x, labels=y) if isinstance(x, dict) else model(x, labels=y)
                    loss = output["loss"] if hasattr(output, "keys") else output[0]
                else:
                    output = model(**x) if isinstance(x, dict) else model(x)
                    loss = loss_fn(getattr(output, "logits", output), y)
            value = float(loss.detach().float())
            if not math.isfinite(value):
                result.stopped_early, result.reason = True, f"loss became {value} at lr {lr:.3g}"
                break
            average = smoothing * average + (1 - smoothing) * value
            smoothed = average / (1 - smoothing ** (index + 1))
            result.lrs.append(lr)
            result.losses.append(value)
            result.smoothed.append(smoothed)
            if progress is not None:
                progress(index, lr, smoothed)
            best = min(best, smoothed)
            if index >= MIN_POINTS and smoothed > diverge_factor * best:
                result.stopped_early, result.reason = True, (f"smoothed loss {smoothed:.4g} passed {diverge_factor:g}x "
                                                             f"the best ({best:.4g}) at lr {lr:.3g}")
                break
            optimizer.zero_grad(set_to_none=True)
            (scaler.scale(loss) if scaler is not None else loss).backward()
            if scaler is not None:
                scaler.unscale_(optimizer)
            if config.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(params, config.grad_clip)
            if scaler is not None:
                scaler.step(optimizer)
                scaler.update()
            else:
                optimizer.step()
    finally:
        source.close()
    if not result.reason:
        result.reason = f"swept {start_lr:.3g} -> {end_lr:.3g} in {len(result.lrs)} steps"
    result.suggested_lr, result.min_loss_lr = suggest_lr(result.lrs, result.smoothed)
    return result


def plot_text(result: LRFinderResult, width: int = 70, height: int = 18, color: bool = True) -> str:
    """The sweep as a terminal plot (smoothed loss against LR on a log axis), with the suggestion marked."""
    import plotext as plt

    plt.clear_figure()
    plt.plotsize(width, height)
    if not color:
        plt.theme("clear")
    if result.lrs:
        logs = [math.log10(lr) for lr in result.lrs]
        plt.plot(logs, result.smoothed, marker="braille", label="smoothed loss")
        if result.suggested_lr:
            plt.vertical_line(math.log10(result.suggested_lr), color="red")
    plt.xlabel("log10(learning rate)")
    plt.ylabel("loss")
    plt.title("LR finder" + (f": suggested lr {result.suggested_lr:.3g}" if result.suggested_lr else ""))
    text = plt.build()
    return text if color else plt.uncolorize(text)  # the theme leaves a few codes (line colours, resets)
