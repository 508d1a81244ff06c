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


def measure(short: int, long: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        short_mb = peak_rss_mb(short, f"{tmp}/a")
        long_mb = peak_rss_mb(long, f"{tmp}/b")
    return {"benchmark": "memory", "short_steps": short, "long_steps": long, "short_peak_rss_mb": short_mb,
            "long_peak_rss_mb": long_mb, "growth_ratio": long_mb / short_mb, "goal_growth_ratio": 1.1}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--short", type=int, default=2000)
    parser.add_argument("--long", type=int, default=200_000)
    args = parser.parse_args(argv)
    print(json.dumps(measure(args.short, args.long)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
