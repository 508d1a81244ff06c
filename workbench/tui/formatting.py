"""Short cell texts shared by the TUI's lists and progress line: parameter counts and durations."""

from __future__ import annotations


def format_params(count: int | None) -> str:
    """1.2M, 35.0k, 812 (or '?' when not counted yet)."""
    if count is None:
        return "?"
    for unit, size in (("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if count >= size:
            return f"{count / size:.1f}{unit}"
    return str(count)


def format_duration(seconds: float | None) -> str:
    """0:07, 12:34, 1:02:03 (or '-' when unknown)."""
    if seconds is None:
        return "-"
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"
