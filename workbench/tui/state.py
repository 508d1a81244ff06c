"""What the dashboard knows about a run, built from drained telemetry (no Textual, no torch).

`RunState.ingest(batches, events)` folds what the UI drained from the trainer's `TelemetryBuffer` into
bounded chart series, progress figures, findings, log lines and the latest LM sample, and says what
changed, so the dashboard redraws only that. Tests and benchmarks feed it fixed data directly.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Iterable

from workbench.status import ENDED, RunStatus
from workbench.tui.series import DEFAULT_CAPACITY, Series

SEVERITY_ORDER = {"critical": 0, "warning": 1, "info": 2}
RATE_WINDOW_S = 30.0
LOG_LINES = 1000


@dataclass
class Changes:
    """What one ingest changed: series names, and flags for the other panels."""

    series: set[str] = field(default_factory=set)
    logs: list[tuple[int, str, str]] = field(default_factory=list)
    findings: bool = False
    new_findings: bool = False
    sample: bool = False
    status: bool = False
    progress: bool = False
    profile: bool = False  # a profiler report arrived (RunState.profile_report)

    def __bool__(self) -> bool:
        return bool(self.series or self.logs or self.findings or self.sample or self.status or self.progress
                    or self.profile)


class RunState:
    """The dashboard's model of one run: series, progress, status, findings, logs, sample."""

    def __init__(self, preset_name: str, max_steps: int, task: str = "classification", grad_clip: float = 0.0,
                 capacity: int = DEFAULT_CAPACITY, t0: float | None = None):
        self.preset_name = preset_name
        self.max_steps = max_steps
        self.task = task
        self.grad_clip = grad_clip
        self.capacity = capacity
        self.series: dict[str, Series] = {}
        self.t0 = time.time() if t0 is None else t0  # wall-clock origin of the time axis
        self.started_monotonic = time.monotonic()
        self.ended_monotonic: float | None = None
        self.step = 0
        self.epoch = 0.0
        self.status: RunStatus = "starting"
        self.paused = False
        self.reason: str | None = None
        self.traceback: str | None = None
        self.errors: list[str] = []
        self.run_id: str | None = None
        self.params: int | None = None
        self.trainable: int | None = None
        self.device: str | None = None
        self.findings: dict[tuple[str, str], dict[str, Any]] = {}
        self.sample: str | None = None
        self.sample_step: int | None = None
        self.last_checkpoint: str | None = None
        self.profile_report: str | None = None
        self.profile_step: int | None = None
        self.log: deque[tuple[int, str, str]] = deque(maxlen=LOG_LINES)  # every log line so far, bounded
        self._rate_points: deque[tuple[float, int]] = deque()

    # -- feeding ----------------------------------------------------------------------------------
    def series_for(self, name: str) -> Series:
        series = self.series.get(name)
        if series is None:
            series = self.series[name] = Series(name, self.capacity)
        return series

    def ingest(self, batches: Iterable[Any], events: Iterable[Any], now: float | None = None) -> Changes:
        """Fold drained TelemetryBatch and Event objects in; return what changed."""
        changes = Changes()
        newest = self.step
        for batch in batches:
            t = batch.elapsed - self.t0
            for step, name, value in batch.rows:
                self.series_for(name).append(step, t, value)
                changes.series.add(name)
                # Steps done = the newest training loss row + 1, wherever it sits in the batch (a run read
                # back from the store has its rows sorted by name); an evaluation-only batch moves nothing.
                if name == "loss" and step >= newest:
                    newest = step + 1
                elif name == "epoch":  # the store's copy of batch.epoch (attached views have only that)
                    self.epoch = value
            if batch.epoch:
                self.epoch = batch.epoch
        if newest != self.step:
            self.advance(newest, now)
            changes.progress = True
        for event in events:
            self._event(event, changes)
        self.log.extend(changes.logs)
        return changes

    def advance(self, step: int, now: float | None = None) -> None:
        """The run has done `step` steps (from its telemetry, or an attached run's heartbeat): the rate and
        the ETA follow."""
        self.step = step
        now = time.monotonic() if now is None else now
        points = self._rate_points
        points.append((now, step))
        while len(points) > 2 and now - points[0][0] > RATE_WINDOW_S:  # bounded without a reader too
            points.popleft()

    def _event(self, event: Any, changes: Changes) -> None:
        kind, data = event.kind, event.data or {}
        if kind == "finding":
            key = (data.get("code", "?"), data.get("layer") or "")
            new = key not in self.findings
            self.findings[key] = dict(data)
            changes.findings = True
            if new:  # a finding repeats as often as its detector fires: log it once, count the rest in the panel
                changes.new_findings = True
                changes.logs.append((event.step, "finding", f"[{data.get('severity', 'warning')}] "
                                     f"{data.get('code', '?')}: {event.text}"))
        elif kind == "sample":
            self.sample, self.sample_step = event.text, event.step
            changes.sample = True
        elif kind == "setup":
            self.params, self.trainable, self.device = data.get("params"), data.get("trainable"), data.get("device")
            self.status = "running"
            changes.status = True
            changes.logs.append((event.step, kind, event.text))
        elif kind == "status" and "paused" in data:
            self.paused = bool(data["paused"])
            changes.status = True
            changes.logs.append((event.step, kind, event.text))
        elif kind == "status":
            self.finish(event.text, data.get("reason"), data.get("traceback"), step=event.step)
            changes.status = True
            changes.logs.append((event.step, kind, f"run {event.text}" + (f": {self.reason}" if self.reason else "")))
        elif kind == "error":
            changes.logs.append((event.step, kind, event.text))
        elif kind == "profile":
            self.profile_report, self.profile_step = event.text, event.step
            changes.profile = True
            changes.logs.append((event.step, kind, "profile ready (f shows it again)"))
        elif kind == "checkpoint":
            self.last_checkpoint = data.get("path") or event.text
            # A new best comes with most evaluations: logging each would bury the rest (and relayout the pane).
            if "(best)" not in event.text:
                changes.logs.append((event.step, kind, event.text))
        else:
            changes.logs.append((event.step, kind, event.text))

    def finish(self, status: RunStatus, reason: str | None = None, trace: str | None = None,
               step: int | None = None, errors: list[str] | None = None) -> None:
        """Mark the run ended (from its final status event, or when set-up was refused)."""
        self.status = status
        self.paused = False
        self.reason = reason
        self.traceback = trace
        self.errors = list(errors or [])
        if step is not None and step > self.step:
            self.step = step
        if self.ended_monotonic is None:
            self.ended_monotonic = time.monotonic()

    def restart(self, step: int | None = None) -> None:
        """The same run continues (rolled back and resumed): running again, history kept up to `step`
        (the step it goes back to: the charts drop what came after, the progress line counts from there)."""
        if step is not None:
            for series in self.series.values():
                series.truncate(step)
            self.step = step
        self.status = "starting"
        self.paused = False
        self.reason = self.traceback = None
        self.errors = []
        self.ended_monotonic = None
        self._rate_points.clear()

    # -- reading ----------------------------------------------------------------------------------
    @property
    def ended(self) -> bool:
        return self.status in ENDED

    def latest(self, name: str) -> float | None:
        series = self.series.get(name)
        return series.latest if series is not None else None

    def elapsed(self, now: float | None = None) -> float:
        end = self.ended_monotonic if self.ended_monotonic is not None else (now or time.monotonic())
        return max(0.0, end - self.started_monotonic)

    def steps_per_second(self, now: float | None = None) -> float | None:
        """Wall-clock training rate over the last RATE_WINDOW_S seconds (evaluation time included)."""
        now = time.monotonic() if now is None else now
        points = self._rate_points
        while len(points) > 2 and now - points[0][0] > RATE_WINDOW_S:
            points.popleft()
        if len(points) < 2:
            return None
        (t_a, s_a), (t_b, s_b) = points[0], points[-1]
        return (s_b - s_a) / (t_b - t_a) if t_b > t_a and s_b > s_a else None

    def eta(self, now: float | None = None) -> float | None:
        if self.ended or self.paused:
            return None
        rate = self.steps_per_second(now)
        if not rate:
            return None
        return max(0.0, (self.max_steps - self.step) / rate)

    def sorted_findings(self) -> list[dict[str, Any]]:
        """Most severe first, then by the step they were first seen."""
        return sorted(self.findings.values(),
                      key=lambda f: (SEVERITY_ORDER.get(f.get("severity", "warning"), 3), f.get("step", 0)))
