"""How `run.watch` sits on a user's model and optimizer: the kept inputs of the last training forward (the
NaN replay's batch) without a forward hook, one step pre-hook with a post-hook only around probe steps,
and a closure given to step() positionally (LBFGS's usual call) checked after it ran."""

from __future__ import annotations

import copy
import io
import pickle

import pytest
import torch
from torch import nn

import workbench
from workbench.store import RunStore
from workbench.training.forward_inputs import keep_training_inputs
from workbench.training.run import PROBE_EVERY

SLOT = "_compiled_call_impl"


def quadrants(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 2, generator=generator)
    return x, (x[:, 0] > 0).long() * 2 + (x[:, 1] > 0).long()


def mlp() -> nn.Sequential:
    return nn.Sequential(nn.Linear(2, 32), nn.ReLU(), nn.Linear(32, 4))


class NanAfter(nn.Module):
    """Passes its input through until `after` training forwards, then makes it NaN."""

    def __init__(self, after: int):
        super().__init__()
        self.after, self.calls = after, 0

    def forward(self, x):
        self.calls += 1
        return x * float("nan") if self.calls > self.after else x


def step_once(model, optimizer, x, y):
    loss = nn.functional.cross_entropy(model(x), y)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return loss


def test_the_inputs_are_kept_without_a_forward_hook_and_the_users_own_hooks_still_run(runs_dir):
    torch.manual_seed(0)
    model = mlp()
    seen = []
    model.register_forward_hook(lambda module, args, output: seen.append(args[0].shape[0]))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    x, y = quadrants(64, 0)
    with workbench.init("kept", runs_dir=runs_dir) as run:
        run.watch(model, optimizer)
        assert SLOT in model.__dict__ and not model._forward_pre_hooks
        step_once(model, optimizer, x[:16], y[:16])
        with torch.no_grad():
            model(x)  # an evaluation forward is not the batch to replay
        assert run._inputs.last[0][0].shape[0] == 16
        assert seen == [16, 64]
    assert SLOT not in model.__dict__  # finish puts the model back as it was


def test_a_watched_model_can_be_pickled_and_deep_copied(runs_dir):
    """torch.save(model) and copy.deepcopy(model) leave the slot out, as they do a compiled module's."""
    torch.manual_seed(0)
    model = mlp()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    x, y = quadrants(64, 0)
    with workbench.init("pickled", runs_dir=runs_dir) as run:
        run.watch(model, optimizer)
        step_once(model, optimizer, x, y)
        buffer = io.BytesIO()
        torch.save(model, buffer)
        buffer.seek(0)
        loaded = torch.load(buffer, weights_only=False)
        twin = copy.deepcopy(model)
        plain = pickle.loads(pickle.dumps(model))
        for other in (loaded, twin, plain):
            assert SLOT not in other.__dict__
            assert torch.equal(other(x), model(x))


def test_a_module_compiled_after_watch_is_kept_through_the_pre_hook_and_its_nan_still_names_the_layer(runs_dir):
    """module.compile() after watch takes the slot; the next flush notices and keeps the inputs through
    a forward pre-hook, so the NaN replay still has its batch."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(2, 32), nn.ReLU(), NanAfter(after=30), nn.Linear(32, 4))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    x, y = quadrants(512, 0)
    with workbench.init("compiled-later", runs_dir=runs_dir) as run:
        run.watch(model, optimizer)
        step_once(model, optimizer, x[:64], y[:64])
        model.__dict__[SLOT] = model._call_impl  # what module.compile() does (without compiling here)
        run._flush()
        assert run._inputs.hook is not None and model._forward_pre_hooks
        for step in range(1, 100):
            step_once(model, optimizer, x[step % 8 * 64:][:64], y[step % 8 * 64:][:64])
            run.log({"step_seen": step}, step=step)
            if run.should_stop:
                break
    store = RunStore(runs_dir)
    assert store.get_run(run.id)["status"] == "diverged"
    findings = [f for f in store.findings(run.id) if f["code"].startswith("nonfinite")]
    assert findings and findings[0]["layer"] == "2"
    assert not model._forward_pre_hooks and model.__dict__[SLOT] == model._call_impl  # the user's slot stays


def test_a_module_with_its_slot_taken_before_watch_uses_the_pre_hook(runs_dir):
    model = mlp()
    model.__dict__[SLOT] = model._call_impl
    kept = keep_training_inputs(model)
    assert kept.hook is not None and not kept.uses_slot
    x, _ = quadrants(8, 0)
    model(x)
    assert kept.last[0][0] is x
    kept.remove()
    assert not model._forward_pre_hooks and model.__dict__[SLOT] == model._call_impl


def test_the_post_hook_is_on_only_around_probe_steps_and_every_probe_still_lands(runs_dir):
    torch.manual_seed(0)
    model = mlp()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    x, y = quadrants(512, 0)
    post_hooks_on = []
    steps = 2 * PROBE_EVERY + 3
    with workbench.init("probes", runs_dir=runs_dir) as run:
        run.watch(model, optimizer)
        for step in range(steps):
            step_once(model, optimizer, x[step % 8 * 64:][:64], y[step % 8 * 64:][:64])
            post_hooks_on.append(bool(optimizer._optimizer_step_post_hooks))
            run.log({"step_seen": step}, step=step)
    assert len(optimizer._optimizer_step_pre_hooks) == 0 and len(optimizer._optimizer_step_post_hooks) == 0
    near_probe = {s for p in (0, PROBE_EVERY, 2 * PROBE_EVERY) for s in (p - 1, p) if s >= 0}
    assert {s for s, on in enumerate(post_hooks_on) if on} == near_probe
    store = RunStore(runs_dir)
    assert [s for s, _ in store.metric_series(run.id, "grad_norm/0")] == [0, PROBE_EVERY, 2 * PROBE_EVERY]
    assert [s for s, _ in store.metric_series(run.id, "update_ratio/2")] == [0, PROBE_EVERY, 2 * PROBE_EVERY]
    assert [s for s, _ in store.metric_series(run.id, "grad_norm")] == list(range(steps))


@pytest.mark.parametrize("optimizer_kind, positional", [("sgd", True), ("sgd", False), ("lbfgs", True)])
def test_a_closure_given_to_step_is_run_before_its_gradients_are_checked(runs_dir, optimizer_kind, positional):
    """optimizer.step(closure), LBFGS's usual call: the norm recorded at each step is the one of the
    gradients its closure made (its first call, at the step's weights), not the step before's."""
    torch.manual_seed(0)
    model = mlp()
    optimizer = (torch.optim.SGD(model.parameters(), lr=0.5) if optimizer_kind == "sgd"
                 else torch.optim.LBFGS(model.parameters(), lr=0.5, max_iter=3))
    x, y = quadrants(256, 0)
    first_norms: dict[int, float] = {}
    with workbench.init("closure", runs_dir=runs_dir) as run:
        run.watch(model, optimizer)
        for step in range(6):
            calls = []

            def closure():
                optimizer.zero_grad()
                loss = nn.functional.cross_entropy(model(x[step * 32:][:64]), y[step * 32:][:64])
                loss.backward()
                if not calls:
                    norms = torch.stack([p.grad.norm() for p in model.parameters()])
                    first_norms[step] = float(torch.linalg.vector_norm(norms))
                calls.append(1)
                return loss

            loss = optimizer.step(closure) if positional else optimizer.step(closure=closure)
            run.log({"loss": loss.detach()}, step=step)
    recorded = dict(RunStore(runs_dir).metric_series(run.id, "grad_norm"))
    assert sorted(recorded) == list(range(6))
    assert [recorded[s] for s in range(6)] == pytest.approx([first_norms[s] for s in range(6)], rel=1e-5)
