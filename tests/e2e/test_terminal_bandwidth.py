"""The live dashboard's output over a real pseudo-terminal stays within what a thin SSH link carries."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from benchmarks.terminal_bandwidth import measure  # noqa: E402


@pytest.mark.slow
def test_dashboard_writes_under_30_kb_per_second_in_every_mode_and_no_more_in_low_bandwidth_mode():
    default = measure("mlp-quadrants", 4.0, (120, 40), warmup=8.0, seconds=6.0, sets=["train.threads=1"])
    slow = measure("mlp-quadrants", 1.0, (120, 40), warmup=8.0, seconds=6.0, sets=["train.threads=1"])
    compact = measure("mlp-quadrants", 1.0, (120, 40), warmup=8.0, seconds=6.0, sets=["train.threads=1"],
                      low_bandwidth=True)
    for figure in (default, slow, compact):
        assert 0 < figure["bytes_per_second"] <= 30_000, figure
    # At the default rate chart redraws are already held to a CPU budget and the progress line to 2 Hz, so
    # `--fps 1` alone saves little (5.3 vs 5.9 KB/s went either way); --low-bandwidth also drops to two charts.
    assert compact["bytes_per_second"] <= 1.1 * default["bytes_per_second"], (compact, default)
