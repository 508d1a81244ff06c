"""Errors that reach the user as one clear line (exit code 2) instead of a traceback."""


class ConfigError(Exception):
    """Bad usage or a bad preset: the message names the key or file and why. Nothing is recorded."""

    def __init__(self, problems: str | list[str]):
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("; ".join(self.problems))


class StoreError(Exception):
    """The runs directory or database cannot be used (missing, unwritable, full)."""
