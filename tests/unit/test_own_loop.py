"""The public API for a user's own loop: `workbench.init` -> Run (watch, log, should_stop, finish), with real loops."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest
import torch
from torch import nn

import workbench
from support import run_cli
from workbench.store import RunStore


def quadrants(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 2, generator=generator)
    return x, (x[:, 0] > 0).long() * 2 + (x[:, 1] > 0).long()


def train_loop(run, model, optimizer, steps: int, eval_every: int = 100, lr_scheduler=None) -> int:
    """The loop a practitioner writes, logging train and val metrics; returns the steps it ran."""
    x, y = quadrants(2048, 0)
    xv, yv = quadrants(512, 1)
    generator = torch.Generator().manual_seed(2)
    for step in range(steps):
        batch = torch.randint(0, len(x), (64,), generator=generator)
        loss = nn.functional.cross_entropy(model(x[batch]), y[batch])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if lr_scheduler is not None:
            lr_scheduler.step()
        run.log({"loss": loss}, step=step)
        if (step + 1) % eval_every == 0:
            model.eval()
            with torch.no_grad():
                out = model(xv)
                run.log({"val_loss": nn.functional.cross_entropy(out, yv),
                         "val_accuracy": (out.argmax(dim=1) == yv).float().mean()}, step=step)
            model.train()
        if run.should_stop:
            return step + 1
    return steps


def mlp(depth: int = 2, width: int = 64, activation=nn.ReLU) -> nn.Sequential:
    layers, inputs = [], 2
    for _ in range(depth):
        layers += [nn.Linear(inputs, width), activation()]
        inputs = width
    return nn.Sequential(*layers, nn.Linear(inputs, 4))


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_a_healthy_loop_is_recorded_charted_and_raises_no_warnings(runs_dir):
    torch.manual_seed(0)
    model = mlp()
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.01)
    with workbench.init("my-exp", config={"lr": 3e-3, "note": "healthy"}, runs_dir=runs_dir) as run:
        run.watch(model, optimizer)
        train_loop(run, model, optimizer, 600)
        run.log({"my_custom_metric": 1.5})  # a name the workbench does not know: stored and charted all the same
    assert run.status == "completed"
    store = RunStore(runs_dir)
    stored = store.get_run(run.id)
    assert stored["preset"] == "my-exp" and stored["config"] == {"lr": 3e-3, "note": "healthy"}
    assert stored["steps"] == 600 and stored["params"] == sum(p.numel() for p in model.parameters())
    names = set(store.metric_names(run.id))
    assert {"loss", "grad_norm", "lr", "val_loss", "val_accuracy", "best_val_loss", "steps_per_s",
            "samples_per_s", "mem/rss_mb", "my_custom_metric"} <= names
    assert {"grad_norm/0", "grad_norm/4", "update_ratio/2"} <= names  # probes: per-layer norms and ratios
    assert [s for s, _ in store.metric_series(run.id, "loss")] == list(range(600))
    assert store.metric_series(run.id, "lr")[0][1] == pytest.approx(3e-3)
    assert all(math.isfinite(v) and v > 0 for _, v in store.metric_series(run.id, "grad_norm"))

    shown = run_cli("show", run.id, "--json", "--runs-dir", str(runs_dir), timeout=120)
    assert shown.returncode == 0, shown.stderr
    summary = json.loads(shown.stdout)
    assert summary["status"] == "completed" and summary["preset"] == "my-exp" and summary["steps"] == 600
    assert summary["metrics"]["val_accuracy"] > 0.9 and summary["metrics"]["val_loss"] < 0.5
    assert summary["throughput"]["steps_per_second"] > 0
    assert [f for f in summary["findings"] if f["severity"] != "info"] == []


class Blowup(nn.Module):
    """A custom layer whose forward turns to NaN after `after` training calls (a sqrt of a negative)."""

    def __init__(self, after: int):
        super().__init__()
        self.after, self.calls = after, 0

    def forward(self, x):
        if self.training and torch.is_grad_enabled():
            self.calls += 1
        if self.calls > self.after:
            return torch.sqrt(x - x.abs().max() - 1.0)
        return x


class WithBlowup(nn.Module):
    def __init__(self, after: int):
        super().__init__()
        self.fc1, self.act, self.bad, self.fc2 = nn.Linear(2, 32), nn.ReLU(), Blowup(after), nn.Linear(32, 4)

    def forward(self, x):
        return self.fc2(self.bad(self.act(self.fc1(x))))


def test_nan_from_a_custom_layer_skips_the_step_names_the_layer_and_ends_diverged(runs_dir):
    torch.manual_seed(0)
    model = WithBlowup(after=40)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    seen: dict[str, torch.Tensor] = {}

    class Snapshot:  # the weights just before the bad step, to show they are kept
        def __init__(self):
            model.fc1.register_forward_pre_hook(lambda m, a: seen.update(
                {k: v.detach().clone() for k, v in model.state_dict().items()}) if model.bad.calls == 40 else None)

    Snapshot()
    run = workbench.init("nan-loop", runs_dir=runs_dir)
    run.watch(model, optimizer)
    steps = train_loop(run, model, optimizer, 200)
    assert run.should_stop and steps == 41  # the loop broke right after the bad step
    assert run.finish() == "diverged"
    assert all(torch.equal(seen[k], v) for k, v in model.state_dict().items())  # the step changed nothing
    store = RunStore(runs_dir)
    assert store.get_run(run.id)["status"] == "diverged"
    findings = {(f["code"], f["layer"]): f for f in store.findings(run.id)}
    assert ("nonfinite_activation", "bad") in findings and ("nonfinite_grad", "bad") in findings
    finding = findings[("nonfinite_grad", "bad")]
    assert finding["step"] == 40 and finding["severity"] == "critical" and "`bad`" in finding["message"]
    assert [c["kind"] for c in store.checkpoints(run.id)] == ["last_good"]


def test_a_deep_sigmoid_stack_reports_vanishing_gradients_at_the_first_layer(runs_dir):
    torch.manual_seed(0)
    model = mlp(depth=10, width=32, activation=nn.Sigmoid)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    with workbench.init("sigmoid-stack", runs_dir=runs_dir) as run:
        run.watch(model, optimizer)
        train_loop(run, model, optimizer, 420, eval_every=1000)
    vanishing = [f for f in RunStore(runs_dir).findings(run.id) if f["code"] == "vanishing_gradients"]
    assert [f["layer"] for f in vanishing] == ["0"] and vanishing[0]["step"] == 200  # the 2nd probe in a row
    assert vanishing[0]["evidence"]["late_median"] > 1e3 * vanishing[0]["evidence"]["layer_grad_norm"]


def test_set_lr_keeps_the_schedule_shape_and_a_stop_ends_the_run_stopped(runs_dir):
    torch.manual_seed(0)
    model = mlp(depth=1, width=16)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=50, gamma=0.5)
    run = workbench.init("steered", runs_dir=runs_dir)
    run.watch(model, optimizer, scheduler)
    x, y = quadrants(256, 0)
    for step in range(200):
        if step == 20:
            run.session.control.set_lr(0.01)  # what `workbench control RUN set-lr 0.01` queues
        if step == 120:
            run.session.control.stop()
        loss = nn.functional.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        scheduler.step()
        run.log({"loss": loss})
        if run.should_stop:
            break
    assert step == 120 and run.finish() == "stopped"
    lrs = dict(RunStore(runs_dir).metric_series(run.id, "lr"))
    assert lrs[19] == pytest.approx(0.1) and lrs[20] == pytest.approx(0.01)
    assert lrs[60] == pytest.approx(0.005)  # StepLR halved it at step 50, from the new level
    assert RunStore(runs_dir).get_run(run.id)["reason"].startswith("stopped on request")


def test_an_exception_in_the_with_block_fails_the_run_with_its_traceback(runs_dir):
    with pytest.raises(RuntimeError, match="data loader broke"):
        with workbench.init("broken", runs_dir=runs_dir) as run:
            run.log({"loss": 1.0}, step=0)
            raise RuntimeError("data loader broke")
    stored = RunStore(runs_dir).get_run(run.id)
    assert stored["status"] == "failed" and stored["reason"] == "RuntimeError: data loader broke"
    assert "raise RuntimeError" in stored["traceback"]


def test_a_loop_that_is_not_watched_is_recorded_with_the_curve_diagnostics_only(runs_dir):
    run = workbench.init("plain", config={"epochs": 3}, runs_dir=runs_dir)
    for step in range(300):
        run.log({"loss": torch.tensor(1.0 / (step + 1)), "tokens": step * 10.0})
    assert run.finish() == "completed"
    store = RunStore(runs_dir)
    assert len(store.metric_series(run.id, "loss")) == 300 and store.metric_series(run.id, "tokens")[-1] == (299, 2990.0)
    assert not [e for e in store.events(run.id) if e["kind"] == "error"]  # no detector switched off
    assert run.diagnostics.detectors and all(d.name != "nonfinite" for d in run.diagnostics.detectors)


def test_bad_input_is_one_clear_error(runs_dir):
    with pytest.raises(ValueError, match="name"):
        workbench.init("", runs_dir=runs_dir)
    with pytest.raises(TypeError, match="config: must be a dict"):
        workbench.init("x", config=[1, 2], runs_dir=runs_dir)
    run = workbench.init("x", runs_dir=runs_dir)
    with pytest.raises(ValueError, match="'loss': expected a number"):
        run.log({"loss": "low"})
    with pytest.raises(ValueError, match="'loss': a tensor with 3 elements"):
        run.log({"loss": torch.ones(3)})
    with pytest.raises(ValueError, match="'loss': a tensor with 0 elements"):
        run.log({"loss": torch.ones(0)})
    with pytest.raises(ValueError, match="'loss': a complex tensor"):
        run.log({"acc": 0.5, "loss": torch.tensor(1 + 2j)})
    for step in (-1, True, 2**63, 1.0):
        with pytest.raises(ValueError, match="step: must be a non-negative integer"):
            run.log({"loss": 1.0}, step=step)
    run.log({"loss": torch.ones(1, 1)}, step=3)  # one element in any shape is one number
    run._flush()
    run.session.writer.flush()
    assert [(row[0], row[1]) for row in run.store.metric_series(run.id, "loss")] == [(3, 1.0)]
    assert run.store.metric_series(run.id, "acc") == []  # a refused call records none of its metrics
    with pytest.raises(TypeError, match="optimizer: must be a torch.optim.Optimizer"):
        run.watch(nn.Linear(2, 2), "sgd")
    with pytest.raises(ValueError, match="status: must be one of"):
        run.finish("great")
    run.finish()


def test_import_workbench_stays_light():
    code = "import sys, workbench; print('torch' in sys.modules, callable(workbench.init))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.stdout.split() == ["False", "True"], done.stderr


def test_a_run_of_your_own_loop_is_not_resumed_from_a_preset(runs_dir):
    run = workbench.init("mine", config={"lr": 0.1}, runs_dir=runs_dir)
    run.log({"loss": 1.0}, step=0)
    run.finish("interrupted")
    done = run_cli("train", "--resume", run.id, "--runs-dir", str(runs_dir), timeout=120)
    assert done.returncode == 2 and "your own training loop" in done.stderr and "run your script" in done.stderr


def test_the_recorded_gradient_norm_is_the_fused_one_and_probes_come_every_probe_every_steps(runs_dir):
    """A small float32 CPU model takes the flat form of the global norm (one copy, one dot product):
    the norm recorded every step is the fused form's, and the per-layer probes land on their steps."""
    from workbench.training.run import PROBE_EVERY

    torch.manual_seed(0)
    model = mlp()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    x, y = quadrants(512, 0)
    steps = 2 * PROBE_EVERY + 5
    with workbench.init("norms", runs_dir=runs_dir) as run:
        run.watch(model, optimizer)
        assert run._flat_norm
        for step in range(steps):
            loss = nn.functional.cross_entropy(model(x[step % 8 * 64:][:64]), y[step % 8 * 64:][:64])
            optimizer.zero_grad()
            loss.backward()
            grads = [p.grad for p in model.parameters()]
            fused = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)))
            optimizer.step()
            run.log({"loss": loss, "fused_norm": fused}, step=step)
    store = RunStore(runs_dir)
    recorded = store.metric_series(run.id, "grad_norm")
    fused = store.metric_series(run.id, "fused_norm")
    assert [s for s, _ in recorded] == list(range(steps))
    assert [v for _, v in recorded] == pytest.approx([v for _, v in fused], rel=1e-5)
    assert [s for s, _ in store.metric_series(run.id, "grad_norm/0")] == [0, PROBE_EVERY, 2 * PROBE_EVERY]


def clipping_loop(runs_dir, clip, steps: int = 30, name: str = "clipped"):
    """A loop that clips before the step; returns the run and what its clip calls returned."""
    torch.manual_seed(0)
    model = mlp()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    x, y = quadrants(512, 0)
    returned = []
    with workbench.init(name, runs_dir=runs_dir) as run:
        run.watch(model, optimizer)
        for step in range(steps):
            loss = nn.functional.cross_entropy(model(x[step % 8 * 64:][:64]), y[step % 8 * 64:][:64]) * 20
            optimizer.zero_grad()
            loss.backward()
            returned.append(clip(model))  # the norm clip_grad_norm_ returns (clip_grad_value_: None)
            optimizer.step()
            run.log({"loss": loss}, step=step)
    return run, returned


def test_a_loop_that_clips_records_its_own_pre_clip_norm_without_a_second_one(runs_dir, monkeypatch):
    """torch.nn.utils.clip_grad_norm_ called by the loop hands the hook its norm (before clipping): the
    hook computes none of its own, and torch's function is itself again once the run ends."""
    import workbench.training.run as run_module

    original = torch.nn.utils.clip_grad_norm_
    computed = []
    monkeypatch.setattr(run_module, "host_grad_norm", lambda *a: computed.append(1) or math.nan)
    run, returned = clipping_loop(runs_dir, lambda model: torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0))
    assert computed == [] and run.status == "completed"
    recorded = [v for _, v in RunStore(runs_dir).metric_series(run.id, "grad_norm")]
    assert recorded == pytest.approx([float(n) for n in returned], rel=1e-6) and max(recorded) > 1.0  # pre-clip: above the bound
    assert torch.nn.utils.clip_grad_norm_ is original


@pytest.mark.parametrize("clip", [
    lambda model: torch.nn.utils.clip_grad_norm_(list(model.parameters())[:2], 1.0),  # some parameters only
    lambda model: torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0, norm_type=1.0),  # another norm
    lambda model: torch.nn.utils.clip_grad_value_(model.parameters(), 0.01),  # another kind of clipping
])
def test_clipping_that_is_not_the_global_l2_norm_of_the_watched_parameters_is_measured_by_the_hook(runs_dir, clip):
    run, _ = clipping_loop(runs_dir, clip)
    store = RunStore(runs_dir)
    recorded = [v for _, v in store.metric_series(run.id, "grad_norm")]
    assert len(recorded) == 30 and all(math.isfinite(v) and v > 0 for v in recorded)
    # the hook measured the gradients the optimizer got: after the loop's clipping
    torch.manual_seed(0)
    model = mlp()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    x, y = quadrants(512, 0)
    expected = []
    for step in range(30):
        loss = nn.functional.cross_entropy(model(x[step % 8 * 64:][:64]), y[step % 8 * 64:][:64]) * 20
        optimizer.zero_grad()
        loss.backward()
        clip(model)
        expected.append(float(torch.linalg.vector_norm(torch.stack(torch._foreach_norm(
            [p.grad for p in model.parameters()])))))
        optimizer.step()
    assert recorded == pytest.approx(expected, rel=1e-5)


def test_a_last_good_checkpoint_that_cannot_be_written_is_said_and_the_run_still_ends_diverged(runs_dir, monkeypatch):
    def refuse(self, kind="manual"):
        raise OSError(28, "No space left on device")

    from workbench.training.run import Run

    monkeypatch.setattr(Run, "checkpoint", refuse)
    torch.manual_seed(0)
    model = WithBlowup(after=10)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    run = workbench.init("nan-loop", runs_dir=runs_dir)
    run.watch(model, optimizer)
    train_loop(run, model, optimizer, 50)
    assert run.finish() == "diverged"
    errors = [e["text"] for e in RunStore(runs_dir).events(run.id, kind="error")]
    assert errors == ["last_good checkpoint failed: OSError: [Errno 28] No space left on device"], errors


def test_checkpoints_a_framework_saved_are_listed_by_show_and_gone_ones_drop_out(runs_dir, tmp_path):
    model = mlp()
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    with workbench.init("framework-saves", runs_dir=runs_dir) as run:
        run.watch(model, optimizer)
        train_loop(run, model, optimizer, 20, eval_every=10)
        first, second = tmp_path / "checkpoint-10", tmp_path / "checkpoint-20"
        first.mkdir()
        run.add_checkpoint(first, "periodic", step=10)
        first.rmdir()  # the framework keeps only its newest
        second.mkdir()
        run.add_checkpoint(second, "manual")
        own = run.checkpoint()
    shown = json.loads(run_cli("show", run.id, "--json").stdout)["checkpoints"]
    assert {(c["kind"], c["step"], c["path"]) for c in shown} == {("manual", 20, str(second)),
                                                                 ("manual", 20, str(own))}
    text = run_cli("show", run.id).stdout
    assert f"checkpoint manual at step 20: {second}" in text and str(first) not in text
