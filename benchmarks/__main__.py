"""`python -m benchmarks` (or `make bench`): every benchmark once, each figure printed against its goal.

Figures are medians of repeated runs taken in this one session (the machines are noisy: compare ratios
measured together, not absolute numbers across sessions). The full JSON goes to benchmarks/results.json.
About five minutes on a 2-core machine with the defaults; --quick for a smoke run.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
CUSTOM = str(HERE / "custom" / "custom-mlp.toml")  # a user's own preset: own model file, train defaults
PEER_NAMES = {"lightning": "Lightning", "hf_trainer": "HF Trainer"}


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
    try:
        return json.loads(out.stdout)  # one object, possibly indented
    except json.JSONDecodeError:
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
    started = time.time()
    results = []
    lines = Report()

    # The CPU MLP default (per-step overhead shows most there), a user's own preset at the default train
    # settings (benchmarks/custom), then a CNN and a GPT preset at a smaller batch so their pairs fit the
    # harness's time (a smaller step makes our per-step cost weigh more), and an HF preset. Each pair times
    # both training loops alone (see benchmarks/overhead.py), and in the same pairs the trainer a user would
    # pick instead: Lightning, or the HF Trainer on HF presets.
    for preset, pairs, steps, sets in (("mlp-quadrants", "3" if args.quick else "6", "400" if args.quick else "1000", []),
                                       (CUSTOM, "3" if args.quick else "6", "400" if args.quick else "1000", []),
                                       ("cnn-shapes", "2", "20" if args.quick else "40", ["train.batch_size=16"]),
                                       ("gpt-char", "2", "20" if args.quick else "40", ["train.batch_size=8"]),
                                       ("hf-bert-classifier", "2", "20" if args.quick else "40", [])):
        extra = [part for item in sets for part in ("--set", item)]
        overhead = run_module("overhead", "--preset", preset, "--pairs", pairs, "--long", steps, *extra)
        results.append(overhead)
        label = "custom-mlp (own model file, default train settings)" if preset == CUSTOM else preset
        if "ratio_median" in overhead:
            lines.append(f"{verdict(overhead['ratio_median'], 0.97, True)} overhead {label}"
                         f"{' (' + ', '.join(sets) + ')' if sets else ''}: ours/bare = {overhead['ratio_median']:.3f} "
                         f"(goal >= 0.97; bare {overhead['bare_steps_per_s_median']:.1f} steps/s, ours "
                         f"{overhead['ours_steps_per_s_median']:.1f}; per CPU second "
                         f"{overhead['cpu_ratio_median']:.3f}; {pairs} pairs {min(overhead['ratios']):.2f}-"
                         f"{max(overhead['ratios']):.2f})")
        if overhead.get("peer"):
            peer, goal = overhead["peer"], overhead["peer_goal"]
            lines.append(f"{verdict(overhead['ours_over_peer_median'], goal, True)} ours / {PEER_NAMES[peer]} on "
                         f"{label}: {overhead['ours_over_peer_median']:.2f}x (goal >= {goal}x; "
                         f"{PEER_NAMES[peer]} {overhead['peer_steps_per_s_median']:.1f} steps/s)")

    # A user's own loop on the public API (workbench.init + watch + log every step) vs the same loop bare.
    own = run_module("overhead", "--case", "own-loop", "--pairs", "3" if args.quick else "6", "--long",
                     "400" if args.quick else "1000")
    results.append(own)
    if "ratio_median" in own:
        lines.append(f"{verdict(own['ratio_median'], 0.97, True)} own loop (watch + log every step) / bare loop, "
                     f"mlp-quadrants: {own['ratio_median']:.3f} (goal >= 0.97; per CPU second "
                     f"{own['cpu_ratio_median']:.3f}; {own['pairs']} pairs {min(own['ratios']):.2f}-"
                     f"{max(own['ratios']):.2f})")

    tui = run_script("tui_vs_headless.py", "--pairs", "1" if args.quick else "2", "--steps", "2500", "--frames", "3",
                     "--windows", "0" if args.quick else "4", "--window", "3", "--preset", "mlp-quadrants",
                     "--preset", "custom")
    if tui is not None:
        results.append(tui)
        for case in tui.get("cases", []):
            ratio = case.get("ratio_median")
            if ratio is not None:
                name = "custom-mlp (default train settings)" if case["preset"].endswith("custom-mlp.toml") else case["preset"]
                lines.append(f"{verdict(ratio, 0.95, True)} live UI vs headless, {name}: {ratio:.3f} (goal >= 0.95)")
        windowed = tui.get("windowed") or {}
        if windowed.get("ratio_median") is not None:
            lines.append(f"{verdict(windowed['ratio_median'], 0.95, True)} live UI vs idle UI in one run: "
                         f"{windowed['ratio_median']:.3f} (goal >= 0.95; UI thread CPU "
                         f"{100 * statistics.median(windowed['ui_thread_cpu_share_live']):.1f}% of wall time)")
        first = tui.get("first_frame_median_s")
        if first is not None:
            lines.append(f"{verdict(first, 1.5, False)} first TUI frame: {first:.2f} s (goal <= 1.5 s)")

    redraw = run_script("chart_redraw.py")
    if redraw is not None:
        results.append(redraw)
        by_steps = {r["steps"]: r for r in redraw.get("results", [])}
        growth = redraw.get("ratio_1e6_vs_1e3")
        if growth is not None:
            small, big = by_steps[1000], by_steps[1_000_000]
            lines.append(f"{verdict(growth, 1.2, False)} chart redraw at 1e6 vs 1e3 logged steps: {growth:.2f}x "
                         f"({big['bounded_ms']:.1f} vs {small['bounded_ms']:.1f} ms; {big['points_plotted']} vs "
                         f"{small['points_plotted']} points plotted; goal <= 1.2x)")
        if {100_000, 1_000_000} <= by_steps.keys():
            full = by_steps[1_000_000]["bounded_ms"] / by_steps[100_000]["bounded_ms"]
            lines.append(f"{verdict(full, 1.2, False)} chart redraw at 1e6 vs 1e5 logged steps (both charts full): "
                         f"{full:.2f}x (goal <= 1.2x)")

    compare = run_script("compare_load.py", "--repeats", "3")
    if compare is not None and "load_total_s" in compare:
        results.append(compare)
        lines.append(f"{verdict(compare['load_total_s'], 0.3, False)} compare view load of a "
                     f"{compare['logged_steps']:,}-step run: {compare['load_total_s'] * 1000:.1f} ms (goal < 0.3 s)")
        lines.append(f"{verdict(compare['redraw_ratio_5_vs_1'], 1.5, False)} compare chart, five overlaid runs vs one: "
                     f"{compare['redraw_5_runs_ms']:.1f} vs {compare['redraw_1_runs_ms']:.1f} ms "
                     f"({compare['redraw_ratio_5_vs_1']:.2f}x, goal <= 1.5x)")

    bandwidth = run_script("terminal_bandwidth.py", "--fps", "4", "--fps", "1", "--seconds", "5" if args.quick else "6")
    if bandwidth is not None and "results" in bandwidth:
        results.append(bandwidth)
        for figure in bandwidth["results"]:
            mode = ", --low-bandwidth" if figure.get("low_bandwidth") else ""
            lines.append(f"{verdict(figure['bytes_per_second'], 30_000, False)} terminal output at {figure['fps']:g} fps"
                         f" ({figure['size']}{mode}): {figure['bytes_per_second'] / 1000:.1f} KB/s (goal <= 30 KB/s)")

    memory = run_module("memory", "--short", "2000", "--long", "10000" if args.quick else "20000",
                        "--tui-steps", "200000" if args.quick else "1000000")
    results.append(memory)
    if "growth_ratio" in memory:
        lines.append(f"{verdict(memory['growth_ratio'], 1.1, False)} peak RSS {memory['long_steps']:,} vs "
                     f"{memory['short_steps']:,} steps: {memory['long_peak_rss_mb']:.0f} vs "
                     f"{memory['short_peak_rss_mb']:.0f} MiB ({memory['growth_ratio']:.2f}x, goal bounded <= 1.1x)")
    if memory.get("tui_growth_1e5_to_end") is not None:
        rss = memory["tui_rss_mb_by_steps"]
        lines.append(f"{verdict(memory['tui_growth_1e5_to_end'], 1.1, False)} TUI run state RSS after 1e3 / 1e5 / "
                     f"{memory['tui_steps']:.0e} logged steps: "
                     + " / ".join(f"{v:.1f}" for v in rss.values())
                     + f" MiB (flat once full: {memory['tui_growth_1e5_to_end']:.2f}x, goal <= 1.1x)")

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
