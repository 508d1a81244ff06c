"""CPU contention: other processes hold the cores torch's intra-op threads need.

On CPU, torch splits each op over `torch.get_num_threads()` intra-op threads that meet at a barrier;
when another process holds one of the cores, the threads that got a core spin waiting for the one that
did not. Measured on the project's 2-core machine (mlp-quadrants, 2026-11-22): with one busy process
beside the run, 2 threads trained at 92 steps/s and 1 thread at 346; with a nice-19 process, 10 vs 400.
A run that is several times slower than it should be, for a reason no loss curve shows.

Rule: at flushes at most once per SAMPLE_SECONDS, the CPU time the rest of the machine used since the
last sample (busy time in /proc/stat minus this process's own) says how many cores others held. When
others held at least MIN_OTHER_CORES and fewer cores than our intra-op threads were left free, for
PATIENCE_SECONDS in a row, it is reported: a warning when this run's throughput meanwhile fell below
SLOWDOWN of its best sample (the contention is costing this run, measurably), info otherwise (e.g. the
other job was there from the start, so there is no uncontended rate to compare with). Repeats while
the contention lasts update the same entry at most every REPEAT_SECONDS. Linux only (/proc/stat);
GPU runs and single-threaded runs are not checked.
"""

from __future__ import annotations

import os
import time
from typing import Callable

from workbench.diagnostics.base import Detector, RunContext, fmt

SAMPLE_SECONDS = 1.0
MIN_OTHER_CORES = 0.5
PATIENCE_SECONDS = 5.0
SLOWDOWN = 0.5
REPEAT_SECONDS = 30.0


class CpuUsage:
    """Busy CPU seconds of the whole machine (/proc/stat) and of this process (os.times)."""

    def __init__(self, path: str = "/proc/stat"):
        self.path = path
        self.tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100

    def read(self) -> tuple[float, float] | None:
        try:
            with open(self.path) as stat:
                fields = stat.readline().split()
        except OSError:
            return None
        if len(fields) < 5 or fields[0] != "cpu":
            return None
        ticks = [int(value) for value in fields[1:9]]  # user nice system idle iowait irq softirq steal
        busy = sum(ticks) - ticks[3] - ticks[4]  # steal counts: a core the hypervisor lent elsewhere is held
        own = os.times()
        return busy / self.tick, own.user + own.system


class CpuContentionDetector(Detector):
    name = "cpu_contention"

    def __init__(self, usage: CpuUsage | None = None, clock: Callable[[], float] = time.monotonic,
                 cores: int | None = None, threads: int | None = None, patience: float = PATIENCE_SECONDS):
        self.usage = usage or CpuUsage()
        self.clock = clock
        self.cores = cores
        self.threads = threads
        self.fixed_threads = threads is not None  # else read from torch at each sample (the fix may lower it)
        self.patience = patience
        self.active = False

    def setup(self, ctx: RunContext) -> None:
        import torch

        self.threads = self.threads or torch.get_num_threads()
        self.cores = self.cores or os.cpu_count() or 1
        self.active = getattr(ctx.trainer.device, "type", "cpu") == "cpu" and self.threads > 1
        self.last = None  # (time, machine busy s, own s, step) at the last sample
        self.best_rate = 0.0
        self.since: float | None = None  # start of the current contended streak
        self.rates: list[float] = []  # steps/s over the streak
        self.reported_at: float | None = None
        self.reported_severity: str | None = None

    def after_flush(self, ctx: RunContext, added: int) -> None:
        if not self.active:
            return
        now = self.clock()
        if self.last is not None and now - self.last[0] < SAMPLE_SECONDS:
            return
        if not self.fixed_threads:
            import torch

            self.threads = torch.get_num_threads()  # on the training thread, where the count applies
        reading = self.usage.read()
        if reading is None:
            self.active = False  # no /proc/stat here: nothing to measure with
            return
        step = ctx.step
        previous, self.last = self.last, (now, reading[0], reading[1], step)
        if previous is None:
            return
        seconds = now - previous[0]
        others = max(0.0, (reading[0] - previous[1]) - (reading[1] - previous[2])) / seconds
        rate = (step - previous[3]) / seconds
        contended = others >= MIN_OTHER_CORES and self.cores - others < self.threads
        if not contended:
            self.best_rate = max(self.best_rate, rate)
            self.since, self.rates = None, []
            return
        if self.since is None:
            self.since = previous[0]
        self.rates.append(rate)
        lasted = now - self.since
        if lasted < self.patience:
            return
        typical = sorted(self.rates)[len(self.rates) // 2]
        slowed = self.best_rate > 0 and typical < SLOWDOWN * self.best_rate
        severity = "warning" if slowed else "info"
        if (self.reported_at is not None and now - self.reported_at < REPEAT_SECONDS
                and severity == self.reported_severity):
            return
        self.reported_at, self.reported_severity = now, severity
        cost = (f"; this run slowed to {fmt(typical)} steps/s from {fmt(self.best_rate)}" if slowed else
                f"; {fmt(typical)} steps/s meanwhile")
        ctx.report("cpu_contention", step,
                   f"other processes kept {others:.1f} of {self.cores} cores busy for {lasted:.0f} s while torch "
                   f"runs {self.threads} intra-op threads{cost}", {
                       "other_cores": round(others, 2), "cores": self.cores, "threads": self.threads,
                       "seconds": round(lasted, 1), "steps_per_s": round(typical, 1),
                       # the threads that fit the cores the others left (the dashboard's t applies it)
                       "suggested_threads": max(1, min(self.threads - 1, int(self.cores - others))),
                       "best_steps_per_s": round(self.best_rate, 1) or None,
                   }, severity=severity)
