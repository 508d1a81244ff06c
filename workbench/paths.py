"""Paths a user typed: `~` and `~name` expanded as a shell would."""

from __future__ import annotations

import os
from pathlib import Path


def user_path(text: str | os.PathLike[str]) -> Path:
    """`Path(text).expanduser()`, except that a `~name` naming no user stays as typed (as in a shell)
    instead of raising: the caller then says the path does not exist, naming what was typed."""
    path = Path(text)
    try:
        return path.expanduser()
    except RuntimeError:
        return path
