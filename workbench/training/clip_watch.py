"""The gradient norm a user's loop already computes when it clips.

A watched loop that calls `torch.nn.utils.clip_grad_norm_` before `optimizer.step()` (by hand, or through
Lightning's or the Hugging Face Trainer's clipping) has just computed the global L2 norm of the very
gradients the optimizer hook would measure again. While a watched run is live, that function is wrapped:
it runs unchanged and then hands its result (the norm before clipping) to the runs watching exactly those
parameters, so each step computes the norm once, and the norm charted is the pre-clip one, as the preset
trainer charts it. A loop that clips some other way, or only some parameters, or with another norm, is
measured by the hook as before.

Only the attribute `torch.nn.utils.clip_grad_norm_` is wrapped: a name imported before `watch` (`from
torch.nn.utils import clip_grad_norm_`) is torch's own function, and the hook measures.
"""

from __future__ import annotations

import threading
from typing import Any, Protocol

import torch


class ClipListener(Protocol):
    def clipped(self, parameters: list[torch.Tensor], total_norm: torch.Tensor) -> None: ...


_lock = threading.Lock()
_listeners: tuple[ClipListener, ...] = ()  # replaced, never changed in place: a call iterates it as it is
_original = None


def _clip_grad_norm_(parameters: Any, max_norm: float, norm_type: float = 2.0, *args: Any, **kwargs: Any):
    params = [parameters] if isinstance(parameters, torch.Tensor) else list(parameters)
    total = _original(params, max_norm, norm_type, *args, **kwargs)
    if norm_type == 2.0 or float(norm_type) == 2.0:
        for listener in _listeners:
            listener.clipped(params, total)
    return total


class Listening:
    """What `listen` returns: `remove()` ends it (as a torch hook handle does)."""

    def __init__(self, listener: ClipListener):
        self.listener = listener

    def remove(self) -> None:
        _unlisten(self.listener)


def listen(listener: ClipListener) -> Listening:
    """Hand `listener` the result of every `torch.nn.utils.clip_grad_norm_` call until the handle's remove()."""
    global _original, _listeners
    with _lock:
        if not _listeners and torch.nn.utils.clip_grad_norm_ is not _clip_grad_norm_:
            _original = torch.nn.utils.clip_grad_norm_
            torch.nn.utils.clip_grad_norm_ = _clip_grad_norm_
        _listeners = (*_listeners, listener)
    return Listening(listener)


def _unlisten(listener: ClipListener) -> None:
    """The last listener gone puts torch's function back (unless something else has replaced it since)."""
    global _listeners
    with _lock:
        _listeners = tuple(other for other in _listeners if other is not listener)
        if not _listeners and torch.nn.utils.clip_grad_norm_ is _clip_grad_norm_:
            torch.nn.utils.clip_grad_norm_ = _original
