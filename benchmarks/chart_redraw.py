"""How long one chart redraw takes at 1e3, 1e5 and 1e6 logged steps: bounded history vs plotting every point.

The dashboard's loss chart (train loss every step, val loss every 250) is built the way the TUI builds
it (downsample to the chart's width, min/max per bucket, plotext lays out the frame and the lines are rasterized into its matrix), in a
headless Textual app at a fixed size. For comparison, "naive" hands plotext every logged point and
renders its ANSI text, as a straightforward dashboard would (skipped above --naive-max points, since it
takes seconds there). Times are CPU seconds of the UI thread, medians of --repeats builds, the lengths
interleaved build by build so the machine's noise hits each alike.

    .venv/bin/python benchmarks/chart_redraw.py [--size 120x40] [--repeats 7]
Prints one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from textual.app import App  # noqa: E402
from rich.text import Text  # noqa: E402

from workbench.tui.state import RunState  # noqa: E402
from workbench.tui.widgets.charts import ChartOptions, Line, MetricChart  # noqa: E402


def fill(state: RunState, steps: int) -> None:
    """A noisy decaying loss at every step and a val loss every 250 steps, like a long run."""
    loss = state.series_for("loss")
    val = state.series_for("val_loss")
    for step in range(steps):
        loss.append(step, step * 1e-3, 1.4 * math.exp(-step / (steps / 5)) + 0.05 + 0.05 * math.sin(step * 0.37) ** 2)
        if step % 250 == 249:
            val.append(step, step * 1e-3, 1.4 * math.exp(-step / (steps / 5)) + 0.07)


def naive_build(chart: MetricChart, state: RunState, width: int, height: int) -> float:
    """Every point to plotext, then its ANSI output to Rich text (what a simple dashboard does)."""
    plt = chart.plt
    started = time.thread_time()
    plt.clear_data()
    plt.plotsize(width, height)
    for name in ("loss", "val_loss"):
        series = state.series[name]
        xs, ys = [], []
        for x, lo, hi in zip(series.steps, series.lo, series.hi):
            xs.append(x)
            ys.append(lo)
            if hi != lo:
                xs.append(x)
                ys.append(hi)
        plt.plot(xs, ys, marker="braille")
    Text.from_ansi(plt.build())
    return time.thread_time() - started


class Bench(App):
    def __init__(self, chart: MetricChart):
        super().__init__()
        self.chart = chart

    def compose(self):
        yield self.chart


async def measure(step_counts: list[int], size: tuple[int, int], repeats: int, naive_max: int) -> list[dict]:
    """Builds for every history length, interleaved round by round so machine noise hits them alike."""
    states = {}
    for steps in step_counts:
        states[steps] = RunState("bench", steps, capacity=2048)
        fill(states[steps], steps)
    first = states[step_counts[0]]
    chart = MetricChart("loss", [Line("loss", "train", (80, 160, 255)), Line("val_loss", "val", (255, 150, 60),
                                                                              smooth=False)],
                        first, ChartOptions(), id="chart")
    app = Bench(chart)
    times: dict[int, list[float]] = {steps: [] for steps in step_counts}
    points: dict[int, int] = {}
    results = []
    async with app.run_test(size=size) as pilot:
        await pilot.pause()
        width, height = chart.size.width, chart.size.height
        for _ in range(repeats):
            for steps in step_counts:
                chart.state = states[steps]
                started = time.thread_time()
                chart._build(width, height)
                times[steps].append(time.thread_time() - started)
                points[steps] = chart.last_points
        for steps in step_counts:
            result: dict = {"steps": steps, "stored_buckets": len(states[steps].series["loss"]),
                            "bounded_ms": round(statistics.median(times[steps]) * 1e3, 2),
                            "points_plotted": points[steps], "chart_size": f"{width}x{height}"}
            if steps <= naive_max:
                # The naive dashboard keeps every raw point: rebuild a full-resolution series for it.
                raw = RunState("raw", steps, capacity=2 * steps + 2)
                fill(raw, steps)
                naive = [naive_build(chart, raw, width, height) for _ in range(max(1, repeats // 3))]
                result["naive_ms"] = round(statistics.median(naive) * 1e3, 1)
                result["naive_points"] = len(raw.series["loss"]) + len(raw.series["val_loss"])
            results.append(result)
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="120x40", help="terminal size, WxH (the chart fills it)")
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--naive-max", type=int, default=100_000, help="largest history to plot naively")
    parser.add_argument("--steps", default="1000,100000,1000000")
    args = parser.parse_args()
    size = tuple(int(v) for v in args.size.lower().split("x"))
    step_counts = [int(n) for n in args.steps.split(",")]
    results = asyncio.run(measure(step_counts, size, args.repeats, args.naive_max))
    figure = {r["steps"]: r["bounded_ms"] for r in results}
    ratio = figure[max(figure)] / figure[min(figure)] if len(figure) > 1 else None
    print(json.dumps({"terminal": args.size, "results": results,
                      "ratio_longest_vs_shortest": round(ratio, 3) if ratio else None,
                      "ratio_1e6_vs_1e3": round(figure[1_000_000] / figure[1000], 3)
                      if {1000, 1_000_000} <= figure.keys() else None}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
