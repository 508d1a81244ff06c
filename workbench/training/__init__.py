"""The training core: no textual imports here (tests/test_layering.py enforces it)."""
