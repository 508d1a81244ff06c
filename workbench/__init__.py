"""Workbench: a terminal training workbench for PyTorch."""

__version__ = "0.1.0"
