"""Diagnostics: detectors that turn telemetry and probes into findings (what is wrong, where, what to do).

`default_callbacks(preset)` is what the CLI and the TUI attach to every run: the diagnostics engine
with one of each detector. Pre-flight checks (`preflight`), the LR finder (`lr_finder`) and the
divergence actions (`actions`) are plain functions used by the CLI and the TUI.
"""

from __future__ import annotations


def default_callbacks(preset) -> list:
    """The diagnostics callbacks every run gets."""
    from workbench.diagnostics.engine import DiagnosticsEngine

    return [DiagnosticsEngine()]
