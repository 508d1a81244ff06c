"""The compare view's data path on a long run: load a run with 1,000,000 logged steps, and redraw one chart
with one vs five overlaid runs.

A temporary store gets one synthetic run (rows inserted directly with executemany: this times reading,
not training): train loss at every step, lr, grad norm, samples seen and wall time every 10 steps, val
loss every 1,000. `load` is what the compare screen's worker does per run (`load_curves`: every chart's
series downsampled by the store to about two points per column, mapped to the x axis) plus the summary
tables (`summarize`: SQL aggregates and the store's summary buckets). `redraw` builds the compare view's
loss chart (OverlayChart: plotext lays out the frame, the lines are rasterized in one pass, as the TUI
does) at a fixed size with the run drawn once and five times (five runs overlaid), builds interleaved,
medians of 8 x --repeats builds, CPU seconds of the UI thread.

    .venv/bin/python benchmarks/compare_load.py [--steps 1000000] [--repeats 7] [--size 150x50]
Prints one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from textual.app import App  # noqa: E402

from workbench.store import RunStore  # noqa: E402
from workbench.tui.compare_data import RunCurves, load_curves, summarize  # noqa: E402
from workbench.tui.screens.compare import MIN_POINTS, curves_state, overlay_lines  # noqa: E402
from workbench.tui.widgets.charts import ChartOptions  # noqa: E402
from workbench.tui.widgets.overlay import OverlayChart  # noqa: E402

BATCH = 32


def fill(store: RunStore, steps: int) -> str:
    run_id = store.create_run("long", {"name": "long", "optim": {"lr": 0.001}})
    chunk = 200_000
    for start in range(0, steps, chunk):
        rows = []
        for step in range(start, min(steps, start + chunk)):
            rows.append((step, "loss", 2.0 * math.exp(-step / (steps / 5)) + 0.05 + 0.05 * math.sin(step * 0.37) ** 2))
            if step % 10 == 0:
                rows += [(step, "lr", 1e-3 * (1 - step / steps)), (step, "grad_norm", 1.0 + math.sin(step) ** 2),
                         (step, "samples_seen", float(step * BATCH)), (step, "time_s", step * 0.004)]
            if step % 1000 == 999:
                rows.append((step, "val_loss", 2.0 * math.exp(-step / (steps / 5)) + 0.08))
        store.add_metrics(run_id, rows)
    store.finish_run(run_id, "completed", steps)
    return run_id


def timed(fn, repeats: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeats):
        started = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times), result


async def redraw_times(curves: RunCurves, size: tuple[int, int], repeats: int) -> dict[str, float]:
    """The compare view's loss chart with the run drawn once and five times, builds interleaved."""
    out = {}

    class Bench(App):
        pass

    app = Bench()
    async with app.run_test(size=(size[0], size[1] * 2 + 2)) as pilot:
        charts = {}
        for count in (1, 5):
            many = [RunCurves(f"20250101-000000-run{i}", curves.series, curves.metrics) for i in range(count)]
            chart = OverlayChart("loss", overlay_lines(many, "loss"), curves_state(many, "step"), ChartOptions())
            chart.styles.height = size[1]
            await app.mount(chart)
            charts[count] = chart
        await pilot.pause()
        costs: dict[int, list[float]] = {1: [], 5: []}
        for _ in range(repeats):
            for count, chart in charts.items():
                started = time.thread_time()
                chart._build(chart.size.width, chart.size.height)
                costs[count].append(time.thread_time() - started)
        for count, chart in charts.items():
            out[f"redraw_{count}_runs_s"] = statistics.median(costs[count])
            out[f"points_{count}_runs"] = chart.last_points
        out["chart_size"] = f"{charts[1].size.width}x{charts[1].size.height}"
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=5, help="load repeats (redraws: 8x as many)")
    parser.add_argument("--size", default="150x50")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    with tempfile.TemporaryDirectory() as tmp:
        store = RunStore(Path(tmp))
        started = time.perf_counter()
        run_id = fill(store, args.steps)
        insert_s = time.perf_counter() - started
        points = max(MIN_POINTS, (width // 3) * 2)  # a third of the screen per chart, two points a column
        load_step, curves = timed(lambda: load_curves(store, run_id, points, "step"), args.repeats)
        load_samples, _ = timed(lambda: load_curves(store, run_id, points, "samples"), args.repeats)
        summary_s, _ = timed(lambda: summarize(store, [run_id], target=0.5), args.repeats)
        redraw = asyncio.run(redraw_times(curves, (width // 3, height // 2), args.repeats * 8))
        store.close()
    result = {
        "benchmark": "compare_load", "logged_steps": args.steps, "insert_s": round(insert_s, 2),
        "points_per_series": points, "loaded_points": {k: len(v) for k, v in curves.series.items()},
        "load_curves_step_axis_s": round(load_step, 4), "load_curves_samples_axis_s": round(load_samples, 4),
        "summary_s": round(summary_s, 4), "load_total_s": round(load_step + summary_s, 4),
        **{k: round(v, 5) if isinstance(v, float) else v for k, v in redraw.items()},
    }
    result["redraw_ratio_5_vs_1"] = round(redraw["redraw_5_runs_s"] / max(redraw["redraw_1_runs_s"], 1e-9), 2)
    result["redraw_1_runs_ms"] = round(redraw["redraw_1_runs_s"] * 1e3, 2)
    result["redraw_5_runs_ms"] = round(redraw["redraw_5_runs_s"] * 1e3, 2)
    result["goal"] = {"load_total_s": 0.3, "redraw_ratio_5_vs_1": 1.5}
    result["goal_met"] = result["load_total_s"] < 0.3 and result["redraw_ratio_5_vs_1"] <= 1.5
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
