"""The TUI's answer to SIGHUP (an SSH drop, tmux kill-session), SIGTERM and SIGINT: save the run, then go.

Python's default for SIGHUP and SIGTERM kills the process at once, so a run trained from the TUI lost
everything since its last periodic checkpoint (often only `best.pt`, which `--resume` does not use). The
handler here never touches the screen, since the terminal may already be gone and a write to it can fail
or hang. It hands the work to a thread that drops queued runs that have not started (they must not start
in a process with no terminal), asks the live run to stop as `interrupted` (the trainer checkpoints
first, as for `workbench stop`), waits for it at most STOP_WITHIN_S, then asks the app to exit. If the
app cannot exit (its drawing is stuck on a dead terminal), the process exits anyway EXIT_GRACE_S later.
A second signal while this runs is ignored: it would only cut the checkpoint short.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from typing import Any, Callable

STOP_WITHIN_S = 60.0  # the current step and the checkpoint must fit in this; then the process exits
EXIT_GRACE_S = 5.0  # for the app to restore the terminal (if there is one) once the run is saved
EXIT_INTERRUPTED = 130  # as `workbench train` on a signal


def handled_signals() -> list[signal.Signals]:
    return [signal.SIGINT, signal.SIGTERM] + ([signal.SIGHUP] if hasattr(signal, "SIGHUP") else [])


class SignalGuard:
    """Installed around `app.run()`; `received` names the signal once one came."""

    def __init__(self, app: Any, stop_within: float = STOP_WITHIN_S, grace: float = EXIT_GRACE_S,
                 exit_process: Callable[[int], None] = os._exit):
        self.app = app
        self.stop_within = stop_within
        self.grace = grace
        self.exit_process = exit_process
        self.received: str | None = None
        self.saved = threading.Event()  # the run has ended (or there was none, or the bound ran out)
        self.app_exited = threading.Event()  # set by the caller once app.run() has returned
        self._previous: dict[signal.Signals, Any] = {}
        self._thread: threading.Thread | None = None

    def install(self) -> SignalGuard:
        for sig in handled_signals():
            self._previous[sig] = signal.signal(sig, self._on_signal)
        return self

    def restore(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()

    def _on_signal(self, signum: int, frame: Any) -> None:
        # Runs on the main thread between two bytecodes, maybe in the middle of a redraw: start a thread
        # and return, touching neither the screen nor any lock the UI may hold.
        if self.received is not None:
            return
        self.received = signal.Signals(signum).name
        self._thread = threading.Thread(target=self._wind_down, name="workbench-signal", daemon=True)
        self._thread.start()

    def _wind_down(self) -> None:
        try:
            self.app.interrupt_runs(f"{self.received} received", self.stop_within)
        finally:
            self.saved.set()
        if not self.app_exited.is_set():
            # call_from_thread waits for the UI loop: from its own thread, so a stuck loop blocks only that
            threading.Thread(target=self._ask_app_to_exit, name="workbench-signal-exit", daemon=True).start()
        if not self.app_exited.wait(self.grace):
            self.exit_process(EXIT_INTERRUPTED)  # the run is saved (or out of time); nothing left to wait for

    def _ask_app_to_exit(self) -> None:
        try:
            self.app.call_from_thread(self.app.exit, None, EXIT_INTERRUPTED)
        except Exception:  # the app ended meanwhile, or never ran: the wait above decides
            pass

    def leave_if_stuck(self, wait: float = 1.0) -> None:
        """After a signal, once app.run() has returned and the run is saved: if a thread that is not a
        daemon is still alive, leave without it. Textual's input thread can be left reading a terminal
        that has gone (a tmux pane killed while the app was closing); the interpreter would wait for it
        at exit forever while it spins on the dead descriptor, and nothing else is left to do."""
        current = threading.current_thread()
        deadline = time.monotonic() + wait
        stuck = []
        for thread in threading.enumerate():
            if thread is current or thread.daemon:
                continue
            thread.join(max(0.0, deadline - time.monotonic()))
            if thread.is_alive():
                stuck.append(thread)
        if stuck:
            for stream in (sys.stdout, sys.stderr):
                try:
                    stream.flush()
                except (OSError, ValueError):
                    pass  # the terminal is gone: nothing to flush to
            self.exit_process(EXIT_INTERRUPTED)

    def wait_saved(self) -> bool:
        """After app.run() returned: let a signal's wind-down finish saving the run (bounded)."""
        return self.saved.wait(self.stop_within + 1.0)
