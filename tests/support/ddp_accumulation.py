"""Run under `torchrun --nproc_per_node=2`: a short preset run with gradient accumulation on gloo.

Each rank counts DDP's gradient all-reduces with a comm hook and writes {rank, steps, all_reduces} to
OUT/rank<N>.json; rank 0 also writes the logged per-step gradient norms (of the reduced gradients) and
the final weights. With WB_ALWAYS_SYNC=1 every micro-step syncs (the reference the no_sync() runs must
equal).   python -m torch.distributed.run --nproc_per_node=2 tests/support/ddp_accumulation.py OUT
"""

from __future__ import annotations

import json
import os
import sys
from contextlib import nullcontext
from pathlib import Path

import torch
from torch.distributed.algorithms.ddp_comm_hooks.default_hooks import allreduce_hook

from workbench.presets import load_preset
from workbench.store import RunStore
from workbench.training import distributed
from workbench.training.telemetry import Callback

ACCUM, STEPS = 4, 6


class CountAllReduces(Callback):
    """Registers a counting comm hook on the trainer's DDP module once set-up has built it."""

    calls = 0

    def __init__(self):
        self.trainer = None

    def on_setup(self, view) -> None:
        def hook(state, bucket):
            CountAllReduces.calls += 1
            return allreduce_hook(state, bucket)

        self.trainer.forward_model.register_comm_hook(None, hook)


def main(out: Path) -> None:
    from workbench.training.trainer import Trainer

    if os.environ.get("WB_ALWAYS_SYNC") == "1":
        distributed.sync_gradients = lambda model, last: nullcontext()
    preset = load_preset("mlp-quadrants", [f"train.max_steps={STEPS}", f"train.grad_accum={ACCUM}", "train.threads=1",
                                           "train.eval_every=0", "train.probe_every=0", "train.log_every=1",
                                           "model.args.dropout=0.0", "train.batch_size=16"])
    store = RunStore(out / "runs")
    counter = CountAllReduces()
    trainer = Trainer(preset, store, callbacks=[counter])
    counter.trainer = trainer
    rank = trainer.rank
    result = trainer.run()
    report = {"rank": rank, "status": result.status, "reason": result.reason, "steps": result.steps,
              "all_reduces": CountAllReduces.calls}
    if rank == 0:
        report["grad_norms"] = [value for _, value in store.metric_series(result.run_id, "grad_norm")]
        torch.save(trainer.model.state_dict(), out / "weights.pt")
    (out / f"rank{rank}.json").write_text(json.dumps(report))
    store.close()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
