"""The summary object of DESIGN.md, built from the store (same for `train --json` and `show --json`)."""

from __future__ import annotations

from typing import Any

from workbench.store import RunStore

METRIC_KEYS = ("val_loss", "val_accuracy", "val_perplexity", "val_mae", "val_r2")


def run_summary(store: RunStore, run_id: str) -> dict[str, Any] | None:
    run = store.get_run(run_id)
    if run is None:
        return None
    stats = run.get("stats") or {}
    metrics: dict[str, Any] = {
        "train_loss": stats.get("train_loss"),
        "val_loss": None,
        "val_accuracy": None,
        "best_val_loss": stats.get("best_val_loss"),
    }
    for key in METRIC_KEYS:
        value = stats.get(key)
        if value is None:
            value = store.last_metric(run_id, key)
        if value is not None or key in metrics:
            metrics[key] = value
    train_loss_steps = _flush_window(store, run_id) if metrics["train_loss"] is not None else None
    if metrics["train_loss"] is None:
        metrics["train_loss"] = store.last_metric(run_id, "loss")
        train_loss_steps = 1 if metrics["train_loss"] is not None else None  # no stats: the last step's loss
    if metrics["best_val_loss"] is None:
        metrics["best_val_loss"] = store.min_metric(run_id, "val_loss")
    throughput = {
        "steps_per_second": stats.get("steps_per_second") or store.last_metric(run_id, "steps_per_s") or 0.0,
        "samples_per_second": stats.get("samples_per_second") or store.last_metric(run_id, "samples_per_s") or 0.0,
    }
    if stats.get("tokens_per_second"):
        throughput["tokens_per_second"] = stats["tokens_per_second"]
    return {
        "run_id": run["run_id"],
        "preset": run["preset"],
        "status": run["status"],
        "steps": run["steps"],
        "world_size": run["world_size"],
        "metrics": metrics,
        "train_loss_steps": train_loss_steps,  # train_loss is the mean loss of this many last steps
        "throughput": throughput,
        "findings": [
            {key: finding[key] for key in ("code", "severity", "step", "layer", "message", "remedy", "evidence")}
            | {"count": finding["count"], "last_step": finding["last_step"]}
            for finding in store.findings(run_id)
        ],
        "store": str(store.path),
        "started_at": run["started_at"],
        "ended_at": run["ended_at"],
        "params": run["params"],
        "device": run["device"],
        "reason": run["reason"],
        "peak_memory_mb": stats.get("peak_memory_mb"),
        # newest first: the run's own (resumable with --resume) and those its framework saved (HF's folders)
        "checkpoints": [{key: saved[key] for key in ("step", "kind", "path", "val_loss")}
                        for saved in store.checkpoints(run_id)],
    }


def _flush_window(store: RunStore, run_id: str) -> int | None:
    """Steps in the last telemetry flush: the trainer's `train_loss` is the mean loss over them.

    Throughput is logged once per flush, at its last step, so two such steps bound the window."""
    ends = store.last_steps(run_id, "steps_per_s", 2)
    if len(ends) == 2:
        return ends[0] - ends[1]
    if len(ends) == 1:
        first = store.step_range(run_id, "loss")
        return ends[0] - first[0] + 1 if first else None
    return None
