"""The data behind the TUI's runs and compare screens, read from the run store (no Textual, no torch).

Everything here is cheap on long runs: chart series come from the store's summary buckets (min/max per
64 or 4,096 steps), summaries use the same buckets and indexed look-ups (the newest row, the first step
under a target) instead of reading whole series, so a run with a million logged steps loads in a fraction of a second. The screens call
these on worker threads; `benchmarks/compare_load.py` times them.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from typing import Any

from workbench.compare import COMPARED, differing_config
from workbench.store import RunStore

# (chart title, metric names tried in order: the first one the run logged is drawn)
CHARTS: list[tuple[str, tuple[str, ...]]] = [
    ("loss", ("loss",)),
    ("val loss", ("val_loss",)),
    ("learning rate", ("lr",)),
    ("grad norm", ("grad_norm",)),
    ("memory", ("mem/cuda_peak_mb", "mem/cuda_allocated_mb", "mem/rss_mb")),
]
X_AXES = {"step": None, "samples": "samples_seen", "time": "time_s"}  # x axis -> the metric mapping step to x
SEVERITIES = ("critical", "warning", "info")


@dataclass
class RunCurves:
    """One run's chart series, each as (x, value) pairs on the chosen axis."""

    run_id: str
    series: dict[str, list[tuple[float, float]]] = field(default_factory=dict)  # chart title -> points
    metrics: dict[str, str] = field(default_factory=dict)  # chart title -> the metric drawn


def _map_x(points: list[tuple[int, float]], mapping: list[tuple[int, float]]) -> list[tuple[float, float]]:
    """Steps to another axis (samples seen, seconds) by linear interpolation over the mapping metric."""
    if not mapping:
        return []
    steps = [s for s, _ in mapping]
    values = [v for _, v in mapping]
    out = []
    for step, value in points:
        i = bisect.bisect_left(steps, step)
        if i < len(steps) and steps[i] == step:
            x = values[i]
        elif i == 0:
            x = values[0]
        elif i == len(steps):
            x = values[-1]
        else:
            (s0, x0), (s1, x1) = mapping[i - 1], mapping[i]
            x = x0 + (x1 - x0) * (step - s0) / (s1 - s0)
        out.append((x, value))
    return out


def downsampled(store: RunStore, run_id: str, name: str, points: int) -> list[tuple[int, float]]:
    """(step, value) pairs, at most about `points`: the min and max of each step bucket, so spikes survive.

    Long series come from the store's summary buckets (min/max per 64 or 4,096 steps, kept as metrics are
    written), regrouped in SQL: a million-step series reads a few hundred rows. Runs recorded before the
    summary existed fall back to one MIN/MAX range query per bucket over the (run_id, name, step) index."""
    span = store.step_range(run_id, name)
    if span is None:
        return []
    lo, hi = span
    if hi - lo + 1 <= points:  # at most one row per step: few enough to read as they are
        return store.metric_series(run_id, name)
    buckets = max(1, points // 2)
    width = max(1, -(-(hi - lo + 1) // buckets))
    level = store.bucket_width(run_id, name, width // 2)  # at least two summary buckets per chart bucket
    if level is not None:
        rows = store.bucketed_series(run_id, name, level, lo, width)
    else:
        rows = []
        for start in range(lo, hi + 1, width):
            row = store._query("SELECT MIN(value) AS lo, MAX(value) AS hi, MIN(step) AS s0, MAX(step) AS s1"
                               " FROM metrics WHERE run_id=? AND name=? AND step>=? AND step<?",
                               (run_id, name, start, start + width))[0]
            if row["lo"] is not None:
                rows.append(row)
    out: list[tuple[int, float]] = []
    for row in rows:
        middle = (row["s0"] + row["s1"]) // 2  # both extremes at the bucket's middle: one column, its full range
        out.append((middle, row["lo"]))
        if row["hi"] != row["lo"]:
            out.append((middle, row["hi"]))
    return out


def load_curves(store: RunStore, run_id: str, points: int, x_axis: str = "step") -> RunCurves:
    """A run's chart series, at most about `points` per series (min/max per bucket, so spikes survive)."""
    if x_axis not in X_AXES:
        raise ValueError(f"x axis must be one of {', '.join(X_AXES)}")
    names = {name for name in {X_AXES[x_axis], *(n for _, candidates in CHARTS for n in candidates)} - {None}
             if store._query("SELECT 1 AS x FROM metrics WHERE run_id=? AND name=? LIMIT 1", (run_id, name))}
    curves = RunCurves(run_id)
    mapping_name = X_AXES[x_axis]
    mapping = downsampled(store, run_id, mapping_name, points) if mapping_name in names else None
    for title, candidates in CHARTS:
        metric = next((name for name in candidates if name in names), None)
        if metric is None:
            continue
        series = downsampled(store, run_id, metric, points)
        series = [(s, v) for s, v in series if v is not None]
        curves.metrics[title] = metric
        curves.series[title] = [(float(s), v) for s, v in series] if mapping is None else _map_x(series, mapping)
    return curves


def _first_step_at_or_below(store: RunStore, run_id: str, name: str, target: float) -> int | None:
    rows = store._query("SELECT MIN(step) AS s FROM metrics WHERE run_id=? AND name=? AND value<=?",
                        (run_id, name, target))
    return rows[0]["s"] if rows else None


def _value_at(store: RunStore, run_id: str, name: str, step: int) -> float | None:
    rows = store._query("SELECT value FROM metrics WHERE run_id=? AND name=? AND step<=? ORDER BY step DESC LIMIT 1",
                        (run_id, name, step))
    return rows[0]["value"] if rows else None


def findings_by_severity(store: RunStore, run_ids: list[str] | None = None) -> dict[str, dict[str, int]]:
    """{run_id: {severity: count}} in one query."""
    rows = store._query("SELECT run_id, severity, COUNT(*) AS n FROM findings GROUP BY run_id, severity")
    out: dict[str, dict[str, int]] = {}
    for row in rows:
        if run_ids is None or row["run_id"] in run_ids:
            out.setdefault(row["run_id"], dict.fromkeys(SEVERITIES, 0))[row["severity"]] = row["n"]
    return out


def _best(store: RunStore, run_id: str, name: str, lower_better: bool) -> float | None:
    return store.extreme_metric(run_id, name, lowest=lower_better)


def summary_row(store: RunStore, run: dict[str, Any], target: float | None = None,
                findings: dict[str, int] | None = None) -> dict[str, Any]:
    """One run's figures, the same keys `workbench compare --json` uses, from SQL aggregates."""
    run_id = run["run_id"]
    stats = run.get("stats") or {}
    metrics: dict[str, dict[str, float | None]] = {}
    for name, lower_better in COMPARED.items():
        final = store.last_metric(run_id, name)
        if final is None:
            continue
        metrics[name] = {"final": final, "best": _best(store, run_id, name, lower_better)}
    end = run.get("ended_at") or run.get("heartbeat") or run["started_at"]
    row = {
        "run_id": run_id, "preset": run["preset"], "status": run["status"], "steps": run["steps"],
        "params": run.get("params"), "wall_seconds": end - run["started_at"],
        "steps_per_second": stats.get("steps_per_second") or store.last_metric(run_id, "steps_per_s"),
        "samples_per_second": stats.get("samples_per_second") or store.last_metric(run_id, "samples_per_s"),
        "peak_memory_mb": stats.get("peak_memory_mb"),
        "metrics": metrics,
        "findings": findings if findings is not None else dict.fromkeys(SEVERITIES, 0),
    }
    if target is not None:
        step = _first_step_at_or_below(store, run_id, "val_loss", target)
        seconds = _value_at(store, run_id, "time_s", step) if step is not None else None
        row["target"] = {"val_loss": target, "step": step, "seconds": seconds}
    return row


def summarize(store: RunStore, run_ids: list[str], baseline: str | None = None,
              target: float | None = None) -> dict[str, Any]:
    """The compare view's tables: per-run rows with deltas vs the baseline, the best run, differing config."""
    runs = [store.get_run(run_id) for run_id in run_ids]
    runs = [run for run in runs if run is not None]
    if not runs:
        return {"baseline": None, "best_run": None, "runs": [], "differing_config": {}}
    ids = [run["run_id"] for run in runs]
    baseline = baseline if baseline in ids else ids[0]
    counts = findings_by_severity(store, ids)
    rows = [summary_row(store, run, target, counts.get(run["run_id"])) for run in runs]
    base = rows[ids.index(baseline)]
    base_config = runs[ids.index(baseline)]["config"]
    differing = differing_config(base_config, {run["run_id"]: run["config"] for run in runs})
    for row in rows:
        row["delta_vs_baseline"] = {
            name: values["best"] - base["metrics"][name]["best"] for name, values in row["metrics"].items()
            if name in base["metrics"] and values["best"] is not None and base["metrics"][name]["best"] is not None}
    ranked = [row for row in rows if (row["metrics"].get("val_loss") or {}).get("best") is not None]
    best = min(ranked, key=lambda row: row["metrics"]["val_loss"]["best"])["run_id"] if ranked else None
    return {"baseline": baseline, "best_run": best, "runs": rows, "differing_config": differing}


def runs_table(store: RunStore, limit: int | None = 500) -> list[dict[str, Any]]:
    """Every run for the runs screen: list_runs, two indexed look-ups per run and one findings query."""
    runs = store.list_runs(limit=limit)
    counts = findings_by_severity(store)
    rows = []
    for run in runs:
        run_id = run["run_id"]
        stats = run.get("stats") or {}
        end = run.get("ended_at") or run.get("heartbeat") or run["started_at"]
        rows.append({
            "run_id": run_id, "preset": run["preset"], "status": run["status"], "steps": run["steps"],
            "best_val": store.min_metric(run_id, "val_loss"), "final_val": store.last_metric(run_id, "val_loss"),
            "wall_seconds": end - run["started_at"], "params": run.get("params"),
            "peak_memory_mb": stats.get("peak_memory_mb"), "started_at": run["started_at"],
            "findings": counts.get(run_id, dict.fromkeys(SEVERITIES, 0)), "reason": run.get("reason"),
        })
    return rows
