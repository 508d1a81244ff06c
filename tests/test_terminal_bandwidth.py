"""The live dashboard's output over a real pseudo-terminal stays within what a thin SSH link carries."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.terminal_bandwidth import measure  # noqa: E402


def test_dashboard_writes_under_30_kb_per_second_by_default_and_less_in_low_bandwidth_mode():
    default = measure("mlp-quadrants", 4.0, (120, 40), warmup=8.0, seconds=6.0, sets=["train.threads=1"])
    low = measure("mlp-quadrants", 1.0, (120, 40), warmup=8.0, seconds=6.0, sets=["train.threads=1"])
    assert 0 < default["bytes_per_second"] <= 30_000, default
    assert 0 < low["bytes_per_second"] < default["bytes_per_second"], (low, default)
    compact = measure("mlp-quadrants", 1.0, (120, 40), warmup=8.0, seconds=6.0, sets=["train.threads=1"],
                      low_bandwidth=True)
    assert 0 < compact["bytes_per_second"] < default["bytes_per_second"], (compact, default)
