"""torchrun support: process-group set-up from the environment and the few collectives the trainer needs.

Under `torchrun --nproc_per_node=N -m workbench train P`, every rank runs the same Trainer; rank 0 alone
writes the store, findings and checkpoints. The backend is NCCL on CUDA and gloo on CPU.
"""

from __future__ import annotations

import os
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel


@dataclass(frozen=True)
class Topology:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def topology_from_env() -> Topology:
    """What torchrun tells this process (WORLD_SIZE, RANK, LOCAL_RANK); a plain process is rank 0 of 1."""
    return Topology(int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)),
                    int(os.environ.get("LOCAL_RANK", 0)))


def init_process_group(topology: Topology) -> None:
    if not topology.distributed or dist.is_initialized():
        return
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(topology.local_rank)
    dist.init_process_group(backend=backend)


def destroy_process_group() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def broadcast_object(value: Any, topology: Topology) -> Any:
    """Rank 0's value on every rank."""
    if not topology.distributed:
        return value
    holder = [value]
    dist.broadcast_object_list(holder, src=0)
    return holder[0]


def mean_across_ranks(values: list[float], device: torch.device, topology: Topology) -> list[float]:
    """Average a window of per-step values across ranks (one collective per flush, not per step)."""
    if not topology.distributed or not values:
        return values
    tensor = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return (tensor / topology.world_size).tolist()


def collective_device() -> torch.device:
    """Where a collective's tensor must be: this rank's GPU under NCCL, the host under gloo."""
    if dist.is_initialized() and dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def mean_across_ranks_if_aligned(values: list[float], topology: Topology) -> list[float] | None:
    """`mean_across_ranks` for windows whose length the ranks do not promise to share (a user's own loop
    logs what it likes): one small collective compares the lengths first. None where they differ."""
    if not topology.distributed:
        return values
    device = collective_device()
    lengths = torch.tensor([len(values), -len(values)], dtype=torch.int64, device=device)
    dist.all_reduce(lengths, op=dist.ReduceOp.MAX)
    longest, shortest = int(lengths[0]), -int(lengths[1])
    if longest != shortest:
        return None
    return mean_across_ranks(values, device, topology)


def wraps_ddp(model: Any) -> bool:
    """Whether the model (or the module torch.compile wrapped) is a DistributedDataParallel."""
    return isinstance(getattr(model, "_orig_mod", model), DistributedDataParallel)


def sync_gradients(model: Any, last: bool):
    """The context for one micro-step's forward and backward under gradient accumulation: DDP all-reduces
    the gradients in every backward, so all but the last micro-step run under its `no_sync()` and the
    accumulated gradients are reduced once per optimizer step (as nanoGPT does). Elsewhere a no-op."""
    if last or not wraps_ddp(model):
        return nullcontext()
    return getattr(model, "_orig_mod", model).no_sync()
