"""Follow a run that lives in another process (or has finished) through the run store.

`StoreFollower.drain()` returns the same (TelemetryBatch list, Event list) a TelemetryBuffer does, so a
dashboard can show a detached, remote or finished run exactly like one it is training itself.
`StoreControl` steers such a run through the store's control table (the trainer polls it about once a
second). Neither imports torch or textual.
"""

from __future__ import annotations

import time
from collections import deque
from typing import Any

from workbench.store import RunStore
from workbench.training.control import parse_lr
from workbench.training.telemetry import Event, TelemetryBatch

# How far behind the newest step to re-read, so eval rows written just after a flush are not missed.
REREAD_STEPS = 200


class StoreFollower:
    """Incremental reader of one run's metrics, events, findings and status."""

    def __init__(self, store: RunStore, run_id: str, history_points: int = 2_000):
        self.store = store
        self.run_id = run_id
        self.history_points = history_points
        self._cursor: int | None = None  # newest step read
        self._seen: deque[tuple[int, str]] = deque(maxlen=200_000)
        self._seen_set: set[tuple[int, str]] = set()
        self._event_id = 0
        self._findings: dict[tuple[str, str], tuple[int, int]] = {}
        self._status: str | None = None
        self._floor = -1  # newest step covered by the downsampled history
        self.run: dict[str, Any] | None = None

    def _remember(self, key: tuple[int, str]) -> bool:
        """True if new."""
        if key in self._seen_set:
            return False
        if len(self._seen) == self._seen.maxlen:
            self._seen_set.discard(self._seen[0])
        self._seen.append(key)
        self._seen_set.add(key)
        return True

    def _history(self) -> list[tuple[int, str, float]]:
        """First read: every series downsampled to `history_points` (min/max per bucket)."""
        rows: list[tuple[int, str, float]] = []
        for name in self.store.metric_names(self.run_id):
            for step, value in self.store.metric_series(self.run_id, name, max_points=self.history_points):
                rows.append((step, name, value))
        return rows

    def _new_rows(self) -> list[tuple[int, str, float]]:
        # Re-read a little behind the newest step, but never below the (downsampled) history.
        since = max(self._floor - 1, (self._cursor or 0) - REREAD_STEPS)
        found = self.store._query(
            "SELECT step, name, value FROM metrics WHERE run_id=? AND step>? ORDER BY step", (self.run_id, since)
        )
        return [(r["step"], r["name"], r["value"]) for r in found if self._remember((r["step"], r["name"]))]

    def drain(self) -> tuple[list[TelemetryBatch], list[Event]]:
        run = self.store.get_run(self.run_id)
        if run is None:
            return [], []
        self.run = run
        events: list[Event] = []
        if self._cursor is None:
            events.append(Event("setup", 0, f"attached to {self.run_id}",
                                {"params": run["params"], "trainable": run["params"], "device": run["device"],
                                 "run_id": self.run_id}))
            rows = self._history()
            for step, name, _ in rows:
                self._remember((step, name))
            self._floor = max((step for step, _, _ in rows), default=-1)
        else:
            rows = self._new_rows()
        rows = [(step, name, value) for step, name, value in rows if value is not None]
        batches = []
        if rows:
            newest = max(step for step, _, _ in rows)
            self._cursor = max(self._cursor or 0, newest)
            batches.append(TelemetryBatch(step=newest, elapsed=time.time(), rows=sorted(rows)))
        elif self._cursor is None:
            self._cursor = 0
        for event in self.store.events(self.run_id, after_id=self._event_id):
            self._event_id = event["id"]
            data: dict[str, Any] = {}
            if event["kind"] == "status":  # pause/resume notes (the final status comes from the run row)
                data["paused"] = event["text"].startswith("paused")
            events.append(Event(event["kind"], event["step"], event["text"], data))
        for finding in self.store.findings(self.run_id):
            key = (finding["code"], finding["layer"] or "")
            version = (finding["count"], finding["last_step"])
            if self._findings.get(key) != version:
                self._findings[key] = version
                events.append(Event("finding", finding["last_step"], finding["message"], finding))
        if run["status"] != self._status:
            previous, self._status = self._status, run["status"]
            if run["status"] != "running":
                events.append(Event("status", run["steps"], run["status"],
                                    {"reason": run.get("reason"), "traceback": run.get("traceback")}))
            elif previous is not None:
                events.append(Event("log", run["steps"], "running again"))
        return batches, events

    @property
    def finished(self) -> bool:
        return self._status not in (None, "running")


class StoreControl:
    """pause/resume/stop/checkpoint/set-lr for a run in another process, through the store."""

    def __init__(self, store: RunStore, run_id: str):
        self.store = store
        self.run_id = run_id

    def _send(self, command: str, arg: str | None = None) -> bool:
        run = self.store.get_run(self.run_id)
        if run is None or run["status"] != "running":
            return False
        self.store.send_command(self.run_id, command, arg)
        return True

    def pause(self) -> bool:
        return self._send("pause")

    def resume(self) -> bool:
        return self._send("resume")

    def stop(self) -> bool:
        return self._send("stop")

    def checkpoint_now(self) -> bool:
        return self._send("checkpoint")

    def set_lr(self, lr: float) -> bool:
        return self._send("set_lr", repr(parse_lr(lr)))
