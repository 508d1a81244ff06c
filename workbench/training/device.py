"""Device choice and honest memory readings (CUDA allocator counters, or process RSS on CPU)."""

from __future__ import annotations

import os

import torch


def pick_device(preference: str = "auto") -> torch.device:
    """auto: cuda, then mps, then cpu. Asking for a missing accelerator is a config error."""
    from workbench.errors import ConfigError

    if preference == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if preference == "cuda" and not torch.cuda.is_available():
        raise ConfigError("train.device: cuda requested but no CUDA device is available")
    if preference == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ConfigError("train.device: mps requested but MPS is not available")
    if preference == "cuda":
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    return torch.device(preference)


class MemoryMeter:
    """Memory readings in MiB, named for what they are: `cuda_*` from the allocator, else `rss`.

    CUDA counters are host-side bookkeeping in the caching allocator: reading them does not sync.
    """

    def __init__(self, device: torch.device):
        self.device = device
        self._process = None
        if device.type != "cuda":
            import psutil

            self._process = psutil.Process()

    def read(self) -> dict[str, float]:
        mib = 1024 * 1024
        if self.device.type == "cuda":
            return {
                "mem/cuda_allocated_mb": torch.cuda.memory_allocated(self.device) / mib,
                "mem/cuda_reserved_mb": torch.cuda.memory_reserved(self.device) / mib,
                "mem/cuda_peak_mb": torch.cuda.max_memory_allocated(self.device) / mib,
            }
        return {"mem/rss_mb": self._process.memory_info().rss / mib}
