"""What every detector shares: the run's recent telemetry, the loss an untrained model should get, and
how a finding is reported.

Detectors never see every step as it happens: the diagnostics engine feeds them the rows of each flush (every
`train.log_every` steps), every evaluation and every probe, so their cost does not grow with the
step rate.
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from workbench.diagnostics.remedies import SEVERITIES, finding
from workbench.numbers import format_number

if TYPE_CHECKING:
    from workbench.training.view import RunView

# Per-step values kept for the curve detectors (older steps are dropped).
HISTORY_STEPS = 4000
# Per-layer evidence keeps at most this many layers (the first and last halves).
EVIDENCE_LAYERS = 12
# Below this fraction of trainable weights a model counts as mostly frozen (see RunContext.mostly_frozen).
FROZEN_FRACTION = 0.1
# The starting loss of a fresh run: the step-0 loss, or the mean of the first steps if lower.
START_STEPS = 5
# The training loss set beside an evaluation: a mean over at least this many recent steps (fewer, e.g. a
# flush lagging behind the evaluation, and the evaluation has no training loss to compare with).
MIN_TRAIN_STEPS = 8
# Set-up samples (RunContext.train_batches/val_batches) stop after this many input numbers (~32 MB of float32)
# and are read this many rows at a time.
SAMPLE_VALUES = 2**23
SAMPLE_BATCH = 256


@dataclass
class EvalPoint:
    """One evaluation, with the training loss around the same step for comparison.

    `train_loss_se` is the standard error of that training-loss mean; the val estimate's own is the
    `val_loss_se` metric when the evaluation reports one (see `val_noise` in overfitting.py)."""

    step: int
    val_loss: float
    train_loss: float | None
    metrics: dict[str, float] = field(default_factory=dict)
    train_loss_se: float | None = None


@dataclass
class Reference:
    """The loss a model that has learned nothing gets (ln C for C classes; the target variance for MSE)."""

    loss: float
    description: str


class History:
    """Per-step loss, gradient norm and LR from the flushed telemetry, plus every evaluation."""

    def __init__(self, max_steps: int = HISTORY_STEPS):
        self.max_steps = max_steps
        self.steps: list[int] = []
        self.loss: list[float] = []
        self.grad_norm: list[float] = []
        self.lr: list[float] = []
        self.evals: list[EvalPoint] = []
        self.first_step: int | None = None
        self.first_loss: float | None = None  # the loss at step 0 of a fresh run
        self.start_loss: float | None = None  # see START_STEPS
        self.min_block_loss: float | None = None

    def add_rows(self, rows: list[tuple[int, str, float]]) -> int:
        """Append the train rows of one flush; returns how many steps were added."""
        by_step: dict[int, dict[str, float]] = {}
        for step, name, value in rows:
            if name in ("loss", "grad_norm", "lr"):
                by_step.setdefault(step, {})[name] = value
        steps = [step for step in sorted(by_step) if "loss" in by_step[step]]
        return self.add_series(steps, [by_step[s]["loss"] for s in steps],
                               [by_step[s].get("grad_norm", math.nan) for s in steps],
                               [by_step[s].get("lr", math.nan) for s in steps])

    def add_series(self, steps: list[int], loss: list[float], grad_norm: list[float], lr: list[float]) -> int:
        """Append one flush's steps (ascending) with their loss, grad norm and LR; returns how many."""
        if not steps:
            return 0
        if self.first_step is None:
            self.first_step = steps[0]
            if steps[0] == 0 and math.isfinite(loss[0]):
                self.first_loss = loss[0]
        self.steps += steps
        self.loss += loss
        self.grad_norm += grad_norm
        self.lr += lr
        if self.start_loss is None and self.first_step == 0 and len(self.loss) >= START_STEPS:
            first = np.asarray(self.loss[:START_STEPS])
            first = first[np.isfinite(first)]
            if first.size:
                # Step 0 is the untrained model; a too-high LR can wreck the loss within the next steps.
                mean = float(first.mean())
                self.start_loss = min(mean, self.first_loss) if self.first_loss is not None else mean
        if len(self.steps) > 2 * self.max_steps:  # trim in bulk, not every flush
            for series in (self.steps, self.loss, self.grad_norm, self.lr):
                del series[: len(series) - self.max_steps]
        return len(steps)

    def recent(self, name: str, count: int) -> np.ndarray:
        values = getattr(self, name)
        return np.asarray(values[-count:], dtype=np.float64)

    def recent_train_loss(self, count: int = 50) -> float | None:
        """Mean finite training loss over the last `count` steps."""
        values = self.recent("loss", count)
        values = values[np.isfinite(values)]
        return float(values.mean()) if values.size else None

    def train_loss_near(self, step: int, window: int) -> tuple[float | None, float | None]:
        """Mean finite training loss and its standard error over the steps just before `step`: at most
        `window` of them, and never from the first half of the run so far (a mean that reached back to
        the first, high-loss steps would make a converged run look as if its train loss were still
        falling). (None, None) when the history holds fewer than MIN_TRAIN_STEPS of them."""
        if self.first_step is None:
            return None, None
        low = max(step - window, self.first_step + (step - self.first_step) // 2)
        start, stop = bisect_left(self.steps, low), bisect_right(self.steps, step)
        values = np.asarray(self.loss[start:stop], dtype=np.float64)
        values = values[np.isfinite(values)]
        if values.size < MIN_TRAIN_STEPS:
            return None, None
        return float(values.mean()), float(values.std(ddof=1) / math.sqrt(values.size))

    def __len__(self) -> int:
        return len(self.steps)


class RunContext:
    """What every detector gets: a view of the run (state, the trained objects, findings, control), the
    shared history and the reference loss. Works the same for the preset trainer and a user's own loop."""

    def __init__(self, run: "RunView"):
        self.run = run
        self.preset = run.preset
        self.history = History()
        self.reference: Reference | None = None
        self.ended = False

    @property
    def trainer(self) -> "RunView":
        """The same view as `run` (detectors written against the preset trainer use this name); it is
        the view, never the loop object."""
        return self.run

    @property
    def step(self) -> int:
        return self.run.step

    def base_lr(self) -> float:
        """The configured peak LR of the first group (follows live LR changes, which scale base_lrs)."""
        scheduler = self.run.scheduler
        base = getattr(scheduler, "base_lrs", None)
        if base:
            return float(base[0])
        return float(self.preset.optim.lr)

    def current_lr(self) -> float:
        return float(self.run.optimizer.param_groups[0]["lr"])

    def pretrained(self) -> bool:
        return bool(self.preset.model.pretrained)

    def mostly_frozen(self) -> bool:
        """Only a small fraction of the weights train (adapters, prompts, a head on a frozen backbone):
        how far the loss can fall is bounded by the frozen part, so "flat" and "underfit" are only info."""
        total = self.run.params_total
        return bool(total) and self.run.params_trainable < FROZEN_FRACTION * total

    def warmup_steps(self) -> int:
        """Steps the schedule spends raising the LR (OneCycle rises for pct_start of the run)."""
        schedule = self.preset.schedule
        if schedule.name == "onecycle":
            return int(schedule.pct_start * self.preset.train.max_steps)
        return schedule.warmup_steps

    def settled(self, extra_steps: int = 0) -> bool:
        """Past the LR warmup of this run (plus `extra_steps`), judged on the newest flushed step."""
        history = self.history
        if not history.steps:
            return False
        return history.steps[-1] >= (history.first_step or 0) + self.warmup_steps() + extra_steps

    def train_loss_flat(self, window: int, tolerance: float) -> bool:
        """The mean training loss of the last `window` steps improved by less than `tolerance` (relative)
        on the `window` before."""
        losses = self.history.recent("loss", 2 * window)
        if losses.size < 2 * window or not np.all(np.isfinite(losses)):
            return False
        previous, current = float(losses[:window].mean()), float(losses[window:].mean())
        return previous != 0 and (previous - current) / abs(previous) < tolerance

    # -- what the set-up and probe checks read (bounded; nothing here runs per step) -------------------
    @property
    def model(self):
        """The module being trained (what probe hooks attach to)."""
        return self.trainer.model

    def last_module(self) -> tuple[str, Any] | None:
        """The model's last leaf module in definition order, with its dotted name (None for no leaves)."""
        last = None
        for name, module in self.model.named_modules():
            if name and next(module.children(), None) is None:
                last = (name, module)
        return last

    def num_classes(self) -> int | None:
        info = getattr(self.trainer, "info", None)
        return getattr(info, "num_classes", None)

    def train_batches(self, max_rows: int, max_values: int = SAMPLE_VALUES) -> list[Any]:
        """The first `max_rows` training samples in stored order (augmentation applied as in training), in
        batches; fewer when their inputs would exceed `max_values` numbers (large images)."""
        return self._bounded(self._train_dataset(), max_rows, max_values)

    def _train_dataset(self):
        """The training set: the run view's `train_data`, else the trainer's batch source's dataset (None for
        a user's own loop, whose data the run never sees: the set-up data checks then skip)."""
        dataset = getattr(self.trainer, "train_data", None)
        if dataset is None:
            dataset = getattr(getattr(self.trainer, "train_source", None), "dataset", None)
        return dataset

    def train_size(self) -> int | None:
        """How many samples the training set holds (None when it cannot say)."""
        dataset = self._train_dataset()
        try:
            return len(dataset) if dataset is not None else None
        except TypeError:
            return None

    def val_batches(self, max_rows: int | None = None, max_values: int = SAMPLE_VALUES) -> list[Any]:
        """The validation batches every evaluation sees (the first `train.eval_batches`), at most
        `max_rows` samples."""
        config = self.preset.train
        rows = config.eval_batches * config.batch_size
        return self._bounded(getattr(self.trainer, "val_data", None), min(rows, max_rows or rows), max_values,
                             config.batch_size)

    def _bounded(self, dataset, max_rows: int, max_values: int, batch_size: int | None = None) -> list[Any]:
        import torch

        from workbench.training.batches import batch_size_of, eval_batches, split_batch

        if dataset is None or max_rows <= 0:
            return []
        batch_size = batch_size or min(max_rows, SAMPLE_BATCH)
        collate = getattr(getattr(self.trainer, "info", None), "collate", None)
        batches, rows, values = [], 0, 0
        # Augmentations draw from torch's global generator: reading samples here must not shift the draws
        # the run makes (a resumed run restores that generator before the detectors' set-up).
        with torch.random.fork_rng(devices=[]):
            for batch in eval_batches(dataset, batch_size, math.ceil(max_rows / batch_size), collate):
                batches.append(batch)
                x, _ = split_batch(batch)
                rows += batch_size_of(x)
                values += sum(t.numel() for t in input_tensors(x))
                if rows >= max_rows or values >= max_values:
                    break
        return batches

    def report(self, code: str, step: int, message: str, evidence: dict[str, Any] | None = None,
               layer: str | None = None, severity: str | None = None) -> dict[str, Any]:
        new = finding(code, step, message, evidence, layer, severity)
        previous = self.run.findings.get((code, layer or ""))
        if previous and SEVERITIES.index(previous["severity"]) > SEVERITIES.index(new["severity"]):
            new["severity"] = previous["severity"]  # one entry per (code, layer): it never gets milder
        entry = self.run.report_finding(new)
        if self.ended and self.run.run_id is not None:
            # After the run ends its store writer is closed: write the finding directly.
            self.run.store.upsert_finding(self.run.run_id, entry)
        return entry

    def has_finding(self, code: str) -> bool:
        return any(key[0] == code for key in self.run.findings)


class Detector:
    """One diagnosis. Hooks run on the trainer thread; a detector that raises is switched off."""

    name = "detector"

    def setup(self, ctx: RunContext) -> None: ...

    def after_flush(self, ctx: RunContext, added: int) -> None:
        """New train rows are in ctx.history (`added` steps)."""

    def after_eval(self, ctx: RunContext, point: EvalPoint) -> None: ...

    def probe_start(self, ctx: RunContext, step: int) -> None: ...

    def probe_end(self, ctx: RunContext, step: int, probe: dict[str, Any]) -> None: ...

    def nonfinite(self, ctx: RunContext, step: int, batch: Any, what: str) -> None: ...

    def end(self, ctx: RunContext, status: str) -> None: ...


def input_tensors(x: Any) -> list[Any]:
    """The tensors in a model input (a tensor, a dict of them as tokenizers give, or a tuple/list)."""
    import torch

    if isinstance(x, torch.Tensor):
        return [x]
    if isinstance(x, dict) or hasattr(x, "items"):
        return [v for _, v in sorted(x.items()) if isinstance(v, torch.Tensor)]
    if isinstance(x, (list, tuple)):
        return [t for item in x for t in input_tensors(item)]
    return []


def compact(values: dict[str, float], keep: int = EVIDENCE_LAYERS) -> dict[str, Any]:
    """Per-layer numbers for evidence: all of them for small models, else the first and last keep/2
    (in order) and how many were left out, so a finding stays readable and small in the store."""
    items = list(values.items())
    if len(items) <= keep:
        return dict(items)
    half = keep // 2
    return {**dict(items[:half]), "...": f"{len(items) - 2 * half} more layers", **dict(items[-half:])}


def fmt(value: float | None) -> str:
    """Numbers in messages: 4 significant digits, NaN/inf spelled out (workbench.numbers)."""
    return format_number(value)
