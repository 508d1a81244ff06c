"""Widgets of the TUI: charts, progress, diagnostics panel, log, sample and error panels."""
