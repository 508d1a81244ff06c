"""Telemetry + diagnostics overhead: our headless Trainer vs the plain loop a user would write by hand.

Both train the same model on the same data with the same optimizer, schedule, clipping and batch size,
on one intra-op thread, in this process, alternating which goes first. Steps/s are timed over the
training loop alone: the bare loop from its first step to its last, ours from the trainer's own loop
clock (set-up, the final eval and the final checkpoint are not per-step costs). The figure is the
median over pairs of (ours / bare), by wall clock and by process CPU time (every thread, our metric
writer's included; ours from the end of set-up to its last training flush). `--method difference` times whole runs of --short and --long steps instead and
takes steps/s from their difference (noisier: four timings a pair instead of two). For the own loop,
`--method blocks` trains a bare and a watched copy of the loop in this one process in alternating blocks
of --long steps: the least noisy of the three (see measure_own_loop_blocks).

Peers (--peer, default: the one a user of the preset would pick instead): PyTorch Lightning (CSV
logger, progress bar off) for our own models, the Hugging Face Trainer for the HF presets, on the same
model, data, optimizer, schedule and clipping (benchmarks/peers.py), timed in the same pairs.
Any preset file works (`--preset benchmarks/custom/custom-mlp.toml`: a user's own model file at the
default train settings); `--device cuda` times the same on a GPU.

    .venv/bin/python -m benchmarks.overhead --preset mlp-quadrants --pairs 5
    .venv/bin/python -m benchmarks.overhead --case own-loop --pairs 7    # workbench.init + watch + log
    .venv/bin/python -m benchmarks.overhead --case own-loop --method blocks --pairs 25 --long 300
Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from contextlib import nullcontext
from pathlib import Path

import torch
from torch.utils.data import DataLoader, TensorDataset

from workbench.builders import build_data, build_model
from workbench.diagnostics import default_callbacks
from workbench.presets import load_preset
from workbench.store import RunStore
from benchmarks.peers import PEERS, default_peer
from workbench.training.batches import split_batch, to_device
from workbench.training.trainer import Trainer, seed_everything
from workbench.training.losses import build_loss
from workbench.training.optim import build_optimizer, build_scheduler
from workbench.training.telemetry import Callback


# ours / peer: at least 1.5x Lightning on small models, at least level with the HF Trainer (issue #19).
PEER_GOALS = {"lightning": 1.5, "hf_trainer": 1.0}


class Clock:
    """Wall and process CPU seconds since construction."""

    def __init__(self):
        self.wall, self.cpu = time.perf_counter(), time.process_time()

    def elapsed(self) -> tuple[float, float]:
        return time.perf_counter() - self.wall, time.process_time() - self.cpu


def bare_loop_seconds(preset, steps: int, device: torch.device | None = None) -> tuple[float, float]:
    """The loop a practitioner writes: batches, forward, loss, backward, clip, step, schedule (autocast
    and a GradScaler for bf16/fp16 on CUDA, as the trainer does)."""
    device = device or torch.device("cpu")
    seed_everything(preset.train.seed)
    data = build_data(preset)
    model = build_model(preset, data.info).to(device)
    optimizer = build_optimizer(model, preset.optim)
    scheduler = build_scheduler(optimizer, preset.schedule, preset.train.max_steps)
    loss_fn = build_loss(preset.train)
    clip = preset.train.grad_clip
    batch_size = preset.train.batch_size
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(preset.train.precision)
    scaler = torch.amp.GradScaler("cuda") if preset.train.precision == "fp16" else None
    train = data.train

    def step(x, y) -> None:
        with torch.autocast(device.type, dtype=dtype) if dtype is not None else nullcontext():
            if loss_fn is None:  # the model computes its own loss (Hugging Face style)
                loss = (model(**x, labels=y) if isinstance(x, dict) else model(x, labels=y))["loss"]
            else:
                output = model(**x) if isinstance(x, dict) else model(x)
                loss = loss_fn(getattr(output, "logits", output), y)
        (scaler.scale(loss) if scaler is not None else loss).backward()
        if scaler is not None:
            scaler.unscale_(optimizer)
        if clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
        if scaler is not None:
            scaler.step(optimizer)
            scaler.update()
        else:
            optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        scheduler.step()

    model.train()
    clock = Clock()
    if isinstance(train, TensorDataset):
        xs, ys = train.tensors
        n = len(train)
        perm, position = torch.randperm(n), 0
        for _ in range(steps):
            if position + batch_size > n:
                perm, position = torch.randperm(n), 0
            index = perm[position : position + batch_size]
            position += batch_size
            x, y = xs[index], ys[index]
            if device.type != "cpu":
                x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            step(x, y)
    else:
        loader = DataLoader(train, batch_size=batch_size, shuffle=True, drop_last=True, collate_fn=data.info.collate)
        done = 0
        while done < steps:
            for batch in loader:
                if device.type != "cpu":
                    batch = to_device(batch, device, non_blocking=True)
                step(*split_batch(batch))
                done += 1
                if done >= steps:
                    break
    if device.type == "cuda":
        torch.cuda.synchronize(device)  # the queued steps are part of the loop
    return clock.elapsed()


class LoopClock(Callback):
    """Process CPU seconds from the end of the trainer's set-up to its last training flush (the final
    evaluation and checkpoint come after it, as they come after the bare loop)."""

    def on_setup(self, trainer) -> None:
        self.started = self.last = time.process_time()

    def on_flush_start(self, trainer) -> None:
        self.last = time.process_time()

    @property
    def cpu(self) -> float:
        return self.last - self.started


def ours_seconds(preset, steps: int, runs_dir: Path, loop_only: bool = False) -> tuple[float, float]:
    """Wall and CPU time of Trainer.run() with the store, telemetry and diagnostics on: the whole run
    (set-up included), or with loop_only the trainer's loop clock and the CPU from set-up to the end."""
    preset = preset.model_copy(update={"train": preset.train.model_copy(update={"max_steps": steps})})
    store = RunStore(runs_dir)
    loop = LoopClock()
    trainer = Trainer(preset, store, callbacks=[*default_callbacks(preset), loop])
    clock = Clock()
    result = trainer.run()
    elapsed = clock.elapsed()
    store.close()
    if result.status != "completed":
        raise RuntimeError(f"benchmark run {result.status}: {result.reason}")
    return (trainer._loop_seconds, loop.cpu) if loop_only else elapsed


def rates(short_steps: int, short: tuple[float, float], long_steps: int, long: tuple[float, float]) -> tuple[float, float]:
    """Steps per wall second and per CPU second, from the difference of a short and a long run."""
    return tuple((long_steps - short_steps) / max(1e-9, b - a) for a, b in zip(short, long))


def measure(preset_name: str, pairs: int, short: int, long: int, overrides: list[str], method: str = "loop",
            device: str = "cpu", peer: str | None = "auto") -> dict:
    """Pairs of (bare, ours[, peer]) runs in rotating order; medians of ours / bare and ours / peer."""
    torch.set_num_threads(1)
    base = load_preset(preset_name, ["train.eval_every=0", "train.threads=1", f"train.device={device!r}", *overrides])
    preset_long = base.model_copy(update={"train": base.train.model_copy(update={"max_steps": long})})
    target = torch.device(device if device != "cuda" else "cuda:0")
    peer = default_peer(base) if peer == "auto" else peer
    legs = ["bare", "ours", *([peer] if peer else [])]
    ratios, ours_rates, bare_rates, cpu_ratios, peer_rates, peer_ratios = [], [], [], [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        for pair in range(pairs):
            order = legs[pair % len(legs):] + legs[: pair % len(legs)]
            if pair % 2:
                order.reverse()
            results = {}
            for which in order:
                folder = Path(tmp) / f"pair{pair}"
                if method == "loop":
                    if which == "bare":
                        seconds = bare_loop_seconds(preset_long, long, target)
                    elif which == "ours":
                        seconds = ours_seconds(preset_long, long, folder / "l", loop_only=True)
                    else:
                        seconds = PEERS[which](preset_long, long, target)
                    results[which] = tuple(long / max(1e-9, value) for value in seconds)
                elif which == "bare":
                    # The bare loop has no set-up to cancel; time its steps directly at the same lengths.
                    results["bare"] = rates(short, bare_loop_seconds(preset_long, short, target), long,
                                            bare_loop_seconds(preset_long, long, target))
                elif which == "ours":
                    results["ours"] = rates(short, ours_seconds(preset_long, short, folder / "s"), long,
                                            ours_seconds(preset_long, long, folder / "l"))
                else:
                    results[which] = tuple(long / max(1e-9, value) for value in PEERS[which](preset_long, long, target))
            ours_rates.append(results["ours"][0])
            bare_rates.append(results["bare"][0])
            ratios.append(results["ours"][0] / results["bare"][0])
            cpu_ratios.append(results["ours"][1] / results["bare"][1])
            line = (f"  {preset_name} pair {pair + 1}/{pairs}: bare {results['bare'][0]:.0f} steps/s, ours "
                    f"{results['ours'][0]:.0f} steps/s, ratio {ratios[-1]:.3f}; per CPU second "
                    f"{results['bare'][1]:.0f} vs {results['ours'][1]:.0f}, ratio {cpu_ratios[-1]:.3f}")
            if peer:
                peer_rates.append(results[peer][0])
                peer_ratios.append(results["ours"][0] / results[peer][0])
                line += f"; {peer} {results[peer][0]:.0f} steps/s, ours / {peer} {peer_ratios[-1]:.2f}"
            print(line, file=sys.stderr)
    report = {
        "benchmark": "overhead",
        "preset": preset_name,
        "device": device,
        "pairs": pairs,
        "method": method,
        "short_steps": short if method == "difference" else None,
        "long_steps": long,
        "bare_steps_per_s_median": statistics.median(bare_rates),
        "ours_steps_per_s_median": statistics.median(ours_rates),
        "ratio_median": statistics.median(ratios),
        "ratios": ratios,
        "cpu_ratio_median": statistics.median(cpu_ratios),
        "cpu_ratios": cpu_ratios,
        "goal": 0.97,
        "peer": peer,
    }
    if peer:
        report.update({"peer_steps_per_s_median": statistics.median(peer_rates),
                       "ours_over_peer_median": statistics.median(peer_ratios), "ours_over_peer": peer_ratios,
                       "peer_goal": PEER_GOALS[peer]})
    return report


class OwnLoop:
    """A hand-written loop on in-memory tensors (forward, loss, backward, clip, step, schedule); with
    `runs_dir` the same loop on the public API: `workbench.init`, `run.watch(model, optimizer, scheduler)`
    and `run.log({"loss": loss}, step=step)` every step."""

    def __init__(self, preset, runs_dir: Path | None = None):
        seed_everything(preset.train.seed)
        data = build_data(preset)
        if not isinstance(data.train, TensorDataset):
            raise ValueError("the own-loop case needs a preset with in-memory tensor data")
        self.model = build_model(preset, data.info)
        self.optimizer = build_optimizer(self.model, preset.optim)
        self.scheduler = build_scheduler(self.optimizer, preset.schedule, preset.train.max_steps)
        self.loss_fn = build_loss(preset.train)
        self.clip, self.batch_size = preset.train.grad_clip, preset.train.batch_size
        self.xs, self.ys = data.train.tensors
        self.model.train()
        self.run = None
        if runs_dir is not None:
            import workbench

            self.run = workbench.init(preset.name, config={"lr": preset.optim.lr}, runs_dir=runs_dir)
            self.run.watch(self.model, self.optimizer, self.scheduler)
        self.perm, self.position, self.step = torch.randperm(len(self.xs)), 0, 0

    def train(self, steps: int, settle: bool = False) -> tuple[float, float]:
        """Wall and process CPU seconds of `steps` more steps; with `settle`, and the store writer's commit
        of what they queued (which its own thread would otherwise make after they were timed)."""
        model, optimizer, scheduler, loss_fn, run = self.model, self.optimizer, self.scheduler, self.loss_fn, self.run
        # What a user writes; the bare copy calls torch's own function, never the wrapper a watched copy
        # in the same process installs (clip_watch).
        clip_grad_norm = torch.nn.utils.clip_grad_norm_ if run is not None else torch.nn.utils.clip_grad.clip_grad_norm_
        xs, ys, clip, batch_size, n = self.xs, self.ys, self.clip, self.batch_size, len(self.xs)
        perm, position = self.perm, self.position
        clock = Clock()
        for step in range(self.step, self.step + steps):
            if position + batch_size > n:
                perm, position = torch.randperm(n), 0
            index = perm[position : position + batch_size]
            position += batch_size
            loss = loss_fn(model(xs[index]), ys[index])
            loss.backward()
            if clip > 0:
                clip_grad_norm(model.parameters(), clip)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            scheduler.step()
            if run is not None:
                run.log({"loss": loss}, step=step)
        if settle and run is not None and run.session.writer is not None:
            run.session.writer.flush()
        elapsed = clock.elapsed()
        self.perm, self.position, self.step = perm, position, self.step + steps
        return elapsed

    def close(self) -> None:
        if self.run is not None:
            self.run.finish()
            self.run.store.close()


def own_loop_seconds(preset, steps: int, runs_dir: Path | None = None) -> tuple[float, float]:
    """`OwnLoop` timed over its steps only (init and finish not)."""
    loop = OwnLoop(preset, runs_dir)
    try:
        return loop.train(steps)
    finally:
        loop.close()


def _paired_report(preset_name: str, pairs: int, steps: int, method: str, pair_rates) -> dict:
    """`pairs` pairs, each `pair_rates(pair)` -> {"bare": (steps/s, steps per CPU s), "ours": (...)}; medians
    of the paired ratios by wall clock and by CPU."""
    ratios, cpu_ratios, bare_rates, ours_rates = [], [], [], []
    for pair in range(pairs):
        results = pair_rates(pair)
        bare_rates.append(results["bare"][0])
        ours_rates.append(results["ours"][0])
        ratios.append(results["ours"][0] / results["bare"][0])
        cpu_ratios.append(results["ours"][1] / results["bare"][1])
        print(f"  own loop pair {pair + 1}/{pairs}: bare {results['bare'][0]:.0f} steps/s, watched "
              f"{results['ours'][0]:.0f} steps/s, ratio {ratios[-1]:.3f}; per CPU second ratio "
              f"{cpu_ratios[-1]:.3f}", file=sys.stderr)
    return {
        "benchmark": "overhead-own-loop",
        "method": method,
        "preset": preset_name,
        "pairs": pairs,
        "steps": steps,
        "bare_steps_per_s_median": statistics.median(bare_rates),
        "ours_steps_per_s_median": statistics.median(ours_rates),
        "ratio_median": statistics.median(ratios),
        "ratios": ratios,
        "cpu_ratio_median": statistics.median(cpu_ratios),
        "cpu_ratios": cpu_ratios,
        "goal": 0.97,
    }


def _rates(steps: int, seconds: tuple[float, float]) -> tuple[float, float]:
    return tuple(steps / max(1e-9, value) for value in seconds)


BLOCKS_PER_PAIR = 4


def measure_own_loop_blocks(preset_name: str, pairs: int, steps: int, overrides: list[str],
                            null: bool = False) -> dict:
    """Each pair builds a bare and a watched copy of the loop (watch + log every step) in this process and
    trains them in alternating blocks of `steps` (BLOCKS_PER_PAIR each; which goes first alternates), so
    neighbouring blocks share whatever else the machine is doing. Fresh copies each pair: two identical
    copies kept for a whole run differ by up to 10% (where their tensors landed in memory), which the pairs
    would all share; rebuilt, that is noise the median of the pairs removes. Each watched block ends with
    the store writer's commit of what it queued (timed with it, where a user's loop would have it done on
    the writer's thread). With `null` both copies are bare: what the method reads when nothing differs."""
    torch.set_num_threads(1)
    preset = load_preset(preset_name, ["train.eval_every=0", "train.threads=1",
                                       f"train.max_steps={(steps + 100) * BLOCKS_PER_PAIR}", *overrides])
    with tempfile.TemporaryDirectory() as tmp:
        def pair_rates(pair: int) -> dict:
            bare = OwnLoop(preset)
            ours = OwnLoop(preset, None if null else Path(tmp) / f"pair{pair}")
            try:
                bare.train(100)  # warm-up: first-call costs out of the timed blocks
                ours.train(100, settle=True)
                seconds = {"bare": [0.0, 0.0], "ours": [0.0, 0.0]}
                for block in range(BLOCKS_PER_PAIR):
                    for which in (("bare", "ours") if (pair + block) % 2 == 0 else ("ours", "bare")):
                        wall, cpu = bare.train(steps) if which == "bare" else ours.train(steps, settle=True)
                        seconds[which][0] += wall
                        seconds[which][1] += cpu
                return {which: _rates(steps * BLOCKS_PER_PAIR, tuple(value)) for which, value in seconds.items()}
            finally:
                ours.close()

        report = _paired_report(preset_name, pairs, steps, "blocks", pair_rates)
    report.update(blocks_per_pair=BLOCKS_PER_PAIR, null=null)
    return report


def measure_own_loop(preset_name: str, pairs: int, steps: int, overrides: list[str]) -> dict:
    """The same hand-written loop bare and on the public API (watch + log every step), each pair two
    separate runs."""
    torch.set_num_threads(1)
    preset = load_preset(preset_name, ["train.eval_every=0", "train.threads=1", f"train.max_steps={steps}",
                                       *overrides])
    with tempfile.TemporaryDirectory() as tmp:
        def pair_rates(pair: int) -> dict:
            order = ("bare", "ours") if pair % 2 == 0 else ("ours", "bare")
            return {which: _rates(steps, own_loop_seconds(preset, steps, Path(tmp) / f"pair{pair}"
                                                          if which == "ours" else None)) for which in order}

        return _paired_report(preset_name, pairs, steps, "runs", pair_rates)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="mlp-quadrants")
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument("--short", type=int, default=200)
    parser.add_argument("--long", type=int, default=1200)
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--method", choices=("loop", "difference", "blocks"), default="loop",
                        help="blocks (own-loop only): a bare and a watched copy of the loop in one process, "
                             "trained in alternating blocks of --long steps")
    parser.add_argument("--null", action="store_true",
                        help="with --method blocks: both copies bare, to read the method's own bias and spread")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--peer", default="auto", choices=("auto", "none", *PEERS),
                        help="the other trainer timed in the same pairs (auto: HF Trainer on HF presets, else Lightning)")
    parser.add_argument("--case", choices=("trainer", "own-loop"), default="trainer",
                        help="trainer: our preset Trainer vs a bare loop (and a peer); own-loop: a bare loop "
                             "with workbench.init + watch + log every step vs the same loop bare")
    args = parser.parse_args(argv)
    if args.case == "own-loop":
        if args.method == "blocks":
            report = measure_own_loop_blocks(args.preset, args.pairs, args.long, args.overrides, args.null)
        else:
            report = measure_own_loop(args.preset, args.pairs, args.long, args.overrides)
        print(json.dumps(report))
        return 0
    if args.method == "blocks":
        parser.error("--method blocks is for --case own-loop")
    peer = None if args.peer == "none" else args.peer
    print(json.dumps(measure(args.preset, args.pairs, args.short, args.long, args.overrides, args.method,
                             args.device, peer)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
