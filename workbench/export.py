"""Export a run's metrics so it can be taken elsewhere: CSV (long format), JSON lines (one object per
step) or TensorBoard event files (with the `tensorboard` extra installed)."""

from __future__ import annotations

import bisect
import csv
import json
import math
from pathlib import Path
from typing import Callable
from typing import IO

from workbench.errors import ConfigError
from workbench.store import RunStore

FORMATS = ("csv", "jsonl", "tensorboard")


def _rows(store: RunStore, run_id: str):
    for name in sorted(store.metric_names(run_id)):
        for step, value in store.metric_series(run_id, name):
            yield step, name, value


def export_csv(store: RunStore, run_id: str, stream: IO[str]) -> int:
    writer = csv.writer(stream)
    writer.writerow(["run_id", "step", "name", "value"])
    count = 0
    for step, name, value in sorted(_rows(store, run_id)):
        writer.writerow([run_id, step, name, "" if value is None else repr(value)])
        count += 1
    return count


def export_jsonl(store: RunStore, run_id: str, stream: IO[str]) -> int:
    by_step: dict[int, dict[str, float | None]] = {}
    for step, name, value in _rows(store, run_id):
        by_step.setdefault(step, {})[name] = value if value is None or math.isfinite(value) else None
    for step in sorted(by_step):
        stream.write(json.dumps({"run_id": run_id, "step": step, **by_step[step]}) + "\n")
    return len(by_step)


def wall_clock(store: RunStore, run_id: str) -> Callable[[int], float]:
    """step -> the wall time (Unix seconds) the run reached it: the run's `started_at` plus its training clock
    `time_s` (recorded at each logged step; linear in between, and from 0 at step 0). The clock starts when
    training does, after set-up, and a resumed run's continues where it stopped (time away is not counted)."""
    started = store.get_run(run_id)["started_at"]
    points = [(step, seconds) for step, seconds in store.metric_series(run_id, "time_s")
              if seconds is not None and math.isfinite(seconds)]
    if not points or points[0][0] > 0:
        points.insert(0, (0, 0.0))
    steps = [step for step, _ in points]

    def at(step: int) -> float:
        i = bisect.bisect_left(steps, step)
        if i == 0:
            return started + points[0][1]
        if i == len(points):
            return started + points[-1][1]
        (s0, t0), (s1, t1) = points[i - 1], points[i]
        return started + t0 + (t1 - t0) * (step - s0) / (s1 - s0)

    return at


def export_tensorboard(store: RunStore, run_id: str, folder: Path) -> int:
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise ConfigError("export --format tensorboard needs the tensorboard extra: pip install 'workbench[tensorboard]'") from None
    count = 0
    wall = wall_clock(store, run_id)
    writer = SummaryWriter(log_dir=str(folder))
    try:
        for step, name, value in _rows(store, run_id):
            if value is not None:
                writer.add_scalar(name, value, step, walltime=wall(step))
                count += 1
    finally:
        writer.close()
    return count


def export_run(store: RunStore, run_id: str, fmt: str, output: Path | None, stdout: IO[str]) -> tuple[int, str]:
    """Write the export; returns (records written, where)."""
    if store.get_run(run_id) is None:
        raise ConfigError(f"run {run_id!r}: not found in {store.path}")
    if fmt not in FORMATS:
        raise ConfigError(f"export: --format must be one of {', '.join(FORMATS)}")
    if fmt == "tensorboard":
        folder = output or (store.run_dir(run_id) / "tensorboard")
        return export_tensorboard(store, run_id, folder), str(folder)
    writer = export_csv if fmt == "csv" else export_jsonl
    if output is None:
        return writer(store, run_id, stdout), "stdout"
    try:
        with open(output, "w", newline="", encoding="utf-8") as handle:
            return writer(store, run_id, handle), str(output)
    except OSError as error:
        raise ConfigError(f"export --output {output}: {error.strerror}") from None
