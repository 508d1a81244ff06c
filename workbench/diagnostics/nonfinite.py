"""Non-finite loss, gradients and activations: name the module where NaN/inf first appears.

The trainer checks the loss and the gradient norm of every step (on CPU, before the optimizer touches
the weights) and calls `on_nonfinite` with the offending batch. This detector replays that batch once
with the still-good weights:

- forward, with pre/post hooks on every module: the first module (in completion order) whose output is
  non-finite while its inputs were finite is where NaN/inf was produced; if its inputs were already
  non-finite, either the batch itself was (the data) or functional code in the calling module's
  forward made them (that module is named);
- backward, with hooks on every module's input and output tensors and on every parameter: the module
  whose output gradient was finite but whose input gradient was not is where the gradient broke, and
  the first parameter (in backward order) with a non-finite gradient is reported as evidence.

Buffers (BatchNorm statistics) and the RNG are restored afterwards, so the replay leaves no trace
(under DDP only the forward is replayed: a backward on one rank would start a gradient all-reduce). On
CUDA the loss is read back once per flush and the batch is gone by then: no replay, the engine reports
the step. If the weights had grown far beyond their initial norm, or the loss was climbing before the
blow-up, the learning rate is named as the likely cause (lr_too_high).
"""

from __future__ import annotations

import math
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from workbench.diagnostics.base import Detector, RunContext, fmt

# Weights whose total norm grew this many times since the start of the run point at a too-high LR.
WEIGHT_GROWTH_FACTOR = 10.0
# A flushed loss this many times its best block mean before a blow-up is a divergence pattern.
RISING_LOSS_FACTOR = 2.0


def _tensors(value: Any, depth: int = 0):
    """Floating-point tensors inside nested tuples/lists/dicts/model outputs."""
    if depth > 6:
        return
    if isinstance(value, torch.Tensor):
        if value.is_floating_point() or value.is_complex():
            yield value
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _tensors(item, depth + 1)
    elif isinstance(value, dict) or hasattr(value, "items"):
        try:
            items = list(value.items())
        except Exception:
            return
        for _, item in items:
            yield from _tensors(item, depth + 1)


def _nonfinite_count(value: Any) -> int:
    return sum(int((~torch.isfinite(t.detach())).sum()) for t in _tensors(value))


def _all_finite(value: Any) -> bool:
    return all(bool(torch.isfinite(t.detach()).all()) for t in _tensors(value))


@dataclass
class Replay:
    """What replaying one batch showed."""

    reproduced: bool = False
    loss: float = math.nan
    input_nonfinite: int = 0
    target_nonfinite: int = 0
    first_bad_output: str | None = None  # first module (completion order) with a non-finite output
    origin: str | None = None  # module that produced non-finite values from finite inputs
    origin_kind: str | None = None  # "module" | "caller" | "input" | "loss"
    grad_origin: str | None = None  # module whose backward produced the first non-finite gradient
    grad_origin_kind: str | None = None  # "module" | "loss"
    first_bad_param: str | None = None
    bad_params: int = 0
    grad_norm: float = math.nan  # the global norm as the trainer computes it (float32: it can overflow)
    largest_grad_param: str | None = None
    largest_grad_norm: float = math.nan
    error: str | None = None
    calls: list[tuple[str, bool, bool]] = field(default_factory=list)


def _display(name: str) -> str:
    return name or "(model)"


class _ForwardRecorder:
    """Pre/post hooks on every module: input and output finiteness per call, and who called whom."""

    def __init__(self, model: nn.Module, grads: bool):
        self.calls: list[tuple[str, bool, bool, str | None]] = []  # (name, inputs finite, output finite, caller)
        self.stack: list[tuple[str, bool]] = []
        self.grad_events: list[tuple[str, str, bool]] = []  # (where "in"/"out", module, finite) in backward order
        self.grads = grads
        self.handles = []
        for name, module in model.named_modules():
            self.handles.append(module.register_forward_pre_hook(self._pre(name), with_kwargs=True))
            self.handles.append(module.register_forward_hook(self._post(name), with_kwargs=True, always_call=True))

    def _pre(self, name: str):
        def hook(module, args, kwargs):
            inputs = (args, kwargs)
            self.stack.append((name, _all_finite(inputs)))
            if self.grads:
                self._watch(inputs, "in", name)

        return hook

    def _post(self, name: str):
        def hook(module, args, kwargs, output):
            if not self.stack:
                return
            _, inputs_finite = self.stack.pop()
            caller = self.stack[-1][0] if self.stack else None
            self.calls.append((name, inputs_finite, _all_finite(output), caller))
            if self.grads:
                self._watch(output, "out", name)

        return hook

    def _watch(self, value: Any, where: str, name: str) -> None:
        for tensor in _tensors(value):
            if tensor.requires_grad:
                def grad_hook(grad, where=where, name=name):
                    self.grad_events.append((where, name, bool(torch.isfinite(grad).all())))

                self.handles.append(tensor.register_hook(grad_hook))

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()
        self.handles = []


def _forward_loss(trainer, model: nn.Module, x: Any, y: Any) -> torch.Tensor:
    """The trainer's loss on one batch, through the unwrapped model so module hooks fire."""
    if trainer.loss_fn is None:
        output = model(**x, labels=y) if isinstance(x, dict) else model(x, labels=y)
        return output["loss"] if isinstance(output, dict) or hasattr(output, "keys") else output[0]
    output = model(**x) if isinstance(x, dict) else model(x)
    return trainer.loss_fn(getattr(output, "logits", output), y)


def replay_batch(trainer, batch: Any) -> Replay:
    """Replay `batch` through trainer.model with hooks; leaves weights, buffers, grads and RNG as they were."""
    from workbench.training.batches import split_batch, to_device

    model: nn.Module = trainer.model
    result = Replay()
    batch = to_device(batch, trainer.device)
    x, y = split_batch(batch)
    result.input_nonfinite = _nonfinite_count(x)
    result.target_nonfinite = _nonfinite_count(y)
    buffers = {name: buf.detach().clone() for name, buf in model.named_buffers()}
    rng = torch.get_rng_state()
    cuda_rng = torch.cuda.get_rng_state_all() if trainer.device.type == "cuda" else None
    params = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
    saved_grads = [p.grad for _, p in params]
    autocast = (torch.autocast(trainer.device.type, dtype=trainer.autocast_dtype)
                if getattr(trainer, "autocast_dtype", None) is not None else nullcontext())
    recorder = _ForwardRecorder(model, grads=True)
    param_events: list[tuple[str, bool]] = []
    param_handles = []
    for name, p in params:
        def param_hook(grad, name=name):
            param_events.append((name, bool(torch.isfinite(grad).all())))

        param_handles.append(p.register_hook(param_hook))
    was_training = model.training
    try:
        model.train()
        for _, p in params:
            p.grad = None
        with autocast:
            loss = _forward_loss(trainer, model, x, y)
        result.loss = float(loss.detach().float())
        result.calls = [(name, a, b) for name, a, b, _ in recorder.calls]
        _locate_forward(result, recorder, model)
        # Under DDP a backward would fire the reducer's hooks on this rank alone: forward replay only.
        if math.isfinite(result.loss) and loss.requires_grad and getattr(trainer, "world_size", 1) == 1:
            loss.backward()
            _locate_backward(result, recorder, param_events)
            _measure_grads(result, params)
        result.reproduced = (not math.isfinite(result.loss)) or result.bad_params > 0 or not math.isfinite(
            result.grad_norm)
    except Exception as error:  # a replay that fails must not hide the divergence itself
        result.error = f"{type(error).__name__}: {error}"
    finally:
        recorder.remove()
        for handle in param_handles:
            handle.remove()
        for (_, p), grad in zip(params, saved_grads):
            p.grad = grad
        with torch.no_grad():
            for name, buf in model.named_buffers():
                if name in buffers:
                    buf.copy_(buffers[name])
        torch.set_rng_state(rng)
        if cuda_rng is not None:
            torch.cuda.set_rng_state_all(cuda_rng)
        model.train(was_training)
    return result


def _measure_grads(result: Replay, params: list[tuple[str, nn.Parameter]]) -> None:
    """The global gradient norm the trainer saw (float32) and the largest parameter gradient (float64)."""
    named = [(name, p.grad) for name, p in params if p.grad is not None]
    if not named:
        return
    with torch.no_grad():
        norms32 = torch.stack(torch._foreach_norm([g for _, g in named])).float()
        result.grad_norm = float(torch.linalg.vector_norm(norms32))
        norms64 = [float(torch.linalg.vector_norm(g.double())) for _, g in named]
    index = max(range(len(named)), key=lambda i: norms64[i] if math.isfinite(norms64[i]) else math.inf)
    result.largest_grad_param, result.largest_grad_norm = named[index][0], norms64[index]


def _locate_forward(result: Replay, recorder: _ForwardRecorder, model: nn.Module) -> None:
    for name, inputs_finite, output_finite, caller in recorder.calls:
        if output_finite:
            continue
        result.first_bad_output = name
        if inputs_finite:
            result.origin, result.origin_kind = name, "module"
        elif result.input_nonfinite:
            result.origin, result.origin_kind = None, "input"
        else:
            # Finite batch, non-finite inputs: code in the caller's own forward made them.
            result.origin, result.origin_kind = caller if caller is not None else "", "caller"
        return
    if not math.isfinite(result.loss):
        result.origin_kind = "input" if result.target_nonfinite else "loss"


def _locate_backward(result: Replay, recorder: _ForwardRecorder, param_events: list[tuple[str, bool]]) -> None:
    bad = [name for name, finite in param_events if not finite]
    result.bad_params = len(bad)
    result.first_bad_param = bad[0] if bad else None
    if not bad and all(finite for _, _, finite in recorder.grad_events):
        return
    out_ok: dict[str, bool] = {}
    in_bad: dict[str, int] = {}
    for order, (where, name, finite) in enumerate(recorder.grad_events):
        if where == "out":
            out_ok[name] = out_ok.get(name, True) and finite
        elif not finite and name not in in_bad:
            in_bad[name] = order
    candidates = [name for name in in_bad if out_ok.get(name, True)]
    # The deepest candidate: containers around the culprit also pass the test, their children come first.
    leaves = [c for c in candidates if not any(o != c and (c == "" or o.startswith(c + ".")) for o in candidates)]
    if leaves:
        result.grad_origin = min(leaves, key=lambda name: in_bad[name])
        result.grad_origin_kind = "module"
    elif any(where == "out" and name == "" and not finite for where, name, finite in recorder.grad_events):
        result.grad_origin_kind = "loss"
    if result.grad_origin is None and result.first_bad_param is not None:
        from workbench.training.step import layer_of

        result.grad_origin, result.grad_origin_kind = layer_of(result.first_bad_param), "module"


def _weight_norm(model: nn.Module) -> float:
    with torch.no_grad():
        params = [p.detach() for p in model.parameters() if p.requires_grad]
        if not params:
            return 0.0
        return float(torch.linalg.vector_norm(torch.stack(torch._foreach_norm(params)).float()))


class NonFiniteDetector(Detector):
    """Replays the offending batch to name the module; adds lr_too_high when the weights had blown up."""

    name = "nonfinite"

    def __init__(self):
        self.initial_weight_norm: float | None = None
        self.layer_norms: dict[str, float] = {}

    def setup(self, ctx: RunContext) -> None:
        self.initial_weight_norm = _weight_norm(ctx.trainer.model)

    def nonfinite(self, ctx: RunContext, step: int, batch: Any, what: str) -> None:
        trainer = ctx.trainer
        weight_norm = _weight_norm(trainer.model)
        growth = (weight_norm / self.initial_weight_norm) if self.initial_weight_norm else None
        evidence: dict[str, Any] = {"what": what, "weight_norm": weight_norm, "weight_growth": growth}
        replay = replay_batch(trainer, batch) if batch is not None else None
        self._report(ctx, step, what, replay, evidence)
        self._lr_verdict(ctx, step, growth, weight_norm)

    def _report(self, ctx: RunContext, step: int, what: str, replay: Replay | None, evidence: dict) -> None:
        symptom = "nonfinite_loss" if what == "loss" else "nonfinite_grad"
        noun = "loss" if what == "loss" else "gradient"
        if replay is None:
            ctx.report(symptom, step, f"non-finite {noun} at step {step:,} (detected at a flush on the GPU; the "
                       "batch is no longer available to replay)", evidence)
            return
        evidence.update({"replay_loss": replay.loss, "input_nonfinite_values": replay.input_nonfinite,
                         "target_nonfinite_values": replay.target_nonfinite,
                         "first_nonfinite_output": replay.first_bad_output,
                         "first_nonfinite_grad_param": replay.first_bad_param,
                         "nonfinite_grad_params": replay.bad_params})
        if replay.error:
            evidence["replay_error"] = replay.error
        if replay.input_nonfinite or replay.target_nonfinite:
            parts = []
            if replay.input_nonfinite:
                parts.append(f"{replay.input_nonfinite:,} NaN/inf values in the inputs")
            if replay.target_nonfinite:
                parts.append(f"{replay.target_nonfinite:,} in the targets")
            ctx.report(symptom, step, f"non-finite {noun} at step {step:,}: the batch itself contains "
                       f"{' and '.join(parts)}", evidence)
            ctx.report("nonfinite_input", step, f"the training batch at step {step:,} contains {' and '.join(parts)}"
                       + (f"; first non-finite output in `{_display(replay.first_bad_output)}`"
                          if replay.first_bad_output is not None else ""), evidence)
            return
        if replay.origin_kind in ("module", "caller"):
            layer = replay.origin or None
            where = (f"`{_display(replay.origin)}`" if replay.origin_kind == "module" else
                     f"code in the forward of `{_display(replay.origin)}` (before it called "
                     f"`{_display(replay.first_bad_output)}`)")
            layer_norm = self._module_weight_norm(ctx.trainer.model, replay.origin)
            if layer_norm is not None:
                evidence["layer_weight_norm"] = layer_norm
            ctx.report(symptom, step, f"non-finite {noun} at step {step:,}, first produced by {where}", evidence,
                       layer=layer)
            ctx.report("nonfinite_activation", step, f"{where} output NaN/inf from finite inputs at step {step:,}"
                       + (f" (its weights' norm: {fmt(layer_norm)})" if layer_norm is not None else ""),
                       evidence, layer=layer)
            return
        if replay.grad_origin is not None or replay.grad_origin_kind == "loss":
            layer = replay.grad_origin or None
            where = (f"the backward of `{_display(replay.grad_origin)}`" if replay.grad_origin is not None
                     else "the backward of the loss function")
            ctx.report("nonfinite_grad", step, f"non-finite gradient at step {step:,} with a finite loss "
                       f"({fmt(replay.loss)}), first produced by {where}"
                       + (f"; first parameter hit: `{replay.first_bad_param}`" if replay.first_bad_param else ""),
                       evidence, layer=layer)
            return
        if not math.isfinite(replay.grad_norm) and replay.largest_grad_param is not None:
            from workbench.training.step import layer_of

            layer = layer_of(replay.largest_grad_param)
            evidence.update({"largest_grad_param": replay.largest_grad_param,
                             "largest_grad_norm": replay.largest_grad_norm})
            ctx.report("nonfinite_grad", step, f"the gradient norm overflowed to {replay.grad_norm} at step {step:,}: "
                       f"every gradient is finite but huge, the largest in `{layer}` (norm "
                       f"{fmt(replay.largest_grad_norm)}); the weights or activations had blown up", evidence,
                       layer=layer)
            return
        if replay.origin_kind == "loss":
            ctx.report(symptom, step, f"non-finite loss at step {step:,} from finite model outputs: the loss "
                       "function produced it (log of 0? probabilities where logits are expected?)", evidence)
            return
        if getattr(ctx.trainer, "loss_outside_model", False) and not replay.error:
            ctx.report(symptom, step, f"non-finite {noun} at step {step:,}; replaying the model's last forward "
                       "gave finite outputs and gradients, so the loss computed outside the model made it (log of "
                       "0? probabilities where logits are expected?) or a random op (dropout?)", evidence)
            return
        ctx.report(symptom, step, f"non-finite {noun} at step {step:,}; replaying the batch gave a finite "
                   f"{noun} ({fmt(replay.loss)}), so a random op (dropout?) or an earlier micro-batch was involved"
                   + (f" [replay failed: {replay.error}]" if replay.error else ""), evidence)

    @staticmethod
    def _module_weight_norm(model: nn.Module, name: str | None) -> float | None:
        if name is None:
            return None
        try:
            module = model.get_submodule(name)
        except AttributeError:
            return None
        params = [p.detach() for p in module.parameters(recurse=False)]
        if not params:
            return None
        return float(torch.linalg.vector_norm(torch.stack(torch._foreach_norm(params)).float()))

    def _lr_verdict(self, ctx: RunContext, step: int, growth: float | None, weight_norm: float) -> None:
        """A blow-up preceded by weights growing, or the loss climbing, points at the learning rate."""
        history = ctx.history
        reasons = []
        evidence: dict[str, Any] = {"lr": ctx.current_lr(), "weight_norm": weight_norm, "weight_growth": growth}
        if growth is not None and growth >= WEIGHT_GROWTH_FACTOR:
            reasons.append(f"the weights' norm grew {fmt(growth)}x since the start")
        losses = history.recent("loss", 200)
        losses = losses[np.isfinite(losses)]
        if losses.size >= 20:
            best = float(min(losses[i:i + 10].mean() for i in range(0, losses.size - 9, 10)))
            last = float(losses[-10:].mean())
            evidence.update({"best_recent_loss": best, "last_loss": last})
            if best > 0 and last >= RISING_LOSS_FACTOR * best:
                reasons.append(f"the loss climbed from {fmt(best)} to {fmt(last)} before it")
        if reasons:
            ctx.report("lr_too_high", step, f"divergence at step {step:,} after {' and '.join(reasons)}: the "
                       f"learning rate ({fmt(ctx.current_lr())}) is likely too high", evidence)
