"""Training throughput with the live dashboard vs the same run headless, and the TUI's first frame.

Pairs: `workbench train P` and `workbench tui --preset P --start` (in a real terminal: a tmux pane of
the given size) back to back, alternating which goes first; each run's loop-only `steps_per_second`
comes from the run store, with the share of wall time the TUI's UI (main) thread spent on the CPU
while it trained (what the dashboard takes from the trainer). Other work on the machine moves
absolute numbers, so pairs are compared by their ratio.

Windows (--windows N): one long run inside the TUI whose dashboard is switched between live and idle
every --window seconds; neighbouring windows share whatever else the machine is doing, so their
ratio holds up on a busy machine far better than separate runs.

First frame: from launching `workbench` until the presets table is in the pane, and the CPU seconds
the process had used by then (what the wall time would be on an idle machine).

    .venv/bin/python benchmarks/tui_vs_headless.py --pairs 5 --steps 6000 --windows 10
Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
WORKBENCH = [sys.executable, "-m", "workbench"]


def headless(preset: str, sets: list[str], runs_dir: Path) -> float:
    args = [*WORKBENCH, "train", preset, "--json", "--runs-dir", str(runs_dir)]
    for item in sets:
        args += ["--set", item]
    done = subprocess.run(args, capture_output=True, text=True, cwd=runs_dir.parent, timeout=1800)
    if done.returncode != 0:
        raise RuntimeError(f"headless run failed: {done.stderr[-2000:]}")
    return json.loads(done.stdout)["throughput"]["steps_per_second"]


def _tmux(*args: str) -> str:
    return subprocess.run(["tmux", *args], capture_output=True, text=True).stdout


def tui(preset: str, sets: list[str], runs_dir: Path, size: tuple[int, int], timeout: float = 1800) -> dict:
    """Run the TUI with --start in a tmux pane until the run ends; its steps/s and the dashboard's own figures."""
    session = f"wbbench{os.getpid()}"
    command = [*WORKBENCH, "tui", "--preset", preset, "--start", "--runs-dir", str(runs_dir)]
    for item in sets:
        command += ["--set", item]
    shell = " ".join(_quote(part) for part in command)
    _tmux("new-session", "-d", "-s", session, "-x", str(size[0]), "-y", str(size[1]), "-c", str(runs_dir.parent),
          f"{shell}; sleep 600")
    try:
        started = time.monotonic()
        before = {r["run_id"] for r in _all_runs(runs_dir)}
        run = None
        ui_start = ui_end = None
        while time.monotonic() - started < timeout:
            time.sleep(1.0)
            fresh = [r for r in _all_runs(runs_dir) if r["run_id"] not in before]
            if fresh and ui_start is None:
                ui_start = _ui_thread_cpu(session)
            if fresh and fresh[0]["status"] not in ("running",):
                ui_end = _ui_thread_cpu(session)
                run = fresh[0]
                break
        if run is None:
            raise RuntimeError("the TUI run did not finish in time")
        screen = _tmux("capture-pane", "-p", "-t", session)
        _tmux("send-keys", "-t", session, "q")
        time.sleep(0.5)
    finally:
        _tmux("kill-session", "-t", session)
    show = subprocess.run([*WORKBENCH, "show", run["run_id"], "--json", "--runs-dir", str(runs_dir)],
                          capture_output=True, text=True)
    summary = json.loads(show.stdout)
    ui_share = None
    if ui_start and ui_end and ui_end[1] > ui_start[1]:
        ui_share = (ui_end[0] - ui_start[0]) / (ui_end[1] - ui_start[1])
    return {"steps_per_second": summary["throughput"]["steps_per_second"], "status": summary["status"],
            "charts_on_screen": "loss" in screen and "grad norm" in screen, "ui_thread_cpu_share": ui_share}


def _ui_thread_cpu(session: str) -> tuple[float, float] | None:
    """(CPU seconds of the TUI's main thread, wall clock): the UI thread is the process's main thread."""
    pane_pid = _tmux("list-panes", "-t", session, "-F", "#{pane_pid}").strip()
    children = subprocess.run(["pgrep", "-P", pane_pid], capture_output=True, text=True).stdout.split()
    for pid in children:
        try:
            fields = Path(f"/proc/{pid}/task/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        ticks = os.sysconf("SC_CLK_TCK")
        return (int(fields[11]) + int(fields[12])) / ticks, time.monotonic()
    return None


def _all_runs(runs_dir: Path) -> list[dict]:
    """The store's runs, read in this process: polling through `workbench runs` would start a Python
    process every poll, about half a core on this 2-core box that the headless leg never pays."""
    if not (runs_dir / "workbench.db").exists():
        return []
    from workbench.store import RunStore  # the store module does not import torch

    store = RunStore(runs_dir, create=False)
    try:
        return store.list_runs()
    finally:
        store.close()


def first_frame(size: tuple[int, int], runs_dir: Path, timeout: float = 30.0) -> tuple[float, float | None]:
    """Seconds from launching `workbench` until the presets table is on screen, and the CPU seconds the
    process had used by then (the wall time on an idle machine; other load inflates only the first)."""
    session = f"wbframe{os.getpid()}"
    shell = " ".join(_quote(p) for p in [*WORKBENCH, "tui", "--runs-dir", str(runs_dir)])
    started = time.monotonic()
    _tmux("new-session", "-d", "-s", session, "-x", str(size[0]), "-y", str(size[1]), "-c", str(runs_dir.parent),
          f"{shell}; sleep 60")
    pids: list[int] = []
    try:
        while time.monotonic() - started < timeout:
            if "mlp-quadrants" in _tmux("capture-pane", "-p", "-t", session):
                wall = time.monotonic() - started
                pids = _pane_children(session)
                return wall, _process_cpu(session)
            time.sleep(0.02)
        raise RuntimeError("no first frame")
    finally:
        _tmux("send-keys", "-t", session, "q")
        time.sleep(0.3)
        _tmux("kill-session", "-t", session)
        _reap(pids)


def _pane_children(session: str) -> list[int]:
    pane_pid = _tmux("list-panes", "-t", session, "-F", "#{pane_pid}").strip()
    found = subprocess.run(["pgrep", "-P", pane_pid], capture_output=True, text=True).stdout.split()
    return [int(pid) for pid in found]


def _reap(pids: list[int], within: float = 15.0) -> None:
    """Wait for the TUI to exit after its terminal went away; one that outlives it is killed (and said),
    so it cannot take CPU from the measurements after it."""
    deadline = time.monotonic() + within
    alive = list(pids)
    while alive and time.monotonic() < deadline:
        alive = [pid for pid in alive if Path(f"/proc/{pid}").exists()]
        time.sleep(0.1)
    for pid in alive:
        print(f"a TUI (pid {pid}) outlived its terminal by {within:.0f} s: killed", file=sys.stderr)
        try:
            os.kill(pid, 9)
        except ProcessLookupError:
            pass  # it exited meanwhile


def _process_cpu(session: str) -> float | None:
    """CPU seconds (all threads) used so far by the process running in the pane."""
    pane_pid = _tmux("list-panes", "-t", session, "-F", "#{pane_pid}").strip()
    for pid in subprocess.run(["pgrep", "-P", pane_pid], capture_output=True, text=True).stdout.split():
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return None


def windowed_inner(out: Path, preset_ref: str, sets: list[str], window: float, windows: int, runs_dir: Path) -> None:
    """Runs inside the terminal: one long run whose dashboard is live and idle in alternate windows."""
    from workbench.presets import load_preset
    from workbench.tui.app import WorkbenchApp

    preset = load_preset(preset_ref, sets)
    marks: list[dict] = []

    class WindowedApp(WorkbenchApp):
        live = True

        def on_mount(self) -> None:
            # Textual calls on_mount of every class in the MRO: WorkbenchApp's runs without super().
            self.set_interval(window, self.flip)

        def flip(self) -> None:
            dash = self.dashboard
            if dash is None or dash.session.trainer is None or dash.session.state.status != "running":
                return
            if len(marks) > 2 * windows + 1:
                self.exit()
                return
            self.live = not self.live if marks else True
            marks.append({"t": time.perf_counter(), "step": dash.session.trainer.step, "live": self.live,
                          "ui_cpu": time.thread_time()})
            (dash.timer.resume if self.live else dash.timer.pause)()

    app = WindowedApp(runs_dir=runs_dir, preset=preset, start=True, count_params=False)
    app.run()
    app.stop_runs(timeout=60)
    out.write_text(json.dumps(marks))


def windowed(preset: str, sets: list[str], runs_dir: Path, size: tuple[int, int], window: float,
             windows: int) -> dict:
    """Throughput with the dashboard live vs idle in alternating windows of one run, in a tmux pane.

    Neighbouring windows share whatever else the machine is doing, so this comparison survives a busy
    machine far better than separate runs do."""
    out = runs_dir.parent / f"windows-{os.getpid()}.json"
    session = f"wbwin{os.getpid()}"
    command = [sys.executable, str(Path(__file__).resolve()), "--inner", str(out), "--preset", preset,
               "--window", str(window), "--windows", str(windows), "--runs-dir", str(runs_dir)]
    for item in sets:
        command += ["--set", item]
    _tmux("new-session", "-d", "-s", session, "-x", str(size[0]), "-y", str(size[1]), "-c", str(runs_dir.parent),
          " ".join(_quote(part) for part in command) + "; sleep 600")
    try:
        deadline = time.monotonic() + window * (2 * windows + 4) + 300
        while not out.exists() and time.monotonic() < deadline:
            time.sleep(1.0)
    finally:
        _tmux("kill-session", "-t", session)
    marks = json.loads(out.read_text())
    spans = []
    for before, after in zip(marks, marks[1:]):
        seconds = after["t"] - before["t"]
        spans.append({"live": before["live"], "rate": (after["step"] - before["step"]) / seconds,
                      "ui_share": (after["ui_cpu"] - before["ui_cpu"]) / seconds})
    spans = spans[1:]  # the first window includes the run's warm-up
    ratios, shares = [], []
    for i, span in enumerate(spans):
        if not span["live"]:
            continue
        idle = [s["rate"] for s in spans[max(0, i - 1): i + 2] if not s["live"]]
        if idle:
            ratios.append(round(span["rate"] / statistics.mean(idle), 3))
            shares.append(round(span["ui_share"], 4))
    return {"window_s": window, "ratios": ratios, "ratio_median": statistics.median(ratios) if ratios else None,
            "live_rate_median": statistics.median(s["rate"] for s in spans if s["live"]),
            "idle_rate_median": statistics.median(s["rate"] for s in spans if not s["live"]),
            "ui_thread_cpu_share_live": shares,
            "ui_thread_cpu_share_idle": [round(s["ui_share"], 4) for s in spans if not s["live"]]}


def _quote(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"


CUSTOM_PRESET = str(REPO / "benchmarks" / "custom" / "custom-mlp.toml")  # a user's own model file, train defaults


def preset_ref(ref: str) -> str:
    """"custom" names the benchmarks' own preset; a preset file is passed by absolute path (runs start
    in a scratch folder)."""
    if ref == "custom":
        return CUSTOM_PRESET
    return str(Path(ref).resolve()) if Path(ref).is_file() else ref


def pairs_for(preset: str, sets: list[str], runs_dir: Path, size: tuple[int, int], pairs: int) -> dict:
    """Headless and TUI runs of one preset back to back, alternating which goes first."""
    headless_rates, tui_rates, ratios, ui_shares = [], [], [], []
    charts_seen = True
    for pair in range(pairs):
        if pair % 2 == 0:
            h = headless(preset, sets, runs_dir)
            t = tui(preset, sets, runs_dir, size)
        else:
            t = tui(preset, sets, runs_dir, size)
            h = headless(preset, sets, runs_dir)
        headless_rates.append(round(h, 1))
        tui_rates.append(round(t["steps_per_second"], 1))
        ratios.append(round(t["steps_per_second"] / h, 3))
        charts_seen = charts_seen and t["charts_on_screen"]
        if t["ui_thread_cpu_share"] is not None:
            ui_shares.append(round(t["ui_thread_cpu_share"], 4))
        print(f"{Path(preset).stem} pair {pair + 1}: headless {h:.0f} steps/s, tui {t['steps_per_second']:.0f} "
              f"steps/s, ratio {ratios[-1]:.3f}", file=sys.stderr)
    return {"preset": preset, "headless_steps_per_s": headless_rates, "tui_steps_per_s": tui_rates, "ratios": ratios,
            "ratio_median": statistics.median(ratios) if ratios else None,
            "headless_median": statistics.median(headless_rates) if headless_rates else None,
            "tui_median": statistics.median(tui_rates) if tui_rates else None, "charts_on_screen": charts_seen,
            "ui_thread_cpu_share": ui_shares}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", action="append", default=None,
                        help="preset name or file, repeatable (default: mlp-quadrants and custom, the benchmarks' "
                             "own preset at the default train settings)")
    parser.add_argument("--steps", type=int, default=6000)
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--size", default="120x40", help="terminal size for the TUI, WxH")
    parser.add_argument("--set", dest="sets", action="append", default=[], help="extra preset overrides")
    parser.add_argument("--frames", type=int, default=3, help="first-frame measurements")
    parser.add_argument("--windows", type=int, default=0,
                        help="also measure N live/idle window pairs within one run of the first preset "
                             "(see windowed())")
    parser.add_argument("--window", type=float, default=3.0, help="seconds per window")
    parser.add_argument("--inner", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--runs-dir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    presets = [preset_ref(ref) for ref in (args.preset or ["mlp-quadrants", "custom"])]
    if args.inner:
        windowed_inner(args.inner, presets[0], [*args.sets], args.window, args.windows, args.runs_dir)
        return 0
    if shutil.which("tmux") is None:
        print(json.dumps({"error": "tmux is needed to run the TUI in a real terminal"}))
        return 2
    size = tuple(int(v) for v in args.size.lower().split("x"))
    sets = [f"train.max_steps={args.steps}", "train.eval_every=1000", *args.sets]
    work = Path(tempfile.mkdtemp(prefix="wb-bench-"))
    runs_dir = work / "runs"
    runs_dir.mkdir()
    os.environ.setdefault("XDG_CACHE_HOME", str(work / "cache"))
    cases, frames, frame_cpu = [], [], []
    try:
        for preset in presets:
            cases.append(pairs_for(preset, sets, runs_dir, size, args.pairs))
        for _ in range(args.frames):
            wall, cpu = first_frame(size, runs_dir)
            frames.append(round(wall, 3))
            if cpu is not None:
                frame_cpu.append(round(cpu, 3))
            print(f"first frame {wall:.2f}s (cpu {cpu}s)", file=sys.stderr)
        window_result = None
        if args.windows:
            window_result = windowed(presets[0], [*args.sets, "train.max_steps=1000000000"], runs_dir, size,
                                     args.window, args.windows)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    first = cases[0]
    print(json.dumps({
        **first, "cases": cases, "steps": args.steps, "terminal": args.size, "pairs": args.pairs,
        "first_frame_s": frames, "first_frame_median_s": statistics.median(frames) if frames else None,
        "first_frame_cpu_s": frame_cpu,
        "windowed": window_result, "cpu_count": os.cpu_count(), "load_average": os.getloadavg(),
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
