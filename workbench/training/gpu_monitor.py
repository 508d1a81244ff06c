"""GPU utilisation, memory, temperature and power from NVML, polled on its own thread at <= 1 Hz.

NVML calls never touch the CUDA context, so they cost the training thread nothing; the trainer reads
the latest sample at each flush. Without nvidia-ml-py or an NVIDIA driver the monitor is simply absent.
"""

from __future__ import annotations

import threading
from typing import Any


class GpuMonitor:
    """Background NVML sampler for one device index."""

    def __init__(self, index: int = 0, interval: float = 1.0, nvml: Any = None):
        self.interval = max(1.0, interval)  # NVML at most once a second
        self._nvml = nvml
        self._index = index
        self._latest: dict[str, float] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @classmethod
    def start_for(cls, device, nvml: Any = None) -> "GpuMonitor | None":
        """A running monitor for a CUDA device, or None when NVML is not available."""
        if getattr(device, "type", None) != "cuda":
            return None
        if nvml is None:
            try:
                import pynvml as nvml  # from nvidia-ml-py
            except ImportError:
                return None
        try:
            nvml.nvmlInit()
        except Exception:  # no driver: monitoring is a nicety, never a failure
            return None
        monitor = cls(device.index or 0, nvml=nvml)
        monitor.start()
        return monitor

    def start(self) -> None:
        self._handle = self._nvml.nvmlDeviceGetHandleByIndex(self._index)
        self._thread = threading.Thread(target=self._loop, name="workbench-nvml", daemon=True)
        self._thread.start()

    def sample(self) -> dict[str, float]:
        nvml = self._nvml
        values: dict[str, float] = {}
        try:
            util = nvml.nvmlDeviceGetUtilizationRates(self._handle)
            values["gpu/util_pct"] = float(util.gpu)
            values["gpu/mem_util_pct"] = float(util.memory)
            memory = nvml.nvmlDeviceGetMemoryInfo(self._handle)
            values["gpu/used_mb"] = memory.used / 2**20
            values["gpu/temp_c"] = float(nvml.nvmlDeviceGetTemperature(self._handle, nvml.NVML_TEMPERATURE_GPU))
            values["gpu/power_w"] = nvml.nvmlDeviceGetPowerUsage(self._handle) / 1000.0
        except Exception:
            pass  # some readings are unsupported on some boards; keep what we got
        return values

    def _loop(self) -> None:
        while not self._stop.is_set():
            values = self.sample()
            with self._lock:
                self._latest = values
            self._stop.wait(self.interval)

    def latest(self) -> dict[str, float]:
        with self._lock:
            return dict(self._latest)

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        try:
            self._nvml.nvmlShutdown()
        except Exception:
            pass
