"""The GPU check's dashboard leg, run on CPU: the dashboard rendered headless over a live run, and the
NVML utilisation on the progress line."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from benchmarks import gpu_check  # noqa: E402
from workbench.training.telemetry import TelemetryBatch  # noqa: E402
from workbench.tui.state import RunState  # noqa: E402
from workbench.tui.widgets.progress import RunProgress  # noqa: E402


@pytest.mark.slow
def test_dashboard_leg_renders_the_memory_chart_of_a_live_run(tmp_path):
    screen = tmp_path / "screen.txt"
    # 8 s: a chart with new data is redrawn within 5 s (RedrawScheduler.max_stale) even when the UI's CPU
    # budget goes to the paced loss chart and the progress line, as on a busy machine
    shown = gpu_check.dashboard_case(8, tmp_path / "runs", device="cpu", preset_name="mlp-quadrants",
                                     size=(160, 48), screenshot=screen, extra=["train.threads=1"])
    assert shown["ok"], {k: v for k, v in shown.items() if v is not None}
    assert shown["steps"] > 0 and shown["rss_mb"] > 0 and shown["memory_chart_on_screen"]
    assert shown["gpu_util_pct"] is None and not shown["gpu_util_on_screen"]  # no NVML on CPU
    text = screen.read_text()
    assert "process RSS" in text and "loss" in text


def test_progress_line_shows_the_gpu_utilisation():
    state = RunState("p", 100)
    progress = RunProgress(state)
    assert not any("GPU" in part for part in progress.summary() if isinstance(part, str))
    state.ingest([TelemetryBatch(step=9, elapsed=1.0, rows=[(9, "loss", 0.5), (9, "gpu/util_pct", 87.0)])], [])
    assert "GPU 87%" in progress.summary()[-1]
    # what the GPU check looks for on the screen
    assert f"GPU {state.latest('gpu/util_pct'):.0f}%" == "GPU 87%"
