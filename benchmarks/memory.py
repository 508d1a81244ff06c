"""Peak RSS of headless runs of different lengths: memory must stay bounded as a run grows (history lives
in the store, not in memory).

Each run is a fresh `workbench train` process; its peak RSS comes from getrusage of a wrapper process
that ran only that child.

    .venv/bin/python -m benchmarks.memory --short 2000 --long 200000
Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile

# A small, fast configuration: memory growth with run length shows regardless of the model.
FAST = ["model.args.hidden=[32]", "train.batch_size=16", "train.eval_every=0", "train.threads=1"]

WRAPPER = (
    "import resource, subprocess, sys; "
    "subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL); "
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
)


def peak_rss_mb(steps: int, runs_dir: str) -> float:
    command = [sys.executable, "-m", "workbench", "train", "mlp-quadrants", "--runs-dir", runs_dir]
    for item in [*FAST, f"train.max_steps={steps}"]:
        command += ["--set", item]
    out = subprocess.run([sys.executable, "-c", WRAPPER, *command], capture_output=True, text=True, check=True,
                         timeout=3600)
    return int(out.stdout.strip()) / 1024.0  # ru_maxrss is KiB on Linux


# The TUI's side: the dashboard's run state fed the telemetry a run publishes (the rows the trainer sends
# for the MLP preset every step, in the batches it flushes), then one chart build per metric, in one
# process; RSS is read after 1e3 steps and again after the long history.
TUI_HISTORY = """
import resource, sys, time
from workbench.training.telemetry import TelemetryBatch
from workbench.tui.state import RunState
steps, checkpoints = int(sys.argv[1]), {int(v) for v in sys.argv[2].split(",")}
names = ("loss", "lr", "grad_norm", "memory_mb", "steps_per_s", "samples_per_s")
state = RunState("memory", steps)
marks = {}
t0 = time.time()
for start in range(0, steps, 100):
    rows = [(s, name, 1.0 / (1 + s) + 0.001 * (s % 7)) for s in range(start, start + 100) for name in names]
    state.ingest([TelemetryBatch(start + 99, t0 + start * 0.001, rows)], [], now=start * 0.001)  # 1,000 steps/s
    if start + 100 in checkpoints or start + 100 == steps:
        for name in names:
            state.series[name].downsample(118)
        marks[start + 100] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
print(*(marks[k] for k in sorted(marks)))
"""


def tui_history_rss_mb(steps: int) -> dict[int, float]:
    """Peak RSS (MiB) of the TUI's run state after 1e3, 1e5 (when reached) and `steps` logged steps."""
    marks = sorted({m for m in (1000, 100_000) if m < steps} | {steps})
    out = subprocess.run([sys.executable, "-c", TUI_HISTORY, str(steps), ",".join(map(str, marks))],
                         capture_output=True, text=True, check=True, timeout=3600)
    return dict(zip(marks, map(float, out.stdout.split())))


def measure(short: int, long: int, tui_steps: int = 1_000_000) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        short_mb = peak_rss_mb(short, f"{tmp}/a")
        long_mb = peak_rss_mb(long, f"{tmp}/b")
    tui = tui_history_rss_mb(tui_steps) if tui_steps else {}
    return {"benchmark": "memory", "short_steps": short, "long_steps": long, "short_peak_rss_mb": short_mb,
            "long_peak_rss_mb": long_mb, "growth_ratio": long_mb / short_mb, "goal_growth_ratio": 1.1,
            "tui_steps": tui_steps, "tui_rss_mb_by_steps": tui,
            # After 1e5 steps every series is at its bucket capacity: from there on memory must stay flat.
            "tui_growth_1e5_to_end": tui[tui_steps] / tui[100_000] if 100_000 in tui else None}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--short", type=int, default=2000)
    parser.add_argument("--long", type=int, default=200_000)
    parser.add_argument("--tui-steps", type=int, default=1_000_000, help="history fed to the TUI's run state")
    args = parser.parse_args(argv)
    print(json.dumps(measure(args.short, args.long, args.tui_steps)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
