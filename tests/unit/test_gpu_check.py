"""benchmarks/gpu_check.py on a machine without CUDA: it skips cleanly, and its checks run against a fake
torch.cuda (sync debug mode, memory_stats) around real CPU runs."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from benchmarks import gpu_check  # noqa: E402
from workbench.training.telemetry import TelemetryBatch  # noqa: E402

MIB = 2**20


class FakeCuda(gpu_check.Cuda):
    """torch.cuda as the check sees it: records sync debug modes; memory_stats from a dict."""

    def __init__(self, available: bool = True, stats: dict | None = None):
        self._available = available
        self.mode = "default"
        self.modes: list[str] = []
        self.stats = stats or {}

    def available(self) -> bool:
        return self._available

    def set_sync_debug_mode(self, mode: str) -> None:
        self.mode = mode
        self.modes.append(mode)

    def memory_stats(self) -> dict:
        return self.stats

    def describe(self) -> dict:
        return {"name": "fake"}


def test_without_cuda_it_says_so_and_exits_0(capsys):
    out: list[str] = []
    assert gpu_check.main([], cuda=FakeCuda(available=False), emit=out.append) == 0
    report = json.loads(out[0])
    assert report["cuda"] is False and "no CUDA device" in report["skipped"]
    assert "no CUDA device here" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA: the check would run")
def test_the_command_exits_0_on_this_machine():
    import subprocess

    done = subprocess.run([sys.executable, "-m", "benchmarks.gpu_check"], capture_output=True, text=True, timeout=120,
                          cwd=REPO)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1])["cuda"] is False


def test_sync_guard_arms_inside_steps_and_relaxes_at_flushes_and_probes(tmp_path):
    cuda = FakeCuda()
    case = gpu_check.train_case("mlp-quadrants", "fp32", 60, tmp_path / "runs", cuda, device="cpu",
                                extra=["train.log_every=20", "train.probe_every=25", "train.threads=1"])
    assert case["status"] == "completed" and case["no_host_sync"] and case["ok"]
    assert case["flushes"] == 3
    # armed at set-up; each flush relaxes and re-arms; probes at steps 0, 25, 50 relax and re-arm; the last
    # flush (step 60) stays relaxed for the final evaluation; "default" again at the end.
    modes = cuda.modes
    assert modes[0] == "error" and modes[-1] == "default"
    assert all(a != b for a, b in zip(modes, modes[1:]))  # only changes are recorded
    assert modes.count("error") == 1 + 3 + 2  # set-up, three probes, two re-armed flushes


def test_a_host_sync_inside_a_step_fails_the_case_and_names_where(tmp_path, monkeypatch):
    """Make Tensor.item() raise as torch does for a sync in mode "error": the CPU trainer reads the loss
    with .item() every step, which is exactly what the guard must catch on a GPU."""
    cuda = FakeCuda()
    real_item = torch.Tensor.item

    def item(self):
        if cuda.mode == "error":
            raise RuntimeError("called a synchronizing CUDA operation")
        return real_item(self)

    monkeypatch.setattr(torch.Tensor, "item", item)
    # the step as on CUDA, where gradients are never kept in the CPU-only flat buffer (flat_grads.py)
    from workbench.training.flat_grads import FlatGrads

    monkeypatch.setattr(FlatGrads, "suits", staticmethod(lambda *args: False))
    case = gpu_check.train_case("mlp-quadrants", "fp32", 20, tmp_path / "runs", cuda, device="cpu",
                                extra=["train.threads=1", "train.probe_every=0"])
    monkeypatch.undo()
    assert case["status"] == "failed" and not case["no_host_sync"] and not case["ok"]
    assert "(from trainer.py:" in case["sync_at"] and "in _train)" in case["sync_at"]
    assert cuda.mode == "default"  # left as it was found


def _memory_batch(step: int, allocated: float, reserved: float, peak: float) -> TelemetryBatch:
    rows = [(step, "loss", 1.0), (step, "mem/cuda_allocated_mb", allocated), (step, "mem/cuda_reserved_mb", reserved),
            (step, "mem/cuda_peak_mb", peak)]
    return TelemetryBatch(step=step, elapsed=0.0, rows=rows)


class _Trainer:
    class preset:
        name, task = "fake", "classification"

        class train:
            max_steps, grad_clip = 100, 0.0


def test_memory_chart_is_checked_against_memory_stats():
    stats = {"allocated_bytes.all.current": 300 * MIB, "reserved_bytes.all.current": 512 * MIB,
             "allocated_bytes.all.peak": 410 * MIB}
    probe = gpu_check.memory_probe(FakeCuda(stats=stats))
    probe.on_setup(_Trainer())
    probe.on_batch(_Trainer(), TelemetryBatch(step=5, elapsed=0.0, rows=[(5, "val_loss", 1.0)]))  # no memory rows
    assert probe.flushes == 0
    probe.on_batch(_Trainer(), _memory_batch(10, 300.0, 512.0, 410.0))
    result = probe.result()
    assert result["ok"] and result["flushes"] == 1
    assert result["lines"]["mem/cuda_peak_mb"] == {"chart_mb": 410.0, "memory_stats_mb": 410.0, "ok": True}

    wrong = gpu_check.memory_probe(FakeCuda(stats=stats))
    wrong.on_setup(_Trainer())
    wrong.on_batch(_Trainer(), _memory_batch(10, 300.0, 300.0, 410.0))  # reserved charted as allocated
    result = wrong.result()
    assert not result["ok"] and not result["lines"]["mem/cuda_reserved_mb"]["ok"]
    assert result["lines"]["mem/cuda_allocated_mb"]["ok"]


def test_memory_check_fails_without_readings():
    assert not gpu_check.compare_memory({}, {})["ok"]
    assert not gpu_check.compare_memory({"mem/cuda_allocated_mb": 1.0}, {"allocated_bytes.all.current": MIB})["ok"]


@pytest.mark.slow
def test_the_whole_report_on_cpu_with_a_fake_cuda(tmp_path):
    args = gpu_check.parse_args(["--preset", "mlp-quadrants", "--precision", "fp32", "--steps", "40", "--pairs", "1",
                                 "--overhead-preset", "mlp-quadrants", "--dashboard-seconds", "0"])
    report = gpu_check.run_checks(args, FakeCuda(), device="cpu")
    assert set(report["checks"]) == {"training_completes", "no_host_sync_between_flushes",
                                     "memory_chart_matches_memory_stats", "trainer_vs_bare", "dashboard"}
    assert report["checks"]["training_completes"] and report["checks"]["no_host_sync_between_flushes"]
    # On CPU there are no CUDA memory rows: the memory check has nothing to match and says so.
    assert not report["checks"]["memory_chart_matches_memory_stats"]
    assert report["overhead"][0]["preset"] == "mlp-quadrants" and report["overhead"][0]["ratio_median"] > 0
    json.dumps(report)


def test_optimizers_use_fused_kernels_only_when_every_trainable_parameter_is_on_cuda():
    """GradScaler.step reads the found-inf flag back (a host sync every fp16 step) unless the optimizer is
    fused: on CUDA the trainer builds fused Adam/AdamW/SGD, on CPU torch's defaults."""
    from types import SimpleNamespace

    from workbench.config import OptimConfig
    from workbench.training.optim import build_optimizer, fused_kwargs

    def param(cuda: bool, floating: bool = True, trainable: bool = True):
        return SimpleNamespace(is_cuda=cuda, is_floating_point=lambda: floating, requires_grad=trainable)

    assert fused_kwargs([param(True), param(True), param(False, trainable=False)]) == {"fused": True}
    assert fused_kwargs([param(True), param(False)]) == {}
    assert fused_kwargs([param(True, floating=False)]) == {}
    assert fused_kwargs([]) == {}
    model = torch.nn.Linear(3, 2)
    for name in ("adamw", "adam", "sgd"):
        optimizer = build_optimizer(model, OptimConfig(name=name))
        assert not optimizer.param_groups[0].get("fused"), name
