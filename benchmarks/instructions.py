"""Instructions per step of our loops against the bare loop, counted by valgrind's callgrind: a figure the
machine's noise does not move (wall-clock pairs on a shared 2-core VM swing by +-10% a pair).

    .venv/bin/python -m benchmarks.instructions --case trainer      # ~7 min: Trainer vs bare_loop_seconds
    .venv/bin/python -m benchmarks.instructions --case own-loop     # ~10 min: watch + log vs the same loop

The script re-runs itself under `valgrind --tool=callgrind --instr-atstart=no` and switches counting on
only around each loop (callgrind_control), after a warm-up of both, so imports and set-up are not
counted. Under valgrind a step is ~200x slower, so the wall-clock cadences (flushes ~5 a second, the own
loop's 0.5 s, heartbeats) would fire hundreds of times more often per step than for real: the trainer
flushes every `--log-every` steps instead, and the own loop's flush interval is scaled by `--slowdown`.
The store writer's commits and heartbeats still come on wall time, so its thread's sqlite work is
over-counted: the report lists the largest differences by library, sqlite's among them. Instructions
are not time either (a `rep stosb` memset counts one per byte).
Prints one JSON object.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

PRESETS = {"trainer": "benchmarks/custom/custom-mlp.toml", "own-loop": "mlp-quadrants"}


def _control(*args: str) -> None:
    """Ask callgrind (in this very process) to do something, spinning until it has: the command is
    served while this process runs code, not while it sleeps."""
    process = subprocess.Popen(["callgrind_control", *args, str(os.getpid())], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    while process.poll() is None:
        sum(range(100))


def _inner(case: str, steps: int, log_every: int, slowdown: float) -> None:
    import torch

    import benchmarks.overhead as overhead
    import workbench.training.run as run_module
    from workbench.presets import load_preset
    from workbench.training.telemetry import Callback

    torch.set_num_threads(1)
    preset = load_preset(PRESETS[case], ["train.eval_every=0", "train.threads=1", f"train.max_steps={steps}",
                                         *([f"train.log_every={log_every}"] if case == "trainer" else [])])
    warm = preset.model_copy(update={"train": preset.train.model_copy(update={"max_steps": 300})})
    clock = overhead.Clock
    counting = {"label": "bare"}

    class Counted(clock):
        """The benchmark's loop clock, with counting on for exactly the timed steps."""

        def __init__(self):
            _control("-i", "on")
            _control("-z")
            super().__init__()

        def elapsed(self):
            result = super().elapsed()
            _control("-d", counting["label"])
            _control("-i", "off")
            return result

    with tempfile.TemporaryDirectory() as tmp:
        if case == "own-loop":
            run_module.FLUSH_INTERVAL_S *= slowdown
            overhead.own_loop_seconds(warm, 300)
            overhead.own_loop_seconds(warm, 300, Path(tmp) / "warm")
            overhead.Clock = Counted
            overhead.own_loop_seconds(preset, steps)
            counting["label"] = "ours"
            overhead.own_loop_seconds(preset, steps, Path(tmp) / "ours")
            return
        overhead.bare_loop_seconds(warm, 300)
        overhead.ours_seconds(warm, 300, Path(tmp) / "warm", loop_only=True)
        overhead.Clock = Counted
        overhead.bare_loop_seconds(preset, steps)
        overhead.Clock = clock

        class Toggle(Callback):
            def on_setup(self, run) -> None:
                _control("-i", "on")
                _control("-z")

            def on_flush_start(self, run) -> None:
                if run.step >= steps:  # the last flush: the loop is over
                    _control("-d", "ours")
                    _control("-i", "off")

        callbacks = overhead.default_callbacks
        overhead.default_callbacks = lambda p: [*callbacks(p), Toggle()]
        overhead.ours_seconds(preset, steps, Path(tmp) / "ours", loop_only=True)


def _by(path: Path, key) -> collections.Counter:
    out = subprocess.run(["callgrind_annotate", "--inclusive=no", "--threshold=100", str(path)],
                         capture_output=True, text=True, check=True).stdout
    counts: collections.Counter = collections.Counter()
    for line in out.splitlines():
        match = re.match(r"^\s*([\d,]+)\s+(?:\([^)]*\)\s+)?(.*)$", line)
        if match and match.group(2).strip() != "PROGRAM TOTALS":
            counts[key(match.group(2).strip())] += int(match.group(1).replace(",", ""))
    return counts


def _library(name: str) -> str:
    match = re.search(r"\[([^\]]+)\]\s*$", name)
    return match.group(1).rsplit("/", 1)[-1] if match else "python"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--case", choices=tuple(PRESETS), default="trainer")
    parser.add_argument("--steps", type=int, default=None, help="steps counted (trainer 600, own loop 1200)")
    parser.add_argument("--log-every", type=int, default=240,
                        help="the trainer's flush interval in steps (~5 a second at full speed)")
    parser.add_argument("--slowdown", type=float, default=240.0, help="the own loop's flush interval scale")
    parser.add_argument("--inner", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    steps = args.steps or (600 if args.case == "trainer" else 1200)
    if args.inner:
        _inner(args.case, steps, args.log_every, args.slowdown)
        return 0
    if not shutil.which("valgrind") or not shutil.which("callgrind_control"):
        print(json.dumps({"benchmark": "instructions", "skipped": "valgrind (callgrind) is not installed"}))
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "callgrind.out"
        command = ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}",
                   sys.executable, "-m", "benchmarks.instructions", "--inner", "--case", args.case,
                   "--steps", str(steps), "--log-every", str(args.log_every), "--slowdown", str(args.slowdown)]
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       cwd=Path(__file__).resolve().parent.parent)
        bare, ours = Path(f"{out}.1"), Path(f"{out}.2")
        libraries = {name: _by(path, _library) for name, path in (("bare", bare), ("ours", ours))}
    totals = {name: sum(counts.values()) for name, counts in libraries.items()}
    differences = {lib: (libraries["ours"][lib] - libraries["bare"][lib]) / steps
                   for lib in set(libraries["bare"]) | set(libraries["ours"])}
    largest = sorted(differences.items(), key=lambda item: -abs(item[1]))[:8]
    print(json.dumps({
        "benchmark": "instructions", "case": args.case, "preset": PRESETS[args.case], "steps": steps,
        "bare_per_step": round(totals["bare"] / steps), "ours_per_step": round(totals["ours"] / steps),
        "bare_over_ours": totals["bare"] / totals["ours"],
        "largest_differences_per_step": {lib: round(value) for lib, value in largest},
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
