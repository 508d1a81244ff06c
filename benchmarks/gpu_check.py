"""The GPU check: one command, under five minutes on a CUDA machine, one JSON report.

    .venv/bin/python -m benchmarks.gpu_check [--steps 300] [--dashboard-seconds 30] [--screenshot dash.svg]

(a) trains mlp-quadrants, gpt-char and hf-gpt2-lm for --steps steps in fp32, bf16 and fp16 (a GradScaler),
(b) with torch.cuda.set_sync_debug_mode("error") armed inside every step between flushes, so any host
    sync there fails the case and names the operation (flushes, probes and the final evaluation read
    back on purpose and are exempt),
(c) checks the dashboard memory chart's CUDA allocated / reserved / peak against torch.cuda.memory_stats
    read at the same flush,
(d) times our trainer against the bare loop on the GPU (benchmarks/overhead.py, pairs alternated),
(e) runs the dashboard headless for --dashboard-seconds on a GPU run and reports what it showed: the
    GPU memory chart and the NVML utilisation.
Exit status 0 when every check passed, 1 otherwise. Without CUDA it says so and exits 0.
"""

from __future__ import annotations

import argparse
import asyncio
import html
import json
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

PRESETS = ("mlp-quadrants", "gpt-char", "hf-gpt2-lm")
PRECISIONS = ("fp32", "bf16", "fp16")
OVERHEAD_PRESETS = ("mlp-quadrants", "gpt-char")
MEMORY_NAMES = {  # the memory chart's lines -> the allocator's own counters
    "mem/cuda_allocated_mb": "allocated_bytes.all.current",
    "mem/cuda_reserved_mb": "reserved_bytes.all.current",
    "mem/cuda_peak_mb": "allocated_bytes.all.peak",
}
MEMORY_TOLERANCE_MB = 1.0
SYNC_ERROR = "synchronizing CUDA operation"  # what torch raises in sync debug mode "error"


class Cuda:
    """The torch.cuda calls the check makes; tests pass a fake."""

    def available(self) -> bool:
        import torch

        return torch.cuda.is_available()

    def set_sync_debug_mode(self, mode: str) -> None:
        import torch

        torch.cuda.set_sync_debug_mode(mode)

    def memory_stats(self) -> dict[str, int]:
        import torch

        return torch.cuda.memory_stats()

    def describe(self) -> dict[str, Any]:
        import torch

        return {"name": torch.cuda.get_device_name(), "torch": torch.__version__, "cuda": torch.version.cuda,
                "bf16_supported": torch.cuda.is_bf16_supported()}


def _callback_base():
    from workbench.training.telemetry import Callback

    return Callback


def sync_guard(cuda: Cuda):
    """A trainer callback that arms sync debug mode "error" inside steps and relaxes it where the trainer
    reads back on purpose: flushes, probes, the end of the run."""

    class SyncGuard(_callback_base()):
        def __init__(self):
            self.modes: list[str] = []
            self.flushes = 0

        def _set(self, mode: str) -> None:
            if not self.modes or self.modes[-1] != mode:
                cuda.set_sync_debug_mode(mode)
                self.modes.append(mode)

        def on_setup(self, trainer) -> None:
            self._set("error")

        def on_flush_start(self, trainer) -> None:
            self.flushes += 1
            self._set("default")

        def on_batch(self, trainer, batch) -> None:  # the flush's last callback (this guard comes last)
            if trainer.step < trainer.preset.train.max_steps:  # the final evaluation and checkpoint may sync
                self._set("error")

        def on_probe_start(self, trainer, step) -> None:
            self._set("default")

        def on_probe_end(self, trainer, step, result) -> None:
            self._set("error")

        def on_end(self, trainer, status) -> None:
            self._set("default")

    return SyncGuard()


def memory_probe(cuda: Cuda):
    """A trainer callback that reads torch.cuda.memory_stats at each flush, next to the rows the
    memory chart plots, and feeds those rows into the dashboard's own run state."""
    from workbench.tui.state import RunState

    class MemoryProbe(_callback_base()):
        def __init__(self):
            self.state: RunState | None = None
            self.stats: dict[str, int] | None = None
            self.flushes = 0

        def on_setup(self, trainer) -> None:
            train = trainer.preset.train
            self.state = RunState(trainer.preset.name, train.max_steps, trainer.preset.task, train.grad_clip)

        def on_batch(self, trainer, batch) -> None:
            if not any(name in MEMORY_NAMES for _, name, _ in batch.rows):
                return
            self.stats = dict(cuda.memory_stats())  # the same moment: nothing ran on the GPU since the rows
            self.state.ingest([batch], [])
            self.flushes += 1

        def result(self) -> dict[str, Any]:
            chart = {name: self.state.latest(name) for name in MEMORY_NAMES} if self.state else {}
            return compare_memory(chart, self.stats or {}) | {"flushes": self.flushes}

    return MemoryProbe()


def compare_memory(chart: dict[str, float | None], stats: dict[str, int]) -> dict[str, Any]:
    """The memory chart's latest MiB against the allocator's counters, line by line."""
    lines, ok = {}, bool(stats)
    for name, key in MEMORY_NAMES.items():
        shown, actual = chart.get(name), stats.get(key)
        actual_mb = actual / 2**20 if actual is not None else None
        good = shown is not None and actual_mb is not None and abs(shown - actual_mb) <= MEMORY_TOLERANCE_MB
        ok = ok and good
        lines[name] = {"chart_mb": round(shown, 2) if shown is not None else None,
                       "memory_stats_mb": round(actual_mb, 2) if actual_mb is not None else None, "ok": good}
    return {"ok": ok, "lines": lines}


def train_case(preset_name: str, precision: str, steps: int, runs_dir: Path, cuda: Cuda,
               device: str = "cuda", extra: list[str] | None = None) -> dict[str, Any]:
    """One short run under the sync guard with the memory probe; what it found."""
    from workbench.diagnostics import default_callbacks
    from workbench.presets import load_preset
    from workbench.store import RunStore
    from workbench.training.trainer import Trainer

    preset = load_preset(preset_name, [f"train.device={device!r}", f"train.precision={precision!r}",
                                       f"train.max_steps={steps}", "train.eval_every=0", "train.checkpoint_every=0",
                                       *(extra or [])])
    guard, memory = sync_guard(cuda), memory_probe(cuda)
    store = RunStore(runs_dir)
    started = time.perf_counter()
    try:
        trainer = Trainer(preset, store, callbacks=[*default_callbacks(preset), memory, guard])
        result = trainer.run()
    finally:
        guard._set("default")  # however the run ended
        store.close()
    reason = result.reason or ""
    synced = SYNC_ERROR in reason or SYNC_ERROR in (result.traceback or "")
    return {
        "preset": preset_name, "precision": precision, "status": result.status, "steps": result.steps,
        "seconds": round(time.perf_counter() - started, 2),
        "steps_per_s": round(trainer.stats()["steps_per_second"], 1),
        "flushes": guard.flushes, "no_host_sync": result.status == "completed" and not synced,
        "sync_at": _sync_site(result.traceback) if synced else None,
        "error": None if result.status == "completed" else reason[:500],
        "memory": memory.result(),
        "ok": result.status == "completed",
    }


def _sync_site(trace: str | None) -> str | None:
    """Where the step synchronised: the deepest frame, and the last frame of our code that led there."""
    frames = re.findall(r'File "([^"]+)", line (\d+), in (\S+)', trace or "")
    if not frames:
        return None
    name = lambda frame: f"{Path(frame[0]).name}:{frame[1]} in {frame[2]}"  # noqa: E731
    ours = [f for f in frames if "workbench" in f[0] or "benchmarks" in f[0]]
    if ours and ours[-1] != frames[-1]:
        return f"{name(frames[-1])} (from {name(ours[-1])})"
    return name(frames[-1])


def overhead_case(preset_name: str, pairs: int, steps: int, device: str = "cuda") -> dict[str, Any]:
    from benchmarks.overhead import measure

    report = measure(preset_name, pairs, 0, steps, [], device=device, peer=None)
    return {"preset": preset_name, "pairs": pairs, "steps": steps, "ratio_median": round(report["ratio_median"], 3),
            "ratios": [round(r, 3) for r in report["ratios"]],
            "bare_steps_per_s": round(report["bare_steps_per_s_median"], 1),
            "ours_steps_per_s": round(report["ours_steps_per_s_median"], 1), "goal": report["goal"],
            "ok": report["ratio_median"] >= report["goal"]}


def screen_text(svg: str) -> str:
    """The characters of a Textual SVG screenshot, without markup."""
    return html.unescape(re.sub(r"<[^>]+>", "", svg)).replace("\xa0", " ")


async def _dashboard(preset, runs_dir: Path, seconds: float, size: tuple[int, int]) -> dict[str, Any]:
    from workbench.tui.app import WorkbenchApp

    app = WorkbenchApp(runs_dir=runs_dir, preset=preset, start=True, count_params=False)
    async with app.run_test(size=size, headless=True) as pilot:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            await pilot.pause(0.5)
        dash = app.dashboard
        state = dash.session.state
        await pilot.pause()
        svg = app.export_screenshot()
        shown = {"steps": state.step, "status": state.status,
                 "cuda_allocated_mb": state.latest("mem/cuda_allocated_mb"),
                 "cuda_reserved_mb": state.latest("mem/cuda_reserved_mb"),
                 "cuda_peak_mb": state.latest("mem/cuda_peak_mb"), "rss_mb": state.latest("mem/rss_mb"),
                 "gpu_util_pct": state.latest("gpu/util_pct"), "gpu_power_w": state.latest("gpu/power_w")}
        app.stop_runs(timeout=60)
    return shown | {"svg": svg}


def dashboard_case(seconds: float, runs_dir: Path, device: str = "cuda", preset_name: str = "gpt-char",
                   size: tuple[int, int] = (160, 48), screenshot: Path | None = None,
                   extra: list[str] | None = None) -> dict[str, Any]:
    """The dashboard, rendered headless over a live run for `seconds`: what its memory chart and its
    progress line showed."""
    from workbench.presets import load_preset

    preset = load_preset(preset_name, [f"train.device={device!r}", "train.max_steps=1000000000",
                                       "train.eval_every=0", *(extra or [])])
    shown = asyncio.run(_dashboard(preset, runs_dir, seconds, size))
    text = screen_text(shown.pop("svg"))
    if screenshot is not None:
        screenshot.write_text(text)
    on_cuda = device == "cuda"
    memory_chart = "memory" in text and (("CUDA allocated" in text) if on_cuda else ("process RSS" in text))
    util_shown = shown["gpu_util_pct"] is not None and f"GPU {shown['gpu_util_pct']:.0f}%" in text
    return shown | {
        "seconds": seconds, "terminal": f"{size[0]}x{size[1]}", "memory_chart_on_screen": memory_chart,
        "gpu_util_on_screen": util_shown,
        "ok": shown["status"] in ("running", "stopped", "interrupted") and shown["steps"] > 0 and memory_chart
        and (util_shown or not on_cuda),
    }


def run_checks(args, cuda: Cuda, device: str = "cuda") -> dict[str, Any]:
    started = time.perf_counter()
    report: dict[str, Any] = {"benchmark": "gpu_check", "cuda": True, "gpu": cuda.describe()}
    with tempfile.TemporaryDirectory(prefix="wb-gpu-check-") as tmp:
        runs_dir = Path(tmp) / "runs"
        cases = []
        for preset_name in args.presets:
            for precision in args.precisions:
                case = train_case(preset_name, precision, args.steps, runs_dir, cuda, device)
                cases.append(case)
                print(f"{preset_name} {precision}: {case['status']}, {case['steps_per_s']} steps/s, host syncs "
                      f"{'none' if case['no_host_sync'] else 'at ' + str(case['sync_at'])}, memory chart "
                      f"{'matches' if case['memory']['ok'] else 'differs from'} memory_stats", file=sys.stderr)
        report["training"] = cases
        report["overhead"] = [overhead_case(name, args.pairs, args.steps, device) for name in args.overhead_presets]
        report["dashboard"] = (dashboard_case(args.dashboard_seconds, runs_dir, device, screenshot=args.screenshot)
                               if args.dashboard_seconds > 0 else None)
    checks = {
        "training_completes": all(c["ok"] for c in report["training"]),
        "no_host_sync_between_flushes": all(c["no_host_sync"] for c in report["training"]),
        "memory_chart_matches_memory_stats": all(c["memory"]["ok"] for c in report["training"] if c["ok"]),
        "trainer_vs_bare": all(c["ok"] for c in report["overhead"]),
        "dashboard": report["dashboard"] is None or report["dashboard"]["ok"],
    }
    report["checks"] = checks
    report["ok"] = all(checks.values())
    report["took_s"] = round(time.perf_counter() - started, 1)
    return report


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300, help="steps per training case")
    parser.add_argument("--preset", dest="presets", action="append", help=f"default: {', '.join(PRESETS)}")
    parser.add_argument("--precision", dest="precisions", action="append", choices=PRECISIONS,
                        help=f"default: {', '.join(PRECISIONS)}")
    parser.add_argument("--pairs", type=int, default=3, help="trainer / bare pairs per preset")
    parser.add_argument("--overhead-preset", dest="overhead_presets", action="append",
                        help=f"default: {', '.join(OVERHEAD_PRESETS)}")
    parser.add_argument("--dashboard-seconds", type=float, default=30.0, help="0 skips the dashboard check")
    parser.add_argument("--screenshot", type=Path, help="write the dashboard's last screen here (text)")
    args = parser.parse_args(argv)
    args.presets = args.presets or list(PRESETS)
    args.precisions = args.precisions or list(PRECISIONS)
    args.overhead_presets = args.overhead_presets or list(OVERHEAD_PRESETS)
    return args


def main(argv: list[str] | None = None, cuda: Cuda | None = None, emit: Callable[[str], None] = print) -> int:
    args = parse_args(argv)
    cuda = cuda or Cuda()
    if not cuda.available():
        print("gpu_check: no CUDA device here (torch.cuda.is_available() is False); nothing to check",
              file=sys.stderr)
        emit(json.dumps({"benchmark": "gpu_check", "cuda": False, "ok": None,
                         "skipped": "no CUDA device (torch.cuda.is_available() is False)"}))
        return 0
    report = run_checks(args, cuda)
    emit(json.dumps(report))
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
