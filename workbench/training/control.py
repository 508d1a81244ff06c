"""The control channel: commands that steer a run (pause, resume, stop, checkpoint, set_lr, profile).

Any thread may send a command; the loop applies it between steps (`RunSession.handle_commands`).
Other processes (`workbench control/stop`, an attached TUI) write into the store's `control` table,
which the run polls about once a second. Under torchrun, stop and set_lr must take effect on every
rank at the same step: rank 0 collects them and broadcasts them at the next flush (`exchange`); other
ranks ignore local requests for them (torchrun signals every rank; rank 0 speaks for all).

No torch here: `workbench control` and the TUI import it.
"""

from __future__ import annotations

import math
import queue
import time
from typing import Any, Callable

# Commands every rank applies at the same step under torchrun.
REPLICATED = ("stop", "set_lr")
# Commands the store's control table may carry (what `workbench control` and the attached TUI send).
FROM_STORE = ("pause", "resume", "checkpoint", "set_lr", "stop")
STORE_POLL_INTERVAL_S = 1.0


def parse_lr(value: Any) -> float:
    """A learning rate from a command: a positive finite number, or ValueError."""
    try:
        lr = float(value)
    except (TypeError, ValueError):
        raise ValueError("learning rate must be a positive finite number") from None
    if isinstance(value, bool) or not (math.isfinite(lr) and lr > 0):
        raise ValueError("learning rate must be a positive finite number")
    return lr


class ControlChannel:
    """One run's command queue, fed by this process's threads, the store and rank 0's broadcast."""

    def __init__(self, distributed: bool = False, is_main: bool = True):
        self.distributed = distributed
        self.is_main = is_main
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self.idle = self._queue.empty  # True while no command waits (the queue's own C call: a per-step check)
        self._replicated: list[tuple[str, Any]] = []
        self._last_poll = time.monotonic()

    # -- sending (safe from any thread) ---------------------------------------------------------------
    def send(self, command: str, arg: Any = None) -> None:
        if command not in REPLICATED or not self.distributed:
            self._queue.put((command, arg))
        elif self.is_main:
            self._replicated.append((command, arg))

    def pause(self) -> None:
        self.send("pause")

    def resume(self) -> None:
        self.send("resume")

    def checkpoint(self) -> None:
        self.send("checkpoint")

    def stop(self, status: str = "stopped", reason: str | None = None) -> None:
        """Stop after the current step, saving a checkpoint first. status: stopped | interrupted."""
        self.send("stop", (status, reason))

    def set_lr(self, lr: float) -> None:
        self.send("set_lr", parse_lr(lr))

    def profile(self, steps: int = 20) -> None:
        if not (isinstance(steps, int) and not isinstance(steps, bool) and 1 <= steps <= 10_000):
            raise ValueError("profile steps must be an integer from 1 to 10000")
        self.send("profile", steps)

    # -- receiving (the loop's thread) ----------------------------------------------------------------
    def pending(self) -> bool:
        return not self._queue.empty()

    def get(self, timeout: float | None = None) -> tuple[str, Any] | None:
        """The next command; None when there is none (after waiting `timeout` seconds, if given)."""
        try:
            return self._queue.get(timeout=timeout) if timeout else self._queue.get_nowait()
        except queue.Empty:
            return None

    def poll_store(self, store, run_id: str | None, log: Callable[[str], None]) -> None:
        """Commands from another process, read from the store at most once per STORE_POLL_INTERVAL_S."""
        import sqlite3

        now = time.monotonic()
        if run_id is None or not self.is_main or now - self._last_poll < STORE_POLL_INTERVAL_S:
            return
        self._last_poll = now
        try:
            commands = store.take_commands(run_id)
        except sqlite3.Error:  # a busy or full store: try again next time
            return
        for command, arg in commands:
            if command == "set_lr":
                try:
                    self.set_lr(arg)
                except ValueError:
                    log(f"ignored set_lr with bad value {arg!r}")
            elif command == "stop":
                self.stop()
            elif command in FROM_STORE:
                self.send(command)

    def exchange(self, topology) -> None:
        """Under torchrun: rank 0's stop/set_lr requests reach every rank's queue (a collective: every
        rank calls it at the same step)."""
        if not self.distributed:
            return
        from workbench.training import distributed

        for command in distributed.broadcast_object(self._replicated, topology):
            self._queue.put(command)
        self._replicated = []
