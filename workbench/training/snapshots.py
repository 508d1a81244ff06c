"""Known-good training state kept in memory, so a diverged run can go back to weights that were healthy.

The `last_good` checkpoint written at a non-finite step holds the weights from just before that step,
and those are often already blown up (finite but huge: weight norm 1e18 after a few steps at lr 100).
`SnapshotKeeper` is offered each flush window (the losses and gradient norms the trainer has already
read back to the host there, so it adds no host sync of its own); when a snapshot is due (every
`every_steps` steps or `every_seconds` seconds) and the window is sane, it copies the state dicts
(`torch.clone` on the device: no host sync either; one weight-norm reading per snapshot). It keeps
the newest `keep`, and remembers each window's health, so at a divergence `choose()` returns the last
snapshot taken before the explosion began: the first of the trailing windows whose gradient norms grew
past `GROWTH` x their earlier median, whose loss rose past `LOSS_RISE` x its best, or that was
non-finite (a detector's finding step can move that start earlier).

Nothing here runs per step.
"""

from __future__ import annotations

import math
import statistics
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

GROWTH = 10.0  # a window whose largest grad norm is this many times the earlier windows' median: exploding
LOSS_RISE = 3.0  # a window whose mean loss is this many times the best window's: blowing up
WEIGHT_GROWTH = 3.0  # a snapshot whose weight norm grew this much since the previous one is not kept
HISTORY_WINDOWS = 256


@dataclass
class Snapshot:
    """A copy of everything a checkpoint holds, at `step`, taken while the run looked healthy."""

    step: int
    payload: dict[str, Any]
    weight_norm: float
    loss: float
    taken_at: float = field(default_factory=time.monotonic)


@dataclass
class _Window:
    start: int
    end: int
    healthy: bool


def clone_state(value: Any) -> Any:
    """A deep copy of a state dict whose tensors are cloned where they live (async on CUDA)."""
    import torch

    if isinstance(value, torch.Tensor):
        return value.detach().clone()
    if isinstance(value, dict):
        return {key: clone_state(item) for key, item in value.items()}
    if isinstance(value, list):  # (the RNG state's 625 ints are copied without a call each)
        return [item if type(item) in _IMMUTABLE else clone_state(item) for item in value]
    if isinstance(value, tuple):
        return tuple(item if type(item) in _IMMUTABLE else clone_state(item) for item in value)
    return value


_IMMUTABLE = frozenset((int, float, str, bool, type(None)))


def weight_norm(parameters: Iterable[Any]) -> float:
    """The global L2 norm of the weights: one host reading."""
    import torch

    tensors = [p.detach() for p in parameters]
    if not tensors:
        return 0.0
    norms = torch._foreach_norm(tensors)
    return float(torch.linalg.vector_norm(torch.stack([n.float() for n in norms])))


class SnapshotKeeper:
    """Bounded in-memory snapshots of sane training state, and the choice of one after a divergence."""

    def __init__(self, every_steps: int = 500, every_seconds: float = 30.0, keep: int = 2):
        if keep < 1:
            raise ValueError("keep must be at least 1")
        self.every_steps = every_steps
        self.every_seconds = every_seconds
        self.snapshots: deque[Snapshot] = deque(maxlen=keep)
        self.first: Snapshot | None = None  # the run's start (or resume point): kept whatever the bound
        self.windows: deque[_Window] = deque(maxlen=HISTORY_WINDOWS)
        self._grad_medians: deque[float] = deque(maxlen=HISTORY_WINDOWS)
        self._best_loss = math.inf
        self.taken = 0
        self.seconds = 0.0  # spent copying, ever (the benchmark and tests read it)

    # -- fed by the trainer at its flushes --------------------------------------------------------
    def take(self, step: int, payload: Callable[[], dict[str, Any]], norm: Callable[[], float],
             loss: float = math.nan) -> Snapshot | None:
        """Copy the state now (the run's start, or a due and sane flush). A blown-up weight norm is refused."""
        started = time.perf_counter()
        value = norm()
        previous = self.snapshots[-1].weight_norm if self.snapshots else None
        if not math.isfinite(value) or (previous and previous > 0 and value > WEIGHT_GROWTH * previous):
            return None
        snapshot = Snapshot(step, clone_state(payload()), value, loss)
        self.snapshots.append(snapshot)
        if self.first is None:
            self.first = snapshot
        self.taken += 1
        self.seconds += time.perf_counter() - started
        return snapshot

    def offer(self, start: int, losses: list[float], grad_norms: list[float],
              payload: Callable[[], dict[str, Any]], norm: Callable[[], float],
              now: float | None = None) -> Snapshot | None:
        """One flush window (steps start .. start + len - 1, read back already): judge it, snapshot if due.

        The snapshot is of the state after the window's last step, taken only when the window was sane."""
        end = start + len(losses) - 1
        healthy = self._judge(losses, grad_norms)
        self.windows.append(_Window(start, end, healthy))
        if not healthy or not self._due(end + 1, time.monotonic() if now is None else now):
            return None
        return self.take(end + 1, payload, norm, loss=statistics.fmean(losses))

    def _judge(self, losses: list[float], grad_norms: list[float]) -> bool:
        finite_norms = [g for g in grad_norms if math.isfinite(g)]
        if not losses or not all(math.isfinite(v) for v in losses) or len(finite_norms) != len(grad_norms):
            return False
        mean_loss = statistics.fmean(losses)
        median = statistics.median(self._grad_medians) if self._grad_medians else None
        healthy = not (median and max(finite_norms, default=0.0) > GROWTH * median) and not (
            math.isfinite(self._best_loss) and self._best_loss > 0 and mean_loss > LOSS_RISE * self._best_loss)
        if healthy:  # only healthy windows set what "normal" is
            if finite_norms:
                self._grad_medians.append(statistics.median(finite_norms))
            self._best_loss = min(self._best_loss, mean_loss)
        return healthy

    def _due(self, step: int, now: float) -> bool:
        if not self.snapshots:
            return True
        last = self.snapshots[-1]
        return step - last.step >= self.every_steps or now - last.taken_at >= self.every_seconds

    # -- after a divergence ------------------------------------------------------------------------
    def explosion_start(self, diverged_step: int) -> int:
        """The first step of the unhealthy windows that led up to `diverged_step`."""
        start = diverged_step
        for window in reversed(self.windows):
            if window.start > diverged_step:
                continue
            if window.healthy:
                break
            start = window.start
        return start

    def choose(self, diverged_step: int, growth_seen_at: int | None = None,
               current_norm: float | None = None) -> Snapshot | None:
        """The newest snapshot taken at or before the explosion began (a detector's finding of growth, at
        `growth_seen_at`, can put that start earlier); else the run's start.

        None when nothing had blown up: a single bad step after sane windows, with the weights before it
        (`current_norm`) within WEIGHT_GROWTH of the newest snapshot's, is best rolled back to those
        weights themselves (their data position is past the offending batch)."""
        start = self.explosion_start(diverged_step)
        if growth_seen_at is not None:
            start = min(start, growth_seen_at)
        newest = self.snapshots[-1] if self.snapshots else None
        if (start >= diverged_step and current_norm is not None and math.isfinite(current_norm) and newest
                is not None and current_norm <= WEIGHT_GROWTH * max(newest.weight_norm, 1e-12)):
            return None
        chosen = [s for s in self.snapshots if s.step <= start]
        if chosen:
            return chosen[-1]
        return self.first if self.first is not None and self.first.step <= max(start, self.first.step) else None
