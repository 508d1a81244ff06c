"""Errors that reach the user as one clear line (exit code 2) instead of a traceback."""

import unicodedata


def one_line(text: str) -> str:
    """Escape control and format characters (newlines, bidi overrides) so user text can't break or spoof
    the one-line message."""
    return "".join(
        ch if ch == " " or not unicodedata.category(ch).startswith(("C", "Z")) else ch.encode("unicode_escape").decode()
        for ch in text
    )


class ConfigError(Exception):
    """Bad usage or a bad preset: the message names the key or file and why. Nothing is recorded."""

    def __init__(self, problems: str | list[str]):
        raw = [problems] if isinstance(problems, str) else list(problems)
        self.problems = [one_line(problem) for problem in raw]
        super().__init__("; ".join(self.problems))


class StoreError(Exception):
    """The runs directory or database cannot be used (missing, unwritable, full)."""
