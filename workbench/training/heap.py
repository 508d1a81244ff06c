"""Keep the garbage collector's full collections out of the training loop.

What is imported and built before the loop (torch, the model, the data, the dashboard's widgets) lives
as long as the run. A full collection walks all of it: 120-190 ms with the TUI loaded, and one often
falls in the loop's first steps. Freezing the heap as the loop starts takes those objects out of the
collector's sight; unfreezing it as the loop ends hands them back, so garbage frozen with them (say, a
previous run's model held in a reference cycle) is collected then rather than kept for the process's life.
"""

from __future__ import annotations

import gc
import threading
from contextlib import contextmanager
from typing import Iterator

_lock = threading.Lock()
_holders = 0  # loops running inside frozen_heap(); the heap is frozen while there is one


@contextmanager
def frozen_heap() -> Iterator[None]:
    """Freeze the heap for the block; nested and concurrent blocks share one freeze."""
    global _holders
    with _lock:
        if _holders == 0:
            gc.freeze()
        _holders += 1
    try:
        yield
    finally:
        with _lock:
            _holders -= 1
            if _holders == 0:
                gc.unfreeze()
