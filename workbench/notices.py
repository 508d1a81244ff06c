"""Notes from slow set-up work (a base model pre-trained before a run, say) to whoever runs the build.

A builder has no handle on the run it is building for; the trainer opens a channel around its build
(`notices_to(trainer.log)`) and a builder calls `notice("...")`, which goes nowhere outside one. The
channel is a context variable, so it belongs to the trainer's thread alone.
"""

from __future__ import annotations

from contextlib import contextmanager
from contextvars import ContextVar
from typing import Callable, Iterator

_sink: ContextVar[Callable[[str], None] | None] = ContextVar("workbench_setup_notices", default=None)


@contextmanager
def notices_to(sink: Callable[[str], None]) -> Iterator[None]:
    token = _sink.set(sink)
    try:
        yield
    finally:
        _sink.reset(token)


def notice(text: str) -> None:
    sink = _sink.get()
    if sink is not None:
        sink(text)
