"""The live dashboard of one run: progress, five charts, diagnostics, log, LM sample, and run controls.

A timer drains the trainer's telemetry buffer at a fixed rate (4 Hz by default), folds it into the
run state, and updates only what changed; charts go through `RedrawScheduler`, so while the model
trains the UI spends a bounded share of the process's time drawing. The trainer runs on its own
thread; this screen only queues commands to it. A run that is part of a queue (marked presets, or a
sweep) says which one it is ("run 2/3: optim.lr=3e-4"); when it ends the app starts the next.
"""

from __future__ import annotations

import math
import time
from functools import partial
from typing import Any

from pydantic import ValidationError
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Container, Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Static
from textual.worker import Worker, WorkerState

from workbench.config import OptimConfig, Preset
from workbench.presets import parse_value
from workbench.tui.messages import QueuedRunEnded, StartRun
from workbench.tui.screens.help import HELP_BINDINGS
from workbench.tui.screens.modals import ChoiceScreen, ConfirmScreen, PromptScreen
from workbench.tui.session import RunSession, Session
from workbench.tui.state import Changes
from workbench.tui.widgets.charts import (SMOOTHING_STEPS, ZOOM_STEPS, ChartOptions, Line, MetricChart,
                                          RedrawScheduler)
from workbench.tui.widgets.error import ErrorPanel
from workbench.tui.widgets.findings import FindingsPanel
from workbench.tui.widgets.log import LogPane
from workbench.tui.widgets.progress import RunProgress, status_label
from workbench.tui.widgets.sample import SamplePanel
from workbench.tui.widgets.footer import KeyFooter
from workbench.tui.widgets.header import SafeHeader

BLUE, ORANGE, GREEN, VIOLET, CYAN, RED, YELLOW = ((80, 160, 255), (255, 150, 60), (90, 210, 120),
                                                  (190, 130, 255), (70, 210, 220), (240, 80, 80), (230, 200, 70))
GROUP_COLORS = (CYAN, VIOLET, YELLOW, ORANGE)
LM_TASKS = ("language_modeling",)
FINDINGS_REFRESH_S = 2.0


def validate_lr(text: str) -> tuple[float | None, str | None]:
    """A learning rate typed by the user, checked against the schema's bounds for optim.lr."""
    value = parse_value(text.strip()) if text.strip() else None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None, "enter a number, e.g. 1e-3"
    if not math.isfinite(value):
        return None, "must be a finite number"
    try:
        OptimConfig(lr=value)
    except ValidationError as error:
        return None, f"optim.lr: {error.errors()[0]['msg']}"
    return float(value), None


COMPACT_CHART_INTERVAL = 4.0  # seconds between redraws of one chart in low-bandwidth mode
PROGRESS_INTERVAL = 1.0  # seconds between progress-line (and paced chart) refreshes while training
# The other charts redraw on every other progress beat while training (beats come 1-1.25 s apart).
TRAINING_CHART_INTERVAL = 1.75


class DashboardScreen(Screen):
    """Watch and steer one run."""

    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (110, "-wide")]
    VERTICAL_BREAKPOINTS = [(0, "-short"), (32, "-tall")]

    BINDINGS = [
        # Footer words are short: at 140 columns every key fits; narrower, KeyFooter keeps the important ones.
        Binding("a", "recover", "Roll back…"),
        Binding("p", "toggle_pause", "Pause", tooltip="Pause/Resume"),
        Binding("x", "stop", "Stop"),
        Binding("c", "checkpoint", "Checkpoint"),
        Binding("r", "set_lr", "Set LR"),
        Binding("f", "profile", "Profile"),
        Binding("t", "fewer_threads", "Fewer threads", tooltip="Apply the cpu_contention fix now"),
        Binding("l", "log_y", "Log y"),
        Binding("e", "smoothing", "Smooth", tooltip="Smoothing"),
        Binding("w", "x_axis", "X axis", tooltip="Steps/Time"),
        Binding("plus", "zoom_in", "Zoom", key_display="+/-", tooltip="Zoom in"),
        Binding("equals_sign", "zoom_in", "Zoom", show=False),
        Binding("minus", "zoom_out", "Zoom out", show=False),
        Binding("0", "reset_zoom", "Unzoom", tooltip="Reset zoom"),
        Binding("v", "next_chart", "Chart", tooltip="Next chart"),
        Binding("z", "maximize_chart", "Max", tooltip="Maximize chart"),
        Binding("n", "new_run", "New run"),
        Binding("k", "cancel_queue", "Cancel queue"),
        *HELP_BINDINGS,
        Binding("escape", "back", "Back"),
        Binding("q", "app.quit", "Quit"),
    ]
    KEYS = "dashboard"  # its table in workbench.tui.keys (the help screen)

    def __init__(self, preset: Preset, runs_dir=None, fps: float = 4.0, session: Session | None = None,
                 autostart: bool = True, queue: Any = None, compact: bool = False):
        super().__init__()
        self.queue = queue  # a workbench.tui.queue.RunQueue when this run is one of a set
        self.queued = queue.current if queue is not None else None
        self._queue_reported = False
        self.leaving = False  # replaced by the next queued run: no more updates
        if compact:  # low-bandwidth mode: the two-chart layout at any terminal width
            self.HORIZONTAL_BREAKPOINTS = [(0, "-narrow")]
        self.preset = preset
        self.session: Session = session or RunSession(preset, runs_dir)
        self.runs_dir = runs_dir
        self.fps = fps
        self.autostart = autostart
        self.options = ChartOptions()
        self.selected = 0  # the highlighted chart (maximized with z)
        self.shown = 1  # the second chart of the narrow layout
        self.chart_maximized = False
        self.ticks = 0
        self.tick_seconds = 0.0
        self._relaunch_from: str | None = None  # the status a rollback started from
        self._rolled_back_to: int | None = None  # the step the last rollback went back to
        self._findings_dirty = False
        self._threads_set: int | None = None  # intra-op threads asked for with the cpu_contention fix
        self._findings_shown = 0.0  # time spent in tick(), for the benchmark and tests
        self._charts_ticked = 0.0  # when the chart scheduler last ran (monotonic)
        state = self.session.state
        self.charts = [
            MetricChart("loss", [Line("loss", "train", BLUE), Line("val_loss", "val", ORANGE, smooth=False)],
                        state, self.options, priority=0, id="chart-loss"),
            MetricChart("learning rate", [Line("lr", "lr", GREEN, smooth=False, fmt=".3g")], state, self.options,
                        id="chart-lr", classes="secondary"),
            MetricChart("grad norm", [Line("grad_norm", "global", VIOLET)], state, self.options,
                        hlines=[(preset.train.grad_clip, f"clip {preset.train.grad_clip:g}", RED)]
                        if preset.train.grad_clip > 0 else [], id="chart-grad", classes="secondary"),
            MetricChart("memory", [Line("mem/rss_mb", "process RSS", CYAN, smooth=False, fmt=",.0f"),
                                   Line("mem/cuda_allocated_mb", "CUDA allocated", CYAN, smooth=False, fmt=",.0f"),
                                   Line("mem/cuda_reserved_mb", "CUDA reserved", YELLOW, smooth=False, fmt=",.0f"),
                                   Line("mem/cuda_peak_mb", "CUDA peak", RED, smooth=False, fmt=",.0f")],
                        state, self.options, unit="MiB", priority=2, id="chart-memory", classes="secondary"),
            MetricChart("throughput", [Line("samples_per_s", "samples/s", YELLOW, fmt=",.0f")], state, self.options,
                        priority=2, id="chart-throughput", classes="secondary"),
        ]
        # Low-bandwidth mode: its two charts are each redrawn at most every COMPACT_CHART_INTERVAL s: they
        # fill the screen, so one redraw of each writes more than the default layout's budgeted redraws.
        self.scheduler = RedrawScheduler(self.charts, min_interval=COMPACT_CHART_INTERVAL if compact
                                         else min(1.0, 1.0 / fps), training_interval=TRAINING_CHART_INTERVAL)
        self.compact = compact
        # The progress line and the paced chart refresh together once a second while training (one loss
        # chart build a second, ~1% of a core; it is charged to the redraw budget like any other).
        self.progress = RunProgress(state, min_interval=PROGRESS_INTERVAL, id="progress")
        self.findings = FindingsPanel(id="findings")
        self.log_pane = LogPane(id="log")
        self.sample = SamplePanel(id="sample")
        self.error = ErrorPanel(id="error")

    # -- layout ---------------------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        yield SafeHeader()
        yield self.progress
        with Horizontal(id="dash-body"):
            with Vertical(id="dash-main"):
                with Container(id="charts"):
                    yield from self.charts
                yield self.error
                yield Static(self.options.describe(), id="chart-options")
            with Vertical(id="dash-side"):
                yield self.findings
                if self.preset.task in LM_TASKS:
                    yield self.sample
                yield self.log_pane
        yield KeyFooter(skip_unchanged=True)  # a run may train in this process: no needless rebuilds

    def on_mount(self) -> None:
        self.title = "Workbench"
        self._update_subtitle()
        self._apply_selection()
        state = self.session.state
        for step, kind, text in state.log:  # a dashboard opened on a run that already has history
            self.log_pane.add(step, kind, text)
        if state.findings:
            self.findings.set_findings(state.sorted_findings())
        if state.sample is not None:
            self.sample.show_sample(state.sample, state.sample_step)
        if state.ended:
            self._status_changed()
        self.timer = self.set_interval(1.0 / self.fps, self.tick)
        if self.autostart:
            self.launch()

    def launch(self) -> None:
        """Start the run: torch is imported and the trainer built on a worker thread, never this one."""
        if self.queue is not None:
            self.log_pane.add(0, "ui", f"queue {self.queue.position(self.queued)}")
        self.log_pane.add(0, "ui", f"starting {self.preset.name} ({self.preset.train.max_steps:,} steps)…")
        self.run_worker(self.session.launch, thread=True, exit_on_error=False, group="launch", name="launch")

    @on(Worker.StateChanged)
    def _worker_changed(self, event: Worker.StateChanged) -> None:
        if event.worker.name == "launch" and event.state == WorkerState.ERROR:
            import traceback

            from workbench.errors import ConfigError

            error = event.worker.error
            if isinstance(error, ConfigError) and self._relaunch_from:  # the rollback was refused
                self.session.state.finish(self._relaunch_from, f"could not roll back: {error}")
            else:
                trace = "".join(traceback.format_exception(error)) if error is not None else None
                self.session.state.finish("failed", f"could not start the run: {type(error).__name__}: {error}",
                                          trace)
            self._status_changed()

    # -- the tick -------------------------------------------------------------------------------------
    def tick(self) -> Changes:
        """Drain telemetry, update what changed, redraw due charts within the budget."""
        if self.leaving:
            return Changes()
        started = time.perf_counter()
        changes = self.session.poll()
        state = self.session.state
        if changes.series:
            self._adopt_new_series(changes.series)
        for step, kind, text in changes.logs:
            self.log_pane.add(step, kind, text)
        if changes.findings:
            self._findings_dirty = True
        # Repeats only bump counts: refresh the panel at most once a second, new findings at once.
        now = time.monotonic()
        if changes.new_findings:  # a cpu_contention finding brings its key into the footer
            self.refresh_bindings()
        if self._findings_dirty and (changes.new_findings or now - self._findings_shown >= FINDINGS_REFRESH_S
                                     or state.ended):
            self.findings.set_findings(state.sorted_findings())
            self._findings_dirty = False
            self._findings_shown = now
        if changes.profile and state.profile_report and self.is_current:
            self._show_profile()
        if changes.sample and state.sample is not None:
            self.sample.show_sample(state.sample, state.sample_step)
        if changes.status:
            self._status_changed()
        beat = self.progress.update_if_changed()
        if beat:
            self._redraw_paced()
        training = self.session.active and state.status == "running" and not state.paused
        # While training, due charts redraw in the progress line's frame: one repaint a second for all of
        # them (each repaint walks every widget on screen), not one per chart.
        if not training or beat or now - self._charts_ticked >= self.scheduler.max_stale:
            self.scheduler.tick(limited=training)
            self._charts_ticked = now
        self.ticks += 1
        self.tick_seconds += time.perf_counter() - started
        return changes

    def _adopt_new_series(self, names: set[str]) -> None:
        """Per-group learning rates and tokens/s appear only for some runs: add their lines when they do."""
        lr_chart, throughput = self.charts[1], self.charts[4]
        known = {line.metric for line in lr_chart.lines}
        for name in sorted(names):
            if name.startswith("lr/") and name not in known:
                color = GROUP_COLORS[(len(lr_chart.lines) - 1) % len(GROUP_COLORS)]
                lr_chart.lines.append(Line(name, name[3:], color, smooth=False, fmt=".3g"))
        if "tokens_per_s" in names and throughput.lines[0].metric != "tokens_per_s":
            throughput.lines = [Line("tokens_per_s", "tokens/s", YELLOW, fmt=",.0f")]
            throughput.drawn_data_version = -1

    def _redraw_paced(self) -> None:
        """The chart the eye compares with the progress line redraws in the same frame, from the same
        drained data, so its x axis ends at the step the line shows (the scheduler leaves it alone)."""
        for chart in self.charts:
            if chart.paced and chart.dirty and chart.is_on_screen:
                chart.redraw()

    def on_resize(self) -> None:
        self._update_subtitle()

    def _update_subtitle(self) -> None:
        state = self.session.state

        parts = [self.preset.name, state.run_id or "starting…"]
        if self.queue is not None:  # "run 1/2: mlp-quadrants", not "... · mlp-quadrants" again after it
            parts[0:1] = [self.queue.position(self.queued)] + ([] if self.queued.label == self.preset.name
                                                                else [self.preset.name])
        if state.device:
            parts.append(state.device)
        if state.params is not None:
            trainable = f" ({state.trainable:,} trainable)" if state.trainable not in (None, state.params) else ""
            parts.append(f"{state.params:,} params{trainable}")
        if self.has_class("-narrow"):  # under 110 columns the run id (what --resume and attach need) stays in view
            self.title, self.sub_title = parts[0], " · ".join(parts[1:])
        else:
            self.title, self.sub_title = "Workbench", " · ".join(parts)

    def _status_changed(self) -> None:
        state = self.session.state
        self._sync_preset()
        self._update_subtitle()
        if self.progress.update_if_changed():
            self._redraw_paced()
        self.refresh_bindings()
        if not state.ended:
            return
        self.session.close()
        if self.queue is not None and not self._queue_reported:  # the next queued run starts (or the compare view)
            self._queue_reported = True
            self.post_message(QueuedRunEnded(self, self.queue, self.session.run_id or state.run_id, state.status))
        label = status_label(state)
        if state.status in ("failed", "invalid"):
            self.error.show_error(state.status, state.reason, state.traceback, state.errors,
                                  hint="The app is still up: n starts a new run, escape goes back to the form.")
            self.notify(state.reason or state.status, title=f"run {label}", severity="error", timeout=8)
        elif state.status == "diverged":
            # A rolled-back run that diverges again is as loud as the first time: a toast and the log.
            again = f" again after rolling back to step {self._rolled_back_to:,}" \
                if self._rolled_back_to is not None else ""
            self.log_pane.add(state.step, "finding", f"[critical] the run diverged{again}: {state.reason}")
            self.notify(f"{state.reason or 'non-finite values'} — see the diagnostics panel; a rolls back to the "
                        "last healthy state and continues (LR x 0.1 or clipping at 1.0)",
                        title=f"run diverged{again}", severity="error", timeout=10)
        else:
            self.notify(f"{state.step:,} steps" + (f": {state.reason}" if state.reason else ""), title=f"run {label}")
        self.scheduler.tick(limited=False, force=True)  # final frame: draw everything that is left

    # -- chart layout and options ----------------------------------------------------------------------
    def _apply_selection(self) -> None:
        if self.selected != 0:
            self.shown = self.selected  # the narrow layout's second chart follows the selection
        lead = self.selected if self.chart_maximized else 0
        for index, chart in enumerate(self.charts):
            chart.set_class(index == self.selected, "-selected")
            chart.set_class(index == self.shown, "-shown")
            chart.paced = index == lead and not self.compact  # low bandwidth: every chart on its 4 s clock
        self.query_one("#charts").set_class(self.chart_maximized, "-maximized")

    def _options_changed(self) -> None:
        self.options.changed()
        self.query_one("#chart-options", Static).update(self.options.describe())
        self.scheduler.tick(limited=False, force=True)  # a key press deserves an immediate redraw

    def action_log_y(self) -> None:
        self.options.log_y = not self.options.log_y
        self._options_changed()

    def action_smoothing(self) -> None:
        steps = SMOOTHING_STEPS
        index = steps.index(self.options.smoothing) if self.options.smoothing in steps else 0
        self.options.smoothing = steps[(index + 1) % len(steps)]
        self._options_changed()

    def action_x_axis(self) -> None:
        self.options.x_axis = "time" if self.options.x_axis == "step" else "step"
        self._options_changed()

    def action_zoom_in(self) -> None:
        smaller = [z for z in ZOOM_STEPS if z < self.options.zoom]
        if smaller:
            self.options.zoom = smaller[0]
            self._options_changed()

    def action_zoom_out(self) -> None:
        larger = [z for z in ZOOM_STEPS if z > self.options.zoom]
        if larger:
            self.options.zoom = larger[-1]
            self._options_changed()

    def action_reset_zoom(self) -> None:
        self.options.zoom = 1.0
        self.options.log_y = False
        self._options_changed()

    def action_next_chart(self) -> None:
        if self.has_class("-narrow") and not self.chart_maximized:  # loss is always shown: cycle the other one
            self.selected = self.shown % (len(self.charts) - 1) + 1
        else:
            self.selected = (self.selected + 1) % len(self.charts)
        self._apply_selection()
        self.scheduler.tick(limited=False, force=True)

    def action_maximize_chart(self) -> None:
        self.chart_maximized = not self.chart_maximized
        self._apply_selection()

    # -- run controls ----------------------------------------------------------------------------------
    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        controllable = self.session.launched and self.session.active
        if action in ("toggle_pause", "stop", "checkpoint", "set_lr"):
            return True if controllable else None
        if action == "fewer_threads":  # offered while a cpu_contention finding says how many threads fit
            return True if controllable and self._contention_threads() is not None else None
        if action == "cancel_queue":  # only on a queued run with runs still to come
            return self.queue is not None and self.queue.remaining > 0
        if action == "new_run":  # shown once the run has ended
            return self.session.state.ended and self.queue is None
        if action == "recover":  # only offered when a run diverged (and this process trained it, not in a queue)
            return (self.session.state.status == "diverged" and not self.session.active and self.queue is None
                    and not self.session.attached)
        return True

    def action_toggle_pause(self) -> None:
        paused = self.session.toggle_pause()
        if paused is not None:
            self.log_pane.add(self.session.state.step, "ui", "pause requested" if paused else "resume requested")

    def action_stop(self) -> None:
        if not (self.session.launched and self.session.active):
            return
        if self.queue is not None and self.queue.remaining > 0:
            self._stop_queued()
            return

        def answered(yes: bool | None) -> None:
            if yes and self.session.stop():
                self.log_pane.add(self.session.state.step, "ui", "stop requested: saving a checkpoint first")

        self.app.push_screen(ConfirmScreen("Stop this run?", "Stop", "Keep training",
                                           detail="A checkpoint is saved first; resume later with "
                                                  "`workbench train --resume RUN_ID`."), answered)

    def _stop_queued(self) -> None:
        """Stopping one run of a queue: go on with the next, or drop the rest too."""
        remaining = self.queue.remaining

        def chosen(key: str | None) -> None:
            if key is None or not self.session.active:
                return
            if key == "all":
                self.queue.cancel()
            if self.session.stop():
                then = "the rest of the queue is cancelled" if key == "all" else "then the next queued run starts"
                self.log_pane.add(self.session.state.step, "ui", f"stop requested: saving a checkpoint first; {then}")
                self.refresh_bindings()

        self.app.push_screen(ChoiceScreen(f"Stop {self.queue.position(self.queued)}?",
                                          [("next", f"Stop it and go on with the next ({remaining} to come)"),
                                           ("all", f"Stop it and cancel the {remaining} queued after it")],
                                          detail="A checkpoint is saved first; escape keeps training."), chosen)

    def action_cancel_queue(self) -> None:
        if self.queue is None or self.queue.remaining == 0:
            return
        remaining = self.queue.remaining

        def answered(yes: bool | None) -> None:
            if yes and self.queue.remaining:
                self.queue.cancel()
                self.log_pane.add(self.session.state.step, "ui", f"queue cancelled: {remaining} run(s) will not start")
                self.notify("This run goes on (x stops it); the runs recorded so far are compared when it ends.",
                            title="queue cancelled")
                self.refresh_bindings()

        self.app.push_screen(ConfirmScreen(f"Cancel the {remaining} queued run(s) not started yet?", "Cancel them",
                                           "Keep the queue"), answered)

    PROFILE_STEPS = 20

    def action_profile(self) -> None:
        """Profile the next steps with torch.profiler (on the trainer thread); show the last report if done."""
        state = self.session.state
        if not state.paused and self.session.profile(self.PROFILE_STEPS):
            self.log_pane.add(state.step, "ui", f"profiling the next {self.PROFILE_STEPS} steps…")
        elif state.profile_report:
            self._show_profile()
        else:
            self.notify("Profiling needs a run trained here, running (not paused).", title="profile")

    def _show_profile(self) -> None:
        from workbench.tui.screens.modals import ReportScreen

        state = self.session.state
        self.app.push_screen(ReportScreen(f"profile at step {state.profile_step:,}", state.profile_report or ""))

    def action_checkpoint(self) -> None:
        if self.session.checkpoint():
            self.log_pane.add(self.session.state.step, "ui", "checkpoint requested")

    def action_set_lr(self) -> None:
        if not (self.session.launched and self.session.active):
            return
        current = self.session.current_lr()

        def chosen(value: float | None) -> None:
            if value is not None and self.session.set_lr(value):
                self.log_pane.add(self.session.state.step, "ui", f"learning rate → {value:g} requested")

        self.app.push_screen(PromptScreen("Learning rate", f"{current:g}" if current else "", validate_lr,
                                          hint="Applies from the next step; the schedule continues from it."),
                             chosen)

    def _contention_threads(self) -> int | None:
        """The intra-op thread count the cpu_contention finding suggests, if it is fewer than now."""
        for finding in self.session.state.findings.values():
            if finding.get("code") == "cpu_contention":
                evidence = finding.get("evidence") or {}
                suggested, now = evidence.get("suggested_threads"), self._threads_set or evidence.get("threads")
                if suggested and now and suggested < now:
                    return int(suggested)
        return None

    def action_fewer_threads(self) -> None:
        threads = self._contention_threads()
        if threads is not None and self.session.set_threads(threads):
            self._threads_set = threads
            self.log_pane.add(self.session.state.step, "ui", f"intra-op threads → {threads} requested")
            self.refresh_bindings()

    def _sync_preset(self) -> None:
        """A rollback may continue with clipping on: draw the new threshold."""
        clip = self.session.preset.train.grad_clip
        grad = self.charts[2]
        wanted = [(clip, f"clip {clip:g}", RED)] if clip > 0 else []
        if grad.hlines != wanted:
            grad.hlines = wanted
            grad.drawn_data_version = -1

    def action_recover(self) -> None:
        state = self.session.state
        if state.status != "diverged" or self.session.active:
            return
        from workbench.diagnostics.actions import DIVERGENCE_ACTIONS

        point = self._rollback_step()
        where = f" (step {point:,}, before the explosion)" if point is not None else ""
        self.app.push_screen(ChoiceScreen(f"The run diverged. Continue it from its last healthy state{where}?",
                                          [(action.key, action.label) for action in DIVERGENCE_ACTIONS],
                                          detail=state.reason or ""), self.recover)

    def _rollback_step(self) -> int | None:
        """The step a rollback would continue from (the run's newest non-best checkpoint), if readable."""
        from workbench.diagnostics.actions import rollback_point
        from workbench.errors import ConfigError
        from workbench.store import RunStore, default_runs_dir

        run_id = self.session.run_id or self.session.state.run_id
        try:
            store = RunStore(self.runs_dir or default_runs_dir(), create=False)
        except Exception:
            return None
        try:
            return int(rollback_point(store, run_id)["step"])
        except (ConfigError, KeyError, TypeError):
            return None
        finally:
            store.close()

    def recover(self, key: str | None) -> None:
        """Continue the diverged run with a divergence action (workbench.diagnostics.actions)."""
        if key is None or self.session.active:
            return
        run_id = self.session.run_id or self.session.state.run_id
        labels = {"rollback_lower_lr": "LR x 0.1", "rollback_clip": "clipping at 1.0"}
        self._relaunch_from = self.session.state.status
        point = self._rollback_step()
        diverged_at = self.session.state.step
        self.session.prepare_relaunch(point)
        self._rolled_back_to = point
        self.error.hide()
        where = f" to step {point:,}" if point is not None else ""
        self.log_pane.add(diverged_at, "ui", f"rolling back {run_id}{where} ({labels.get(key, key)})…")
        self.notify(f"continuing from step {point:,} with {labels.get(key, key)}" if point is not None
                    else f"continuing with {labels.get(key, key)}", title="rolled back")
        for chart in self.charts:
            chart.drawn_data_version = -1  # the tail after the rollback step is gone from the charts

        def build(store, callbacks):
            from workbench.diagnostics.actions import apply_action

            return apply_action(key, store, run_id, callbacks=callbacks)

        self.refresh_bindings()
        self.run_worker(partial(self.session.launch, build), thread=True, exit_on_error=False, group="launch",
                        name="launch")

    def action_new_run(self) -> None:
        if self.session.state.ended:
            self.post_message(StartRun(self.preset, replacing=self))

    def action_back(self) -> None:
        if self.session.active and not self.session.attached:  # another process's run: leaving never stops it
            self.notify("A run is active: stop it first (x), or quit (q).", severity="warning")
            return
        self.app.pop_screen()

    def leave(self) -> None:
        """This ended queued run's screen is about to be replaced: stop updating it (a title set while the
        screen is being removed would reach a header whose children are already gone)."""
        self.leaving = True
        self.timer.stop()

    def on_unmount(self) -> None:
        self.session.release()

    def chart(self, name: str) -> MetricChart:
        return self.query_one(f"#chart-{name}", MetricChart)

    def snapshot(self) -> dict[str, Any]:
        """Figures for tests and the benchmark."""
        return {"ticks": self.ticks, "tick_seconds": self.tick_seconds, "redraws": self.scheduler.redraws,
                "chart_build_seconds": sum(c.spent for c in self.charts),
                "chart_builds": sum(c.builds for c in self.charts)}
