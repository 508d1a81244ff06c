"""Side-by-side comparison of recorded runs: best/final metrics, time to a target, throughput, memory,
the config keys that differ, and deltas against a baseline run. Used by `workbench compare`, sweeps
and the TUI's compare view."""

from __future__ import annotations

from typing import Any

from workbench.errors import ConfigError
from workbench.presets import diff_dicts
from workbench.store import RunStore

# Config keys a comparison leaves out: the preset's name (the runs' preset column shows it) and the text
# saying what it is for, which say nothing about how the runs trained.
UNCOMPARED_KEYS = frozenset({"name", "description", "watch"})

# Metrics compared, and whether lower is better.
COMPARED = {"val_loss": True, "val_accuracy": False, "val_perplexity": True, "val_mae": True, "val_r2": False,
            "loss": True}


def _first_reaching(store: RunStore, run_id: str, target: float) -> tuple[int | None, float | None]:
    """(step, seconds) at which val_loss first reached `target`, or (None, None)."""
    for step, value in store.metric_series(run_id, "val_loss"):
        if value is not None and value <= target:
            times = [t for s, t in store.metric_series(run_id, "time_s") if s <= step]
            return step, (times[-1] if times else None)
    return None, None


def run_row(store: RunStore, run_id: str, target: float | None = None) -> dict[str, Any]:
    run = store.get_run(run_id)
    if run is None:
        raise ConfigError(f"run {run_id!r}: not found in {store.path}")
    stats = run.get("stats") or {}
    metrics: dict[str, dict[str, float | None]] = {}
    for name, lower_better in COMPARED.items():
        series = [v for _, v in store.metric_series(run_id, name) if v is not None]
        if not series:
            continue
        metrics[name] = {"final": series[-1], "best": min(series) if lower_better else max(series)}
    row = {
        "run_id": run_id,
        "preset": run["preset"],
        "status": run["status"],
        "steps": run["steps"],
        "params": run["params"],
        "wall_seconds": (run["ended_at"] or run["heartbeat"] or run["started_at"]) - run["started_at"],
        "steps_per_second": stats.get("steps_per_second") or store.last_metric(run_id, "steps_per_s"),
        "samples_per_second": stats.get("samples_per_second") or store.last_metric(run_id, "samples_per_s"),
        "peak_memory_mb": stats.get("peak_memory_mb"),
        "metrics": metrics,
        "findings": {severity: sum(1 for f in store.findings(run_id) if f["severity"] == severity)
                     for severity in ("critical", "warning", "info")},
        "config": run["config"],
    }
    if target is not None:
        step, seconds = _first_reaching(store, run_id, target)
        row["target"] = {"val_loss": target, "step": step, "seconds": seconds}
    return row


def differing_config(baseline: dict[str, Any], configs: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The dotted config keys on which any run differs from the baseline's config (UNCOMPARED_KEYS left
    out), sorted, each with every run's value: {key: {run_id: value}}."""
    keys = {key for config in configs.values() for key in diff_dicts(baseline, config)} - UNCOMPARED_KEYS
    return {key: {run_id: _dotted(config, key) for run_id, config in configs.items()} for key in sorted(keys)}


def compare_runs(store: RunStore, run_ids: list[str], target: float | None = None,
                 baseline: str | None = None) -> dict[str, Any]:
    """The comparison object printed by `workbench compare --json`."""
    if len(run_ids) < 2:
        raise ConfigError("compare: name at least two runs")
    if len(set(run_ids)) != len(run_ids):
        raise ConfigError("compare: a run is named twice")
    baseline = baseline or run_ids[0]
    if baseline not in run_ids:
        raise ConfigError(f"compare: baseline {baseline!r} is not one of the compared runs")
    rows = [run_row(store, run_id, target) for run_id in run_ids]
    base = next(row for row in rows if row["run_id"] == baseline)
    differing = differing_config(base["config"], {row["run_id"]: row["config"] for row in rows})
    for row in rows:
        row["delta_vs_baseline"] = {
            name: (values["best"] - base["metrics"][name]["best"])
            for name, values in row["metrics"].items()
            if name in base["metrics"] and values["best"] is not None and base["metrics"][name]["best"] is not None
        }
    ranked = [row for row in rows if "val_loss" in row["metrics"]]
    best = min(ranked, key=lambda row: row["metrics"]["val_loss"]["best"])["run_id"] if ranked else None
    for row in rows:
        row.pop("config")
    return {"baseline": baseline, "best_run": best, "runs": rows, "differing_config": differing}


def _dotted(config: dict[str, Any], key: str) -> Any:
    node: Any = config
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def format_comparison(comparison: dict[str, Any]) -> str:
    """A plain-text table for the terminal."""
    rows = comparison["runs"]
    names = [name for name in COMPARED if any(name in row["metrics"] for row in rows)]
    header = ["run", "preset", "status", "steps", "steps/s"] + [f"best {n}" for n in names] + ["Δ best val_loss"]
    if any("target" in row for row in rows):
        header.append("to target")
    table = [header]
    for row in rows:
        marker = ("*" if row["run_id"] == comparison["best_run"] else " ") + (
            "b" if row["run_id"] == comparison["baseline"] else " ")
        cells = [f"{marker} {row['run_id']}", row["preset"], row["status"], f"{row['steps']:,}",
                 f"{row['steps_per_second'] or 0:.1f}"]
        cells += [f"{row['metrics'][n]['best']:.4g}" if n in row["metrics"] else "-" for n in names]
        delta = row["delta_vs_baseline"].get("val_loss")
        cells.append(f"{delta:+.4g}" if delta is not None else "-")
        if "target" in row:
            target = row["target"]
            cells.append(f"step {target['step']:,} ({target['seconds']:.1f}s)" if target["step"] is not None
                         and target["seconds"] is not None else "not reached")
        table.append(cells)
    widths = [max(len(str(r[i])) for r in table) for i in range(len(header))]
    lines = ["  ".join(str(cell).ljust(width) for cell, width in zip(r, widths)) for r in table]
    lines.append("(* best val loss, b baseline)")
    if comparison["differing_config"]:
        lines.append("")
        lines.append("config keys that differ:")
        for key, values in comparison["differing_config"].items():
            lines.append(f"  {key}: " + "  ".join(f"{run_id[-6:]}={value!r}" for run_id, value in values.items()))
    return "\n".join(lines)
