"""Keeping the inputs of a watched model's last training forward: the batch the NaN replay re-runs.

A forward pre-hook would do, but any hook on a module sends every call of it through torch's hooked call
path: about 100 more Python bytecodes a forward (a small MLP's whole step is ~7,000). `Module.__call__` first
looks for `_compiled_call_impl`, the slot `module.compile()` fills and that pickling and `copy.deepcopy`
leave out. A thin function there keeps the inputs and then takes the module's usual call path, with every
hook the user has. Where the slot is taken (a module compiled with `module.compile()`) or torch has none,
the public pre-hook is used instead; `in_place()` tells a slot that `module.compile()` replaced later.
"""

from __future__ import annotations

from typing import Any, Callable

import torch
from torch import nn

_SLOT = "_compiled_call_impl"


class KeptInputs:
    """What `keep_training_inputs` returns: `last` is the last training forward's (args, kwargs), or None;
    `remove()` puts the module back as it was."""

    def __init__(self, model: nn.Module):
        self.model = model
        self.last: tuple[tuple, dict] | None = None
        self.call: Callable[..., Any] | None = None
        self.hook: Any = None

    @property
    def uses_slot(self) -> bool:
        return self.call is not None

    def in_place(self) -> bool:
        """Still keeping: the pre-hook, or the slot where nothing has replaced the function."""
        return self.call is None or self.model.__dict__.get(_SLOT) is self.call

    def remove(self) -> None:
        if self.hook is not None:
            self.hook.remove()
            self.hook = None
        if self.call is not None and self.model.__dict__.get(_SLOT) is self.call:
            del self.model.__dict__[_SLOT]
        self.call = None


def _slot_free(model: nn.Module) -> bool:
    return (type(model).__call__ is getattr(nn.Module, "_wrapped_call_impl", None)
            and getattr(type(model), _SLOT, False) is None and model.__dict__.get(_SLOT) is None)


def keep_training_inputs(model: nn.Module, slot: bool = True) -> KeptInputs:
    """Keep the inputs of every call of `model` made with gradients enabled (training forwards, not
    evaluation under no_grad) in the handle's `last`, until its `remove()`."""
    kept = KeptInputs(model)
    _install(kept, slot and _slot_free(model))
    return kept


def keep_with_hook(kept: KeptInputs) -> None:
    """Go on keeping through the pre-hook (the slot was taken since: `module.compile()` after `watch`)."""
    kept.remove()
    _install(kept, slot=False)


def _install(kept: KeptInputs, slot: bool) -> None:
    model, is_grad_enabled = kept.model, torch.is_grad_enabled
    if slot:
        call_impl = model._call_impl  # the usual path: the module's own hooks, torch's fast path without any

        def call_keeping_inputs(*args: Any, **kwargs: Any) -> Any:
            if is_grad_enabled():
                kept.last = (args, kwargs)
            return call_impl(*args, **kwargs)

        model.__dict__[_SLOT] = kept.call = call_keeping_inputs
        return

    def pre_hook(module: nn.Module, args: tuple, kwargs: dict) -> None:
        if is_grad_enabled():
            kept.last = (args, kwargs)

    kept.hook = model.register_forward_pre_hook(pre_hook, with_kwargs=True)
