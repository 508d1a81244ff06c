"""cpu_contention: other processes holding the cores torch's intra-op threads need, measured from
/proc/stat; scripted readings for the rule, and one real run beside busy processes."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from types import SimpleNamespace

import pytest

from support.diagnostics import fast_preset
from workbench.diagnostics.contention import CpuContentionDetector, CpuUsage


class Machine:
    """Scripted /proc/stat and os.times readings: each second others use `others` cores, we use `ours`,
    and the run advances `rate` steps."""

    def __init__(self):
        self.now = 0.0
        self.busy = 0.0
        self.own = 0.0
        self.step = 0

    def advance(self, seconds: float, others: float, ours: float, rate: float) -> None:
        self.now += seconds
        self.busy += (others + ours) * seconds
        self.own += ours * seconds
        self.step += int(rate * seconds)

    def read(self):
        return self.busy, self.own


class Context:
    def __init__(self, machine: Machine, device: str = "cpu"):
        self.machine = machine
        self.trainer = SimpleNamespace(device=SimpleNamespace(type=device))
        self.reports: list[dict] = []

    @property
    def step(self) -> int:
        return self.machine.step

    def report(self, code, step, message, evidence=None, layer=None, severity=None):
        self.reports.append({"code": code, "step": step, "message": message, "evidence": evidence,
                             "severity": severity})


def run(phases, cores=2, threads=2, device="cpu"):
    """Feed (seconds, others, ours, steps/s) phases to a detector, flushing every quarter second."""
    machine = Machine()
    ctx = Context(machine, device)
    detector = CpuContentionDetector(usage=machine, clock=lambda: machine.now, cores=cores, threads=threads)
    detector.setup(ctx)
    for seconds, others, ours, rate in phases:
        for _ in range(int(seconds * 4)):
            machine.advance(0.25, others, ours, rate)
            detector.after_flush(ctx, 10)
    return ctx.reports


def test_contention_that_slows_a_running_job_is_a_warning_with_the_numbers():
    reports = run([(6, 0.0, 2.0, 400), (8, 1.0, 1.0, 92)])
    assert [r["severity"] for r in reports] == ["warning"]
    evidence = reports[0]["evidence"]
    assert evidence["other_cores"] == pytest.approx(1.0, abs=0.05) and evidence["cores"] == 2
    assert evidence["threads"] == 2 and evidence["steps_per_s"] == pytest.approx(92, abs=4)
    assert evidence["best_steps_per_s"] == pytest.approx(400, abs=4)
    assert "1.0 of 2 cores" in reports[0]["message"] and "slowed" in reports[0]["message"]


def test_contention_from_the_start_is_info_and_repeats_are_rate_limited():
    reports = run([(50, 1.0, 1.0, 92)])
    assert [r["severity"] for r in reports] == ["info", "info"]  # at ~5 s, then again after 30 s


def test_no_finding_without_contention_that_matters():
    assert run([(20, 0.3, 2.0, 400)]) == []  # a little background work
    assert run([(20, 1.0, 1.0, 92)], cores=4, threads=2) == []  # cores to spare for every thread
    assert run([(20, 1.0, 1.0, 92)], threads=1) == []  # one thread does not spin on another
    assert run([(20, 1.0, 1.0, 92)], device="cuda") == []
    assert run([(3, 1.0, 1.0, 92), (1, 0.0, 2.0, 400), (3, 1.0, 1.0, 92)]) == []  # bursts under the patience


@pytest.mark.skipif(not os.path.exists("/proc/stat"), reason="needs Linux's /proc/stat")
def test_cpu_usage_reads_this_machine():
    first = CpuUsage().read()
    deadline = time.process_time() + 0.2
    while time.process_time() < deadline:  # burn 0.2 s of CPU in this process
        sum(range(1000))
    second = CpuUsage().read()
    assert second[1] - first[1] >= 0.15  # our own CPU time
    assert second[0] - first[0] >= second[1] - first[1] - 0.05  # the machine's includes ours


@pytest.mark.skipif(not os.path.exists("/proc/stat") or not 2 <= (os.cpu_count() or 1) <= 8,
                    reason="needs Linux and 2-8 cores")
@pytest.mark.slow
def test_a_real_run_beside_busy_processes_reports_cpu_contention(tmp_path):
    from workbench.diagnostics.engine import DiagnosticsEngine
    from workbench.store import RunStore
    from workbench.training.trainer import Trainer

    cores = os.cpu_count()
    preset = fast_preset(**{"train.threads": cores, "train.max_steps": 1_000_000, "train.eval_every": 0})
    store = RunStore(tmp_path / "runs")
    busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(cores - 1)]
    try:
        trainer = Trainer(preset, store, callbacks=[DiagnosticsEngine([CpuContentionDetector(patience=2.0)])])
        trainer.start()
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and not any(code == "cpu_contention" for code, _ in trainer.findings):
            time.sleep(0.2)
        trainer.stop()
        trainer.thread.join(60)
    finally:
        for process in busy:
            process.kill()
            process.wait()
    found = [f for f in store.findings(trainer.run_id) if f["code"] == "cpu_contention"]
    store.close()
    assert found, "no cpu_contention finding beside busy processes"
    assert found[0]["evidence"]["other_cores"] >= 0.5 and found[0]["evidence"]["threads"] == cores
