"""The run store: one SQLite database (WAL) in the runs directory holding every run's history.

Tables: runs, metrics (run, step, name, value), metric_buckets (min/max of every 64 and 4,096 steps,
kept up to date as metrics are written, so long series are read downsampled without scanning them),
findings, events (samples, logs), checkpoints and control (commands for a trainer in another process). Writes from the trainer go through
`StoreWriter`, a small thread that batches them into short transactions so the training loop never
waits on the disk. Readers in other processes (the TUI, `workbench runs`) see committed data at once.
"""

from __future__ import annotations

import json
import os
import queue
import secrets
import socket
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any, Iterable

from workbench.errors import StoreError
from workbench.status import RECORDED_ENDINGS, RunStatus

DB_NAME = "workbench.db"
ENV_RUNS_DIR = "WORKBENCH_RUNS_DIR"
# A running run whose heartbeat is older than this (and whose process we can't see) is interrupted.
STALE_AFTER_S = 30.0
# Steps per summary bucket: the fine level is built from metric rows, the coarse one from fine buckets.
BUCKET_WIDTHS = (64, 4096)

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    preset TEXT NOT NULL,
    config TEXT NOT NULL,
    status TEXT NOT NULL,
    steps INTEGER NOT NULL DEFAULT 0,
    started_at REAL NOT NULL,
    ended_at REAL,
    heartbeat REAL,
    world_size INTEGER NOT NULL DEFAULT 1,
    pid INTEGER,
    host TEXT,
    params INTEGER,
    device TEXT,
    resumed_from TEXT,
    reason TEXT,
    traceback TEXT,
    stats TEXT NOT NULL DEFAULT '{}'
);
CREATE TABLE IF NOT EXISTS metrics (
    run_id TEXT NOT NULL,
    name TEXT NOT NULL,
    step INTEGER NOT NULL,
    value REAL,
    PRIMARY KEY (run_id, name, step)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS metric_buckets (
    run_id TEXT NOT NULL,
    name TEXT NOT NULL,
    width INTEGER NOT NULL,
    bucket INTEGER NOT NULL,
    lo REAL,
    hi REAL,
    first_step INTEGER NOT NULL,
    last_step INTEGER NOT NULL,
    n INTEGER NOT NULL,
    PRIMARY KEY (run_id, name, width, bucket)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS findings (
    run_id TEXT NOT NULL,
    code TEXT NOT NULL,
    layer TEXT NOT NULL DEFAULT '',
    severity TEXT NOT NULL,
    step INTEGER NOT NULL,
    last_step INTEGER NOT NULL,
    count INTEGER NOT NULL DEFAULT 1,
    message TEXT NOT NULL,
    remedy TEXT NOT NULL,
    evidence TEXT NOT NULL DEFAULT '{}',
    PRIMARY KEY (run_id, code, layer)
);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id TEXT NOT NULL,
    step INTEGER NOT NULL,
    kind TEXT NOT NULL,
    text TEXT NOT NULL,
    created_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS events_by_run ON events (run_id, kind, id);
CREATE TABLE IF NOT EXISTS checkpoints (
    run_id TEXT NOT NULL,
    step INTEGER NOT NULL,
    path TEXT NOT NULL,
    kind TEXT NOT NULL,
    val_loss REAL,
    created_at REAL NOT NULL,
    PRIMARY KEY (run_id, path)
);
CREATE TABLE IF NOT EXISTS control (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id TEXT NOT NULL,
    command TEXT NOT NULL,
    arg TEXT,
    created_at REAL NOT NULL,
    consumed_at REAL
);
"""


def default_runs_dir() -> Path:
    return Path(os.environ.get(ENV_RUNS_DIR) or "runs")


def new_run_id(preset: str) -> str:
    """Sortable, unique and safe as a directory name."""
    safe = "".join(c if c.isalnum() or c in "-_." else "-" for c in preset)[:40].strip(".") or "run"
    return f"{time.strftime('%Y%m%d-%H%M%S')}-{safe}-{secrets.token_hex(3)}"


def _pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def metric_spans(rows: Iterable[tuple[int, str, Any]],
                 into: dict[str, tuple[int, int]] | None = None) -> dict[str, tuple[int, int]]:
    """{name: (first step, last step)} of metric rows, merged into `into` when given."""
    spans = {} if into is None else into
    for step, name, _ in rows:
        span = spans.get(name)
        if span is None:
            spans[name] = (step, step)
        elif step < span[0] or step > span[1]:
            spans[name] = (min(step, span[0]), max(step, span[1]))
    return spans


class RunStore:
    """Access to the runs database. One connection, shared under a lock; safe to use from any thread."""

    def __init__(self, runs_dir: Path | str | None = None, create: bool = True):
        self.runs_dir = Path(runs_dir) if runs_dir is not None else default_runs_dir()
        if create:
            try:
                self.runs_dir.mkdir(parents=True, exist_ok=True)
            except OSError as error:
                raise StoreError(f"runs dir {str(self.runs_dir)!r}: cannot create ({error.strerror})") from None
        if not self.runs_dir.is_dir():
            raise StoreError(f"runs dir {str(self.runs_dir)!r}: does not exist")
        if create and not os.access(self.runs_dir, os.W_OK | os.X_OK):
            raise StoreError(f"runs dir {str(self.runs_dir)!r}: not writable")
        self.path = self.runs_dir / DB_NAME
        self._lock = threading.RLock()
        try:
            self._db = sqlite3.connect(self.path, timeout=30.0, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA busy_timeout = 30000")
            self._db.execute("PRAGMA journal_mode = WAL")
            self._db.execute("PRAGMA synchronous = NORMAL")
            self._db.executescript(SCHEMA)
        except sqlite3.Error as error:
            raise StoreError(f"run store {str(self.path)!r}: {error}") from None
        self.host = socket.gethostname()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def run_dir(self, run_id: str) -> Path:
        """A run's own folder (checkpoints, exports). Run ids never contain path separators."""
        if not run_id or "/" in run_id or "\\" in run_id or run_id in (".", ".."):
            raise StoreError(f"invalid run id {run_id!r}")
        return self.runs_dir / run_id

    # -- writes ------------------------------------------------------------------------------
    def _write(self, sql: str, params: Iterable[Any] = ()) -> None:
        with self._lock:
            self._db.execute(sql, tuple(params))

    def transaction(self, work) -> None:
        """Run `work(connection)` in one short IMMEDIATE transaction."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                work(self._db)
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def create_run(
        self,
        preset: str,
        config: dict[str, Any],
        world_size: int = 1,
        resumed_from: str | None = None,
        run_id: str | None = None,
    ) -> str:
        run_id = run_id or new_run_id(preset)
        now = time.time()
        self._write(
            "INSERT INTO runs (run_id, preset, config, status, started_at, heartbeat, world_size, pid, host,"
            " resumed_from) VALUES (?, ?, ?, 'running', ?, ?, ?, ?, ?, ?)",
            (run_id, preset, json.dumps(config), now, now, world_size, os.getpid(), self.host, resumed_from),
        )
        return run_id

    def reopen_run(self, run_id: str) -> None:
        """A resumed run continues under its own id: running again, owned by this process."""
        self._write(
            "UPDATE runs SET status='running', ended_at=NULL, heartbeat=?, pid=?, host=?, reason=NULL,"
            " traceback=NULL WHERE run_id=?",
            (time.time(), os.getpid(), self.host, run_id),
        )

    def update_run(self, run_id: str, **fields: Any) -> None:
        allowed = {"steps", "heartbeat", "params", "device", "stats", "world_size", "config"}
        if not fields or set(fields) - allowed:
            raise ValueError(f"cannot update {sorted(set(fields) - allowed)}")
        for key in ("stats", "config"):  # a rollback action changes the config the run resumes with
            if key in fields:
                fields[key] = json.dumps(fields[key])
        columns = ", ".join(f"{key}=?" for key in fields)
        self._write(f"UPDATE runs SET {columns} WHERE run_id=?", (*fields.values(), run_id))

    def finish_run(
        self,
        run_id: str,
        status: RunStatus,
        steps: int,
        reason: str | None = None,
        traceback: str | None = None,
        stats: dict[str, Any] | None = None,
    ) -> None:
        if status not in RECORDED_ENDINGS:
            raise ValueError(f"{status!r} is not how a stored run can end (one of {', '.join(RECORDED_ENDINGS)})")
        self._write(
            "UPDATE runs SET status=?, steps=?, ended_at=?, heartbeat=?, reason=?, traceback=?,"
            " stats=COALESCE(?, stats) WHERE run_id=?",
            (status, steps, time.time(), time.time(), reason, traceback,
             json.dumps(stats) if stats is not None else None, run_id),
        )

    def add_metrics(self, run_id: str, rows: list[tuple[int, str, float]], conn=None, buckets: bool = True) -> None:
        """rows: (step, name, value). Re-logging a step (after a resume) replaces the old value.

        The summary buckets the rows fall in are recomputed in the same transaction (buckets=False leaves
        that to the caller, who batches several calls: see `update_buckets`)."""
        try:  # one statement for the lot: sqlite then works without the GIL instead of taking it per row
            document = json.dumps(rows, allow_nan=False)
        except (TypeError, ValueError):  # a non-finite value (JSON has none) or a non-JSON number type
            document = None

        def work(db) -> None:
            if document is not None:
                db.execute("INSERT OR REPLACE INTO metrics (run_id, step, name, value)"
                           " SELECT ?, value ->> 0, value ->> 1, value ->> 2 FROM json_each(?)", (run_id, document))
            else:
                db.executemany("INSERT OR REPLACE INTO metrics (run_id, step, name, value) VALUES (?, ?, ?, ?)",
                               [(run_id, step, name, None if value is None else float(value))
                                for step, name, value in rows])
            if buckets:
                self.update_buckets(run_id, metric_spans(rows), db)

        if conn is not None:
            work(conn)
        else:
            self.transaction(work)

    def update_buckets(self, run_id: str, spans: dict[str, tuple[int, int]], conn) -> None:
        """Recompute the summary buckets covering each metric's written [first, last] steps, from the rows
        themselves (so a replaced value never leaves a stale extreme behind); inside a transaction."""
        fine, coarse = BUCKET_WIDTHS
        per = coarse // fine
        for name, (lo, hi) in spans.items():
            conn.execute(
                "INSERT OR REPLACE INTO metric_buckets SELECT run_id, name, ?, step / ?, MIN(value), MAX(value),"
                " MIN(step), MAX(step), COUNT(*) FROM metrics WHERE run_id=? AND name=? AND step>=? AND step<?"
                " GROUP BY step / ?", (fine, fine, run_id, name, lo // fine * fine, (hi // fine + 1) * fine, fine))
            conn.execute(
                "INSERT OR REPLACE INTO metric_buckets SELECT run_id, name, ?, bucket / ?, MIN(lo), MAX(hi),"
                " MIN(first_step), MAX(last_step), SUM(n) FROM metric_buckets WHERE run_id=? AND name=? AND width=?"
                " AND bucket>=? AND bucket<? GROUP BY bucket / ?",
                (coarse, per, run_id, name, fine, lo // coarse * per, (hi // coarse + 1) * per, per))

    def upsert_finding(self, run_id: str, finding: dict[str, Any], conn=None) -> None:
        """One row per (code, layer): a repeat updates count, last step, evidence and message."""
        sql = (
            "INSERT INTO findings (run_id, code, layer, severity, step, last_step, count, message, remedy, evidence)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (run_id, code, layer) DO UPDATE SET"
            " severity=excluded.severity, last_step=excluded.last_step, count=excluded.count,"
            " message=excluded.message, remedy=excluded.remedy, evidence=excluded.evidence"
        )
        params = (
            run_id, finding["code"], finding.get("layer") or "", finding["severity"], finding["step"],
            finding.get("last_step", finding["step"]), finding.get("count", 1), finding["message"],
            finding["remedy"], json.dumps(finding.get("evidence", {}), default=float),
        )
        if conn is not None:
            conn.execute(sql, params)
        else:
            self._write(sql, params)

    def add_event(self, run_id: str, step: int, kind: str, text: str, conn=None) -> None:
        sql = "INSERT INTO events (run_id, step, kind, text, created_at) VALUES (?, ?, ?, ?, ?)"
        params = (run_id, step, kind, text, time.time())
        if conn is not None:
            conn.execute(sql, params)
        else:
            self._write(sql, params)

    def add_checkpoint(self, run_id: str, step: int, path: str, kind: str, val_loss: float | None) -> None:
        self._write(
            "INSERT OR REPLACE INTO checkpoints (run_id, step, path, kind, val_loss, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (run_id, step, path, kind, val_loss, time.time()),
        )

    def remove_checkpoint(self, run_id: str, path: str) -> None:
        self._write("DELETE FROM checkpoints WHERE run_id=? AND path=?", (run_id, path))

    # -- control channel (commands for a trainer that may live in another process) ---------------
    def send_command(self, run_id: str, command: str, arg: str | None = None) -> None:
        self._write(
            "INSERT INTO control (run_id, command, arg, created_at) VALUES (?, ?, ?, ?)",
            (run_id, command, arg, time.time()),
        )

    def take_commands(self, run_id: str) -> list[tuple[str, str | None]]:
        """Pending commands for a run, oldest first, marked consumed."""
        taken: list[tuple[str, str | None]] = []

        def work(db):
            rows = db.execute(
                "SELECT id, command, arg FROM control WHERE run_id=? AND consumed_at IS NULL ORDER BY id", (run_id,)
            ).fetchall()
            if rows:
                db.executemany("UPDATE control SET consumed_at=? WHERE id=?", [(time.time(), r[0]) for r in rows])
            taken.extend((r[1], r[2]) for r in rows)

        self.transaction(work)
        return taken

    # -- reads -------------------------------------------------------------------------------
    def _query(self, sql: str, params: Iterable[Any] = ()) -> list[sqlite3.Row]:
        with self._lock:
            cursor = self._db.execute(sql, tuple(params))
            columns = [d[0] for d in cursor.description]
            return [dict(zip(columns, row)) for row in cursor.fetchall()]

    def _settle(self, run: dict[str, Any]) -> dict[str, Any]:
        """A 'running' run whose process is gone is interrupted; record that the first time we see it."""
        if run["status"] != "running":
            return run
        same_host = run.get("host") == self.host
        dead = (same_host and not _pid_alive(run.get("pid"))) or (
            not same_host and time.time() - (run.get("heartbeat") or 0) > STALE_AFTER_S
        )
        if dead:
            self._write(
                "UPDATE runs SET status='interrupted', reason=COALESCE(reason, 'process ended without finishing')"
                " WHERE run_id=? AND status='running'",
                (run["run_id"],),
            )
            run = {**run, "status": "interrupted", "reason": run.get("reason") or "process ended without finishing"}
        return run

    def get_run(self, run_id: str) -> dict[str, Any] | None:
        rows = self._query("SELECT * FROM runs WHERE run_id=?", (run_id,))
        if not rows:
            return None
        run = self._settle(rows[0])
        run["config"] = json.loads(run["config"])
        run["stats"] = json.loads(run["stats"] or "{}")
        return run

    def list_runs(self, limit: int | None = None) -> list[dict[str, Any]]:
        sql = "SELECT run_id, preset, status, steps, started_at, ended_at, heartbeat, world_size, pid, host," \
              " params, device, reason, stats FROM runs ORDER BY started_at DESC, run_id DESC"
        if limit:
            sql += f" LIMIT {int(limit)}"
        runs = [self._settle(run) for run in self._query(sql)]
        for run in runs:
            run["stats"] = json.loads(run["stats"] or "{}")
        return runs

    def metric_names(self, run_id: str) -> list[str]:
        return [r["name"] for r in self._query("SELECT DISTINCT name FROM metrics WHERE run_id=?", (run_id,))]

    def last_metric(self, run_id: str, name: str) -> float | None:
        rows = self._query(
            "SELECT value FROM metrics WHERE run_id=? AND name=? ORDER BY step DESC LIMIT 1", (run_id, name)
        )
        return rows[0]["value"] if rows else None

    def last_steps(self, run_id: str, name: str, count: int) -> list[int]:
        """The newest `count` steps at which a metric was logged, newest first."""
        rows = self._query("SELECT step FROM metrics WHERE run_id=? AND name=? ORDER BY step DESC LIMIT ?",
                           (run_id, name, count))
        return [r["step"] for r in rows]

    def min_metric(self, run_id: str, name: str) -> float | None:
        rows = self._query("SELECT MIN(value) AS v FROM metrics WHERE run_id=? AND name=?", (run_id, name))
        return rows[0]["v"] if rows else None

    def step_range(self, run_id: str, name: str) -> tuple[int, int] | None:
        """(first, last) logged step of a metric: two index seeks, whatever the series' length."""
        first = self._query("SELECT step FROM metrics WHERE run_id=? AND name=? ORDER BY step LIMIT 1", (run_id, name))
        if not first:
            return None
        last = self._query("SELECT step FROM metrics WHERE run_id=? AND name=? ORDER BY step DESC LIMIT 1",
                           (run_id, name))
        return first[0]["step"], last[0]["step"]

    def bucket_width(self, run_id: str, name: str, at_most: int) -> int | None:
        """The widest summary level no wider than `at_most` steps whose buckets cover the whole series, or
        None (a short span, or a run recorded before the summary existed: read the rows themselves)."""
        span = self.step_range(run_id, name)
        for width in sorted(BUCKET_WIDTHS, reverse=True):
            if width > at_most or span is None:
                continue
            ends = self._query(
                "SELECT (SELECT first_step FROM metric_buckets WHERE run_id=?1 AND name=?2 AND width=?3"
                " ORDER BY bucket LIMIT 1) AS first, (SELECT last_step FROM metric_buckets WHERE run_id=?1"
                " AND name=?2 AND width=?3 ORDER BY bucket DESC LIMIT 1) AS last", (run_id, name, width))[0]
            if (ends["first"], ends["last"]) == span:
                return width
        return None

    def bucketed_series(self, run_id: str, name: str, width: int, origin: int, stride: int) -> list[dict[str, Any]]:
        """Summary buckets of `width` steps regrouped `stride` steps apart from `origin`, in SQL: one row per
        group with lo, hi, first and last step (NULL-only groups left out)."""
        return self._query(
            "SELECT MIN(lo) AS lo, MAX(hi) AS hi, MIN(first_step) AS s0, MAX(last_step) AS s1 FROM metric_buckets"
            " WHERE run_id=? AND name=? AND width=? GROUP BY (first_step - ?) / ? HAVING MIN(lo) IS NOT NULL"
            " ORDER BY s0", (run_id, name, width, origin, stride))

    def extreme_metric(self, run_id: str, name: str, lowest: bool = True) -> float | None:
        """The series' minimum (or maximum), from the coarsest summary level when it covers the series."""
        width = self.bucket_width(run_id, name, max(BUCKET_WIDTHS))
        aggregate = "MIN" if lowest else "MAX"
        if width is None:
            rows = self._query(f"SELECT {aggregate}(value) AS v FROM metrics WHERE run_id=? AND name=?", (run_id, name))
        else:
            rows = self._query(f"SELECT {aggregate}({'lo' if lowest else 'hi'}) AS v FROM metric_buckets"
                               " WHERE run_id=? AND name=? AND width=?", (run_id, name, width))
        return rows[0]["v"] if rows else None

    def metric_series(
        self, run_id: str, name: str, after_step: int = -1, max_points: int | None = None
    ) -> list[tuple[int, float]]:
        """(step, value) pairs; with max_points, min/max per step bucket so spikes survive downsampling."""
        if not max_points:
            rows = self._query(
                "SELECT step, value FROM metrics WHERE run_id=? AND name=? AND step>? ORDER BY step",
                (run_id, name, after_step),
            )
            return [(r["step"], r["value"]) for r in rows]
        bounds = self._query(
            "SELECT MIN(step) AS lo, MAX(step) AS hi, COUNT(*) AS n FROM metrics WHERE run_id=? AND name=? AND step>?",
            (run_id, name, after_step),
        )[0]
        if not bounds["n"]:
            return []
        if bounds["n"] <= max_points:
            return self.metric_series(run_id, name, after_step)
        # Two points per bucket, the min and the max, each at its own step (SQLite fills the bare `step`
        # column from the row that holds the MIN/MAX), so spikes survive at the right x.
        width = max(1, ((bounds["hi"] - bounds["lo"]) // max(1, max_points // 2)) + 1)
        points: set[tuple[int, float]] = set()
        for aggregate in ("MIN", "MAX"):
            rows = self._query(
                f"SELECT step, {aggregate}(value) AS value FROM metrics WHERE run_id=? AND name=? AND step>?"
                " GROUP BY (step - ?) / ?",
                (run_id, name, after_step, bounds["lo"], width),
            )
            points.update((r["step"], r["value"]) for r in rows if r["value"] is not None)
        return sorted(points)

    def findings(self, run_id: str) -> list[dict[str, Any]]:
        rows = self._query(
            "SELECT code, severity, step, last_step, count, layer, message, remedy, evidence FROM findings"
            " WHERE run_id=? ORDER BY CASE severity WHEN 'critical' THEN 0 WHEN 'warning' THEN 1 ELSE 2 END, step",
            (run_id,),
        )
        for row in rows:
            row["layer"] = row["layer"] or None
            row["evidence"] = json.loads(row["evidence"])
        return rows

    def events(self, run_id: str, kind: str | None = None, after_id: int = 0, limit: int = 1000) -> list[dict]:
        if kind:
            return self._query(
                "SELECT id, step, kind, text, created_at FROM events WHERE run_id=? AND kind=? AND id>?"
                " ORDER BY id LIMIT ?",
                (run_id, kind, after_id, limit),
            )
        return self._query(
            "SELECT id, step, kind, text, created_at FROM events WHERE run_id=? AND id>? ORDER BY id LIMIT ?",
            (run_id, after_id, limit),
        )

    def checkpoints(self, run_id: str) -> list[dict[str, Any]]:
        return self._query(
            "SELECT step, path, kind, val_loss, created_at FROM checkpoints WHERE run_id=? ORDER BY step DESC,"
            " created_at DESC",
            (run_id,),
        )

    def integrity_ok(self) -> bool:
        with self._lock:
            return self._db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


class StoreWriter:
    """Batches a trainer's metric rows, findings and events into one transaction at most every `interval` s.

    `put` never blocks on the disk; a background thread (no torch work) commits. At most `interval`
    seconds of telemetry are lost if the process is killed.
    """

    def __init__(self, store: RunStore, run_id: str, interval: float = 0.5):
        self.store = store
        self.run_id = run_id
        self.interval = interval
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._closed = threading.Event()
        self.error: BaseException | None = None
        self._pending: list[tuple[str, Any]] = []
        self._pending_lock = threading.Lock()
        self._thread = threading.Thread(target=self._loop, name=f"store-writer-{run_id}", daemon=True)
        self._thread.start()

    def metrics(self, rows: list[tuple[int, str, float]]) -> None:
        self._queue.put(("metrics", rows))

    def finding(self, finding: dict[str, Any]) -> None:
        self._queue.put(("finding", finding))

    def event(self, step: int, kind: str, text: str) -> None:
        self._queue.put(("event", (step, kind, text)))

    def heartbeat(self, steps: int) -> None:
        self._queue.put(("heartbeat", steps))

    def _drain(self) -> list[tuple[str, Any]]:
        items = []
        while True:
            try:
                items.append(self._queue.get_nowait())
            except queue.Empty:
                return items

    def _commit(self, items: list[tuple[str, Any]]) -> None:
        if not items:
            return
        steps = None

        def work(db):
            nonlocal steps
            spans: dict[str, tuple[int, int]] = {}
            for kind, payload in items:
                if kind == "metrics":
                    self.store.add_metrics(self.run_id, payload, conn=db, buckets=False)
                    metric_spans(payload, spans)
                elif kind == "finding":
                    self.store.upsert_finding(self.run_id, payload, conn=db)
                elif kind == "event":
                    self.store.add_event(self.run_id, *payload, conn=db)
                elif kind == "heartbeat":
                    steps = payload
            if spans:  # once per commit, not per batch: each update is a statement per metric
                self.store.update_buckets(self.run_id, spans, db)
            if steps is not None:
                db.execute("UPDATE runs SET steps=?, heartbeat=? WHERE run_id=?", (steps, time.time(), self.run_id))

        self.store.transaction(work)

    def _loop(self) -> None:
        while not self._closed.is_set():
            self._closed.wait(self.interval)
            self._commit_pending()

    def _commit_pending(self) -> None:
        with self._pending_lock:
            self._pending += self._drain()
            try:
                self._commit(self._pending)
            except sqlite3.Error as error:  # a full disk, say: keep the items and retry next tick
                self.error = error
                return
            self._pending = []
            self.error = None

    def flush(self) -> None:
        """Commit everything queued so far; raises if the store cannot be written."""
        self._commit_pending()
        if self.error is not None:
            raise self.error

    def close(self) -> None:
        self._closed.set()
        self._thread.join(timeout=10)
        self._commit_pending()
