"""A tmux server on its own socket, for tests in a real terminal (never touches the user's sessions)."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path


class Tmux:
    """One tmux server on its own socket, so the test never touches the user's sessions."""

    def __init__(self, name: str):
        self.socket = name
        self.session = name

    def run(self, *args: str) -> str:
        # An explicit env: pytest's readline work-around puts COLUMNS=80/LINES=24 into the C-level
        # environment, which tmux would hand to the TUI, and Textual trusts them over the pane's size.
        done = subprocess.run(["tmux", "-L", self.socket, *args], capture_output=True, text=True, timeout=30,
                              env=dict(os.environ))
        return done.stdout

    def screen(self) -> str:
        return self.run("capture-pane", "-p", "-t", self.session)

    def wait_for(self, pattern: str, timeout: float = 90.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.screen()
            if re.search(pattern, text):
                return text
            time.sleep(0.2)
        raise AssertionError(f"{pattern!r} never appeared; the screen was:\n{self.screen()}")


def workbench_shell(*args: str, after: str = "; echo EXITED $?; sleep 60") -> str:
    """A shell line running `workbench ARGS` with the test's cache and offline settings, then `after`."""
    workbench = Path(sys.executable).parent / "workbench"
    command = [str(workbench)] if workbench.exists() else [sys.executable, "-m", "workbench"]
    env = {key: os.environ[key] for key in ("XDG_CACHE_HOME", "HF_HUB_OFFLINE", "PATH", "PYTHONPATH")
           if key in os.environ}
    return " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items()) + " TERM=xterm-256color " + \
        " ".join(shlex.quote(part) for part in [*command, *args]) + after
