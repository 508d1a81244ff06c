"""`python -m benchmarks` (or `make bench`): every benchmark once, each figure printed against its goal.

Figures are medians of repeated runs taken in this one session (the machines are noisy: compare ratios
measured together, not absolute numbers across sessions). The full JSON goes to benchmarks/results.json.
About five minutes on a 2-core machine with the defaults; --quick for a smoke run.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def run_module(module: str, *args: str) -> dict:
    out = subprocess.run([sys.executable, "-m", f"benchmarks.{module}", *args], capture_output=True, text=True,
                         cwd=HERE.parent, timeout=3600)
    if out.returncode != 0:
        return {"benchmark": module, "error": out.stderr.strip().splitlines()[-1:] or ["failed"]}
    return json.loads(out.stdout.strip().splitlines()[-1])


def run_script(script: str, *args: str) -> dict | None:
    path = HERE / script
    if not path.exists():
        return None
    out = subprocess.run([sys.executable, str(path), *args], capture_output=True, text=True, cwd=HERE.parent,
                         timeout=3600)
    if out.returncode != 0:
        return {"benchmark": script, "error": out.stderr.strip().splitlines()[-1:] or ["failed"]}
    return json.loads(out.stdout.strip().splitlines()[-1])


class Report(list):
    """Figure lines, each printed as soon as it is known, so a later failure loses nothing."""

    def append(self, line: str) -> None:
        super().append(line)
        print(line, flush=True)


def verdict(value: float, goal: float, higher_is_better: bool) -> str:
    ok = value >= goal if higher_is_better else value <= goal
    return "ok  " if ok else "MISS"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer pairs and shorter runs (a smoke run)")
    args = parser.parse_args(argv)
    pairs = "2" if args.quick else "5"
    started = time.time()
    results = []
    lines = Report()

    overhead = run_module("overhead", "--pairs", pairs, "--short", "200", "--long", "600" if args.quick else "1500")
    results.append(overhead)
    if "ratio_median" in overhead:
        lines.append(f"{verdict(overhead['ratio_median'], 0.97, True)} overhead mlp-quadrants: ours/bare = "
                     f"{overhead['ratio_median']:.3f} (goal >= 0.97; bare {overhead['bare_steps_per_s_median']:.0f}"
                     f" steps/s, ours {overhead['ours_steps_per_s_median']:.0f})")

    tui = run_script("tui_vs_headless.py", "--pairs", "2" if args.quick else "3", "--steps", "3000")
    if tui is not None:
        results.append(tui)
        ratio = tui.get("ratio_median")
        if ratio is not None:
            lines.append(f"{verdict(ratio, 0.95, True)} live UI vs headless: {ratio:.3f} (goal >= 0.95)")
        first = tui.get("first_frame_median_s")
        if first is not None:
            lines.append(f"{verdict(first, 1.5, False)} first TUI frame: {first:.2f} s (goal <= 1.5 s)")

    redraw = run_script("chart_redraw.py")
    if redraw is not None:
        results.append(redraw)
        growth = redraw.get("ratio_1e6_vs_1e3") or redraw.get("ratio")
        if growth is not None:
            lines.append(f"{verdict(growth, 1.2, False)} chart redraw at 1e6 vs 1e3 logged steps: {growth:.2f}x "
                         "(goal <= 1.2x)")

    bandwidth = run_script("terminal_bandwidth.py", "--fps", "4", "--fps", "1", "--seconds", "8" if args.quick else "15")
    if bandwidth is not None and "results" in bandwidth:
        results.append(bandwidth)
        for figure in bandwidth["results"]:
            lines.append(f"{verdict(figure['bytes_per_second'], 30_000, False)} terminal output at {figure['fps']:g} fps"
                         f" ({figure['size']}): {figure['bytes_per_second'] / 1000:.1f} KB/s (goal <= 30 KB/s)")

    memory = run_module("memory", "--short", "2000", "--long", "20000" if args.quick else "100000")
    results.append(memory)
    if "growth_ratio" in memory:
        lines.append(f"{verdict(memory['growth_ratio'], 1.1, False)} peak RSS {memory['long_steps']:,} vs "
                     f"{memory['short_steps']:,} steps: {memory['long_peak_rss_mb']:.0f} vs "
                     f"{memory['short_peak_rss_mb']:.0f} MiB ({memory['growth_ratio']:.2f}x, goal bounded <= 1.1x)")

    startup = run_module("startup", "--repeat", "3" if args.quick else "5")
    results.append(startup)
    for name in ("help", "presets"):
        if name in startup:
            figure = startup[name]
            lines.append(f"{verdict(figure['median_s'], figure['goal_s'], False)} workbench "
                         f"{'--help' if name == 'help' else name}: {figure['median_s']:.2f} s "
                         f"(goal <= {figure['goal_s']} s)")

    (HERE / "results.json").write_text(json.dumps({"took_s": time.time() - started, "results": results}, indent=1))
    print(f"({time.time() - started:.0f} s; full figures in benchmarks/results.json)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
