"""Helpers for the diagnostics tests: small fast presets, custom zoo targets, and a run that returns findings."""

from __future__ import annotations

import atexit
import tempfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from support import quick_preset

ZOO = Path(__file__).resolve().with_name("zoo.py")

# A small, fast base: the quadrant MLP with frequent probes and evaluations, one intra-op thread.
FAST = {
    "train.threads": 1,
    "train.max_steps": 400,
    "train.eval_every": 100,
    "train.eval_batches": 4,
    "train.probe_every": 50,
    "train.log_every": 25,
    "model.args.hidden": [64, 64],
    "data.args.train_size": 2048,
    "data.args.val_size": 512,
}


def zoo(function: str) -> str:
    return f"{ZOO}:{function}"


def custom_model(function: str, **args: Any) -> dict[str, Any]:
    """Overrides that swap in a zoo model (built-in data stays)."""
    return {"model.kind": "custom", "model.target": zoo(function), "model.args": args}


def custom_data(function: str, **args: Any) -> dict[str, Any]:
    return {"data.kind": "custom", "data.target": zoo(function), "data.args": args}


def fast_preset(base: str = "mlp-quadrants", **overrides: Any):
    """`base` with FAST settings, then `overrides` (dotted keys); custom model/data replace the args."""
    merged = dict(FAST)
    if base != "mlp-quadrants":
        merged = {k: v for k, v in merged.items() if not k.startswith(("model.", "data."))}
    if overrides.get("model.kind") == "custom":
        merged = {k: v for k, v in merged.items() if not k.startswith("model.args.")}
    if overrides.get("data.kind") == "custom":
        merged = {k: v for k, v in merged.items() if not k.startswith("data.args.")}
    merged.update(overrides)
    return quick_preset(base, **merged)


@dataclass
class Outcome:
    status: str
    findings: list[dict]  # as stored: one entry per (code, layer), the latest message and evidence
    trainer: Any
    reports: list[dict]  # every report as it was made, repeats included

    def codes(self, severity: str | None = None) -> set[str]:
        return {f["code"] for f in self.findings if severity is None or f["severity"] == severity}

    def of(self, code: str) -> list[dict]:
        return [f for f in self.findings if f["code"] == code]

    def layers(self, code: str) -> set[str | None]:
        return {f["layer"] for f in self.of(code)}

    def reported(self, code: str) -> list[dict]:
        """Every report of `code`, in order (a repeat overwrites the stored entry's evidence)."""
        return [r for r in self.reports if r["code"] == code]

    def serious(self) -> list[dict]:
        """Findings above info (what a healthy run must not raise)."""
        return [f for f in self.findings if f["severity"] != "info"]


def train(preset, store) -> Outcome:
    """Run a preset with the default diagnostics; findings as stored in the run store."""
    from workbench.diagnostics import default_callbacks
    from workbench.training.trainer import Trainer
    from workbench.training.telemetry import Callback

    reports: list[dict] = []

    class Reports(Callback):
        def on_event(self, trainer, event):
            if event.kind == "finding":
                reports.append(dict(event.data))

    trainer = Trainer(preset, store, callbacks=[*default_callbacks(preset), Reports()])
    result = trainer.run()
    assert result.status != "invalid", result.errors
    findings = store.findings(result.run_id)
    return Outcome(result.status, findings, trainer, reports)


@lru_cache(maxsize=1)
def healthy_run() -> Outcome:
    """One full-length healthy run of the fast quadrant MLP (warmup, cosine decay to 0, converged tail),
    shared by every "no false positive" check so it is trained once per test session."""
    from workbench.store import RunStore

    folder = tempfile.TemporaryDirectory(prefix="workbench-healthy-")
    atexit.register(folder.cleanup)
    store = RunStore(Path(folder.name) / "runs")
    atexit.register(store.close)
    return train(fast_preset(**{"train.max_steps": 800}), store)
