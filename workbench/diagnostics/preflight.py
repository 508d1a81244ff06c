"""Pre-flight checks: what the debugging practice says to verify before (or at) step 0.

`run_preflight(preset)` builds the model and data exactly as the trainer does, takes one training
batch and checks, in order:

- output_shape: the model's output fits the target and the loss (classes vs the data's, batch size,
  element counts, label range); fail if not, since training would crash or learn nonsense;
- initial_loss: the step-0 loss against ln(C) (or the target variance), as the bad_initial_loss finding;
- gradient_flow: every trainable parameter receives a gradient (none: warn, it is not connected to the
  loss; all zero: warn; NaN/inf: fail);
- overfit_one_batch: a copy of the model, with dropout and weight decay off, trains on OVERFIT_SAMPLES
  samples of that batch for up to `overfit_steps` steps; its loss should fall below OVERFIT_TARGET of
  where it started (warn if not: the model, the LR or the loss cannot fit even one batch);
- gradcheck: every module whose class is defined outside torch/torchvision/transformers/peft/workbench
  (hand-written layers) is checked with torch.autograd.gradcheck in float64 (fast mode) on inputs
  captured from the real batch; fail names the module whose backward disagrees with finite differences.

Results are plain `CheckResult`s; nothing is recorded in the run store.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

import torch
from torch import nn

from workbench.errors import ConfigError

OVERFIT_STEPS = 100
OVERFIT_SAMPLES = 16
OVERFIT_TARGET = 0.1
OVERFIT_SLOW = 0.5
OVERFIT_SECONDS = 30.0
GRADCHECK_MAX_MODULES = 8
GRADCHECK_MAX_PARAMS = 2_000_000
GRADCHECK_SAMPLES = 2
BUILTIN_PREFIXES = ("torch.", "torchvision.", "transformers.", "peft.", "workbench.")
STATUSES = ("pass", "warn", "fail", "skip")


@dataclass
class CheckResult:
    """One pre-flight check: name, pass|warn|fail|skip, a one-line message, the numbers behind it."""

    name: str
    status: str
    message: str
    evidence: dict[str, Any] = field(default_factory=dict)
    layer: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _slice_batch(value: Any, size: int, count: int) -> Any:
    """The first `count` samples of a batch (tensors whose first dimension is the batch)."""
    if isinstance(value, torch.Tensor):
        return value[:count] if value.dim() > 0 and value.shape[0] == size else value
    if isinstance(value, dict) or hasattr(value, "items"):
        return {key: _slice_batch(item, size, count) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_slice_batch(item, size, count) for item in value)
    return value


def _forward(model: nn.Module, loss_fn, x: Any, y: Any) -> tuple[torch.Tensor, Any]:
    if loss_fn is None:
        output = model(**x, labels=y) if isinstance(x, dict) else model(x, labels=y)
        loss = output["loss"] if isinstance(output, dict) or hasattr(output, "keys") else output[0]
        return loss, output
    output = model(**x) if isinstance(x, dict) else model(x)
    return loss_fn(getattr(output, "logits", output), y), output


def _expected_classes(preset, info, model) -> int | None:
    if preset.task in ("language_modeling", "seq2seq"):
        return info.vocab_size or getattr(getattr(model, "config", None), "vocab_size", None)
    if preset.task == "classification":
        return info.num_classes
    return None


def check_output_shape(preset, info, model, loss_fn, x, y, output) -> CheckResult:
    """Does the output fit the target and the loss? Returns a fail naming the mismatch, else pass."""
    name = "output_shape"
    if loss_fn is None:
        has_loss = (isinstance(output, dict) or hasattr(output, "keys")) and "loss" in output
        if not has_loss and not isinstance(output, (tuple, list)):
            return CheckResult(name, "fail", f"train.loss = 'model' but the model returned "
                               f"{type(output).__name__} without a 'loss'")
        return CheckResult(name, "pass", "the model computes its own loss from the labels")
    logits = getattr(output, "logits", output)
    if not isinstance(logits, torch.Tensor):
        return CheckResult(name, "fail", f"the model returned {type(logits).__name__}, not a tensor of outputs")
    if not isinstance(y, torch.Tensor):
        return CheckResult(name, "fail", f"the batch's target is {type(y).__name__}, not a tensor")
    evidence = {"output_shape": list(logits.shape), "target_shape": list(y.shape), "loss": preset.train.loss}
    if logits.dim() == 0 or (y.dim() > 0 and logits.shape[0] != y.shape[0]):
        return CheckResult(name, "fail", f"output batch size {list(logits.shape)[:1]} does not match the target's "
                           f"{list(y.shape)[:1]}", evidence)
    loss = preset.train.loss
    if loss in ("cross_entropy", "nll"):
        if y.is_floating_point() and y.shape == logits.shape:
            return CheckResult(name, "pass", f"output {list(logits.shape)} matches soft targets", evidence)
        if logits.dim() < 2 or logits.shape[:-1] != y.shape:
            return CheckResult(name, "fail", f"{loss} needs outputs shaped target + (classes,): got output "
                               f"{list(logits.shape)} for target {list(y.shape)}", evidence)
        classes = logits.shape[-1]
        expected = _expected_classes(preset, info, model)
        evidence["classes"] = classes
        if expected and classes != expected:
            return CheckResult(name, "fail", f"the model outputs {classes} scores per sample but the data has "
                               f"{expected} classes", {**evidence, "expected_classes": expected})
        labels = y[y != -100]
        if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= classes):
            return CheckResult(name, "fail", f"labels range over [{int(labels.min())}, {int(labels.max())}] but the "
                               f"model has {classes} outputs", evidence)
        return CheckResult(name, "pass", f"output {list(logits.shape)} fits target {list(y.shape)} "
                           f"({classes} classes)", evidence)
    if logits.numel() != y.numel():
        return CheckResult(name, "fail", f"{loss} compares output and target element by element: output "
                           f"{list(logits.shape)} has {logits.numel():,} elements, target {list(y.shape)} has "
                           f"{y.numel():,}", evidence)
    if loss == "bce_with_logits" and y.numel() and (float(y.min()) < 0 or float(y.max()) > 1):
        return CheckResult(name, "fail", f"bce_with_logits needs targets in [0, 1], got [{float(y.min()):.3g}, "
                           f"{float(y.max()):.3g}]", evidence)
    return CheckResult(name, "pass", f"output {list(logits.shape)} fits target {list(y.shape)}", evidence)


def check_gradient_flow(model: nn.Module) -> CheckResult:
    """After one backward: which trainable parameters got no gradient, a zero one, or a non-finite one."""
    missing, zero, nonfinite = [], [], []
    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    for name, param in trainable:
        if param.grad is None:
            missing.append(name)
        elif not bool(torch.isfinite(param.grad).all()):
            nonfinite.append(name)
        elif not bool(param.grad.any()):
            zero.append(name)
    evidence = {"parameters": len(trainable), "no_grad": missing, "zero_grad": zero, "nonfinite_grad": nonfinite}
    from workbench.training.step import layer_of

    if nonfinite:
        return CheckResult("gradient_flow", "fail", f"{len(nonfinite)} parameter(s) got NaN/inf gradients, first "
                           f"`{nonfinite[0]}`", evidence, layer=layer_of(nonfinite[0]))
    if missing:
        return CheckResult("gradient_flow", "warn", f"{len(missing)} trainable parameter(s) receive no gradient "
                           f"(not connected to the loss), first `{missing[0]}`", evidence, layer=layer_of(missing[0]))
    if zero:
        return CheckResult("gradient_flow", "warn", f"{len(zero)} parameter(s) got an all-zero gradient, first "
                           f"`{zero[0]}`", evidence, layer=layer_of(zero[0]))
    return CheckResult("gradient_flow", "pass", f"all {len(trainable):,} trainable parameters receive a gradient",
                       evidence)


def _regularisation_off(model: nn.Module) -> None:
    """Eval mode switches every kind of dropout off; BatchNorm stays in train mode (batch statistics)."""
    model.eval()
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.train()


def check_overfit_one_batch(preset, model: nn.Module, x: Any, y: Any, batch_size: int, steps: int = OVERFIT_STEPS,
                            max_seconds: float = OVERFIT_SECONDS) -> CheckResult:
    """Can a copy of the model drive the loss on a handful of samples towards zero?"""
    from workbench.training.losses import build_loss
    from workbench.training.optim import build_optimizer

    count = min(OVERFIT_SAMPLES, batch_size)
    x, y = _slice_batch(x, batch_size, count), _slice_batch(y, batch_size, count)
    clone = copy.deepcopy(model)
    _regularisation_off(clone)
    optimizer = build_optimizer(clone, preset.optim.model_copy(update={"weight_decay": 0.0}))
    loss_fn = build_loss(preset.train.model_copy(update={"label_smoothing": 0.0}))
    clip = preset.train.grad_clip
    params = [p for p in clone.parameters() if p.requires_grad]
    losses: list[float] = []
    started = time.perf_counter()
    for _ in range(steps):
        loss, _ = _forward(clone, loss_fn, x, y)
        value = float(loss.detach())
        losses.append(value)
        if not math.isfinite(value):
            break
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if clip > 0:
            torch.nn.utils.clip_grad_norm_(params, clip)
        optimizer.step()
        if time.perf_counter() - started > max_seconds:
            break
    first, best = losses[0], min(losses)
    evidence = {"samples": count, "steps": len(losses), "initial_loss": first, "final_loss": losses[-1],
                "best_loss": best, "lr": preset.optim.lr, "losses": losses}
    if not math.isfinite(losses[-1]):
        return CheckResult("overfit_one_batch", "warn", f"training on {count} samples blew up (NaN/inf loss) after "
                           f"{len(losses)} steps: the learning rate is likely too high", evidence)
    if first <= 0 or best <= OVERFIT_TARGET * first:
        return CheckResult("overfit_one_batch", "pass", f"loss on {count} samples fell from {first:.4g} to "
                           f"{best:.4g} in {len(losses)} steps", evidence)
    verdict = "only fell" if best <= OVERFIT_SLOW * first else "barely moved"
    return CheckResult("overfit_one_batch", "warn", f"could not overfit {count} samples: the loss {verdict} from "
                       f"{first:.4g} to {best:.4g} in {len(losses)} steps (check the LR, the loss and the model)",
                       evidence)


def custom_modules(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """Modules whose class is hand-written (defined outside torch, torchvision, transformers, peft, workbench)."""
    found = []
    for name, module in model.named_modules():
        origin = type(module).__module__ or ""
        if not any(origin == p.rstrip(".") or origin.startswith(p) for p in BUILTIN_PREFIXES):
            found.append((name, module))
    return found


def _as_double(value: Any, size: int) -> Any:
    if isinstance(value, torch.Tensor):
        value = _slice_batch(value, size, GRADCHECK_SAMPLES).detach()
        if value.is_floating_point():
            return value.double().requires_grad_(True)
        return value
    if isinstance(value, (list, tuple)):
        return type(value)(_as_double(item, size) for item in value)
    if isinstance(value, dict):
        return {key: _as_double(item, size) for key, item in value.items()}
    return value


def _gradcheck_module(name: str, module: nn.Module, args: tuple, kwargs: dict, batch_size: int) -> CheckResult:
    from torch.func import functional_call

    from workbench.diagnostics.nonfinite import _tensors

    clone = copy.deepcopy(module).double().eval()
    args = _as_double(args, batch_size)
    kwargs = _as_double(kwargs, batch_size)
    arg_tensors = [a for a in args if isinstance(a, torch.Tensor) and a.requires_grad]
    names = [n for n, p in clone.named_parameters() if p.requires_grad]
    params = [p.detach().clone().requires_grad_(True) for n, p in clone.named_parameters() if p.requires_grad]
    positions = [i for i, a in enumerate(args) if isinstance(a, torch.Tensor) and a.requires_grad]
    if not arg_tensors and not params:
        return CheckResult("gradcheck", "skip", f"`{name}` has no floating inputs or parameters to check", layer=name)

    def fn(*flat):
        call_args = list(args)
        for position, tensor in zip(positions, flat[: len(positions)]):
            call_args[position] = tensor
        out = functional_call(clone, dict(zip(names, flat[len(positions):])), tuple(call_args), kwargs)
        outputs = tuple(t for t in _tensors(out) if t.requires_grad)
        return outputs if len(outputs) != 1 else outputs[0]

    inputs = tuple(arg_tensors) + tuple(params)
    try:
        ok = torch.autograd.gradcheck(fn, inputs, eps=1e-6, atol=1e-5, rtol=1e-3, fast_mode=True,
                                      raise_exception=True)
    except Exception as error:  # gradcheck raises with the mismatching Jacobians
        text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        return CheckResult("gradcheck", "fail", f"`{name}` ({type(module).__name__}): its gradients disagree with "
                           f"finite differences in float64: {text}", {"module": type(module).__name__}, layer=name)
    return CheckResult("gradcheck", "pass" if ok else "fail", f"`{name}` ({type(module).__name__}): gradients match "
                       "finite differences in float64", {"module": type(module).__name__}, layer=name)


def check_custom_gradients(model: nn.Module, loss_fn, x: Any, y: Any, batch_size: int) -> list[CheckResult]:
    """torch.autograd.gradcheck on each hand-written module, with inputs captured from the real batch."""
    modules = [(n, m) for n, m in custom_modules(model)
               if sum(p.numel() for p in m.parameters()) <= GRADCHECK_MAX_PARAMS][:GRADCHECK_MAX_MODULES]
    if not modules:
        return [CheckResult("gradcheck", "skip", "no hand-written modules to check")]
    captured: dict[str, tuple[tuple, dict]] = {}
    handles = []
    for name, module in modules:
        def hook(mod, args, kwargs, name=name):
            captured.setdefault(name, (args, kwargs))

        handles.append(module.register_forward_pre_hook(hook, with_kwargs=True))
    try:
        with torch.no_grad():
            was_training = model.training
            model.eval()
            try:
                _forward(model, loss_fn, x, y)
            finally:
                model.train(was_training)
    finally:
        for handle in handles:
            handle.remove()
    results = []
    for name, module in modules:
        if name not in captured:
            results.append(CheckResult("gradcheck", "skip", f"`{name}` was not called in the forward pass",
                                       layer=name or None))
            continue
        args, kwargs = captured[name]
        result = _gradcheck_module(name or "(model)", module, args, kwargs, batch_size)
        result.layer = name or None
        results.append(result)
    failed = [r.layer or "" for r in results if r.status == "fail"]
    for result in results:  # a container fails because a hand-written child does: say which
        name = result.layer or ""
        inner = [f for f in failed if f != name and (name == "" or f.startswith(name + "."))]
        if result.status == "fail" and inner:
            result.message += f" (through `{inner[0]}`)"
            result.evidence["through"] = inner
    return results


def run_preflight(preset, overfit_steps: int = OVERFIT_STEPS, progress: Callable[[CheckResult], None] | None = None,
                  ) -> list[CheckResult]:
    """Build the preset's model and data and run every check; `progress` sees each result as it comes."""
    from workbench.builders import build_data, build_model, check_preset
    from workbench.diagnostics.initial_loss import initial_loss_threshold, judge_initial_loss, reference_loss
    from workbench.training.batches import BatchSource, split_batch, to_device
    from workbench.training.device import pick_device
    from workbench.training.trainer import seed_everything
    from workbench.training.losses import build_loss

    results: list[CheckResult] = []

    def add(result: CheckResult) -> None:
        results.append(result)
        if progress is not None:
            progress(result)

    check_preset(preset)
    config = preset.train
    if config.threads:
        torch.set_num_threads(config.threads)
    seed_everything(config.seed)
    device = pick_device(config.device)
    try:
        data = build_data(preset)
        model = build_model(preset, data.info)
        if not isinstance(model, nn.Module):
            raise ConfigError(f"model: builder returned {type(model).__name__}, not a torch.nn.Module")
        model = model.to(device).train()
        source = BatchSource(data.train, config.batch_size, config.seed, collate=data.info.collate)
        batch = to_device(source.next(), device)
        source.close()
        x, y = split_batch(batch)
    except ConfigError:
        raise
    except Exception as error:  # user model/data code failing to build is itself the finding
        add(CheckResult("build", "fail", f"building the model and data failed: {type(error).__name__}: {error}"))
        return results
    from workbench.training.batches import batch_size_of

    batch_size = batch_size_of(x)
    loss_fn = build_loss(config)
    try:
        loss, output = _forward(model, loss_fn, x, y)
    except Exception as error:  # the forward or the loss crashed: say which, with the shapes when known
        output = _output_only(model, loss_fn, x, y)
        shape = None if output is None else check_output_shape(preset, data.info, model, loss_fn, x, y, output)
        if shape is not None and shape.status == "fail":
            add(shape)
        else:
            stage = "the forward pass" if output is None else "the loss"
            add(CheckResult("output_shape", "fail", f"{stage} failed: {type(error).__name__}: {error}"))
        return results
    shape = check_output_shape(preset, data.info, model, loss_fn, x, y, output)
    add(shape)
    loss_value = float(loss.detach())
    reference = reference_loss(preset, data.info, model, data.val)
    if not math.isfinite(loss_value):
        add(CheckResult("initial_loss", "fail", f"the initial loss is {loss_value}", {"initial_loss": loss_value}))
    elif reference is None:
        add(CheckResult("initial_loss", "skip", f"initial loss {loss_value:.4g} (no reference for "
                        f"loss = {config.loss!r} on task {preset.task!r})", {"initial_loss": loss_value}))
    else:
        message = judge_initial_loss(preset, reference, loss_value)
        evidence = {"initial_loss": loss_value, "expected": reference.loss, "expected_from": reference.description,
                    "threshold": initial_loss_threshold(preset, reference)}
        add(CheckResult("initial_loss", "warn", message, evidence) if message else
            CheckResult("initial_loss", "pass", f"initial loss {loss_value:.4g} is close to {reference.loss:.4g} "
                        f"({reference.description})", evidence))
    model.zero_grad(set_to_none=True)
    if loss.requires_grad:
        loss.backward()
        add(check_gradient_flow(model))
    else:
        add(CheckResult("gradient_flow", "fail", "the loss does not require grad: no parameter can learn"))
    model.zero_grad(set_to_none=True)
    if shape.status != "fail" and math.isfinite(loss_value) and loss.requires_grad:
        add(check_overfit_one_batch(preset, model, x, y, batch_size, overfit_steps))
    for result in check_custom_gradients(model, loss_fn, x, y, batch_size):
        add(result)
    return results


def _output_only(model, loss_fn, x, y):
    """The model's output alone (when the loss failed), or None when the forward itself fails."""
    try:
        with torch.no_grad():
            if loss_fn is None:
                return model(**x, labels=y) if isinstance(x, dict) else model(x, labels=y)
            return model(**x) if isinstance(x, dict) else model(x)
    except Exception:
        return None


def preflight_failed(results: list[CheckResult]) -> bool:
    return any(result.status == "fail" for result in results)
