"""Screens of the TUI: presets, configure, dashboard, and small dialogs."""
