"""Checkpoints: atomic, code-free files (temp file, fsync, rename; loaded with weights_only=True), and
the keeper that names, records and rotates one run's checkpoints.

A checkpoint holds everything an exact resume needs: model, optimizer, scheduler, scaler, EMA, the
RNG states of python, numpy, torch and CUDA, the data order position, the step and the best val loss.
Only tensors and plain Python values go in, so `torch.load(weights_only=True)` can read it back and a
checkpoint file can never run code.
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import torch


def rng_state() -> dict[str, Any]:
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state = {
        "python": _plain(random.getstate()),
        "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached": float(cached)},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _plain(value: Any) -> Any:
    """random.getstate() nests tuples; weights_only loading accepts lists/tuples of ints."""
    return [_plain(v) if type(v) in (tuple, list) else v for v in value] if isinstance(value, (tuple, list)) else value


def _tuples(value: Any) -> Any:
    return tuple(_tuples(v) for v in value) if isinstance(value, list) else value


def restore_rng_state(state: dict[str, Any]) -> None:
    random.setstate(_tuples(state["python"]))
    numpy_state = state["numpy"]
    np.random.set_state((numpy_state["kind"], numpy_state["keys"].numpy().astype(np.uint32), numpy_state["pos"],
                         numpy_state["has_gauss"], numpy_state["cached"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def atomic_save(payload: dict[str, Any], path: Path) -> None:
    """Write to a temp file in the same folder, fsync it, rename over the target, fsync the folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as handle:
            torch.save(payload, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def load_checkpoint(path: Path, map_location: Any = "cpu") -> dict[str, Any]:
    """Load a checkpoint without unpickling arbitrary objects."""
    return torch.load(path, map_location=map_location, weights_only=True)


class CheckpointKeeper:
    """One run's checkpoint folder: saves under a step-based name, records each file in the store and
    keeps the newest `keep` non-best ones ("best.pt" is kept apart). Rank 0 only."""

    def __init__(self, store, run_id: str, keep: int, kept: Iterable[Path] = ()):
        self.store = store
        self.run_id = run_id
        self.keep = keep
        self.kept: list[Path] = list(kept)  # oldest first

    @property
    def folder(self) -> Path:
        return self.store.run_dir(self.run_id) / "checkpoints"

    def save(self, payload: dict[str, Any], step: int, kind: str, val_loss: float | None = None) -> Path:
        path = self.folder / ("best.pt" if kind == "best" else f"step-{step:09d}.pt")
        atomic_save(payload, path)
        self.store.add_checkpoint(self.run_id, step, str(path), kind, val_loss)
        if kind != "best":
            if path in self.kept:
                self.kept.remove(path)
            self.kept.append(path)
            while len(self.kept) > self.keep:
                old = self.kept.pop(0)
                old.unlink(missing_ok=True)
                self.store.remove_checkpoint(self.run_id, str(old))
        return path


def resumable_checkpoints(store, run_id: str) -> list[Path]:
    """The run's non-best checkpoint files that exist, newest first."""
    return [Path(c["path"]) for c in store.checkpoints(run_id)
            if c["kind"] != "best" and Path(c["path"]).is_file()]
