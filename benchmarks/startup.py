"""Start-up times of the light commands: `workbench --help` and `workbench presets` (warm cache).

Each command runs `--repeat` times in a fresh process; the median wall time is reported.

    .venv/bin/python -m benchmarks.startup
Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time

WORKBENCH = [sys.executable, "-m", "workbench"]
GOALS = {"help": 0.5, "presets": 1.0}


def timed(args: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run([*WORKBENCH, *args], capture_output=True, check=True, timeout=300)
    return time.perf_counter() - started


def measure(repeat: int) -> dict:
    subprocess.run([*WORKBENCH, "presets", "--json"], capture_output=True, check=True, timeout=600)  # warm cache
    figures = {}
    for name, args in (("help", ["--help"]), ("presets", ["presets"])):
        samples = [timed(args) for _ in range(repeat)]
        figures[name] = {"median_s": statistics.median(samples), "samples": samples, "goal_s": GOALS[name]}
    return {"benchmark": "startup", **figures}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)
    print(json.dumps(measure(args.repeat)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
