"""Profiling on request, the NVML monitor (with a fake NVML), and a CUDA-only no-per-step-sync check."""

from __future__ import annotations

import types

import pytest
import torch

from support import quick_preset
from workbench.training.trainer import Trainer
from workbench.training.gpu_monitor import GpuMonitor
from workbench.training.telemetry import Callback, TelemetryBuffer


@pytest.mark.slow
def test_profile_reports_top_operators_and_data_share(store):
    buffer = TelemetryBuffer()
    preset = quick_preset(**{"train.max_steps": 40, "train.eval_every": 0, "data.args.train_size": 512})
    trainer = Trainer(preset, store, callbacks=[buffer])
    trainer.profile(10)
    result = trainer.run()
    assert result.status == "completed"
    _, events = buffer.drain()
    profile = [e for e in events if e.kind == "profile"]
    assert len(profile) == 1
    text = profile[0].text
    assert "profile of 10 steps" in text and "waiting for data" in text and "ms/step" in text
    ops = [row["op"] for row in profile[0].data["rows"]]
    assert any(op in ("aten::addmm", "aten::mm", "aten::linear") for op in ops)
    assert any(e["kind"] == "profile" for e in store.events(result.run_id))
    with pytest.raises(ValueError):
        trainer.profile(0)


def test_cli_profile_prints_the_report(capsys):
    from workbench.cli import main

    assert main(["train", "mlp-quadrants", "--profile", "5", "--set", "train.max_steps=20"]) == 0
    assert "profile of 5 steps" in capsys.readouterr().err


class FakeNvml:
    NVML_TEMPERATURE_GPU = 0

    def __init__(self):
        self.initialised = self.shut_down = False

    def nvmlInit(self):
        self.initialised = True

    def nvmlShutdown(self):
        self.shut_down = True

    def nvmlDeviceGetHandleByIndex(self, index):
        return ("handle", index)

    def nvmlDeviceGetUtilizationRates(self, handle):
        return types.SimpleNamespace(gpu=87, memory=40)

    def nvmlDeviceGetMemoryInfo(self, handle):
        return types.SimpleNamespace(used=3 * 2**30, total=80 * 2**30)

    def nvmlDeviceGetTemperature(self, handle, sensor):
        return 64

    def nvmlDeviceGetPowerUsage(self, handle):
        return 310_500  # milliwatts


def test_gpu_monitor_samples_on_its_own_thread_at_most_once_a_second():
    nvml = FakeNvml()
    monitor = GpuMonitor.start_for(torch.device("cuda", 0), nvml=nvml)
    assert monitor is not None and nvml.initialised and monitor.interval >= 1.0
    import time

    deadline = time.time() + 5
    while not monitor.latest() and time.time() < deadline:
        time.sleep(0.05)
    values = monitor.latest()
    monitor.close()
    assert values == {"gpu/util_pct": 87.0, "gpu/mem_util_pct": 40.0, "gpu/used_mb": 3072.0, "gpu/temp_c": 64.0,
                      "gpu/power_w": 310.5}
    assert nvml.shut_down


def test_gpu_monitor_absent_on_cpu_or_without_a_driver():
    assert GpuMonitor.start_for(torch.device("cpu"), nvml=FakeNvml()) is None

    class NoDriver(FakeNvml):
        def nvmlInit(self):
            raise RuntimeError("NVML Shared Library Not Found")

    assert GpuMonitor.start_for(torch.device("cuda", 0), nvml=NoDriver()) is None


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (runs on GPU machines)")
def test_no_host_sync_between_logging_points_on_cuda(store):
    class SyncGuard(Callback):
        """Error on any host-device sync except while metrics are flushed."""

        def on_setup(self, trainer):
            torch.cuda.set_sync_debug_mode("error")

        def on_flush_start(self, trainer):
            torch.cuda.set_sync_debug_mode("default")

        def on_batch(self, trainer, batch):
            if trainer.step < trainer.preset.train.max_steps:  # the final eval and checkpoint may sync
                torch.cuda.set_sync_debug_mode("error")

        def on_end(self, trainer, status):
            torch.cuda.set_sync_debug_mode("default")

    preset = quick_preset(**{"train.max_steps": 60, "train.log_every": 20, "train.eval_every": 0,
                             "train.probe_every": 0, "train.device": "cuda"})
    result = Trainer(preset, store, callbacks=[SyncGuard()]).run()
    torch.cuda.set_sync_debug_mode("default")
    assert result.status == "completed", result.reason
