"""Bytes per second the dashboard writes to the terminal while training (what crosses an SSH link).

Runs `workbench tui --preset P --start` in a pseudo-terminal of the given size, discards the first
`--warmup` seconds (start-up, first full paint), then counts the bytes written over `--seconds`.
Repeats for each `--fps` value, so the default refresh and a low-bandwidth setting are measured together.

    .venv/bin/python benchmarks/terminal_bandwidth.py --fps 4 --fps 1
Prints one JSON object.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import pty
import select
import signal
import struct
import sys
import tempfile
import termios
import time


def measure(preset: str, fps: float, size: tuple[int, int], warmup: float, seconds: float, sets: list[str],
            low_bandwidth: bool = False) -> dict:
    columns, rows = size
    with tempfile.TemporaryDirectory() as tmp:
        argv = [sys.executable, "-m", "workbench", "tui", "--preset", preset, "--start", "--runs-dir", f"{tmp}/runs",
                "--fps", str(fps), "--set", "train.max_steps=10000000"] + (["--low-bandwidth"] if low_bandwidth else [])
        for item in sets:
            argv += ["--set", item]
        pid, fd = pty.fork()
        if pid == 0:  # the child: a terminal of the asked size
            os.environ["TERM"] = "xterm-256color"
            # Textual trusts COLUMNS/LINES over the terminal's own size (pytest sets them): the pty decides.
            os.environ.pop("COLUMNS", None)
            os.environ.pop("LINES", None)
            os.execv(sys.executable, argv)
        fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
        os.kill(pid, signal.SIGWINCH)
        counted = 0
        started = time.monotonic()
        measuring_since = None
        seen = b""
        try:
            # Warm-up ends once `warmup` seconds have passed and the dashboard is on screen (training),
            # however long start-up takes on a busy machine.
            while measuring_since is None or time.monotonic() - measuring_since < seconds:
                if measuring_since is None and time.monotonic() - started > warmup + 120:
                    raise RuntimeError("the dashboard never appeared")
                ready, _, _ = select.select([fd], [], [], 0.1)
                chunk = b""
                if ready:
                    try:
                        chunk = os.read(fd, 65536)
                    except OSError:
                        break
                if measuring_since is not None:
                    counted += len(chunk)
                else:
                    seen = (seen + chunk)[-200_000:]
                    if time.monotonic() - started >= warmup and b"ETA" in seen:  # the progress line: training
                        measuring_since = time.monotonic()
        finally:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            os.close(fd)
    return {"fps": fps, "size": f"{columns}x{rows}", "low_bandwidth": low_bandwidth,
            "bytes_per_second": counted / seconds, "seconds": seconds}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="mlp-quadrants")
    parser.add_argument("--fps", type=float, action="append", default=[])
    parser.add_argument("--columns", type=int, default=120)
    parser.add_argument("--rows", type=int, default=40)
    parser.add_argument("--warmup", type=float, default=8.0)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--set", dest="sets", action="append", default=[])
    args = parser.parse_args(argv)
    results = [measure(args.preset, fps, (args.columns, args.rows), args.warmup, args.seconds, args.sets)
               for fps in (args.fps or [4.0, 1.0])]
    results.append(measure(args.preset, 1.0, (args.columns, args.rows), args.warmup, args.seconds, args.sets,
                           low_bandwidth=True))
    print(json.dumps({"benchmark": "terminal_bandwidth", "results": results, "goal_bytes_per_second": 30_000}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
