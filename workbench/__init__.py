"""Workbench: a terminal training workbench for PyTorch.

For your own training loop: `run = workbench.init(name, config=None, runs_dir=None)` (a `Run`; see
workbench/training/run.py). Importing `workbench` stays light: torch is imported when `init` is called.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from workbench.training.run import Run

__version__ = "0.1.0"
__all__ = ["Run", "init"]


def init(name: str, config: dict[str, Any] | None = None, runs_dir: Any = None) -> "Run":
    """Start a recorded, diagnosed, steerable run of your own training loop; returns a `Run` (also a
    context manager). `runs_dir` defaults like the CLI's (./runs, or WORKBENCH_RUNS_DIR)."""
    from workbench.training.run import Run

    return Run(name, config, runs_dir)


def __getattr__(name: str) -> Any:
    if name == "Run":  # imported on first use, so `import workbench` does not import torch
        from workbench.training.run import Run

        return Run
    raise AttributeError(f"module 'workbench' has no attribute {name!r}")
