"""Diagnostics: detectors that turn telemetry and probes into findings (filled in by its own issue)."""

from __future__ import annotations


def default_callbacks(preset) -> list:
    """The diagnostics callbacks every run gets."""
    return []
