"""`--profile N` / the dashboard's profile key: torch.profiler over N training steps, summarised as text.

The report names the top operators by self CPU (and CUDA) time, how the step time splits between
waiting for data and computing, and memory per step — what a user needs to see why throughput is poor.
Only profiled steps pay for it: outside a profile the trainer checks one attribute per step.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch
from torch.profiler import ProfilerActivity, profile


@dataclass
class StepProfiler:
    """Profiles the next `steps` training steps; `report` is set when they are done."""

    steps: int
    device: torch.device
    data_seconds: float = 0.0
    step_seconds: float = 0.0
    done_steps: int = 0
    report: str | None = None
    rows: list[dict] = field(default_factory=list)

    def __post_init__(self):
        activities = [ProfilerActivity.CPU]
        if self.device.type == "cuda":
            activities.append(ProfilerActivity.CUDA)
        self._profile = profile(activities=activities, profile_memory=True, record_shapes=False)
        self._profile.__enter__()
        self._step_started = time.perf_counter()

    def data_time(self, seconds: float) -> None:
        self.data_seconds += seconds

    def end_step(self) -> bool:
        """Call after each step; returns True when the profile is complete."""
        now = time.perf_counter()
        self.step_seconds += now - self._step_started
        self._step_started = now
        self.done_steps += 1
        if self.done_steps < self.steps:
            return False
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        self._profile.__exit__(None, None, None)
        self.report = self._summarise()
        return True

    def _summarise(self, top: int = 12) -> str:
        events = self._profile.key_averages()
        use_cuda = self.device.type == "cuda"
        sort_key = "self_cuda_time_total" if use_cuda else "self_cpu_time_total"
        ranked = sorted(events, key=lambda e: getattr(e, sort_key, 0.0), reverse=True)[:top]
        total_self = sum(getattr(e, sort_key, 0.0) for e in events) or 1.0
        self.rows = [
            {"op": e.key, "calls": e.count, "self_ms": getattr(e, sort_key, 0.0) / 1000.0,
             "share": getattr(e, sort_key, 0.0) / total_self,
             "cpu_mem_mb": getattr(e, "self_cpu_memory_usage", 0) / 2**20}
            for e in ranked
        ]
        per_step_ms = 1000.0 * self.step_seconds / max(1, self.done_steps)
        data_share = self.data_seconds / self.step_seconds if self.step_seconds > 0 else 0.0
        allocated = sum(max(0, getattr(e, "self_cpu_memory_usage", 0)) for e in events) / 2**20
        lines = [
            f"profile of {self.done_steps} steps: {per_step_ms:.2f} ms/step, "
            f"{data_share:.0%} waiting for data, {1 - data_share:.0%} computing; "
            f"{allocated / max(1, self.done_steps):.1f} MiB allocated per step (CPU)",
            f"{'operator':<42} {'calls':>7} {'self ms':>9} {'share':>6}",
        ]
        for row in self.rows:
            lines.append(f"{row['op'][:42]:<42} {row['calls']:>7} {row['self_ms']:>9.2f} {row['share']:>6.1%}")
        if use_cuda:
            peak = torch.cuda.max_memory_allocated(self.device) / 2**20
            lines.append(f"CUDA peak allocated {peak:.0f} MiB")
        return "\n".join(lines)
