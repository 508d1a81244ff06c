"""The Workbench TUI: preset picker -> form -> live dashboard, on top of the background-thread trainer.

`run_tui(args)` is what `workbench` and `workbench tui` call, `run_attach(args)` is `workbench attach`.
Screens ask for runs and for screens that outlive them with the messages of `workbench.tui.messages`;
this app handles them (it owns the active run, the queue and the screen stack). The import path stays free of torch and
transformers, and the dashboard (plotext) is imported when first shown, so the first frame comes fast;
torch is imported on a worker thread when a run starts.
Every screen's key bindings are also commands in the palette (ctrl+p).
"""

from __future__ import annotations

import sys
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Iterable

from textual import on
from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.screen import Screen
from textual.worker import get_current_worker

from workbench.config import Preset
from workbench.errors import ConfigError
from workbench.tui.messages import (AttachRun, CompareRuns, ConfigurePreset, QueuedRunEnded, ResumeRun, ShowRuns,
                                    StartDetachedRun, StartQueue, StartRun)
from workbench.tui.screens.modals import ConfirmScreen
from workbench.tui.screens.presets import PresetsScreen
from workbench.tui.signals import EXIT_INTERRUPTED, SignalGuard

if TYPE_CHECKING:
    from workbench.sweep import SweepRun
    from workbench.tui.queue import RunQueue
    from workbench.tui.screens.dashboard import DashboardScreen

DEFAULT_FPS = 4.0
GIL_SWITCH_INTERVAL_S = 0.0005
STOP_WAIT_S = 120.0
QUEUE_PAUSE_S = 0.5  # an ended queued run's final status stays on screen this long before the next starts


class WorkbenchApp(App):
    """The application: screens, the active run, and a quit that never loses a run's progress."""

    CSS_PATH = Path(__file__).parent / "workbench.tcss"
    TITLE = "Workbench"
    BINDINGS = [Binding("ctrl+q", "quit", "Quit", priority=True, show=False),
                # The palette's "Keys" panel has no key of its own to close it.
                Binding("escape", "hide_keys_panel", show=False, priority=True)]

    def __init__(self, *, runs_dir: Path | None = None, preset: Preset | None = None, base: Preset | None = None,
                 start: bool = False, fps: float = DEFAULT_FPS, count_params: bool = True, attach: str | None = None,
                 compact: bool = False):
        super().__init__()
        self.runs_dir = runs_dir
        self.initial_preset = preset
        self.initial_base = base or preset
        self.start_immediately = start
        self.fps = fps
        self.compact = compact  # low-bandwidth mode: fewer charts on the dashboard
        self.count_params = count_params
        self.attach_run_id = attach  # `workbench attach RUN_ID`: open that run's dashboard first
        self.dashboard: DashboardScreen | None = None
        self.queue: RunQueue | None = None  # runs queued from the presets screen or a sweep
        self._quitting = False
        self._confirming_quit = False

    def on_mount(self) -> None:
        # The trainer thread gives up the GIL around every torch op and must win it back; with the
        # default 5 ms switch interval it can wait that long behind the UI thread each time (measured:
        # a few % of throughput). A shorter interval makes the UI yield sooner; it costs nothing when
        # only one thread wants the GIL.
        self._previous_switch_interval = sys.getswitchinterval()
        sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)
        self.push_screen(PresetsScreen(count_params=self.count_params and not self.start_immediately))
        if self.initial_preset is not None and self.start_immediately:
            self.start_run(self.initial_preset)
        elif self.initial_preset is not None:
            self.configure(self.initial_base, self.initial_preset)
        if self.attach_run_id is not None:
            self.attach_run(self.attach_run_id)

    def on_unmount(self) -> None:
        sys.setswitchinterval(self._previous_switch_interval)

    # -- runs -----------------------------------------------------------------------------------------
    def has_active_run(self) -> bool:
        return self.dashboard is not None and self.dashboard.session.active

    # -- what screens ask for (workbench.tui.messages) ------------------------------------------------
    @on(StartRun)
    def _start_requested(self, message: StartRun) -> None:
        if message.replacing is not None and self.screen is message.replacing and not self.has_active_run():
            self.pop_screen()  # a new run of an ended run's preset takes its dashboard's place
        self.start_run(message.preset)

    @on(StartDetachedRun)
    def _detached_requested(self, message: StartDetachedRun) -> None:
        self.start_detached(message.preset)

    @on(StartQueue)
    def _queue_requested(self, message: StartQueue) -> None:
        self.start_queue(message.runs)

    @on(AttachRun)
    def _attach_requested(self, message: AttachRun) -> None:
        self.attach_run(message.run_id)

    @on(ResumeRun)
    def _resume_requested(self, message: ResumeRun) -> None:
        self.resume_run(message.run_id)

    @on(QueuedRunEnded)
    def _queued_run_ended(self, message: QueuedRunEnded) -> None:
        self.queue_run_ended(message)

    @on(ConfigurePreset)
    def _configure_requested(self, message: ConfigurePreset) -> None:
        self.configure(message.preset)

    @on(ShowRuns)
    def _runs_requested(self, message: ShowRuns) -> None:
        from workbench.tui.screens.runs import RunsScreen

        self.push_screen(RunsScreen(self.runs_dir))

    @on(CompareRuns)
    def _compare_requested(self, message: CompareRuns) -> None:
        from workbench.tui.screens.compare import CompareScreen

        self.push_screen(CompareScreen(message.run_ids, self.runs_dir))

    def configure(self, base: Preset, preset: Preset | None = None) -> None:
        """Open the form on `preset` (its reset goes back to `base`)."""
        from workbench.tui.screens.configure import ConfigureScreen

        self.push_screen(ConfigureScreen(base, preset))

    def _new_dashboard(self, preset: Preset, **kwargs) -> DashboardScreen:
        # Imported here: the charts pull in plotext, which the first frame does not need.
        from workbench.tui.screens.dashboard import DashboardScreen

        return DashboardScreen(preset, self.runs_dir, self.fps, compact=self.compact, **kwargs)

    def _stop_counting(self) -> None:
        """A run is starting: the presets screen's parameter count would compete with it for the CPU."""
        for screen in self.screen_stack:
            if isinstance(screen, PresetsScreen):
                screen.stop_counting()

    def start_run(self, preset: Preset) -> DashboardScreen | None:
        """Open a dashboard and start training `preset` (one run at a time)."""
        if self._quitting:  # stopping for a quit or a signal: nothing new starts
            return None
        if self.has_active_run():
            self.notify("A run is already active: stop it first.", severity="error")
            return None
        self._stop_counting()
        self.dashboard = self._new_dashboard(preset)
        self.push_screen(self.dashboard)
        return self.dashboard

    # -- queues and sweeps ---------------------------------------------------------------------------
    def queue_active(self) -> bool:
        return self.queue is not None and not self.queue.done

    def start_queue(self, runs: list[SweepRun]) -> bool:
        """Train `runs` one after another, then open the compare view on them.

        Every run's builders are checked first on a worker thread (it imports torch; the same check as
        `workbench train --sweep`): if one is refused, nothing runs."""
        from workbench.tui.queue import QueuedRun, RunQueue

        if self.has_active_run() or self.queue_active():
            self.notify("A run is already active: stop it first.", severity="error")
            return False
        if not runs:
            return False
        self.queue = RunQueue([QueuedRun(run.label or run.preset.name, run.preset) for run in runs])
        self.notify(f"Checking {len(runs)} runs…", title="queue")
        self.run_worker(partial(self._check_queue, self.queue, runs), thread=True, exit_on_error=False,
                        group="queue-check", name="queue-check")
        return True

    def _check_queue(self, queue: RunQueue, runs: list[SweepRun]) -> None:
        from workbench.sweep import check_runs

        try:
            check_runs(runs)
        except ConfigError as error:
            if not get_current_worker().is_cancelled:
                self.call_from_thread(self._queue_refused, queue, str(error))
            return
        if not get_current_worker().is_cancelled:  # the app is closing: start nothing
            self.call_from_thread(self._start_queued, queue)

    def _queue_refused(self, queue: RunQueue, reason: str) -> None:
        queue.done = True
        self.notify(reason, title="queue refused: nothing ran", severity="error", timeout=10)

    def _start_queued(self, queue: RunQueue, replacing: Screen | None = None) -> None:
        if self._quitting or queue.done:
            return
        self._stop_counting()
        self.dashboard = self._new_dashboard(queue.current.preset, queue=queue)
        if replacing is not None and self.screen is replacing:
            self.switch_screen(self.dashboard)
        else:
            self.push_screen(self.dashboard)

    def queue_run_ended(self, ended: QueuedRunEnded) -> None:
        """A queued run ended (completed, stopped, failed or diverged): start the next, or compare the set."""
        queue = ended.queue
        if queue.done or self._quitting:
            return
        following = queue.finished(ended.run_id, ended.status)
        # Not at once: a run refused at set-up ends before its dashboard has finished mounting.
        self.set_timer(QUEUE_PAUSE_S, partial(self._advance_when_shown, ended.dashboard, queue, following is not None))

    def _advance_when_shown(self, dashboard: Screen, queue: RunQueue, more: bool) -> None:
        from workbench.tui.screens.dashboard import DashboardScreen

        # A dialog may be open on the dashboard: replace the dashboard once it is the screen shown again.
        if self._quitting:
            return
        if self.screen is not dashboard:
            self.set_timer(0.2, partial(self._advance_when_shown, dashboard, queue, more))
            return
        if isinstance(dashboard, DashboardScreen):
            dashboard.leave()
        if more:
            self._start_queued(queue, replacing=dashboard)
            return
        run_ids = queue.run_ids
        skipped = f" ({len(queue.skipped)} recorded nothing: {', '.join(queue.skipped)})" if queue.skipped else ""
        if len(run_ids) >= 2:
            from workbench.tui.screens.compare import CompareScreen

            self.notify(f"{len(run_ids)} runs done{skipped}: comparing them", title="queue finished")
            self.switch_screen(CompareScreen(run_ids, self.runs_dir))
        else:
            self.notify(f"{len(run_ids)} run recorded{skipped}: nothing to compare", title="queue finished",
                        severity="warning")

    def start_detached(self, preset: Preset) -> None:
        """Train `preset` in its own process (`workbench train --detach`) and attach a dashboard to it."""
        self.notify("Starting a detached run…", title="run detached")
        # A thread worker: starting the process blocks (it returns once the run is recorded), no torch here.
        self.run_worker(partial(self._launch_detached, preset), thread=True, exit_on_error=False,
                        group="detach", name="detach")

    def _launch_detached(self, preset: Preset) -> None:
        import json
        import subprocess
        import time

        from workbench.presets import preset_to_toml
        from workbench.store import default_runs_dir

        runs_dir = Path(self.runs_dir or default_runs_dir()).resolve()
        folder = runs_dir / "detached-presets"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{preset.name}-{time.strftime('%Y%m%d-%H%M%S')}.toml"
        path.write_text(preset_to_toml(preset), encoding="utf-8")
        done = subprocess.run([sys.executable, "-m", "workbench", "train", str(path), "--detach", "--json",
                               "--runs-dir", str(runs_dir)], capture_output=True, text=True, timeout=600)
        if get_current_worker().is_cancelled:  # the app is closing; the run (if it started) goes on alone
            return
        if done.returncode != 0:
            reason = (done.stderr.strip().splitlines() or ["detached run failed to start"])[-1]
            self.call_from_thread(self.notify, reason, title="run detached", severity="error")
            return
        run_id = json.loads(done.stdout)["run_id"]
        self.call_from_thread(self.notify, f"{run_id} runs in the background; leaving never stops it",
                              title="run detached")
        self.call_from_thread(self.attach_run, run_id)

    def attach_run(self, run_id: str) -> None:
        """Show a stored run (another process's, or a finished one) on a dashboard; leaving never stops it."""
        from workbench.tui.attached import AttachedSession

        try:
            session = AttachedSession.open(self.runs_dir, run_id)
        except (ConfigError, OSError) as error:
            self.notify(str(error), title="attach", severity="error")
            return
        self.push_screen(self._new_dashboard(session.preset, session=session, autostart=False))

    def resume_run(self, run_id: str) -> DashboardScreen | None:
        """Continue an interrupted run in this process, on a dashboard (as `workbench train --resume`)."""
        from workbench.presets import preset_of
        from workbench.store import RunStore, default_runs_dir
        from workbench.tui.session import RunSession

        if self.has_active_run():
            self.notify("A run is already active: stop it first.", severity="error")
            return None
        store = RunStore(self.runs_dir or default_runs_dir())
        try:
            run = store.get_run(run_id)
            preset = preset_of(run) if run is not None else None
        except ConfigError as error:
            self.notify(str(error), title="resume", severity="error")
            return None
        finally:
            store.close()
        if preset is None:
            self.notify(f"run {run_id!r}: not found", title="resume", severity="error")
            return None
        self.dashboard = self._new_dashboard(preset, session=RunSession(preset, self.runs_dir, resume_run_id=run_id))
        self.push_screen(self.dashboard)
        return self.dashboard

    def stop_runs(self, status: str = "interrupted", timeout: float = STOP_WAIT_S) -> None:
        """Ask an active run to checkpoint and stop, and wait for it (used after the app has exited)."""
        from workbench.tui.session import RunSession

        session = self.dashboard.session if self.dashboard is not None else None
        if not isinstance(session, RunSession) or session.trainer is None:
            return
        trainer = session.trainer
        if trainer.result is None:
            trainer.stop(status, "the TUI exited while the run was active")
        if trainer.thread is not None:
            trainer.thread.join(timeout)

    def interrupt_runs(self, reason: str, timeout: float) -> None:
        """A signal came (see tui/signals.py): queued runs are dropped, the active run stops as `interrupted`
        (checkpoint first); waits up to `timeout` s. Called from a thread, so it touches no widget."""
        self._quitting = True  # nothing new starts: a queue's next run, a restart
        if self.queue is not None:
            self.queue.cancel()
        from workbench.tui.session import RunSession

        session = self.dashboard.session if self.dashboard is not None else None
        if isinstance(session, RunSession):  # attached runs belong to other processes
            session.interrupt(reason, timeout)

    # -- quitting ---------------------------------------------------------------------------------------
    async def action_quit(self) -> None:
        if self._quitting or self._confirming_quit:
            return
        if not self.has_active_run():
            self.exit()
            return
        self._confirming_quit = True

        def answered(yes: bool | None) -> None:
            self._confirming_quit = False
            if yes:
                self._stop_then_exit()

        self.push_screen(ConfirmScreen("A run is active. Stop it and quit?", "Stop and quit", "Keep training",
                                       detail="The run saves a checkpoint first; resume it later with "
                                              "`workbench train --resume RUN_ID`."), answered)

    def _stop_then_exit(self) -> None:
        self._quitting = True
        if self.queue is not None:  # the runs not started yet are dropped, not started on the way out
            self.queue.cancel()
        session = self.dashboard.session
        if session.launched:
            session.stop()
        self.notify("Stopping: saving a checkpoint…", title="Quit", timeout=STOP_WAIT_S)
        waited = {"s": 0.0}

        def check() -> None:
            waited["s"] += 0.1
            if not session.active or waited["s"] > STOP_WAIT_S:
                if self.dashboard is not None:
                    self.dashboard.tick()  # record the final status in the log before leaving
                self.exit()

        self.set_interval(0.1, check)

    # -- help: ? / f1 on every screen, and the palette ------------------------------------------------
    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "hide_keys_panel":  # escape is the screen's own key unless the Keys panel is open
            return bool(self.screen.query("HelpPanel"))
        return True

    def action_hide_keys_panel(self) -> None:
        self.action_hide_help_panel()

    def action_help(self) -> None:
        """The help screen for the current screen: every key it has (workbench.tui.keys)."""
        from workbench.tui.keys import TABLES
        from workbench.tui.screens.help import HelpScreen

        name = getattr(self.screen, "KEYS", None)
        if name in TABLES:
            self.push_screen(HelpScreen(f"Keys: {name}", TABLES[name]))

    # -- the command palette holds every key binding of the screen it was opened from ------------------
    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        seen: set[str] = set()
        for key, active in screen.active_bindings.items():
            binding = active.binding
            if not binding.description or not active.enabled or binding.action in seen or binding.system:
                continue
            if binding.action in ("quit", "app.quit", "command_palette"):
                continue
            seen.add(binding.action)
            # The footer's word is short; the palette has room for the longer name (the binding's tooltip).
            yield SystemCommand(binding.tooltip or binding.description, f"key: {binding.key_display or key}",
                                partial(self.run_action, binding.action, active.node))


def check_fps(fps: float) -> None:
    """--fps of `workbench tui` and `workbench attach`."""
    if not (0.5 <= fps <= 30):
        raise ConfigError(f"--fps: {fps:g} is out of range (0.5 to 30 refreshes per second)")


def run_tui(args) -> int:
    """`workbench tui [--preset P] [--start] [--set K=V ...] [--runs-dir DIR] [--fps F]`."""
    from workbench.presets import DEFAULT_PRESET, load_preset

    low_bandwidth = bool(getattr(args, "low_bandwidth", False))
    fps = (1.0 if low_bandwidth else DEFAULT_FPS) if getattr(args, "fps", None) is None else args.fps
    check_fps(fps)
    overrides = list(getattr(args, "overrides", None) or [])
    preset = base = None
    if args.preset or args.start or overrides:
        ref = args.preset or DEFAULT_PRESET
        base = load_preset(ref)
        preset = load_preset(ref, overrides) if overrides else base
    app = WorkbenchApp(runs_dir=args.runs_dir, preset=preset, base=base, start=bool(args.start), fps=fps,
                       compact=low_bandwidth)
    guard = SignalGuard(app).install()
    try:
        app.run()
    finally:
        guard.app_exited.set()
        if guard.received:
            guard.wait_saved()
        else:
            app.stop_runs()
        guard.restore()
        if guard.received:
            guard.leave_if_stuck()
    return EXIT_INTERRUPTED if guard.received else 0


def run_attach(args) -> int:
    """`workbench attach RUN_ID [--runs-dir DIR] [--fps F]`: the dashboard of a stored run."""
    from workbench.store import DB_NAME, RunStore, default_runs_dir

    fps = DEFAULT_FPS if getattr(args, "fps", None) is None else args.fps
    check_fps(fps)
    runs_dir = Path(args.runs_dir or default_runs_dir())
    if not (runs_dir / DB_NAME).exists():
        raise ConfigError(f"--runs-dir: no run store in {str(runs_dir)!r}")
    probe = RunStore(runs_dir, create=False)
    try:
        if probe.get_run(args.run_id) is None:
            raise ConfigError(f"run {args.run_id!r}: not found in {probe.path}")
    finally:
        probe.close()
    app = WorkbenchApp(runs_dir=runs_dir, fps=fps, attach=args.run_id, count_params=False)
    app.run()  # an attached run is never stopped on quit: nothing to join
    return 0
