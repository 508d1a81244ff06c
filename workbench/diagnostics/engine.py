"""The diagnostics engine: one run callback that feeds telemetry to every detector.

It parses each flushed telemetry batch once into a shared history, then lets each detector look at it;
evaluations, probes and non-finite steps are passed on as they come. Detectors run on the loop's
thread, at flush points and probe steps only, never per step. A detector that raises is switched off
(and says so in the log) rather than taking the run down with it.
"""

from __future__ import annotations

import math
import traceback
from typing import Any, Iterable

from workbench.diagnostics.base import Detector, EvalPoint, RunContext
from workbench.training.telemetry import Callback, TelemetryBatch


def default_detectors() -> list[Detector]:
    """One of each detector, in the order they run."""
    from workbench.diagnostics.chance import ChanceLevelDetector
    from workbench.diagnostics.contention import CpuContentionDetector
    from workbench.diagnostics.dead_units import DeadUnitsDetector
    from workbench.diagnostics.gradients import ExplodingGradientsDetector, VanishingGradientsDetector
    from workbench.diagnostics.initial_loss import InitialLossDetector
    from workbench.diagnostics.inputs import UnnormalizedInputsDetector
    from workbench.diagnostics.leakage import ValOverlapsTrainDetector
    from workbench.diagnostics.learning_rate import LearningRateDetector
    from workbench.diagnostics.loss_curve import OscillationDetector, PlateauDetector
    from workbench.diagnostics.nonfinite import NonFiniteDetector
    from workbench.diagnostics.outputs import LossOnProbabilitiesDetector
    from workbench.diagnostics.overfitting import OverfittingDetector, UnderfittingDetector
    from workbench.diagnostics.saturation import SaturatedActivationsDetector

    return [
        NonFiniteDetector(),
        ValOverlapsTrainDetector(),
        UnnormalizedInputsDetector(),
        LossOnProbabilitiesDetector(),
        InitialLossDetector(),
        ExplodingGradientsDetector(),
        VanishingGradientsDetector(),
        DeadUnitsDetector(),
        SaturatedActivationsDetector(),
        LearningRateDetector(),
        PlateauDetector(),
        OscillationDetector(),
        OverfittingDetector(),
        UnderfittingDetector(),
        ChanceLevelDetector(),
        CpuContentionDetector(),
    ]


class DiagnosticsEngine(Callback):
    """Runs detectors on a run's telemetry and reports their findings through the run's view."""

    def __init__(self, detectors: Iterable[Detector] | None = None):
        self.detectors: list[Detector] = list(detectors) if detectors is not None else default_detectors()
        self.ctx: RunContext | None = None
        self.disabled: dict[str, str] = {}
        # Evaluations that came before the flush holding the steps just before them (see on_eval).
        self.pending: list[EvalPoint] = []

    def _each(self, method: str, *args: Any) -> None:
        for detector in self.detectors:
            if detector.name in self.disabled:
                continue
            try:
                getattr(detector, method)(self.ctx, *args)
            except Exception as error:  # a broken detector must never break training
                self.disabled[detector.name] = f"{type(error).__name__}: {error}"
                if self.ctx is not None:
                    self.ctx.run.log(f"diagnostics: detector {detector.name} switched off after "
                                         f"{type(error).__name__}: {error}", kind="error",
                                         traceback=traceback.format_exc())

    def on_setup(self, run) -> None:
        self.ctx = RunContext(run)
        if run.info is not None:  # a user's own loop has no data the engine knows
            try:
                from workbench.diagnostics.initial_loss import reference_loss

                self.ctx.reference = reference_loss(run.preset, run.info, run.model, run.val_data)
            except Exception as error:  # the reference is a nicety; detectors cope without it
                run.log(f"diagnostics: no reference loss ({type(error).__name__}: {error})", kind="log")
        self._each("setup")

    def add_detectors(self, detectors: Iterable[Detector]) -> None:
        """Detectors joining a run already set up (a user's loop watched after its first log)."""
        new = list(detectors)
        self.detectors += new
        if self.ctx is not None:
            for detector in new:
                try:
                    detector.setup(self.ctx)
                except Exception as error:
                    self.disabled[detector.name] = f"{type(error).__name__}: {error}"

    def on_batch(self, run, batch: TelemetryBatch) -> None:
        if self.ctx is None:
            return
        history = self.ctx.history
        added = history.add_series(*batch.series) if batch.series is not None else history.add_rows(batch.rows)
        if added:
            self._each("after_flush", added)
            self._judge_pending(run, lambda point, newest: newest >= point.step - 1)

    def on_eval(self, run, step: int, metrics: dict[str, float]) -> None:
        if self.ctx is None or "val_loss" not in metrics or not math.isfinite(metrics["val_loss"]):
            return
        history = self.ctx.history
        point = EvalPoint(step, float(metrics["val_loss"]), None, dict(metrics))
        history.evals.append(point)
        if history.steps and history.steps[-1] < step - 1:
            # The steps just before this evaluation are not flushed yet (a flush cadence that does not line
            # up with the evaluations): judge it at the flush that brings them, beside its own train loss.
            self.pending.append(point)
            return
        self._judge(run, point)

    def _judge(self, run, point: EvalPoint) -> None:
        window = max(2 * run.preset.train.log_every, 50)
        point.train_loss, point.train_loss_se = self.ctx.history.train_loss_near(point.step, window)
        self._each("after_eval", point)

    def _judge_pending(self, run, ready) -> None:
        newest = self.ctx.history.steps[-1] if self.ctx.history.steps else -1
        while self.pending and ready(self.pending[0], newest):
            self._judge(run, self.pending.pop(0))

    def on_probe_start(self, run, step: int) -> None:
        if self.ctx is not None:
            self._each("probe_start", step)

    def on_probe_end(self, run, step: int, probe: dict[str, Any]) -> None:
        if self.ctx is not None:
            self._each("probe_end", step, probe)

    def on_nonfinite(self, run, step: int, batch: Any, what: str) -> None:
        if self.ctx is not None:
            self._each("nonfinite", step, batch, what)

    def on_end(self, run, status: str) -> None:
        if self.ctx is not None:
            self._judge_pending(run, lambda point, newest: True)  # with what the history holds
            self.ctx.ended = True
            self._each("end", status)
